package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sweepCSV runs a sweep through the CLI and returns its CSV and JSON.
func sweepCSV(t *testing.T, c SweepCLI) (string, []byte, int, error) {
	t.Helper()
	dir := t.TempDir()
	c.CSVFile, c.JSONFile = filepath.Join(dir, "runs.csv"), filepath.Join(dir, "runs.json")
	var out bytes.Buffer
	code, err := c.Run(&out)
	csvb, _ := os.ReadFile(c.CSVFile)
	jsonb, _ := os.ReadFile(c.JSONFile)
	return string(csvb), jsonb, code, err
}

// TestSweepDeterministic: -j 1 and -j 2 write identical CSV and JSON; the
// grid has every combination of values with every seed; seeds change what
// a lossy link does.
func TestSweepDeterministic(t *testing.T) {
	c := SweepCLI{
		File:  "mac-flood-fair",
		Sets:  []string{"links.pod1--cbr0.loss=0,5%", "fdb.limit=64,128"},
		Seeds: "1-4", Quiet: true,
	}
	c.Workers = 1
	a, aj, code, _ := sweepCSV(t, c)
	c.Workers = 2
	b, bj, code2, _ := sweepCSV(t, c)
	if a == "" || len(aj) == 0 {
		t.Fatalf("no CSV or JSON written (exit %d)", code)
	}
	if a != b || !bytes.Equal(aj, bj) {
		t.Fatalf("-j 1 and -j 2 differ:\n%s\n---\n%s", a, b)
	}
	if code != ExitFailed || code2 != ExitFailed {
		t.Errorf("exit %d, %d: want 1 (the scenario's assertions hold only at limit 64 without loss)", code, code2)
	}
	recs, err := csv.NewReader(strings.NewReader(a)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+2*2*4 {
		t.Fatalf("%d CSV records, want a header and 16 runs", len(recs))
	}
	head := recs[0]
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %q in %v", name, head)
		return -1
	}
	want := [][3]string{}
	for _, loss := range []string{"0", "5%"} {
		for _, lim := range []string{"64", "128"} {
			for _, seed := range []string{"1", "2", "3", "4"} {
				want = append(want, [3]string{loss, lim, seed})
			}
		}
	}
	lost := col("links.pod1--cbr0.lost")
	limit := col("switches.cbr0.fdb.limit")
	passed := col("passed")
	lostBySeed := map[string]bool{}
	for i, r := range recs[1:] {
		got := [3]string{r[col("links.pod1--cbr0.loss")], r[col("fdb.limit")], r[col("seed")]}
		if got != want[i] {
			t.Errorf("row %d: %v, want %v", i, got, want[i])
		}
		if r[limit] != got[1] {
			t.Errorf("row %d: the switch's limit is %s, the grid says %s", i, r[limit], got[1])
		}
		if got[0] == "0" && r[lost] != "0" {
			t.Errorf("row %d: %s lost without loss", i, r[lost])
		}
		if got[0] == "5%" && got[1] == "64" {
			lostBySeed[r[lost]] = true
		}
		if (got[0] == "0" && got[1] == "64") != (r[passed] == "true") {
			t.Errorf("row %d (%v): passed %s", i, got, r[passed])
		}
	}
	if len(lostBySeed) < 2 {
		t.Errorf("a 5%% lossy link lost the same number of frames with every seed: %v", lostBySeed)
	}
	var js sweepJSON
	if err := json.Unmarshal(aj, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Runs) != 16 || len(js.Summary) != 4 || js.Summary[0].Runs != 4 || js.Summary[0].Passed != 4 {
		t.Errorf("JSON: %d runs, %d points, first point %+v", len(js.Runs), len(js.Summary), js.Summary[0])
	}
	if st := js.Summary[0].Metrics["switches.cbr0.fdb.evicted"]; st.N != 4 || st.Min != st.Max || st.CILow != st.Mean {
		t.Errorf("a metric the seed does not change: %+v", st)
	}
}

// TestSweepKeys: the full path and the short forms reach the same place;
// list items by name or index; missing mapping keys are created.
func TestSweepKeys(t *testing.T) {
	src, err := ShippedSource("mac-flood-stop")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"switches.cbr0.table_limit", "switches.0.table_limit", "switches.*.table_limit", "cbr0.table_limit", "table_limit", "fdb.limit"} {
		sw, err := NewSweep("mac-flood-stop.yaml", src, []Param{{Key: key, Values: []string{"100", "200"}}}, nil)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		for i, want := range []int{100, 200} {
			sc, err := parseNode(sw.File, sw.Points[i].root)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Switches[0].TableLimit != want {
				t.Errorf("%s point %d: table_limit %d, want %d", key, i, sc.Switches[0].TableLimit, want)
			}
		}
		if !reflect.DeepEqual(sw.Seeds, []uint64{1}) {
			t.Errorf("no --seeds: %v, want the scenario's [1]", sw.Seeds)
		}
	}
	sw, err := NewSweep("mac-flood-stop.yaml", src, []Param{
		{Key: "arp.suppress", Values: []string{"true", "false"}},    // creates switches.cbr0.arp
		{Key: "timeline.1.mac_flood.rate", Values: []string{"500"}}, // a step by index
		{Key: "links.attacker--cbr0.loss", Values: []string{"1%"}},
		{Key: "run.duration", Values: []string{"30s"}},
	}, []uint64{5, 6})
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Points) != 2 || sw.Runs() != 4 || sw.Label(1) != "arp.suppress=false timeline.1.mac_flood.rate=500 links.attacker--cbr0.loss=1% run.duration=30s" {
		t.Fatalf("%d points, %d runs, label %q", len(sw.Points), sw.Runs(), sw.Label(1))
	}
	sc, err := parseNode(sw.File, sw.Points[0].root)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Switches[0].Suppress || sc.Timeline[1].Action.(*MACFlood).Rate != 500 || sc.Links[3].Loss != 0.01 || sc.Run.Duration.Seconds() != 30 {
		t.Errorf("point 0: suppress %v, flood %+v, loss %v, duration %v", sc.Switches[0].Suppress, sc.Timeline[1].Action, sc.Links[3].Loss, sc.Run.Duration)
	}
	// The source tree is not changed by the points.
	base, _ := Parse("mac-flood-stop.yaml", src)
	if base.Switches[0].Suppress || base.Run.Duration != 0 {
		t.Error("the points changed the scenario they came from")
	}
}

// TestSweepErrors: a bad key or value is exit 2 naming the key, before
// anything runs or is written.
func TestSweepErrors(t *testing.T) {
	for _, tc := range []struct {
		sets  []string
		seeds string
		want  string
	}{
		{[]string{"tabel_limit=5"}, "", `--set tabel_limit: unknown key`},
		{[]string{"table_limit=abc"}, "", `--set table_limit=abc: mac-flood-stop.yaml:11: table_limit "abc": want a whole number`},
		{[]string{"table_limit=1,-3"}, "", `--set table_limit=-3:`},
		{[]string{"fdb.policy=lru"}, "", `--set fdb.policy=lru:`},
		{[]string{"switches.sw9.table_limit=5"}, "", `--set switches.sw9.table_limit: switches.sw9: no item of that name or index`},
		{[]string{"switches.cbr0.tabel=5"}, "", `--set switches.cbr0.tabel=5: mac-flood-stop.yaml:10: unknown key "tabel" in switch`},
		{[]string{"cbr0.ports.x.storm=5"}, "", `--set cbr0.ports.x.storm: switches.cbr0.ports: not in the scenario`},
		{[]string{"timeline.9.ping.count=5"}, "", `--set timeline.9.ping.count: timeline.9: index out of range`},
		{[]string{"seed=5"}, "", `--set seed: the seed is swept with --seeds`},
		{[]string{"table_limit=5", "fdb.limit=6"}, "", `--set fdb.limit: the same key as --set table_limit`},
		{[]string{"table_limit"}, "", `--set "table_limit": want KEY=VALUE`},
		{[]string{"table_limit=5,,6"}, "", `--set table_limit: empty value`},
		{[]string{"table_limit=5,5"}, "", `--set table_limit: value "5" given twice`},
		{[]string{"links.pod1--cbr0=5"}, "", `a list item, not a key`},
		{[]string{"cbr0.ports.pod1.lock_mac=true"}, "", `not in the scenario`},
		{nil, "3-1", `--seeds "3-1": range "3-1" runs backwards`},
		{nil, "1,x", `--seeds "1,x": "x" is not a seed`},
		{nil, "1-2,2", `seed 2 given twice`},
		{nil, "0-99999999999", `more than 1000000 seeds`},
	} {
		dir := t.TempDir()
		c := SweepCLI{File: "mac-flood-stop", Sets: tc.sets, Seeds: tc.seeds, CSVFile: filepath.Join(dir, "x.csv"), Quiet: true}
		var out bytes.Buffer
		code, err := c.Run(&out)
		if code != ExitBadScenario || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q: exit %d, %v; want 2 and %q", tc.sets, tc.seeds, code, err, tc.want)
		}
		if _, serr := os.Stat(c.CSVFile); serr == nil {
			t.Errorf("%v: the CSV was written after an error", tc.sets)
		}
	}
	// A value the builder refuses (a duplicate address) is named too.
	c := SweepCLI{File: "mac-flood-stop", Sets: []string{"cbr0.table_limit=64", "attacker.ip=10.244.0.2/24,10.244.0.99/24"}, Quiet: true}
	code, err := c.Run(&bytes.Buffer{})
	if code != ExitBadScenario || err == nil || !strings.Contains(err.Error(), "attacker.ip=10.244.0.2/24") {
		t.Errorf("duplicate IP: exit %d, %v", code, err)
	}
}

func TestParseSetValues(t *testing.T) {
	p, err := ParseSet(`cbr0.ports.up.allowed=[10, 20],[30],"a,b"`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != "cbr0.ports.up.allowed" || !reflect.DeepEqual(p.Values, []string{"[10, 20]", "[30]", `"a,b"`}) {
		t.Errorf("%+v", p)
	}
	for _, bad := range []string{"=5", "a..b=5", "a=[1,2", "a=1]", `a="x`} {
		if _, err := ParseSet(bad); err == nil {
			t.Errorf("ParseSet(%q): no error", bad)
		}
	}
	s, err := ParseSeeds("1-3, 7 ,10-11")
	if err != nil || !reflect.DeepEqual(s, []uint64{1, 2, 3, 7, 10, 11}) {
		t.Errorf("ParseSeeds: %v, %v", s, err)
	}
}

// TestSummarise: mean, interval and the t quantiles against published
// values.
func TestSummarise(t *testing.T) {
	st := Summarise([]float64{1, 2, 3, 4, 5})
	// sd = sqrt(2.5), t(4) = 2.7764: half-width 2.7764*1.5811/sqrt(5) = 1.9632
	if st.N != 5 || st.Mean != 3 || st.Min != 1 || st.Max != 5 || math.Abs(st.SD-1.58114) > 1e-5 ||
		math.Abs(st.CILow-1.03676) > 1e-4 || math.Abs(st.CIHigh-4.96324) > 1e-4 {
		t.Errorf("%+v", st)
	}
	if st := Summarise([]float64{7}); st.CILow != 7 || st.CIHigh != 7 || st.SD != 0 {
		t.Errorf("one value: %+v", st)
	}
	if st := Summarise([]float64{2, 2, 2}); st.CILow != 2 || st.CIHigh != 2 {
		t.Errorf("constant: %+v", st)
	}
	for df, want := range map[int]float64{1: 12.7062, 2: 4.3027, 10: 2.2281, 19: 2.0930, 30: 2.0423, 31: 2.0395, 40: 2.0211, 49: 2.0096, 60: 2.0003, 120: 1.9799, 1000: 1.9623} {
		if got := TQuantile975(df); math.Abs(got-want) > 1e-4 {
			t.Errorf("t(0.975, %d) = %.5f, want %.4f", df, got, want)
		}
	}
}

// pngStats decodes a PNG and says how big it is and how much of it is not
// background.
func pngStats(t *testing.T, path string) (image.Rectangle, float64, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	ink, colours := 0, map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
			if len(colours) < 1000 {
				colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			}
		}
	}
	return b, float64(ink) / float64(b.Dx()*b.Dy()), len(colours)
}

// TestPlotRun: a run's plot and a side-by-side plot are PNGs with axes,
// text and coloured lines on them.
func TestPlotRun(t *testing.T) {
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.png"), filepath.Join(dir, "two.png")
	if code, err := (CLI{File: "pod-flood-policed", Quiet: true, Plot: one}).Run(&bytes.Buffer{}); code != ExitOK {
		t.Fatalf("exit %d: %v", code, err)
	}
	if code, err := (CLI{File: "mac-flood-stop", Also: []string{"mac-flood-fair"}, Quiet: true, Plot: two}).Run(&bytes.Buffer{}); code != ExitOK {
		t.Fatalf("exit %d: %v", code, err)
	}
	b1, ink1, col1 := pngStats(t, one)
	b2, ink2, col2 := pngStats(t, two)
	// pod-flood-policed has a row of drops; the MAC floods have none, so
	// that row is left out for a footnote.
	if b1.Dx() < 300 || b1.Dy() < 1200 || b2.Dx() != 2*b1.Dx() || b2.Dy() < 1000 || b2.Dy() >= b1.Dy() {
		t.Errorf("sizes %v and %v: want one column of six rows, then two of five", b1, b2)
	}
	if ink1 < 0.01 || ink2 < 0.01 || col1 < 20 || col2 < 20 {
		t.Errorf("nearly blank: %.3f and %.3f of the pixels drawn, %d and %d colours", ink1, ink2, col1, col2)
	}
	if code, err := (CLI{File: "node", Also: []string{"ageing"}}).Run(&bytes.Buffer{}); code != ExitBadScenario || err == nil {
		t.Errorf("several scenarios without --plot: exit %d, %v", code, err)
	}
}

// TestPlotSweep: the sweep's plot, against a numeric and a nominal
// parameter.
func TestPlotSweep(t *testing.T) {
	dir := t.TempDir()
	for _, x := range []string{"", "fdb.policy"} {
		out := filepath.Join(dir, "s"+x+".png")
		c := SweepCLI{File: "mac-flood-fair", Sets: []string{"fdb.limit=16,64,256", "fdb.policy=stop-learning,evict-fair", "links.pod1--cbr0.loss=2%"},
			Seeds: "1-3", Plot: out, PlotMetric: "links.pod1--cbr0.lost", PlotX: x, Quiet: true}
		var stdout bytes.Buffer
		if code, err := c.Run(&stdout); code == ExitBadScenario {
			t.Fatalf("exit %d: %v", code, err)
		}
		b, ink, cols := pngStats(t, out)
		if b.Dx() < 600 || b.Dy() < 300 || ink < 0.01 || cols < 10 {
			t.Errorf("%s: %v, %.3f drawn, %d colours", out, b, ink, cols)
		}
		if !strings.Contains(stdout.String(), "links.pod1--cbr0.lost") || !strings.Contains(stdout.String(), "95% CI") {
			t.Errorf("summary: %s", stdout.String())
		}
	}
	c := SweepCLI{File: "mac-flood-fair", Sets: []string{"fdb.limit=16"}, Plot: filepath.Join(dir, "x.png"), PlotMetric: "no.such", Quiet: true}
	if code, err := c.Run(&bytes.Buffer{}); code != ExitBadScenario || !strings.Contains(err.Error(), `"no.such"`) {
		t.Errorf("unknown metric: exit %d, %v", code, err)
	}
}

// TestSweepProgress: a terminal gets a line rewritten in place, anything
// else only the final line, and -q nothing.
func TestSweepProgress(t *testing.T) {
	for _, tc := range []struct {
		tty, quiet bool
		want       int // lines
		cr         bool
	}{{true, false, 1, true}, {false, false, 1, false}, {true, true, 0, false}} {
		var errb bytes.Buffer
		c := SweepCLI{File: "node", Seeds: "1-3", Workers: 1, Stderr: &errb, StderrTTY: tc.tty, Quiet: tc.quiet}
		if code, err := c.Run(&bytes.Buffer{}); code != ExitOK {
			t.Fatalf("exit %d: %v", code, err)
		}
		s := errb.String()
		if strings.Count(s, "\n") != tc.want || strings.Contains(s, "\r") != tc.cr {
			t.Errorf("tty %v quiet %v: %q", tc.tty, tc.quiet, s)
		}
		if tc.want > 0 && !strings.Contains(s, "sweep: 3 runs in ") {
			t.Errorf("final line: %q", s)
		}
	}
}

// TestPolicedPort: lock_mac and rx_pps are port keys; lock_mac needs a host
// at the other end.
func TestPolicedPort(t *testing.T) {
	src := "switches: [{name: a, ports: [{name: up, lock_mac: true}]}, {name: b}]\nlinks:\n  - {a: a:up, b: b}\n"
	sc, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(sc, Options{}); err == nil || !strings.Contains(err.Error(), "lock_mac needs a host") {
		t.Errorf("lock_mac towards a switch: %v", err)
	}
	if _, err := Parse("p.yaml", []byte("switches: [{name: a, ports: [{name: up, rx_pps: -1}]}]\n")); err == nil || !strings.Contains(err.Error(), "rx_pps -1") {
		t.Errorf("rx_pps -1: %v", err)
	}
}
