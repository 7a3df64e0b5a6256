package drill

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// observe builds an observation of writes every 10 ms for 10 s, on old
// until the fault at 5 s and on new from 6 s (a 1 s outage), all present
// and replicated, unless the test changes it.
func observe() Observation {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	o := Observation{Scenario: PrimaryCrash, Start: t0, End: t0.Add(10 * time.Second), Fault: t0.Add(5 * time.Second),
		Old: "n1", New: "n2", Detected: t0.Add(5100 * time.Millisecond), Promoted: t0.Add(5900 * time.Millisecond),
		Present: map[int64]int{}, Hashes: map[string]string{"n1": "h", "n2": "h", "n3": "h"}, Rejoined: true, WantRejoin: true}
	seq := int64(0)
	for t := t0; t.Before(o.End); t = t.Add(10 * time.Millisecond) {
		node := "n1"
		switch {
		case t.After(o.Fault) && t.Before(t0.Add(6*time.Second)):
			o.Errors = append(o.Errors, t)
			continue
		case !t.Before(t0.Add(6 * time.Second)):
			node = "n2"
		}
		seq++
		o.Acks = append(o.Acks, Ack{Seq: seq, Node: node, At: t})
		o.Present[seq] = 1
	}
	return o
}

func TestJudgeCleanFailover(t *testing.T) {
	r := Judge(observe(), time.Minute, 0)
	if !r.Passed || r.AckedLost != 0 || r.SplitBrain || !r.Consistent {
		t.Fatalf("clean failover judged %+v", r.Failures)
	}
	if r.ClientRTOS < 0.99 || r.ClientRTOS > 1.01 {
		t.Errorf("client RTO %.3f, want 1.0", r.ClientRTOS)
	}
	if r.DetectionS < 0.099 || r.DetectionS > 0.101 || r.FailoverS < 0.899 || r.FailoverS > 0.901 {
		t.Errorf("detection %.3f failover %.3f, want 0.1 and 0.9", r.DetectionS, r.FailoverS)
	}
	if len(r.Timeline) != 101 || r.Timeline[0].Writes != 10 || r.Timeline[55].Errors != 10 {
		t.Errorf("timeline: %d buckets, first %+v, at 5.5 s %+v", len(r.Timeline), r.Timeline[0], r.Timeline[55])
	}
	if kinds := []string{"fault", "detected", "promoted", "first-write"}; !slices.Equal(eventKinds(r.Events), kinds) {
		t.Errorf("events %v, want %v", eventKinds(r.Events), kinds)
	}
}

func eventKinds(ev []Event) []string {
	var k []string
	for _, e := range ev {
		k = append(k, e.Kind)
	}
	return k
}

func TestJudgeCatches(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Observation)
		rto    time.Duration
		rpo    time.Duration
		want   string // in a failure line
		check  func(*testing.T, Run)
	}{
		{"lost writes with RPO 0", func(o *Observation) { delete(o.Present, 490); delete(o.Present, 500) }, time.Minute, 0,
			"2 acknowledged writes lost", func(t *testing.T, r Run) {
				if !slices.Equal(r.LostSeqs, []int64{490, 500}) || r.RPOS < 0.109 || r.RPOS > 0.111 {
					t.Errorf("lost %v, RPO %.3fs; want [490 500] and 0.11s", r.LostSeqs, r.RPOS)
				}
			}},
		{"lost writes within an RPO of 1s pass", func(o *Observation) { delete(o.Present, 500) }, time.Minute, time.Second, "", nil},
		{"a write the new primary acknowledged, lost, fails whatever the RPO", func(o *Observation) { delete(o.Present, 700) },
			time.Minute, time.Hour, "no RPO allows", nil},
		{"split brain", func(o *Observation) {
			o.Acks = append(o.Acks, Ack{Seq: 9999, Node: "n1", At: o.Start.Add(7 * time.Second)})
			o.Present[9999] = 1
		}, time.Minute, 0, "split brain", func(t *testing.T, r Run) {
			if !r.SplitBrain || !slices.Equal(r.SplitBrainWrites, []int64{9999}) {
				t.Errorf("split brain %v, writes %v", r.SplitBrain, r.SplitBrainWrites)
			}
		}},
		{"duplicates", func(o *Observation) { o.Present[3] = 2 }, time.Minute, 0, "more than once", nil},
		{"replica differs", func(o *Observation) { o.Hashes["n3"] = "other" }, time.Minute, 0, "replicas differ", nil},
		{"old primary not back", func(o *Observation) { o.Rejoined = false }, time.Minute, 0, "did not rejoin", nil},
		{"RTO missed", func(*Observation) {}, 500 * time.Millisecond, 0, "over the plan's", nil},
		{"never recovered", func(o *Observation) {
			o.Acks = slices.DeleteFunc(o.Acks, func(a Ack) bool { return a.Node == "n2" })
		}, time.Minute, time.Hour, "no write was acknowledged", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := observe()
			tt.change(&o)
			r := Judge(o, tt.rto, tt.rpo)
			joined := strings.Join(r.Failures, "\n")
			switch {
			case tt.want == "" && !r.Passed:
				t.Errorf("failed: %s", joined)
			case tt.want != "" && (r.Passed || !strings.Contains(joined, tt.want)):
				t.Errorf("passed %v, failures %q; want one containing %q", r.Passed, joined, tt.want)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// TestJudgeEtcdMemberLoss: losing an etcd member must move no primary and
// lose no write, whatever the RPO.
func TestJudgeEtcdMemberLoss(t *testing.T) {
	o := observe()
	o.Scenario, o.WantRejoin = EtcdMemberLoss, false
	r := Judge(o, time.Minute, time.Hour)
	if r.Passed || !strings.Contains(strings.Join(r.Failures, "\n"), "the primary moved from n1 to n2") {
		t.Errorf("a failover on an etcd member's loss: passed %v, failures %q", r.Passed, r.Failures)
	}
	o.New = o.Old
	for i := range o.Acks {
		o.Acks[i].Node = o.Old
	}
	o.Present[o.Acks[len(o.Acks)/4].Seq] = 0 // acknowledged before the fault
	r = Judge(o, time.Minute, time.Hour)
	if r.Passed || !strings.Contains(strings.Join(r.Failures, "\n"), "that no RPO allows") {
		t.Errorf("a write lost on an etcd member's loss, RPO 1h: passed %v, failures %q", r.Passed, r.Failures)
	}
}
