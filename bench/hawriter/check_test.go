package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sec = int64(1e9) // one second in ns

func ptr(v float64) *float64 { return &v }

func TestAnalyse(t *testing.T) {
	const fault = 100 * sec
	tests := []struct {
		name   string
		acks   []ack
		events []watchEvent
		rows   map[int64]string
		want   report
	}{
		{
			name: "failover seen by the API, the killed primary's backend commits twice more",
			acks: []ack{
				{1, "pg1", fault - sec, 1},
				{2, "pg1", fault + sec/100, 1}, // after the fault, not replicated
				{3, "pg1", fault + sec/50, 1},
				{4, nodeUnknown, fault + sec/20, 1},
				{5, "pg2", fault + 6*sec, 2},
				{6, "pg2", fault + 7*sec, 2},
			},
			events: []watchEvent{
				{fault - 3*sec, []string{"pg1"}},
				{fault + sec/10, nil},
				{fault + 5*sec, []string{"pg2"}},
			},
			rows: map[int64]string{1: "pg1", 4: "pg1", 5: "pg2", 6: "pg2"},
			want: report{
				Acked: 5, Unknown: 1, UnknownCommitted: 1,
				Lost: 2, LostSeqs: []int64{2, 3}, LostAfterFault: 2,
				Old: "pg1", OldFrom: "acks",
				Leader: "pg2", LeaderHow: "failover", LeaderFrom: "api", LeaderS: ptr(5),
				ClientRTOS: ptr(5.98), FirstAckS: ptr(6), FirstAckNode: "pg2",
				OldConnAcks: 2, OldConnLastS: ptr(0.02), AckedAfterFault: 4,
				OldStill200S: ptr(0.1), Max200: 1,
			},
		},
		{
			name: "restart in place while /primary answers 200 throughout",
			acks: []ack{
				{1, "pg1", fault - sec, 1},
				{2, "pg1", fault + 4*sec, 2},
			},
			events: []watchEvent{{fault - 3*sec, []string{"pg1"}}},
			rows:   map[int64]string{1: "pg1", 2: "pg1"},
			want: report{
				Acked: 2, LostSeqs: []int64{},
				Old: "pg1", OldFrom: "acks",
				Leader: "pg1", LeaderHow: "restart-in-place", LeaderFrom: "writer", LeaderS: ptr(4),
				ClientRTOS: ptr(5), FirstAckS: ptr(4), FirstAckNode: "pg1", AckedAfterFault: 1,
				OldAlways200: true, Max200: 1,
			},
		},
		{
			name: "two primaries: the old one takes a commit after the new leader",
			acks: []ack{
				{1, "pg1", fault - sec, 1},
				{2, "pg2", fault + 3*sec, 2},
				{3, "pg1", fault + 4*sec, 3},
			},
			events: []watchEvent{
				{fault - 3*sec, []string{"pg1"}},
				{fault + 2*sec, []string{"pg1", "pg2"}},
				{fault + 5*sec, []string{"pg2"}},
			},
			rows: map[int64]string{1: "pg1", 2: "pg2"},
			want: report{
				Acked: 3, Lost: 1, LostSeqs: []int64{3}, LostAfterFault: 1,
				Old: "pg1", OldFrom: "flag",
				Leader: "pg2", LeaderHow: "failover", LeaderFrom: "api", LeaderS: ptr(5),
				ClientRTOS: ptr(4), FirstAckS: ptr(3), FirstAckNode: "pg2", AckedAfterFault: 2,
				OldStill200S: ptr(5), Max200: 2,
				// seq 3 at +4 s: pg2 has answered 200 since +2 s
				AfterFaultOnOld: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := ""
			if tt.want.OldFrom == "flag" {
				old = tt.want.Old
			}
			got := analyse(tt.acks, tt.events, tt.rows, fault, old)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("analyse (-want +got):\n%s", diff)
			}
		})
	}
}
