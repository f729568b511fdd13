package sim

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tapswitch/tapswitch/internal/chart"
)

// plotLines caps the lines of one panel: the ones with the largest peak are
// drawn, so a 10,000-port scenario still gives a readable picture.
const plotLines = 8

// colours are Tableau's ten colours: distinct, and the same port or link
// keeps its colour in every panel and every column.
var colours = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, color.RGBA{0xbc, 0xbd, 0x22, 0xff},
	color.RGBA{0x17, 0xbe, 0xcf, 0xff},
}

// series is one line of a panel.
type series struct {
	label string
	col   int // palette index
	dash  bool
	xy    plotter.XYs
}

func (s series) peak() float64 {
	m := 0.0
	for _, p := range s.xy {
		m = math.Max(m, p.Y)
	}
	return m
}

// panel is one chart before it is drawn; end is the run's end in seconds,
// the x range of every panel.
type panel struct {
	title, ylabel string
	lines         []series
	end           float64
}

// top keeps the plotLines lines with the highest peaks (in their original
// order) and drops lines that stay at zero.
func top(ls []series) []series {
	var nz []int
	for i, l := range ls {
		if l.peak() > 0 {
			nz = append(nz, i)
		}
	}
	if len(nz) > plotLines {
		sort.SliceStable(nz, func(a, b int) bool { return ls[nz[a]].peak() > ls[nz[b]].peak() })
		nz = nz[:plotLines]
		sort.Ints(nz)
	}
	out := make([]series, 0, len(nz))
	for _, i := range nz {
		out = append(out, ls[i])
	}
	return out
}

// runPanels turns one run's metrics into its panels: per switch the FDB
// and neighbour entries, the frames each port takes in per second and the
// drops per second by port and reason; then the links' utilisation.
func runPanels(m *Metrics) []panel {
	var out []panel
	for _, sw := range m.Switches {
		ser := sw.Series
		occ := panel{title: sw.Name + ": table entries", ylabel: "entries"}
		tot := series{label: "FDB total", col: 7, dash: true}
		nb := series{label: "neighbours (ARP)", col: 9, dash: true}
		for _, s := range ser {
			t := s.T.Seconds()
			tot.xy = append(tot.xy, plotter.XY{X: t, Y: float64(s.FDBEntries)})
			nb.xy = append(nb.xy, plotter.XY{X: t, Y: float64(s.ARPEntries)})
		}
		var perPort []series
		for k, name := range sw.PortNames {
			l := series{label: "FDB " + name, col: k}
			for _, s := range ser {
				v := 0
				if k < len(s.PortFDB) {
					v = s.PortFDB[k]
				}
				l.xy = append(l.xy, plotter.XY{X: s.T.Seconds(), Y: float64(v)})
			}
			perPort = append(perPort, l)
		}
		occ.lines = append([]series{tot, nb}, top(perPort)...)
		out = append(out, occ)

		learn := panel{title: sw.Name + ": FDB learning per second", ylabel: "entries/s"}
		for i, f := range []struct {
			name string
			get  func(Sample) uint64
		}{
			{"learned", func(s Sample) uint64 { return s.FDBLearned }},
			{"evicted (evict-fair)", func(s Sample) uint64 { return s.FDBEvicted }},
			{"refused (at a limit)", func(s Sample) uint64 { return s.FDBRefused }},
		} {
			l := rateSeries(f.name, []int{2, 1, 3}[i], ser, m.Tick, f.get)
			if l.peak() > 0 {
				learn.lines = append(learn.lines, l)
			}
		}
		out = append(out, learn)

		in := panel{title: sw.Name + ": frames in per second, by port", ylabel: "frames/s"}
		outp := panel{title: sw.Name + ": frames out per second, by port (floods included)", ylabel: "frames/s"}
		var rin, rout []series
		for k, name := range sw.PortNames {
			rin = append(rin, rateSeries(name, k, ser, m.Tick, func(s Sample) uint64 { return at(s.PortRx, k) }))
			rout = append(rout, rateSeries(name, k, ser, m.Tick, func(s Sample) uint64 { return at(s.PortTx, k) }))
		}
		in.lines, outp.lines = top(rin), top(rout)
		out = append(out, in, outp)

		dp := panel{title: sw.Name + ": drops per second, by port and reason", ylabel: "drops/s"}
		reasons := map[string]bool{}
		for _, s := range ser {
			for r := range s.PortDrops {
				reasons[r] = true
			}
		}
		var rs []string
		for r := range reasons {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		var drops []series
		for ri, r := range rs {
			for k, name := range sw.PortNames {
				l := rateSeries(name+" "+r, k, ser, m.Tick, func(s Sample) uint64 { return at(s.PortDrops[r], k) })
				l.dash = ri%2 == 1
				drops = append(drops, l)
			}
		}
		dp.lines = top(drops)
		out = append(out, dp)
	}
	lu := panel{title: "link utilisation, busier direction", ylabel: "% of bandwidth"}
	var utils []series
	for i, l := range m.Links {
		if i >= len(m.LinkBandwidth) || m.LinkBandwidth[i] <= 0 {
			continue
		}
		u := series{label: l.Name, col: i}
		for j := 1; j < len(m.LinkSeries); j++ {
			a, b := m.LinkSeries[j-1], m.LinkSeries[j]
			dt := (b.T - a.T).Seconds()
			if b.T-a.T < m.Tick/2 || i >= len(b.Bytes) {
				continue
			}
			var pa [2]uint64
			if i < len(a.Bytes) {
				pa = a.Bytes[i]
			}
			d := max(b.Bytes[i][0]-pa[0], b.Bytes[i][1]-pa[1])
			u.xy = append(u.xy, plotter.XY{X: b.T.Seconds(), Y: float64(d) * 8 / (float64(m.LinkBandwidth[i]) * dt) * 100})
		}
		utils = append(utils, u)
	}
	lu.lines = top(utils)
	out = append(out, lu)
	for i := range out {
		out[i].end = m.End.Seconds()
	}
	return out
}

func at[T any](xs []T, k int) T {
	var zero T
	if k < len(xs) {
		return xs[k]
	}
	return zero
}

// rateSeries is the per-second rate of a cumulative counter between
// consecutive samples, plotted at the end of each interval. The sample at
// the end of a run can come just after a tick; an interval shorter than
// half a tick would turn a handful of frames into a spike, so it is left
// out.
func rateSeries(label string, col int, ser []Sample, tick time.Duration, get func(Sample) uint64) series {
	l := series{label: label, col: col}
	for j := 1; j < len(ser); j++ {
		dt := (ser[j].T - ser[j-1].T).Seconds()
		if ser[j].T-ser[j-1].T < tick/2 || dt <= 0 {
			continue
		}
		d := float64(get(ser[j])) - float64(get(ser[j-1]))
		l.xy = append(l.xy, plotter.XY{X: ser[j].T.Seconds(), Y: math.Max(d, 0) / dt})
	}
	return l
}

func (pn panel) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = "simulated time (s)"
	p.Y.Label.Text = pn.ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(7)
		a.Tick.Label.Font.Size = vg.Points(7)
	}
	p.Y.Min = 0
	p.X.Min, p.X.Max = 0, math.Max(pn.end, 1e-9)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	if len(pn.lines) == 0 {
		p.Title.Text += " (none)"
		p.Y.Max = 1
		return p, nil
	}
	for i, l := range pn.lines {
		if len(l.xy) == 0 {
			continue
		}
		ln, err := plotter.NewLine(l.xy)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", pn.title, l.label, err)
		}
		ln.Color = colours[l.col%len(colours)]
		// Earlier lines are wider, so that lines on top of each other (three
		// ports that get the same flood) still show as stripes.
		ln.Width = vg.Points(math.Min(1+0.6*float64(len(pn.lines)-1-i), 3))
		if l.dash {
			ln.Width = vg.Points(1.2)
		}
		if l.dash {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(ln)
		p.Legend.Add(l.label, ln)
	}
	return p, nil
}

// PlotRuns draws one column of panels per run (see runPanels), with the
// titles above the columns, into a PNG at path. Panels in the same row
// share their y range, so columns compare at a glance.
func PlotRuns(ms []*Metrics, titles []string, path string) error {
	if len(ms) == 0 {
		return fmt.Errorf("plot: no runs")
	}
	cols := len(ms)
	var columns [][]*plot.Plot
	var panels [][]panel
	rows := 0
	for _, m := range ms {
		var col []*plot.Plot
		pns := runPanels(m)
		panels = append(panels, pns)
		for _, pn := range pns {
			p, err := pn.plot()
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			col = append(col, p)
		}
		rows = max(rows, len(col))
		columns = append(columns, col)
	}
	// A row whose panels are empty in every column (no drops anywhere)
	// says so in one line of the caption instead of a row of blank charts.
	var keep []int
	var empty []string
	for r := 0; r < rows; r++ {
		blank := true
		for c := range columns {
			if r < len(columns[c]) && len(panels[c][r].lines) > 0 {
				blank = false
			}
		}
		if blank {
			empty = append(empty, panels[0][r].title)
		} else {
			keep = append(keep, r)
		}
	}
	if len(keep) == 0 {
		keep = []int{0}
	}
	for c := range columns {
		var col []*plot.Plot
		for _, r := range keep {
			if r < len(columns[c]) {
				col = append(col, columns[c][r])
			}
		}
		columns[c] = col
	}
	rows = len(keep)
	foot := ""
	if len(empty) > 0 {
		foot = "not drawn, nothing to show in any column: " + strings.Join(empty, "; ")
	}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		top := 0.0
		for c := range columns {
			if r < len(columns[c]) {
				grid[r][c] = columns[c][r]
				top = math.Max(top, grid[r][c].Y.Max)
			}
		}
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Y.Max = top * 1.25 // room for the legend
			}
		}
	}
	return drawGrid(grid, titles, foot, path, 300, 190)
}

// drawGrid lays plots out in a grid with a title over each column and a
// footnote under them.
func drawGrid(grid [][]*plot.Plot, titles []string, foot, path string, cellW, cellH float64) error {
	rows, cols := len(grid), len(grid[0])
	const head = 20
	footH := 0.0
	if foot != "" {
		footH = 14
	}
	w, h := vg.Points(float64(cols)*cellW), vg.Points(float64(rows)*cellH+head+footH)
	page := chart.NewPage(w, h)
	for c, t := range titles {
		if c < cols {
			page.Text(vg.Points(float64(c)*cellW+10), h-vg.Points(14), 10, t)
		}
	}
	if foot != "" {
		page.Text(vg.Points(10), vg.Points(4), 8, foot)
	}
	chart.Grid(draw.Crop(page.Canvas, 0, 0, vg.Points(footH), -vg.Points(head)), grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(10), PadY: vg.Points(10),
		PadTop: vg.Points(2), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)})
	return page.WriteSmallPNG(path)
}

// PlotSweep draws metric against the parameter x (its index in
// sw.Params): the mean over seeds at each value with its 95% interval, one
// line per combination of the other parameters. A numeric parameter gets a
// numeric axis (logarithmic when its values span a factor of four or more),
// any other a nominal one in the order given.
func PlotSweep(sw *Sweep, sum []PointSummary, metric string, x int, path string) error {
	if x < 0 || x >= len(sw.Params) {
		return fmt.Errorf("plot: no swept parameter to plot against")
	}
	xp := sw.Params[x]
	nums := make([]float64, len(xp.Values))
	numeric := true
	for i, v := range xp.Values {
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil {
			numeric = false
			break
		}
		nums[i] = f
	}
	if !numeric {
		for i := range nums {
			nums[i] = float64(i)
		}
	}
	// Group points by the values of the other parameters.
	type line struct {
		label string
		xy    plotter.XYs
		errs  plotter.YErrors
	}
	var lines []*line
	byLabel := map[string]*line{}
	for p, ps := range sum {
		st, ok := ps.Metrics[metric]
		if !ok {
			return fmt.Errorf("plot: no metric %q in the runs (see the CSV header for the names)", metric)
		}
		var other []string
		for i, pr := range sw.Params {
			if i != x {
				other = append(other, pr.Key+"="+sw.Points[p].Values[i])
			}
		}
		label := strings.Join(other, " ")
		l := byLabel[label]
		if l == nil {
			l = &line{label: label}
			byLabel[label] = l
			lines = append(lines, l)
		}
		xi := 0
		for i, v := range xp.Values {
			if v == sw.Points[p].Values[x] {
				xi = i
			}
		}
		l.xy = append(l.xy, plotter.XY{X: nums[xi], Y: st.Mean})
		l.errs = append(l.errs, struct{ Low, High float64 }{st.Mean - st.CILow, st.CIHigh - st.Mean})
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s against %s (mean, 95%% interval over %d seeds)", strings.TrimSuffix(sw.File, ".yaml"), metric, xp.Key, len(sw.Seeds))
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = xp.Key
	p.Y.Label.Text = metric
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	if numeric {
		lo, hi := nums[0], nums[0]
		for _, v := range nums {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if lo > 0 && hi/lo >= 4 {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = valueTicks(xp.Values, nums)
		}
	} else {
		p.NominalX(xp.Values...)
	}
	for i, l := range lines {
		ln, pts, err := plotter.NewLinePoints(l.xy)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		c := colours[i%len(colours)]
		ln.Color, pts.Color = c, c
		ln.Width = vg.Points(1.5)
		p.Add(ln, pts)
		eb, err := plotter.NewYErrorBars(errXY{l.xy, l.errs})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		eb.Color = c
		eb.Width = vg.Points(1)
		eb.CapWidth = vg.Points(6)
		p.Add(eb)
		if l.label != "" {
			p.Legend.Add(l.label, ln, pts)
		}
	}
	if p.Y.Min >= 0 { // counts: from zero, with room for the legend
		p.Y.Min, p.Y.Max = 0, math.Max(p.Y.Max*1.2, 1)
	}
	return drawGrid([][]*plot.Plot{{p}}, nil, "", path, 640, 400)
}

type errXY struct {
	plotter.XYs
	plotter.YErrors
}

// valueTicks labels a log axis at the swept values themselves.
func valueTicks(labels []string, at []float64) plot.Ticker {
	var ts plot.ConstantTicks
	for i, v := range at {
		ts = append(ts, plot.Tick{Value: v, Label: labels[i]})
	}
	return ts
}
