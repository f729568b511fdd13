// Package ociimage packs files into a single-layer container image on an
// empty base and writes it as an image tarball (the `docker save` layout,
// which `ctr images import` and `docker load` read), without a container
// engine. `make image` builds the node image with it (internal/imagebuild)
// and the real-runtime test its pause image.
//
// The result is reproducible: every timestamp is the Unix epoch and every
// file is owned by root, so the same files give the same image digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NodeImage is the name of the node image `make image` builds and
// deploy/daemonset.yaml runs.
const NodeImage = "ghcr.io/tapswitch/tapswitch:dev"

// File is one entry of the layer: a regular file (Src or Data) or, with
// Link set, a symbolic link. Parent directories are added as needed.
type File struct {
	Path string // absolute path in the image
	Src  string // a file on this machine to copy
	Data []byte // or the contents themselves
	Mode int64  // permission bits; 0 means 0644 (0755 for a link)
	Link string // a symbolic link's target
}

// Spec is the image to write.
type Spec struct {
	Name       string // e.g. NodeImage; the tarball's repository tag
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// Write packs spec into an image tarball at out, written to a temporary
// name and renamed into place, and returns the image's digest.
func Write(out string, spec Spec) (v1.Hash, error) {
	tag, err := name.NewTag(spec.Name, name.StrictValidation)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image name %q: %w", spec.Name, err)
	}
	layerTar, err := tarLayer(spec.Files)
	if err != nil {
		return v1.Hash{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "tapswitch ociimage", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	// containerd imports and runs only images for its own platform.
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = spec.Env
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return v1.Hash{}, err
	}
	return digest, nil
}

var epoch = time.Unix(0, 0).UTC()

// tarLayer is the uncompressed layer: the files, sorted, each after its
// parent directories.
func tarLayer(files []File) ([]byte, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := addDir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	seen := map[string]bool{}
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("image file %q: want a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("image file %q: listed twice", f.Path)
		}
		seen[f.Path] = true
		if err := addDir(path.Dir(f.Path)); err != nil {
			return nil, err
		}
		h := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, ModTime: epoch, Format: tar.FormatPAX}
		if f.Link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
			if h.Mode == 0 {
				h.Mode = 0o777
			}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		data := f.Data
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, fmt.Errorf("image file %s: %w", f.Path, err)
			}
			data = b
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
