package bench

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tapswitch/tapswitch/internal/chart"
)

// systemColours keeps a system's colour the same in every panel.
var systemColours = map[string]color.Color{
	"bridge":    color.RGBA{0x4c, 0x72, 0xb0, 0xff},
	"tapswitch": color.RGBA{0xdd, 0x84, 0x52, 0xff},
	"ovs":       color.RGBA{0x55, 0xa8, 0x68, 0xff},
}

// Plot writes a PNG with one panel per case and metric: a bar per system at
// its median, with a whisker from min to max, and the ratio in the title.
func Plot(r *Report, path string) error {
	var panels []*plot.Plot
	for _, res := range r.Results {
		if res.Unit == "%" && allZero(res) {
			continue // a loss of 0 everywhere is not worth a panel
		}
		p := plot.New()
		title := fmt.Sprintf("%s: %s", res.Case, res.Metric)
		switch {
		case res.Ratio != 0 && res.OVSRatio != 0:
			title += fmt.Sprintf(" (%.2fx bridge, %.2fx ovs)", res.Ratio, res.OVSRatio)
		case res.Ratio != 0:
			title += fmt.Sprintf(" (%.2fx)", res.Ratio)
		case res.OVSRatio != 0:
			title += fmt.Sprintf(" (%.2fx ovs)", res.OVSRatio)
		}
		p.Title.Text = title
		p.Title.TextStyle.Font.Size = vg.Points(9)
		better := "lower is better"
		if res.HigherBetter {
			better = "higher is better"
		}
		p.Y.Label.Text = res.Unit + ", " + better
		p.Y.Label.TextStyle.Font.Size = vg.Points(7)
		p.Y.Min = 0
		var names []string
		x := 0
		for _, sys := range r.Systems {
			st := res.Systems[sys]
			if st == nil {
				continue
			}
			bars, err := plotter.NewBarChart(plotter.Values{st.Median}, vg.Points(28))
			if err != nil {
				return fmt.Errorf("plot %s: %w", res.Case, err)
			}
			bars.XMin = float64(x)
			bars.Color = systemColours[sys]
			bars.LineStyle.Width = 0
			p.Add(bars)
			eb, err := plotter.NewYErrorBars(yErrs{median: st.Median, lo: st.Min, hi: st.Max, x: float64(x)})
			if err == nil {
				p.Add(eb)
			}
			names = append(names, sys)
			x++
		}
		p.NominalX(names...)
		p.X.Tick.Label.Font.Size = vg.Points(8)
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return fmt.Errorf("plot: no results")
	}
	const cols = 4
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	w, h := vg.Points(float64(cols)*190), vg.Points(float64(rows)*170+24)
	page := chart.NewPage(w, h)
	page.Text(vg.Points(10), h-vg.Points(16), 10, fmt.Sprintf("tapswitch vs kernel bridge: median, min-max over %d rounds of %s; %d CPUs, kernel %s",
		r.Rounds, r.Duration, r.Machine.CPUs, r.Machine.Kernel))
	chart.Grid(draw.Crop(page.Canvas, 0, 0, 0, -vg.Points(24)), grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)})
	return page.WritePNG(path)
}

func allZero(res Result) bool {
	for _, s := range res.Systems {
		if s.Max != 0 {
			return false
		}
	}
	return true
}

// yErrs is one bar's min-max whisker.
type yErrs struct{ median, lo, hi, x float64 }

func (e yErrs) Len() int                       { return 1 }
func (e yErrs) XY(int) (float64, float64)      { return e.x, e.median }
func (e yErrs) YError(int) (low, high float64) { return e.median - e.lo, e.hi - e.median }
