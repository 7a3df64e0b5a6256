package drill

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	texttemplate "text/template"
	"time"
)

// The reports are pure functions of a Result: WriteText for a terminal,
// WriteMarkdown and WriteHTML for the files Render keeps beside the
// result. All three draw the same tables (targets, runs, distributions),
// built once here.

//go:embed templates
var templates embed.FS

var funcs = map[string]any{"verdict": Verdict, "class": verdictClass, "f1": f1, "mdcell": mdCell, "md": mdText}

var (
	htmlReport = htmltemplate.Must(htmltemplate.New("").Funcs(funcs).ParseFS(templates, "templates/report.html.tmpl"))
	mdReport   = texttemplate.Must(texttemplate.New("").Funcs(funcs).ParseFS(templates, "templates/report.md.tmpl"))
)

// Render writes report.html and report.md into dir, the drill's directory
// in its History, and records their absolute paths in r.Reports (with
// result.json's, when it is there) and in each run's ReportHTML.
func Render(dir string, r *Result) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("render reports: %w", err)
	}
	html, md := filepath.Join(abs, "report.html"), filepath.Join(abs, "report.md")
	r.Reports = map[string]string{"html": html, "md": md}
	if _, err := os.Stat(filepath.Join(abs, "result.json")); err == nil {
		r.Reports["json"] = filepath.Join(abs, "result.json")
	}
	for i := range r.Runs {
		r.Runs[i].ReportHTML = html
	}
	for _, f := range []struct {
		path  string
		write func(io.Writer, Result) error
	}{{html, WriteHTML}, {md, WriteMarkdown}} {
		var b bytes.Buffer // rendered whole first: a template error leaves no half a report
		if err := f.write(&b, *r); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
		if err := os.WriteFile(f.path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("render reports: %w", err)
		}
	}
	return nil
}

// WriteHTML writes r as one self-contained HTML page: inline CSS and SVG,
// nothing fetched.
func WriteHTML(w io.Writer, r Result) error {
	return htmlReport.ExecuteTemplate(w, "page", newView(r))
}

// WriteMarkdown writes r as a Markdown document.
func WriteMarkdown(w io.Writer, r Result) error {
	return mdReport.ExecuteTemplate(w, "page", newView(r))
}

// WriteText writes r as a terminal summary: the verdict, the targets, a
// line per run, the distributions of several runs, and why runs failed.
func WriteText(w io.Writer, r Result) error {
	v := newView(r)
	var b bytes.Buffer // written at once, so that one error check covers all
	fmt.Fprintf(&b, "%s drill %s: %s\n%s\n", r.Scenario, r.ID, Verdict(r.Passed), v.Subtitle)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, t := range []table{v.Targets, v.Runs, v.Stats} {
		if len(t.Rows) == 0 {
			continue
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(t.Head, "\t")))
		for _, row := range t.Rows {
			for i, c := range row {
				if i > 0 {
					fmt.Fprint(tw, "\t")
				}
				fmt.Fprint(tw, c.Text)
			}
			fmt.Fprintln(tw)
		}
	}
	tw.Flush()
	for _, run := range v.Details {
		writeRunText(&b, run)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeRunText(w io.Writer, run runView) {
	if len(run.Failures) == 0 && len(run.Notes) == 0 {
		return
	}
	fmt.Fprintf(w, "\nrun %d: %s\n", run.N, Verdict(run.Passed))
	for _, f := range run.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	if run.Lost != "" {
		fmt.Fprintf(w, "  lost writes, seq: %s\n", run.Lost)
	}
	if run.SplitBrain != "" {
		fmt.Fprintf(w, "  split-brain writes, seq: %s\n", run.SplitBrain)
	}
	for _, n := range run.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// view is what the templates draw.
type view struct {
	R        Result
	Title    string
	Subtitle string
	Date     string
	Targets  table
	Runs     table
	Stats    table // no rows for a single run
	Details  []runView
}

// table is a head and rows of cells, drawn alike by every report.
type table struct {
	Head []string
	Rows [][]cell
	Num  []bool // for HTML: the column holds figures, aligned right
}

// cell is one table cell; Class is for HTML: pass or fail, in colour.
type cell struct{ Text, Class string }

// newCell colours a verdict.
func newCell(s string) cell {
	switch s {
	case "PASS":
		return cell{s, "pass"}
	case "FAIL":
		return cell{s, "fail"}
	}
	return cell{Text: s}
}

// flagged is a cell showing a finding: in red when bad.
func flagged(s string, bad bool) cell {
	if bad {
		return cell{s, "fail"}
	}
	return newCell(s)
}

// aligned marks the columns whose every cell starts with a digit.
func (t table) aligned() table {
	t.Num = make([]bool, len(t.Head))
	for i := range t.Num {
		t.Num[i] = len(t.Rows) > 0
		for _, row := range t.Rows {
			if s := row[i].Text; s == "" || s[0] < '0' || s[0] > '9' {
				t.Num[i] = false
			}
		}
	}
	return t
}

func cells(ss ...string) []cell {
	out := make([]cell, len(ss))
	for i, s := range ss {
		out[i] = newCell(s)
	}
	return out
}

// runView is one run's section: its chart, figures and failures.
type runView struct {
	Run
	N          int
	Primary    string // old → new; empty without a workload
	FaultAt    string // empty without a fault
	Fields     []field
	Lost       string // the lost writes' seq numbers, as ranges
	SplitBrain string // the split-brain writes' seq numbers, as ranges
	Events     []eventView
	Chart      *chart // nil without a timeline
}

type field struct {
	Name, Value string
	Bad         bool
}

type eventView struct {
	Kind, At, Detail string
}

func newView(r Result) view {
	v := view{R: r, Title: fmt.Sprintf("%s drill: %s", r.Scenario, Verdict(r.Passed)),
		Date: r.Started.UTC().Format("2006-01-02 15:04:05 UTC")}
	v.Subtitle = fmt.Sprintf("service %s (tier %d), cluster %s, %s, %d run%s in %s", dash(r.Service), r.Tier, dash(r.Cluster),
		v.Date, len(r.Runs), plural(len(r.Runs)), r.Finished.Sub(r.Started).Round(time.Second))
	if r.Incomplete != "" {
		v.Subtitle += "; incomplete: " + r.Incomplete
	}
	v.Targets, v.Runs, v.Stats = targetsTable(r), runsTable(r).aligned(), statsTable(r).aligned()
	for i, run := range r.Runs {
		v.Details = append(v.Details, newRunView(r.Scenario, i+1, run))
	}
	return v
}

func newRunView(scenario string, n int, run Run) runView {
	v := runView{Run: run, N: n, Fields: runFields(scenario, run), Lost: seqRanges(run.LostSeqs, run.AckedLost),
		SplitBrain: seqRanges(run.SplitBrainWrites, len(run.SplitBrainWrites)), Chart: newChart(run)}
	if hasWorkload(scenario) {
		v.Primary = primaries(run)
	}
	if !run.Fault.IsZero() {
		v.FaultAt = run.Fault.UTC().Format("15:04:05.000 UTC")
	}
	for _, e := range run.Events {
		v.Events = append(v.Events, eventView{Kind: e.Kind, At: fmt.Sprintf("%+.2fs", e.At.Sub(run.Start).Seconds()), Detail: e.Detail})
	}
	return v
}

func targetsTable(r Result) table {
	t := table{Head: []string{"Target", "Plan", "Measured (worst run)", "Result"}, Num: make([]bool, 4)} // text, left
	lost := r.AckedLost()
	for _, tg := range r.Targets {
		limit, measured := fmt.Sprintf("%gs", tg.Limit), secs(tg.Measured)
		if tg.Limit >= 60 {
			limit = secs(tg.Limit)
		}
		if tg.Name == "RPO" && tg.Limit == 0 {
			limit = "0 (no acknowledged write lost)"
		}
		if tg.Name == "RPO" && lost > 0 {
			measured += fmt.Sprintf(", %d acknowledged write%s lost", lost, plural(lost))
		}
		t.Rows = append(t.Rows, cells(tg.Name, limit, measured, Verdict(tg.Passed)))
	}
	return t
}

// hasWorkload reports whether a scenario runs a write workload, and so has
// writes to count and check.
func hasWorkload(scenario string) bool { return scenario != RestoreTest }

func runsTable(r Result) table {
	figs := Figures(r.Scenario)
	wl := hasWorkload(r.Scenario)
	t := table{Head: []string{"Run", "Result"}}
	if wl {
		t.Head = append(t.Head, "Primary", "Acked")
	}
	for _, f := range figs {
		t.Head = append(t.Head, figureLabel[f])
	}
	if wl {
		t.Head = append(t.Head, "Duplicates", "Split brain", "Consistent", "Rejoined")
	}
	for i, run := range r.Runs {
		row := cells(fmt.Sprint(i+1), Verdict(run.Passed))
		if wl {
			row = append(row, newCell(primaries(run)), newCell(fmt.Sprint(run.AckedWrites)))
		}
		for _, f := range figs {
			v := figureOf[f](run)
			row = append(row, flagged(figureValue(f, v), f == FigAckedLost && v > 0))
		}
		if wl {
			row = append(row, flagged(fmt.Sprint(run.Duplicates), run.Duplicates > 0),
				flagged(yesNo(run.SplitBrain), run.SplitBrain), flagged(yesNo(run.Consistent), !run.Consistent), newCell(yesNo(run.Rejoined)))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func statsTable(r Result) table {
	t := table{Head: []string{"Figure", "Median", "p95", "Max"}}
	if len(r.Runs) < 2 {
		return t
	}
	for _, f := range Figures(r.Scenario) {
		if s, ok := r.Stats[f]; ok {
			t.Rows = append(t.Rows, cells(figureLabel[f], figureValue(f, s.Median), figureValue(f, s.P95), figureValue(f, s.Max)))
		}
	}
	return t
}

// runFields are the figures of one run, as the HTML report lists them.
func runFields(scenario string, run Run) []field {
	var out []field
	for _, f := range Figures(scenario) {
		v := figureOf[f](run)
		out = append(out, field{Name: figureLabel[f], Value: figureValue(f, v), Bad: f == FigAckedLost && v > 0})
	}
	if !hasWorkload(scenario) {
		return out
	}
	sb := yesNo(run.SplitBrain)
	if run.SplitBrain {
		sb = fmt.Sprintf("yes, %d write%s", len(run.SplitBrainWrites), plural(len(run.SplitBrainWrites)))
	}
	return append(out,
		field{Name: "Acked writes", Value: fmt.Sprint(run.AckedWrites)},
		field{Name: "Unknown outcome", Value: fmt.Sprint(run.Unknown)},
		field{Name: "Duplicates", Value: fmt.Sprint(run.Duplicates), Bad: run.Duplicates > 0},
		field{Name: "Split brain", Value: sb, Bad: run.SplitBrain},
		field{Name: "Replicas consistent", Value: yesNo(run.Consistent), Bad: !run.Consistent},
		field{Name: "Old primary rejoined", Value: yesNo(run.Rejoined)})
}

var figureLabel = map[string]string{FigDetection: "Detection", FigFailover: "Failover", FigClientRTO: "Client RTO",
	FigReconnect: "Reconnect", FigRPO: "RPO", FigAckedLost: "Acked lost", FigRestore: "Restore"}

func figureValue(name string, v float64) string {
	if name == FigAckedLost {
		return fmt.Sprint(int(v))
	}
	return secs(v)
}

// secs formats seconds: to the millisecond under a minute, else to the
// second as a duration (5m, 1m30s).
func secs(s float64) string {
	if s == 0 {
		return "0s"
	}
	if s < 60 {
		return fmt.Sprintf("%.3fs", s)
	}
	d := (time.Duration(math.Round(s)) * time.Second).String()
	if strings.HasSuffix(d, "m0s") {
		d = strings.TrimSuffix(d, "0s")
	}
	return d
}

// seqRanges lists sequence numbers as ranges (1041-1052, 1060), noting
// when the list holds only the first of total.
func seqRanges(seqs []int64, total int) string {
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		} else {
			parts = append(parts, fmt.Sprint(seqs[i]))
		}
		i = j + 1
	}
	s := strings.Join(parts, ", ")
	if total > len(seqs) {
		s += fmt.Sprintf(" (the first %d of %d)", len(seqs), total)
	}
	return s
}

func primaries(run Run) string {
	if run.OldPrimary == run.NewPrimary {
		return dash(run.OldPrimary)
	}
	return dash(run.OldPrimary) + " → " + dash(run.NewPrimary)
}

// Verdict is the word for a passed or failed drill, run or target.
func Verdict(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func verdictClass(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// mdCell makes s safe in a Markdown table cell: no cell break, no line
// break, no HTML.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", `\<`).Replace(s)
}

// mdText keeps s from being read as HTML in Markdown.
func mdText(s string) string { return strings.ReplaceAll(s, "<", `\<`) }
