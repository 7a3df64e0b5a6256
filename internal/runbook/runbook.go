// Package runbook turns a DR plan, and what was measured of it, into what
// people read in an incident: the runbook of `bulwark plan runbook` (Build,
// then Markdown or JSON) and the verdicts of `bulwark status --plan`
// (Grade, RestoreFromDrills).
//
// It is pure: no I/O, no clock. The cli package reads the plan, the drill
// history and the repositories, and hands the results over as Facts or
// observations.
//
// It imports plan, which STYLE.md otherwise leaves to cli: the runbook is
// the plan itself put into words, and a copy of the plan's types made for
// it by cli would only repeat them field by field.
package runbook

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// Facts are what the plan alone cannot tell the runbook. The zero value
// knows nothing: no restore measured, no drill run.
type Facts struct {
	// Restore is what `bulwark plan check` knows of the last restore test.
	Restore plan.Facts
	// Drills holds the newest result of each scenario
	// (drill.History.Latest); nil or empty when no drill ran.
	Drills map[string]drill.Result
	// DrillsError says why the drill history could not be read in full;
	// "" when it could. The runbook prints it rather than fail.
	DrillsError string
}

// Runbook is the DR plan as a runbook, in the six sections of a DR plan
// template. Markdown renders it; its JSON is `plan runbook -o json`.
type Runbook struct {
	Plan           string         `json:"plan"` // the plan file, as commands name it with --plan
	Classification Classification `json:"classification"`
	Backup         Backup         `json:"backup"`
	Failover       Failover       `json:"failover"`
	Recovery       Recovery       `json:"recovery"`
	Testing        Testing        `json:"testing"`
	Results        Results        `json:"results"`
}

// Step is one thing to do, and the commands that do it if there are any.
type Step struct {
	Text     string   `json:"text"`
	Commands []string `json:"commands,omitempty"` // run in this order, or as the text says
}

// Classification is section 1: what is protected and how much loss and
// downtime it tolerates.
type Classification struct {
	Service     string  `json:"service"`
	Tier        int     `json:"tier"`
	TierMeaning string  `json:"tier_meaning"`
	RTO         string  `json:"rto"` // as the plan writes it, such as 5m
	RTOS        float64 `json:"rto_s"`
	RPO         string  `json:"rpo"`
	RPOS        float64 `json:"rpo_s"`
	Region      string  `json:"region,omitempty"`
}

// tierMeanings say what each tier typically tolerates, after the tier
// table of a DR plan, and what kind of service it is.
var tierMeanings = [...]string{
	"typically no data loss and seconds of downtime: mission critical",
	"typically near-zero data loss (seconds) and minutes of downtime: business critical, such as payment processing or trading",
	"typically minutes of data loss and under an hour of downtime, such as e-commerce checkout or SaaS",
	"typically hours of data loss and under 4 hours of downtime, such as internal tools or a CMS",
	"typically a day of data loss and under a day of downtime: non-critical, such as analytics or batch processing",
}

// Build renders p as a runbook, with what facts know of it. It is pure.
func Build(p *plan.Plan, facts Facts) Runbook {
	return Runbook{
		Plan:           p.Path,
		Classification: classify(p),
		Backup:         backupStrategy(p, facts),
		Failover:       failoverProcedure(p),
		Recovery:       recoveryProcedure(p),
		Testing:        testingSchedule(p),
		Results:        lastResults(p, facts),
	}
}

func classify(p *plan.Plan) Classification {
	s := p.Service
	c := Classification{Service: s.Name, Tier: s.Tier, Region: s.Region,
		RTO: duration(s.RTO), RTOS: s.RTO.Seconds(), RPO: duration(s.RPO), RPOS: s.RPO.Seconds()}
	if s.Tier >= 0 && s.Tier < len(tierMeanings) {
		c.TierMeaning = tierMeanings[s.Tier]
	}
	return c
}

// JSON writes rb as indented JSON.
func (rb Runbook) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rb); err != nil {
		return fmt.Errorf("write runbook: %w", err)
	}
	return nil
}

// command is a bulwark command line with the plan: "bulwark VERB --plan
// P", then args.
func command(planPath, verb string, args ...string) string {
	parts := append([]string{"bulwark", verb, "--plan", shellQuote(planPath)}, args...)
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./-:=@+,", r)
	}
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !safe(r) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// duration writes d as the plan would, and 0 as 0.
func duration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return plan.FormatDuration(d)
}

// seconds writes a figure in seconds for a person: 0.4 s, 12 s, 3m20s.
func seconds(s float64) string {
	if s < 60 {
		return strings.TrimSuffix(fmt.Sprintf("%.1f", s), ".0") + " s"
	}
	return plan.FormatDuration(time.Duration(s * float64(time.Second)).Round(time.Second))
}
