package chart

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TestPage: a page with a text line and a 1x2 grid of plots (one cell
// blank) is written in full colour and in 256 colours, both PNGs of the
// page's size with a white background and ink where the plot is; a path
// that cannot be created is an error naming it.
func TestPage(t *testing.T) {
	p := plot.New()
	ln, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(ln)
	w, h := vg.Points(400), vg.Points(200)
	page := NewPage(w, h)
	page.Text(vg.Points(10), h-vg.Points(14), 10, "heading")
	Grid(draw.Crop(page.Canvas, 0, 0, 0, -vg.Points(20)), [][]*plot.Plot{{p, nil}}, draw.Tiles{Rows: 1, Cols: 2})
	dir := t.TempDir()
	for name, write := range map[string]func(string) error{"full.png": page.WritePNG, "small.png": page.WriteSmallPNG} {
		path := filepath.Join(dir, name)
		if err := write(path); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b := img.Bounds()
		if want := page.Img.Image().Bounds(); b != want || b.Dx() < int(w.Dots(vgimgDPI)) || b.Dy() < int(h.Dots(vgimgDPI)) {
			t.Errorf("%s: %v, want %v (%v x %v at %d dpi)", name, b, want, w, h, vgimgDPI)
		}
		_, isPal := img.(*image.Paletted)
		if isPal != (name == "small.png") {
			t.Errorf("%s: paletted %v", name, isPal)
		}
		// The right half (the blank cell) is white; the left has the plot's ink.
		if !white(img.At(b.Max.X*3/4, b.Max.Y/2)) {
			t.Errorf("%s: the blank cell is not white", name)
		}
		ink := 0
		for x := 0; x < b.Max.X/2; x++ {
			for y := 0; y < b.Max.Y; y++ {
				if !white(img.At(x, y)) {
					ink++
				}
			}
		}
		if ink == 0 {
			t.Errorf("%s: nothing drawn", name)
		}
	}
	bad := filepath.Join(dir, "no", "such", "dir", "x.png")
	if err := page.WritePNG(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("writing to %s: %v, want an error naming it", bad, err)
	}
}

// vgimgDPI is vgimg's default resolution.
const vgimgDPI = 96

func white(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r == 0xffff && g == 0xffff && b == 0xffff
}
