package drill

import (
	"fmt"
	"slices"
	"strings"
)

// The timeline chart of a run, laid out here and drawn as inline SVG by
// the HTML template: acknowledged writes per 100 ms as bars above the
// axis, errors per 100 ms as bars below it, the longest stretch without
// a write after the fault shaded, and the run's events as labelled
// vertical lines. Coordinates are in the SVG's viewBox units.
const (
	chartW      = 960.0
	chartLeft   = 40.0  // room for the y labels
	chartRight  = 12.0  // room for the last x label
	labelRowH   = 14.0  // one row of event labels
	labelRows   = 3     // event labels close together go to the next row
	writesTop   = 50.0  // below the label rows
	axisY       = 190.0 // the writes' baseline
	errorsH     = 36.0  // the errors' band below the axis
	chartH      = axisY + errorsH + 24
	bucketWidth = 0.1 // seconds per Bucket
)

type chart struct {
	W, H, Left, Right   float64
	Top, Axis, ErrorsTo float64
	ErrorsToMinusTop    float64 // the plot's height
	YLabelX             float64 // the y labels' right end
	TickLabelY          float64
	GapLabelY           float64
	Writes, Errors      string // SVG path data of the bars
	MaxWrites           int
	MaxErrors           int
	Ticks               []tick
	Markers             []marker
	Gap                 *gap
}

type tick struct {
	X     float64
	Label string
}

type marker struct {
	X, LineTop     float64
	LabelX, LabelY float64
	Kind, Label    string
	Title          string
	AnchorAtEnd    bool // the label goes left of the line, near the right edge
}

// gap is the longest stretch without an acknowledged write after the
// fault: what the clients saw of the outage.
type gap struct {
	X, W, Mid float64
	Label     string
}

// newChart lays out run's timeline; nil when it has none.
func newChart(run Run) *chart {
	n := len(run.Timeline)
	if n == 0 {
		return nil
	}
	c := &chart{W: chartW, H: chartH, Left: chartLeft, Right: chartW - chartRight, Top: writesTop, Axis: axisY,
		ErrorsTo: axisY + errorsH, ErrorsToMinusTop: axisY + errorsH - writesTop, YLabelX: chartLeft - 6,
		TickLabelY: chartH - 6, GapLabelY: writesTop + 14, MaxWrites: 1, MaxErrors: 1}
	for _, b := range run.Timeline {
		c.MaxWrites, c.MaxErrors = max(c.MaxWrites, b.Writes), max(c.MaxErrors, b.Errors)
	}
	c.Writes, c.Errors = c.bars(run.Timeline)
	c.Ticks = c.ticks(float64(n) * bucketWidth)
	c.Markers = c.markers(run)
	c.Gap = c.gap(run)
	return c
}

// x is where a time, in seconds from the run's start, falls.
func (c *chart) x(s float64, total float64) float64 {
	s = min(max(s, 0), total)
	return c.Left + s/total*(c.Right-c.Left)
}

func (c *chart) bars(tl []Bucket) (writes, errors string) {
	var w, e strings.Builder
	total := float64(len(tl)) * bucketWidth
	width := (c.Right - c.Left) / float64(len(tl))
	bar := width
	if width > 2 {
		bar = width * 0.8 // leave a gap between wide bars
	}
	for i, b := range tl {
		x := c.x(float64(i)*bucketWidth, total)
		if b.Writes > 0 {
			h := float64(b.Writes) / float64(c.MaxWrites) * (c.Axis - c.Top)
			fmt.Fprintf(&w, "M%.2f %.1fh%.2fv%.2fh%.2fz", x, c.Axis, bar, -h, -bar)
		}
		if b.Errors > 0 {
			h := float64(b.Errors) / float64(c.MaxErrors) * errorsH
			fmt.Fprintf(&e, "M%.2f %.1fh%.2fv%.2fh%.2fz", x, c.Axis+1, bar, h, -bar)
		}
	}
	return w.String(), e.String()
}

// ticks marks the x axis every 1, 2, 5, 10... seconds: at most 12 marks.
func (c *chart) ticks(total float64) []tick {
	step := 0.5
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		if total/step <= 12 {
			break
		}
		step = s
	}
	var out []tick
	for s := 0.0; s <= total+1e-9; s += step {
		out = append(out, tick{X: c.x(s, total), Label: fmt.Sprintf("%gs", s)})
	}
	return out
}

// markers places the events' lines and labels, moving a label down a row
// when it would overlap the one before.
func (c *chart) markers(run Run) []marker {
	total := float64(len(run.Timeline)) * bucketWidth
	evs := slices.SortedStableFunc(slices.Values(run.Events), func(a, b Event) int { return a.At.Compare(b.At) })
	var rowEnd [labelRows]float64 // where the last label of each row ends
	var out []marker
	for _, e := range evs {
		s := e.At.Sub(run.Start).Seconds()
		m := marker{X: c.x(s, total), Kind: e.Kind, Label: e.Kind, Title: fmt.Sprintf("%s at %+.2fs %s", e.Kind, s, e.Detail)}
		width := 6.2*float64(len(m.Label)) + 6 // about 11px text
		m.LabelX, m.AnchorAtEnd = m.X+3, m.X+3+width > c.W
		start := m.LabelX
		if m.AnchorAtEnd {
			m.LabelX, start = m.X-3, m.X-3-width
		}
		row := 0
		for row < labelRows-1 && start < rowEnd[row] {
			row++
		}
		rowEnd[row] = start + width
		m.LabelY = labelRowH * float64(row+1)
		m.LineTop = m.LabelY + 3
		out = append(out, m)
	}
	return out
}

func (c *chart) gap(run Run) *gap {
	fault := 0
	if i := slices.IndexFunc(run.Events, func(e Event) bool { return e.Kind == "fault" }); i >= 0 {
		fault = int(run.Events[i].At.Sub(run.Start).Seconds() / bucketWidth)
	}
	best, bestLen := 0, 0
	for i := 0; i < len(run.Timeline); {
		j := i
		for j < len(run.Timeline) && run.Timeline[j].Writes == 0 {
			j++
		}
		if j > i && j > fault && j-i > bestLen {
			best, bestLen = i, j-i
		}
		i = j + 1
	}
	if bestLen < 2 { // 100 ms without a write is the workload's own pace
		return nil
	}
	total := float64(len(run.Timeline)) * bucketWidth
	x0, x1 := c.x(float64(best)*bucketWidth, total), c.x(float64(best+bestLen)*bucketWidth, total)
	return &gap{X: x0, W: x1 - x0, Mid: (x0 + x1) / 2, Label: fmt.Sprintf("no writes for %.1fs", float64(bestLen)*bucketWidth)}
}
