package drill

import (
	"math"
	"slices"
	"time"
)

// Figure names, the keys of Result.Stats.
const (
	FigDetection = "detection_s"
	FigFailover  = "failover_s"
	FigClientRTO = "client_rto_s"
	FigRPO       = "rpo_s"
	FigAckedLost = "acked_lost"
	FigReconnect = "reconnect_s"
	FigRestore   = "restore_s"
)

// figureOf reads one figure of a run.
var figureOf = map[string]func(Run) float64{
	FigDetection: func(r Run) float64 { return r.DetectionS },
	FigFailover:  func(r Run) float64 { return r.FailoverS },
	FigClientRTO: func(r Run) float64 { return r.ClientRTOS },
	FigRPO:       func(r Run) float64 { return r.RPOS },
	FigAckedLost: func(r Run) float64 { return float64(r.AckedLost) },
	FigReconnect: func(r Run) float64 { return r.ReconnectS },
	FigRestore:   func(r Run) float64 { return r.RestoreS },
}

// Figures lists the figures that mean something for a scenario, in the
// order reports show them. A fault that leaves the primary in place has
// no detection, failover or reconnection to time; a restore test has no
// workload.
func Figures(scenario string) []string {
	switch scenario {
	case RestoreTest:
		return []string{FigRestore}
	case ReplicaLoss, EtcdMemberLoss:
		return []string{FigClientRTO, FigRPO, FigAckedLost}
	}
	return []string{FigDetection, FigFailover, FigClientRTO, FigReconnect, FigRPO, FigAckedLost}
}

// RTOFigure names the figure the RTO target is judged on: the
// client-visible RTO, or the restore time of a restore test.
func RTOFigure(scenario string) string {
	if scenario == RestoreTest {
		return FigRestore
	}
	return FigClientRTO
}

// Summarize fills r.Stats, r.Targets and r.Passed from r.Runs, against
// the plan's RTO and RPO. Targets are judged on the worst run. An RPO of
// 0 means no acknowledged write may be lost. A result without runs does
// not pass.
func Summarize(r *Result, rto, rpo time.Duration) {
	r.Stats = map[string]Stat{}
	for _, name := range Figures(r.Scenario) {
		vals := make([]float64, len(r.Runs))
		for i, run := range r.Runs {
			vals[i] = figureOf[name](run)
		}
		r.Stats[name] = distribution(vals)
	}
	r.Targets = []Target{rtoTarget(r, rto)}
	if r.Scenario != RestoreTest { // a restore test has no workload to lose writes of
		r.Targets = append(r.Targets, rpoTarget(r.Runs, rpo))
	}
	r.Passed = len(r.Runs) > 0 && r.Incomplete == ""
	for _, run := range r.Runs {
		r.Passed = r.Passed && run.Passed
	}
	for _, t := range r.Targets {
		r.Passed = r.Passed && t.Passed
	}
}

func rtoTarget(r *Result, rto time.Duration) Target {
	t := Target{Name: "RTO", Limit: rto.Seconds()}
	t.Measured = r.Stats[RTOFigure(r.Scenario)].Max
	t.Passed = t.Measured <= t.Limit
	return t
}

func rpoTarget(runs []Run, rpo time.Duration) Target {
	t := Target{Name: "RPO", Limit: rpo.Seconds()}
	lost := 0
	for _, run := range runs {
		t.Measured = max(t.Measured, run.RPOS)
		lost += run.AckedLost
	}
	if lost > 0 && t.Measured == 0 {
		t.Measured = 0.001 // a lost write is never a 0 RPO, however recent (as Judge does)
	}
	t.Passed = lost == 0 || (rpo > 0 && t.Measured <= t.Limit)
	return t
}

// distribution is the median (the lower one of an even count), the 95th
// percentile (nearest rank) and the maximum of vals.
func distribution(vals []float64) Stat {
	if len(vals) == 0 {
		return Stat{}
	}
	s := slices.Sorted(slices.Values(vals))
	n := len(s)
	p95 := int(math.Ceil(0.95*float64(n))) - 1
	return Stat{Median: s[(n-1)/2], P95: s[p95], Max: s[n-1]}
}
