package drill

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/goldentest"
)

// sampleResult is a two-run primary-crash drill: the first run fails over
// cleanly in about 4 s, the second loses acknowledged writes of an async
// replica that lagged and lets the old primary take writes after the new
// one did (split brain).
func sampleResult() Result {
	t0 := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	run1 := sampleRun(t0, "pg-a", "pg-b", 42, 0)
	run1.Passed, run1.Consistent, run1.Rejoined = true, true, true
	run1.DetectionS, run1.FailoverS, run1.ClientRTOS, run1.ReconnectS = 1.512, 3.206, 4.213, 0.387
	run1.Notes = []string{"pg-a restarted by its agent and rewound (pg_rewind)"}

	t1 := t0.Add(75 * time.Second)
	run2 := sampleRun(t1, "pg-b", "pg-c", 58, 4)
	run2.DetectionS, run2.FailoverS, run2.ClientRTOS, run2.ReconnectS = 1.498, 5.871, 6.602, 0.611
	run2.AckedLost, run2.RPOS = 12, 0.842
	run2.LostSeqs = []int64{10841, 10842, 10843, 10844, 10845, 10846, 10847, 10848, 10849, 10850, 10853, 10855}
	run2.SplitBrain, run2.SplitBrainWrites = true, []int64{10990, 10991, 10992}
	run2.Consistent = true
	run2.Events = run2.Events[:4] // no rejoined
	run2.Failures = []string{
		"12 acknowledged writes lost (RPO 0.842s, plan 0s): seq [10841 10842 10843 10844 10845 10846 10847 10848 10849 10850 10853 10855]",
		"split brain: pg-b acknowledged 3 writes after pg-c took its first: seq [10990 10991 10992]",
		"old primary pg-b did not rejoin as a replica",
	}
	r := Result{ID: "20261124T101500Z-primary-crash", Scenario: PrimaryCrash, Cluster: "main", Service: "payments",
		Tier: 1, Started: t0, Finished: t1.Add(70 * time.Second), Runs: []Run{run1, run2}}
	Summarize(&r, 30*time.Second, 0)
	return r
}

// sampleRun is a 20 s workload of about 40 writes per 100 ms with a fault
// at 8 s and the first write on the new primary outage/10 s later.
func sampleRun(start time.Time, old, new string, outage, lateWrites int) Run {
	at := func(buckets int) time.Time { return start.Add(time.Duration(buckets) * 100 * time.Millisecond) }
	r := Run{Scenario: PrimaryCrash, Start: start, Fault: at(80), OldPrimary: old, NewPrimary: new}
	for i := range 200 {
		b := Bucket{Writes: 36 + (i*7)%11}
		switch {
		case i > 80 && i <= 80+outage:
			b = Bucket{Errors: 2 + i%3}
		case i > 80+outage && i <= 80+outage+lateWrites:
			b.Writes /= 2
		}
		r.AckedWrites += b.Writes
		r.Timeline = append(r.Timeline, b)
	}
	r.Events = []Event{
		{At: r.Fault, Kind: "fault", Detail: "primary-crash on " + old},
		{At: at(95), Kind: "detected"},
		{At: at(80 + outage - 4), Kind: "promoted", Detail: new},
		{At: at(81 + outage), Kind: "first-write", Detail: "on " + new},
		{At: at(160), Kind: "rejoined", Detail: old},
	}
	return r
}

func TestReportsGolden(t *testing.T) {
	r := sampleResult()
	for _, tc := range []struct {
		file  string
		write func(io.Writer, Result) error
	}{
		{"report.txt", WriteText},
		{"report.md", WriteMarkdown},
		{"report.html", WriteHTML},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b, r); err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, filepath.Join("testdata", tc.file), b.Bytes())
		})
	}
}

func TestHTMLSelfContainedAndEscaped(t *testing.T) {
	r := sampleResult()
	r.Service = "payments <api>"
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if !strings.Contains(page, "payments &lt;api&gt;") || strings.Contains(page, "payments <api>") {
		t.Errorf("the service name is not escaped")
	}
	if m := regexp.MustCompile(`(?i)<script|<link|<img|@import|url\(|(src|href)=`).FindString(page); m != "" {
		t.Errorf("the page loads something: %q", m)
	}
	for _, want := range []string{`class="badge fail">FAIL`, "<svg", `class="gap"`, "ev-first-write", "Distributions over 2 runs",
		"<code>10841-10850, 10853, 10855</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	r := sampleResult()
	if _, err := (History{Dir: dir}).Save(r); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, r.ID)
	if err := Render(d, &r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"html": filepath.Join(d, "report.html"), "md": filepath.Join(d, "report.md"), "json": filepath.Join(d, "result.json")}
	if diff := cmp.Diff(want, r.Reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	for _, run := range r.Runs {
		if run.ReportHTML != want["html"] {
			t.Errorf("run's report_html: got %q, want %q", run.ReportHTML, want["html"])
		}
	}
	for _, p := range []string{want["html"], want["md"]} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, %v", p, fi, err)
		}
	}
}

func TestSeqRanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seqs  []int64
		total int
		want  string
	}{
		{"none", nil, 0, ""},
		{"one", []int64{7}, 1, "7"},
		{"ranges and singles", []int64{1, 2, 3, 5, 7, 8}, 6, "1-3, 5, 7-8"},
		{"only the first are listed", []int64{1, 2}, 250, "1-2 (the first 2 of 250)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqRanges(tc.seqs, tc.total); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChartLabelsDoNotOverlap(t *testing.T) {
	start := time.Unix(0, 0)
	run := Run{Start: start, Timeline: make([]Bucket, 100), Events: []Event{
		{At: start.Add(5 * time.Second), Kind: "fault"},
		{At: start.Add(5100 * time.Millisecond), Kind: "detected"},
		{At: start.Add(5200 * time.Millisecond), Kind: "promoted"},
		{At: start.Add(9 * time.Second), Kind: "first-write"},
		{At: start.Add(10 * time.Second), Kind: "rejoined"},
	}}
	c := newChart(run)
	var rows []float64
	for _, m := range c.Markers {
		rows = append(rows, m.LabelY)
	}
	want := []float64{labelRowH, 2 * labelRowH, 3 * labelRowH, labelRowH, 2 * labelRowH}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("label rows (-want +got):\n%s", diff)
	}
	if m := c.Markers[4]; !m.AnchorAtEnd || m.LabelX >= m.X {
		t.Errorf("the last label at the right edge: got %+v, want it left of its line", m)
	}
}

func TestReportsOfSparseResults(t *testing.T) {
	restore := Result{ID: "r", Scenario: RestoreTest, Runs: []Run{{Passed: true, RestoreS: 42}}}
	Summarize(&restore, time.Minute, 0)
	noTimeline := sampleResult()
	noTimeline.Runs[0].Timeline, noTimeline.Runs[1].Events = nil, nil
	for name, r := range map[string]Result{"empty": {}, "restore test": restore, "no timeline or events": noTimeline} {
		for file, write := range map[string]func(io.Writer, Result) error{"txt": WriteText, "md": WriteMarkdown, "html": WriteHTML} {
			t.Run(name+" "+file, func(t *testing.T) {
				var b bytes.Buffer
				if err := write(&b, r); err != nil {
					t.Fatal(err)
				}
				if m := regexp.MustCompile(`<no value>|%!|NaN|Inf`).FindString(b.String()); m != "" {
					t.Errorf("the report holds %q:\n%s", m, b.String())
				}
			})
		}
	}
}
