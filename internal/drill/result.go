// Package drill runs disaster-recovery drills against a running cluster
// and judges them against the plan: a write workload with numbered writes,
// a fault, the recovery, and a checker that reads what survived. It owns
// the result of a drill (this file), its reports and its history on disk.
//
// It does not decide anything about the cluster: the agents do. A drill
// only injects faults and measures.
package drill

import (
	"time"
)

// Scenario names, as given to bulwark drill run --scenario.
const (
	PrimaryCrash     = "primary-crash"     // kill -9 of the primary's postmaster
	NodeLoss         = "node-loss"         // kill -9 of the primary's agent and postmaster
	PrimaryHang      = "primary-hang"      // SIGSTOP of the primary's node beyond the TTL, then SIGCONT
	NetworkPartition = "network-partition" // the primary cut off from etcd and the replicas
	ReplicaLoss      = "replica-loss"      // kill -9 of a replica's agent and postmaster
	EtcdMemberLoss   = "etcd-member-loss"  // one etcd member stopped
	Switchover       = "switchover"        // bulwark cluster switchover under load
	RestoreTest      = "restore-test"      // restore the latest backup and a PITR to a scratch directory
)

// Result is one `bulwark drill run`: one scenario, one or more runs.
type Result struct {
	ID       string    `json:"id"` // UTC start time and scenario, such as 20261124T101500Z-primary-crash
	Scenario string    `json:"scenario"`
	Cluster  string    `json:"cluster"`
	Service  string    `json:"service"`
	Tier     int       `json:"tier"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Targets are the plan's objectives, judged on the worst run.
	Targets []Target `json:"targets"`
	Runs    []Run    `json:"runs"`
	// Stats summarise the runs' figures (median, p95, max) by name:
	// detection_s, failover_s, client_rto_s, rpo_s, acked_lost,
	// reconnect_s, restore_s.
	Stats  map[string]Stat `json:"stats"`
	Passed bool            `json:"passed"` // every run's checker passed and every target was met
	// Incomplete says why a run could not be carried out (the cluster
	// never became healthy, a fault could not be injected): the runs
	// before it are kept, and the drill does not pass.
	Incomplete string `json:"incomplete,omitempty"`
	// Reports are the paths of the rendered reports (html, md, json).
	Reports map[string]string `json:"reports,omitempty"`
}

// AckedLost is the number of acknowledged writes lost over all runs.
func (r Result) AckedLost() int {
	lost := 0
	for _, run := range r.Runs {
		lost += run.AckedLost
	}
	return lost
}

// Target is one objective of the plan against what the drill measured.
type Target struct {
	Name     string  `json:"name"`       // RTO or RPO
	Limit    float64 `json:"limit_s"`    // the plan's objective, in seconds
	Measured float64 `json:"measured_s"` // the worst run's figure, in seconds
	Passed   bool    `json:"passed"`
}

// Stat is the distribution of one figure over the runs.
type Stat struct {
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
}

// Run is one fault and its recovery.
type Run struct {
	Scenario string `json:"scenario"`
	Passed   bool   `json:"passed"`
	// Failures say why the run did not pass, one line each.
	Failures []string `json:"failures,omitempty"`

	Fault      time.Time `json:"fault"`       // when the fault was injected
	OldPrimary string    `json:"old_primary"` // the primary at the fault
	NewPrimary string    `json:"new_primary"` // the primary after recovery (the same one after a restart in place)

	DetectionS float64 `json:"detection_s"`  // fault → the cluster noticed (leader key gone or history's detected time)
	FailoverS  float64 `json:"failover_s"`   // fault → a new primary took writes
	ClientRTOS float64 `json:"client_rto_s"` // the workload's last acknowledged write before the fault → its first after
	ReconnectS float64 `json:"reconnect_s"`  // the new primary ready → the workload's first write on it

	AckedWrites int     `json:"acked_writes"`
	AckedLost   int     `json:"acked_lost"`
	LostSeqs    []int64 `json:"lost_seqs,omitempty"` // the lost writes' sequence numbers (at most 100)
	RPOS        float64 `json:"rpo_s"`               // the oldest lost write's age at the fault; 0 when none lost
	Duplicates  int     `json:"duplicates"`          // sequence numbers present more than once
	Unknown     int     `json:"unknown_outcome"`     // writes cut off during their commit (neither counted acknowledged nor lost)
	// SplitBrain is set when two nodes acknowledged writes in overlapping
	// time: a write acknowledged by the old primary after the new one
	// took its first.
	SplitBrain       bool     `json:"split_brain"`
	SplitBrainWrites []int64  `json:"split_brain_writes,omitempty"`
	Consistent       bool     `json:"replicas_consistent"` // every replica's table hashes equal the primary's
	Rejoined         bool     `json:"old_primary_rejoined"`
	RestoreS         float64  `json:"restore_s,omitempty"` // restore-test: time to a started, checked copy
	Notes            []string `json:"notes,omitempty"`

	// Timeline is the workload per 100 ms from Start, and Events what
	// happened to the cluster, for the report's chart.
	Start    time.Time `json:"start"`
	Timeline []Bucket  `json:"timeline"`
	Events   []Event   `json:"events"`

	ReportHTML string `json:"report_html,omitempty"` // the HTML report holding this run
}

// Bucket is the workload over 100 ms.
type Bucket struct {
	Writes int `json:"writes"` // acknowledged
	Errors int `json:"errors"`
}

// Event is a moment of a run: the fault, detection, promotion, the first
// write on the new primary, the old primary's rejoin.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // fault, detected, promoted, first-write, rejoined, healthy, note
	Detail string    `json:"detail,omitempty"`
}
