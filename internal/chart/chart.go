// Package chart lays gonum/plot charts out on one PNG page, for the lab's
// pictures (tapswitch bench --plot, tapswitch sim --plot and sim sweep):
// a white page, lines of text, a grid of plots, and the file written. The
// node build links none of it.
package chart

import (
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/png"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Page is a white picture of w x h and its drawing canvas.
type Page struct {
	Img *vgimg.Canvas
	draw.Canvas
}

// NewPage makes a white page of w x h.
func NewPage(w, h vg.Length) Page {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseBackgroundColor(color.White))
	return Page{Img: img, Canvas: draw.New(img)}
}

// Text writes s in black in the default font of size pt, starting at
// (x, y) from the page's lower left corner.
func (p Page) Text(x, y vg.Length, pt float64, s string) {
	ts := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler}
	ts.Font.Size = vg.Points(pt)
	p.FillText(ts, vg.Point{X: x, Y: y}, s)
}

// Grid draws grid's plots into the tiles of c (a part of a page, see
// draw.Crop), aligning their axes; nil cells stay blank.
func Grid(c draw.Canvas, grid [][]*plot.Plot, t draw.Tiles) {
	canvases := plot.Align(grid, t, c)
	for i, row := range grid {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
}

// WritePNG writes the page to path in full colour.
func (p Page) WritePNG(path string) error {
	return write(path, func(f *os.File) error {
		_, err := (vgimg.PngCanvas{Canvas: p.Img}).WriteTo(f)
		return err
	})
}

// WriteSmallPNG writes the page to path in 256 colours (each pixel to the
// nearest, no dithering) with the best compression: a third of the bytes
// of the full-colour image, for pictures that go into READMEs, with no
// visible difference in charts.
func (p Page) WriteSmallPNG(path string) error {
	return write(path, func(f *os.File) error {
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		return enc.Encode(f, toPaletted(p.Img.Image()))
	})
}

func write(path string, enc func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := enc(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

// toPaletted maps every pixel to the nearest Plan 9 colour. A chart has a
// few hundred distinct colours (antialiased edges), so each is looked up
// once: image/draw's per-pixel search of the palette takes seconds for a
// tall picture.
func toPaletted(src image.Image) *image.Paletted {
	b := src.Bounds()
	dst := image.NewPaletted(b, palette.Plan9)
	seen := map[color.RGBA]uint8{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := src.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}
			i, ok := seen[c]
			if !ok {
				i = uint8(dst.Palette.Index(c))
				seen[c] = i
			}
			dst.SetColorIndex(x, y, i)
		}
	}
	return dst
}
