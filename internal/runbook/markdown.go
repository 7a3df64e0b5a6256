package runbook

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
)

//go:embed runbook.md.tmpl
var markdownText string

var markdownTmpl = template.Must(template.New("runbook").Funcs(template.FuncMap{
	"code":    code,
	"cell":    func(s string) string { return strings.ReplaceAll(s, "|", `\|`) },
	"steps":   steps,
	"inline":  inline,
	"date":    date,
	"verdict": drill.Verdict,
	"seconds": seconds,
	"rto":     rtoCell,
	"rpo":     rpoCell,
}).Parse(markdownText))

// Markdown writes rb as a Markdown document.
func (rb Runbook) Markdown(w io.Writer) error {
	if err := markdownTmpl.Execute(w, rb); err != nil {
		return fmt.Errorf("write runbook: %w", err)
	}
	return nil
}

// code is s as a Markdown code span.
func code(s string) string {
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// steps is a numbered list, each step's commands on lines of their own.
func steps(ss []Step) string {
	var b strings.Builder
	for i, s := range ss {
		fmt.Fprintf(&b, "%d. %s", i+1, s.Text)
		for _, c := range s.Commands {
			fmt.Fprintf(&b, "  \n   %s", code(c))
		}
		if i < len(ss)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// inline is a step on one line: its text, then its commands.
func inline(s Step) string {
	codes := make([]string, len(s.Commands))
	for i, c := range s.Commands {
		codes[i] = code(c)
	}
	if len(codes) == 0 {
		return s.Text
	}
	return strings.TrimSuffix(s.Text, ".") + ": " + strings.Join(codes, ", ")
}

func date(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// target is the named target of a drill result, if it has one.
func target(sr ScenarioResult, name string) (drill.Target, bool) {
	for _, t := range sr.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return drill.Target{}, false
}

// rtoCell is "3.1 s / 4 s (5m: PASS)": the RTO figure's median and
// maximum, and the target it was judged against.
func rtoCell(sr ScenarioResult) string {
	s := fmt.Sprintf("%s / %s", seconds(sr.RTO.Median), seconds(sr.RTO.Max))
	if sr.RTOFigure == drill.FigRestore {
		s = "restore " + s
	}
	if t, ok := target(sr, "RTO"); ok {
		s += fmt.Sprintf(" (%s: %s)", limit(t), drill.Verdict(t.Passed))
	}
	return s
}

// rpoCell is "0 lost, 0 s (30s: PASS)": acknowledged writes lost in the
// worst run, its RPO, and the target.
func rpoCell(sr ScenarioResult) string {
	t, ok := target(sr, "RPO")
	if !ok {
		return "no workload"
	}
	return fmt.Sprintf("%d lost, %s (%s: %s)", sr.AckedLost, seconds(t.Measured), limit(t), drill.Verdict(t.Passed))
}

func limit(t drill.Target) string {
	return duration(time.Duration(t.Limit * float64(time.Second)))
}
