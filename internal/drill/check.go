package drill

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Observation is everything a run saw: the workload, what the primary
// holds afterwards, and what the cluster recorded.
type Observation struct {
	Scenario   string
	Start, End time.Time // the workload's
	Fault      time.Time
	FaultNode  string // the node the fault hit
	Old, New   string // primaries at the fault and after recovery
	// Detected and Promoted come from the cluster's history for a change
	// of leader; zero for a restart in place or no change.
	Detected, Promoted time.Time
	Acks               []Ack
	Errors             []time.Time
	Unknown            []int64
	Present            map[int64]int     // seq → rows on the primary afterwards
	Hashes             map[string]string // node → hash of the drill table on it
	Rejoined           bool              // the old primary streams from the new one
	WantRejoin         bool              // the scenario takes the old primary down
	Notes              []string
}

// Judge turns an observation into a run's figures and verdict, against
// the plan's RTO and RPO.
func Judge(o Observation, rto, rpo time.Duration) Run {
	r := Run{Scenario: o.Scenario, Fault: o.Fault, OldPrimary: o.Old, NewPrimary: o.New, Start: o.Start,
		AckedWrites: len(o.Acks), Unknown: len(o.Unknown), Rejoined: o.Rejoined, Notes: o.Notes}
	firstNew := firstAckOn(o.Acks, o.New, o.Fault)
	r.ClientRTOS = longestGap(o.Acks, o.Fault.Add(-time.Second), firstNew.Add(time.Second))
	r.DetectionS, r.FailoverS = detection(o, firstNew)
	if !o.Promoted.IsZero() && !firstNew.IsZero() {
		r.ReconnectS = max(0, firstNew.Sub(o.Promoted).Seconds())
	}
	r.lost(o)
	r.splitBrain(o, firstNew)
	r.Consistent = consistent(o.Hashes)
	r.Timeline = timeline(o)
	r.Events = events(o, firstNew)
	r.verdict(o, firstNew, rto, rpo)
	return r
}

// firstAckOn is the first write node acknowledged after t; zero if none.
func firstAckOn(acks []Ack, node string, t time.Time) time.Time {
	for _, a := range acks {
		if a.Node == node && a.At.After(t) {
			return a.At
		}
	}
	return time.Time{}
}

// longestGap is the longest time without an acknowledged write between
// from and to: what the clients saw of the outage.
func longestGap(acks []Ack, from, to time.Time) float64 {
	prev, gap := from, time.Duration(0)
	for _, a := range acks {
		if a.At.Before(from) {
			continue
		}
		if a.At.After(to) {
			break
		}
		gap = max(gap, a.At.Sub(prev))
		prev = a.At
	}
	return gap.Seconds()
}

// detection is when the cluster noticed the fault and when a primary took
// writes again. Without a change of leader, the client's view stands in:
// its first failed write, and its first write after the fault.
func detection(o Observation, firstNew time.Time) (detected, recovered float64) {
	if !o.Detected.IsZero() {
		detected = max(0, o.Detected.Sub(o.Fault).Seconds())
	} else if i := slices.IndexFunc(o.Errors, func(t time.Time) bool { return t.After(o.Fault) }); i >= 0 {
		detected = o.Errors[i].Sub(o.Fault).Seconds()
	}
	switch {
	case !o.Promoted.IsZero():
		recovered = max(0, o.Promoted.Sub(o.Fault).Seconds())
	case !firstNew.IsZero():
		recovered = firstNew.Sub(o.Fault).Seconds()
	}
	return detected, recovered
}

// lost finds acknowledged writes the primary does not have, the oldest
// one's age at the fault (the RPO in seconds), and duplicates.
func (r *Run) lost(o Observation) {
	for _, a := range o.Acks {
		if o.Present[a.Seq] > 0 {
			continue
		}
		r.AckedLost++
		if len(r.LostSeqs) < 100 {
			r.LostSeqs = append(r.LostSeqs, a.Seq)
		}
		r.RPOS = max(r.RPOS, o.Fault.Sub(a.At).Seconds(), 0.001) // a write lost after the fault still counts
	}
	for _, n := range o.Present {
		if n > 1 {
			r.Duplicates++
		}
	}
}

// splitBrain flags writes the old primary acknowledged after the new one
// took its first: two nodes accepting writes in overlapping time.
func (r *Run) splitBrain(o Observation, firstNew time.Time) {
	if o.Old == o.New || firstNew.IsZero() {
		return
	}
	for _, a := range o.Acks {
		if a.Node == o.Old && a.At.After(firstNew) {
			r.SplitBrain = true
			if len(r.SplitBrainWrites) < 100 {
				r.SplitBrainWrites = append(r.SplitBrainWrites, a.Seq)
			}
		}
	}
}

// lostOn counts lost writes that no RPO excuses: acknowledged by the new
// primary after the fault, or lost at all in a scenario that moves or
// takes down no primary by force.
func lostOn(o Observation) int {
	n := 0
	for _, a := range o.Acks {
		if o.Present[a.Seq] == 0 && (o.Scenario == Switchover || o.Scenario == ReplicaLoss || o.Scenario == EtcdMemberLoss || (a.Node == o.New && a.At.After(o.Fault))) {
			n++
		}
	}
	return n
}

func consistent(hashes map[string]string) bool {
	vals := slices.Collect(maps.Values(hashes))
	return len(vals) > 0 && !slices.ContainsFunc(vals, func(h string) bool { return h != vals[0] })
}

// verdict lists why the run fails, if it does.
func (r *Run) verdict(o Observation, firstNew time.Time, rto, rpo time.Duration) {
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if firstNew.IsZero() {
		fail("no write was acknowledged by %s after the fault", o.New)
	}
	if r.AckedLost > 0 && (rpo == 0 || r.RPOS > rpo.Seconds()) {
		fail("%d acknowledged writes lost (RPO %.3fs, plan %s): seq %v", r.AckedLost, r.RPOS, rpo, r.LostSeqs)
	} else if n := lostOn(o); n > 0 {
		// Whatever the RPO: the new primary's acknowledged writes, and any
		// in a switchover, a replica's or an etcd member's loss, must survive.
		fail("%d acknowledged writes lost that no RPO allows (acknowledged by %s, or in a %s): seq %v", n, o.New, o.Scenario, r.LostSeqs)
	}
	if r.SplitBrain {
		fail("split brain: %s acknowledged %d writes after %s took its first: seq %v", o.Old, len(r.SplitBrainWrites), o.New, r.SplitBrainWrites)
	}
	if r.Duplicates > 0 {
		fail("%d writes present more than once", r.Duplicates)
	}
	if !r.Consistent {
		fail("replicas differ from the primary: %v", o.Hashes)
	}
	if o.Scenario == EtcdMemberLoss && o.New != o.Old {
		fail("the primary moved from %s to %s although etcd kept its quorum", o.Old, o.New)
	}
	if o.WantRejoin && !o.Rejoined {
		fail("old primary %s did not rejoin as a replica", o.Old)
	}
	if rto > 0 && r.ClientRTOS > rto.Seconds() {
		fail("client-visible RTO %.3fs over the plan's %s", r.ClientRTOS, rto)
	}
	r.Passed = len(r.Failures) == 0
}

// timeline counts writes and errors per 100 ms from the workload's start.
func timeline(o Observation) []Bucket {
	n := int(o.End.Sub(o.Start)/(100*time.Millisecond)) + 1
	if n <= 0 || n > 100_000 {
		return nil
	}
	b := make([]Bucket, n)
	slot := func(t time.Time) int { return min(max(0, int(t.Sub(o.Start)/(100*time.Millisecond))), n-1) }
	for _, a := range o.Acks {
		b[slot(a.At)].Writes++
	}
	for _, t := range o.Errors {
		b[slot(t)].Errors++
	}
	return b
}

func events(o Observation, firstNew time.Time) []Event {
	ev := []Event{{At: o.Fault, Kind: "fault", Detail: o.Scenario + " on " + cmp.Or(o.FaultNode, o.Old)}}
	if !o.Detected.IsZero() {
		ev = append(ev, Event{At: o.Detected, Kind: "detected"})
	}
	if !o.Promoted.IsZero() {
		ev = append(ev, Event{At: o.Promoted, Kind: "promoted", Detail: o.New})
	}
	if !firstNew.IsZero() {
		ev = append(ev, Event{At: firstNew, Kind: "first-write", Detail: "on " + o.New})
	}
	return ev
}
