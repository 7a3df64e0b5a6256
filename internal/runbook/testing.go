package runbook

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// Testing is section 5: which drills prove the plan, how often, and the DR
// test checklist.
type Testing struct {
	Frequency string `json:"frequency"` // monthly, quarterly or yearly
	// Recommended is true when Frequency is a recommendation for the
	// tier, not the timetable of a schedule of the plan.
	Recommended bool       `json:"recommended"`
	Why         string     `json:"why"`
	Note        string     `json:"note,omitempty"` // without a cluster: why there are no drills
	Scenarios   []Scenario `json:"scenarios"`
	Checklist   []Phase    `json:"checklist"`
}

// Scenario is a drill the plan can be tested with.
type Scenario struct {
	Name    string `json:"name"`
	Fault   string `json:"fault"`
	Command string `json:"command"`
}

// Phase is a part of the DR test checklist.
type Phase struct {
	Name  string `json:"name"`
	Items []Step `json:"items"`
}

// scenarioFaults says what each drill scenario does.
var scenarioFaults = map[string]string{
	drill.PrimaryCrash:     "kill -9 of the primary's postmaster",
	drill.NodeLoss:         "kill -9 of the primary's agent and postmaster: the whole node lost",
	drill.PrimaryHang:      "SIGSTOP of the primary's node beyond the ttl, then SIGCONT",
	drill.NetworkPartition: "the primary cut off from etcd and its replicas (bulwark up --links): it must fence before another node leads",
	drill.ReplicaLoss:      "kill -9 of a replica's agent and postmaster",
	drill.EtcdMemberLoss:   "kill -9 of etcd's leader member (3 or more members): no failover, no write lost",
	drill.Switchover:       "bulwark cluster switchover under a write workload",
	drill.RestoreTest:      "restore the newest backup, then a point in time, to scratch directories; start, amcheck and count rows; time it",
}

// Frequency recommends how often to drill a service of tier, in words and
// as the longest time between two drills: tiers 0 and 1 monthly, 2
// quarterly, 3 and 4 yearly.
func Frequency(tier int) (string, time.Duration) {
	const day = 24 * time.Hour
	switch {
	case tier <= 1:
		return "monthly", 31 * day
	case tier == 2:
		return "quarterly", 92 * day
	}
	return "yearly", 366 * day
}

func testingSchedule(p *plan.Plan) Testing {
	often, _ := Frequency(p.Service.Tier)
	t := Testing{Frequency: often, Recommended: true,
		Why:       fmt.Sprintf("recommended for tier %d (tiers 0 and 1 monthly, 2 quarterly, 3 and 4 yearly): no schedule of the plan runs drills", p.Service.Tier),
		Scenarios: []Scenario{}, Checklist: checklist(p.Path)}
	if p.Cluster == nil {
		t.Note = "Drills need a cluster section: bulwark drill run injects faults into a cluster's nodes. Until the plan has one, " +
			"test restores by hand on this schedule (section 4: restore the newest backup to a scratch directory, start it, check it) and time them against the RTO."
		return t
	}
	for _, s := range drill.Scenarios {
		t.Scenarios = append(t.Scenarios, Scenario{Name: s, Fault: cmp.Or(scenarioFaults[s], s), Command: command(p.Path, "drill run", "--scenario "+s)})
	}
	return t
}

func checklist(planPath string) []Phase {
	return []Phase{
		{"Preparation", []Step{
			{Text: "Notify stakeholders of the planned test"},
			{Text: "Ensure backups are current", Commands: []string{command(planPath, "status")}},
			{Text: "Have a rollback plan ready"},
			{Text: "Set monitoring and alerting to test mode"},
		}},
		{"During the test", []Step{
			{Text: "Time the detection: how long until the failure is noticed (detection_s)"},
			{Text: "Time the response: how long until recovery starts (failover_s)"},
			{Text: "Time the recovery: how long until the service is restored (client_rto_s, restore_s)"},
			{Text: "Measure the data loss: acknowledged writes lost and the RPO in seconds (acked_lost, rpo_s)"},
			{Text: "Test client reconnection: do clients recover on their own (reconnect_s)"},
			{Text: "Verify data integrity after recovery: no duplicates, no split brain, replicas consistent with the primary"},
		}},
		{"After the test", []Step{
			{Text: "Compare the actual RTO with the target RTO, and the actual RPO with the target RPO (section 6)"},
			{Text: "Document what went wrong"},
			{Text: "Update the runbooks with the lessons learned", Commands: []string{command(planPath, "plan runbook")}},
			{Text: "Schedule the next test"},
		}},
	}
}

// Results is section 6: the newest drill result of each scenario, and the
// last restore measurement `bulwark plan check` knows.
type Results struct {
	Scenarios    []ScenarioResult `json:"scenarios"`
	HistoryError string           `json:"history_error,omitempty"`
	Restore      RestoreResult    `json:"restore"`
}

// ScenarioResult is the newest drill of one scenario; Ran is false, and
// the rest empty, when it never ran.
type ScenarioResult struct {
	Scenario string    `json:"scenario"`
	Ran      bool      `json:"ran"`
	ID       string    `json:"id,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Passed   bool      `json:"passed"`
	Runs     int       `json:"runs,omitempty"`
	// RTOFigure names the figure the RTO is judged on (client_rto_s, or
	// restore_s for a restore test); RTO is its distribution.
	RTOFigure string         `json:"rto_figure,omitempty"`
	RTO       drill.Stat     `json:"rto,omitzero"`
	AckedLost int            `json:"acked_lost"` // in the worst run
	Targets   []drill.Target `json:"targets,omitempty"`
	Failures  []string       `json:"failures,omitempty"` // why runs failed, each reason once
	Report    string         `json:"report,omitempty"`   // the HTML report
}

// RestoreResult is the last restore test plan check knows of.
type RestoreResult struct {
	Measured  bool      `json:"measured"`
	At        time.Time `json:"at,omitzero"`
	DurationS float64   `json:"duration_s,omitempty"`
	WithinRTO bool      `json:"within_rto"`
}

func lastResults(p *plan.Plan, facts Facts) Results {
	r := Results{HistoryError: facts.DrillsError, Scenarios: []ScenarioResult{}}
	names := slices.Clone(drill.Scenarios)
	if p.Cluster == nil {
		names = nil // no drill can run; list only what ran before
	}
	for _, s := range slices.Sorted(maps.Keys(facts.Drills)) {
		if !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	for _, s := range names {
		res, ok := facts.Drills[s]
		r.Scenarios = append(r.Scenarios, scenarioResult(s, res, ok))
	}
	if f := facts.Restore; f.LastRestore > 0 {
		r.Restore = RestoreResult{Measured: true, At: f.LastRestoreAt, DurationS: f.LastRestore.Seconds(), WithinRTO: f.LastRestore <= p.Service.RTO}
	}
	return r
}

func scenarioResult(name string, res drill.Result, ran bool) ScenarioResult {
	if !ran {
		return ScenarioResult{Scenario: name}
	}
	fig := drill.RTOFigure(name)
	sr := ScenarioResult{Scenario: name, Ran: true, ID: res.ID, Started: res.Started, Passed: res.Passed, Runs: len(res.Runs),
		RTOFigure: fig, RTO: res.Stats[fig], AckedLost: int(res.Stats[drill.FigAckedLost].Max), Targets: res.Targets, Report: res.Reports["html"]}
	for _, run := range res.Runs {
		for _, f := range run.Failures {
			if !slices.Contains(sr.Failures, f) {
				sr.Failures = append(sr.Failures, f)
			}
		}
	}
	return sr
}

// RestoreFromDrills is what the newest restore-test drill says of the last
// restore: its worst run's restore time and when the drill ran. It is the
// zero Facts when no restore test with a measured time is in latest
// (drill.History.Latest).
func RestoreFromDrills(latest map[string]drill.Result) plan.Facts {
	r, ok := latest[drill.RestoreTest]
	worst := r.Stats[drill.FigRestore].Max
	if !ok || worst <= 0 {
		return plan.Facts{}
	}
	return plan.Facts{LastRestore: time.Duration(worst * float64(time.Second)), LastRestoreAt: r.Started}
}
