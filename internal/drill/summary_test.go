package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDistribution(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals []float64
		want Stat
	}{
		{"none", nil, Stat{}},
		{"one", []float64{3}, Stat{Median: 3, P95: 3, Max: 3}},
		{"even count takes the lower median", []float64{4, 1, 3, 2}, Stat{Median: 2, P95: 4, Max: 4}},
		{"odd count", []float64{5, 1, 3}, Stat{Median: 3, P95: 5, Max: 5}},
		{"p95 of 20 is the 19th", []float64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
			Stat{Median: 10, P95: 19, Max: 20}},
		{"p95 of 21 is the 20th", []float64{21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
			Stat{Median: 11, P95: 20, Max: 21}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := distribution(tc.vals); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ok := func(rto, rpo float64, lost int) Run {
		return Run{Passed: true, DetectionS: 1, FailoverS: 2, ClientRTOS: rto, ReconnectS: 0.5, RPOS: rpo, AckedLost: lost}
	}
	for _, tc := range []struct {
		name      string
		scenario  string
		runs      []Run
		rto, rpo  time.Duration
		want      []Target
		wantPass  bool
		wantStats map[string]Stat
	}{
		{name: "one run meets both targets", scenario: PrimaryCrash, runs: []Run{ok(4, 0, 0)}, rto: 30 * time.Second,
			want:     []Target{{"RTO", 30, 4, true}, {"RPO", 0, 0, true}},
			wantPass: true,
			wantStats: map[string]Stat{FigDetection: {1, 1, 1}, FigFailover: {2, 2, 2}, FigClientRTO: {4, 4, 4},
				FigReconnect: {0.5, 0.5, 0.5}, FigRPO: {}, FigAckedLost: {}}},
		{name: "RTO judged on the worst run", scenario: NodeLoss, runs: []Run{ok(4, 0, 0), ok(31, 0, 0), ok(5, 0, 0)}, rto: 30 * time.Second,
			want: []Target{{"RTO", 30, 31, false}, {"RPO", 0, 0, true}}},
		{name: "RTO at the limit passes", scenario: PrimaryHang, runs: []Run{ok(30, 0, 0)}, rto: 30 * time.Second,
			want: []Target{{"RTO", 30, 30, true}, {"RPO", 0, 0, true}}, wantPass: true},
		{name: "RPO 0 fails on any lost write", scenario: PrimaryCrash, runs: []Run{ok(4, 0, 0), ok(4, 0.2, 3)}, rto: time.Minute,
			want: []Target{{"RTO", 60, 4, true}, {"RPO", 0, 0.2, false}}},
		{name: "RPO 0 with lost writes but no age is not measured 0", scenario: PrimaryCrash, runs: []Run{ok(4, 0, 2)}, rto: time.Minute,
			want: []Target{{"RTO", 60, 4, true}, {"RPO", 0, 0.001, false}}},
		{name: "lost writes within a nonzero RPO pass", scenario: PrimaryCrash, runs: []Run{ok(4, 0.8, 5)}, rto: time.Minute, rpo: time.Second,
			want: []Target{{"RTO", 60, 4, true}, {"RPO", 1, 0.8, true}}, wantPass: true},
		{name: "lost writes beyond the RPO fail", scenario: PrimaryCrash, runs: []Run{ok(4, 1.5, 5)}, rto: time.Minute, rpo: time.Second,
			want: []Target{{"RTO", 60, 4, true}, {"RPO", 1, 1.5, false}}},
		{name: "a failed checker fails the drill", scenario: Switchover, runs: []Run{ok(1, 0, 0), {ClientRTOS: 1, SplitBrain: true}}, rto: time.Minute,
			want: []Target{{"RTO", 60, 1, true}, {"RPO", 0, 0, true}}},
		{name: "no runs do not pass", scenario: PrimaryCrash, rto: time.Minute,
			want: []Target{{"RTO", 60, 0, true}, {"RPO", 0, 0, true}}},
		{name: "replica loss has no failover figures", scenario: ReplicaLoss, runs: []Run{ok(0.3, 0, 0), ok(0.1, 0, 0)}, rto: time.Minute,
			want: []Target{{"RTO", 60, 0.3, true}, {"RPO", 0, 0, true}}, wantPass: true,
			wantStats: map[string]Stat{FigClientRTO: {0.1, 0.3, 0.3}, FigRPO: {}, FigAckedLost: {}}},
		{name: "restore test judges the restore time only", scenario: RestoreTest,
			runs: []Run{{Passed: true, RestoreS: 40}, {Passed: true, RestoreS: 70}}, rto: time.Minute,
			want:      []Target{{"RTO", 60, 70, false}},
			wantStats: map[string]Stat{FigRestore: {40, 70, 70}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Scenario: tc.scenario, Runs: tc.runs, Passed: true}
			Summarize(&r, tc.rto, tc.rpo)
			if diff := cmp.Diff(tc.want, r.Targets); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			if r.Passed != tc.wantPass {
				t.Errorf("passed: got %v, want %v", r.Passed, tc.wantPass)
			}
			if tc.wantStats != nil {
				if diff := cmp.Diff(tc.wantStats, r.Stats); diff != "" {
					t.Errorf("stats (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestSummarizeIncomplete: runs done before one that could not be carried
// out are summarised, but the drill does not pass, and says why.
func TestSummarizeIncomplete(t *testing.T) {
	r := Result{Scenario: NodeLoss, Incomplete: "run 2: cluster not healthy before the fault",
		Runs: []Run{{Passed: true, ClientRTOS: 3}}}
	Summarize(&r, time.Minute, 0)
	if r.Passed || r.Stats[FigClientRTO].Max != 3 {
		t.Errorf("passed %v, stats %+v: want a failed drill with the first run's figures", r.Passed, r.Stats)
	}
	if v := newView(r); !strings.Contains(v.Subtitle, "incomplete: run 2: cluster not healthy") {
		t.Errorf("subtitle %q does not say the drill is incomplete", v.Subtitle)
	}
}
