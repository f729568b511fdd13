package ociimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("\x7fELF binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Name: "example.invalid/tapswitch/test:v1",
		Files: []File{
			{Path: "/usr/local/bin/x", Src: src, Mode: 0o755},
			{Path: "/etc/x/conf", Data: []byte("key: 1\n")},
			{Path: "/var/run", Link: "/run"},
		},
		Entrypoint: []string{"/usr/local/bin/x"},
		Cmd:        []string{"run"},
	}
	out := filepath.Join(dir, "img.tar")
	digest, err := Write(out, spec)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(spec.Name)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != digest {
		t.Errorf("digest read back %s, Write said %s", d, digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !slices.Equal(cf.Config.Entrypoint, spec.Entrypoint) || !slices.Equal(cf.Config.Cmd, spec.Cmd) {
		t.Errorf("config: %s/%s entrypoint %q cmd %q", cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		desc := string(rune(h.Typeflag)) + " " + os.FileMode(h.Mode).String() + " " + string(b) + h.Linkname
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v, want root and the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got[h.Name] = desc
	}
	want := map[string]string{
		"etc/":            "5 -rwxr-xr-x ",
		"etc/x/":          "5 -rwxr-xr-x ",
		"etc/x/conf":      "0 -rw-r--r-- key: 1\n",
		"usr/":            "5 -rwxr-xr-x ",
		"usr/local/":      "5 -rwxr-xr-x ",
		"usr/local/bin/":  "5 -rwxr-xr-x ",
		"usr/local/bin/x": "0 -rwxr-xr-x \x7fELF binary",
		"var/":            "5 -rwxr-xr-x ",
		"var/run":         "2 -rwxrwxrwx /run",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("layer holds %d entries, want %d: %q", len(got), len(want), got)
	}

	// The same files make the same image.
	again, err := Write(filepath.Join(dir, "again.tar"), spec)
	if err != nil || again != digest {
		t.Errorf("second build: %s %v, want the same digest %s", again, err, digest)
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "Not A Name", Files: []File{{Path: "/a"}}}, `"Not A Name"`},
		{Spec{Name: "x.invalid/a:b", Files: []File{{Path: "rel/a"}}}, `"rel/a"`},
		{Spec{Name: "x.invalid/a:b", Files: []File{{Path: "/a/../b"}}}, `"/a/../b"`},
		{Spec{Name: "x.invalid/a:b", Files: []File{{Path: "/a"}, {Path: "/a"}}}, "listed twice"},
		{Spec{Name: "x.invalid/a:b", Files: []File{{Path: "/a", Src: "/nonexistent/file"}}}, "/nonexistent/file"},
	} {
		out := filepath.Join(dir, "img.tar")
		if _, err := Write(out, c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.spec, err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%+v: an image was written", c.spec)
		}
	}
}
