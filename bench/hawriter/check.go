package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

type checkOptions struct {
	Conn  string
	Acks  string
	Watch string
	Fault int64 // Unix nanoseconds
	Old   string
	Table string
}

// maxListed bounds the lost seqs listed in the report.
const maxListed = 20

// report is check's output: one JSON object per failover. Durations are
// seconds from the fault, to the millisecond; nil when the event never
// happened.
type report struct {
	Acked   int `json:"acked"`
	Unknown int `json:"unknown"`
	// UnknownCommitted counts the unknown writes found in the table.
	UnknownCommitted int     `json:"unknown_committed"`
	Lost             int     `json:"lost"`
	LostSeqs         []int64 `json:"lost_seqs"`
	// LostAfterFault counts the lost commits acknowledged after the fault
	// (by a backend of the killed postmaster, or after a restart).
	LostAfterFault int    `json:"lost_after_fault"`
	Old            string `json:"old"`
	OldFrom        string `json:"old_from"` // "flag", "acks" or "watch"
	// Leader is the node that took writes after the fault; LeaderHow is
	// "failover" (another node) or "restart-in-place" (the old primary
	// again); LeaderFrom is "api" when /primary showed it, "writer" when
	// only the first commit did (the API never showed the change).
	Leader     string   `json:"leader"`
	LeaderHow  string   `json:"leader_how"`
	LeaderFrom string   `json:"leader_from"`
	LeaderS    *float64 `json:"leader_s"`
	// ClientRTOS is the writer's outage: from its last commit on the
	// connection open at the fault (at or after the fault) to its first
	// commit on a later connection. FirstAckS and FirstAckNode are that first
	// commit's; OldConnAcks counts the commits the connection open at the
	// fault took after the fault, the last of them OldConnLastS after it
	// (nil when there were none).
	ClientRTOS      *float64 `json:"client_rto_s"`
	FirstAckS       *float64 `json:"first_ack_s"`
	FirstAckNode    string   `json:"first_ack_node"`
	OldConnAcks     int      `json:"old_conn_acks_after_fault"`
	OldConnLastS    *float64 `json:"old_conn_last_ack_s"`
	AckedAfterFault int      `json:"acked_after_fault"`
	// AfterFaultOnOld counts the commits the old primary acknowledged after
	// the new leader first answered 200 on /primary (or took a commit): two
	// primaries, as a client sees them.
	AfterFaultOnOld int `json:"after_fault_on_old"`
	// OldStill200S is how long after the fault the old primary kept
	// answering 200 on /primary; OldAlways200 is true when it never stopped
	// during the run (its API still claimed the primary while writes failed).
	OldStill200S *float64 `json:"old_still_200_s"`
	OldAlways200 bool     `json:"old_always_200"`
	// Max200 is the largest number of nodes answering 200 at once, from the
	// fault on.
	Max200 int `json:"max_200_nodes"`
}

func runCheck(ctx context.Context, o checkOptions, stdout io.Writer) error {
	acks, err := readAcks(o.Acks)
	if err != nil {
		return err
	}
	events, err := readWatch(o.Watch)
	if err != nil {
		return err
	}
	rows, err := readTable(ctx, o.Conn, o.Table)
	if err != nil {
		return err
	}
	r := analyse(acks, events, rows, o.Fault, o.Old)
	enc := json.NewEncoder(stdout)
	return enc.Encode(r)
}

// tableTimeout bounds check's wait for a primary to read the table on.
const tableTimeout = 30 * time.Second

// readTable returns the node of every row in the writer's table, read on
// the primary; it waits up to tableTimeout for one to accept connections.
func readTable(ctx context.Context, conn, table string) (map[int64]string, error) {
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("parse --conn: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, tableTimeout)
	defer cancel()
	var c *pgx.Conn
	for {
		if c, err = pgx.ConnectConfig(ctx, cfg); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		sleep(ctx, 200*time.Millisecond)
	}
	defer c.Close(context.WithoutCancel(ctx))
	rs, err := c.Query(ctx, "SELECT seq, node FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	out := map[int64]string{}
	var seq int64
	var node string
	_, err = pgx.ForEachRow(rs, []any{&seq, &node}, func() error {
		out[seq] = node
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}

// analyse is check's pure part: the logs, the table and the fault time in,
// the report out.
func analyse(acks []ack, events []watchEvent, rows map[int64]string, fault int64, old string) report {
	r := report{LostSeqs: []int64{}, Old: old, OldFrom: "flag"}
	var lastBefore *ack
	for i := range acks {
		a := &acks[i]
		if a.Node == nodeUnknown {
			r.Unknown++
			if _, ok := rows[a.Seq]; ok {
				r.UnknownCommitted++
			}
			continue
		}
		r.Acked++
		if node, ok := rows[a.Seq]; !ok || node != a.Node {
			r.Lost++
			if a.At > fault {
				r.LostAfterFault++
			}
			if len(r.LostSeqs) < maxListed {
				r.LostSeqs = append(r.LostSeqs, a.Seq)
			}
		}
		if a.At <= fault {
			lastBefore = a
		} else {
			r.AckedAfterFault++
		}
	}
	if r.Old == "" {
		r.Old, r.OldFrom = oldPrimary(lastBefore, events, fault)
	}
	firstNew := outage(&r, acks, lastBefore, fault)
	leaderAt := findLeader(&r, events, firstNew, fault)
	if r.Leader != "" && r.Leader != r.Old {
		since := firstClaim(events, r.Leader, fault, leaderAt)
		for _, a := range acks {
			if a.Node == r.Old && a.At > since {
				r.AfterFaultOnOld++
			}
		}
	}
	return r
}

// firstClaim returns when node first answered 200 on /primary after the
// fault, alone or not; or else, when the leader was found.
func firstClaim(events []watchEvent, node string, fault, leaderAt int64) int64 {
	for _, e := range events {
		if e.At > fault && slices.Contains(e.Primaries, node) {
			return min(e.At, leaderAt)
		}
	}
	return leaderAt
}

// outage fills the client's view of the fault and returns the first commit
// on a connection opened after it, or nil. The outage runs from the last
// commit on the connection open at the fault to that first commit: not from
// the fault itself, because a backend whose postmaster was killed goes on
// committing (to its local WAL) until it notices, some milliseconds later.
func outage(r *report, acks []ack, lastBefore *ack, fault int64) *ack {
	if lastBefore == nil {
		return nil
	}
	lastOld := lastBefore
	var firstNew *ack
	for i := range acks {
		a := &acks[i]
		switch {
		case a.Node == nodeUnknown || a.At <= fault:
		case a.Conn == lastBefore.Conn:
			lastOld = a
			r.OldConnAcks++
		case a.Conn > lastBefore.Conn && firstNew == nil:
			firstNew = a
		}
	}
	if r.OldConnAcks > 0 {
		r.OldConnLastS = secs(lastOld.At - fault)
	}
	if firstNew != nil {
		r.FirstAckS = secs(firstNew.At - fault)
		r.FirstAckNode = firstNew.Node
		r.ClientRTOS = secs(firstNew.At - lastOld.At)
	}
	return firstNew
}

// oldPrimary guesses the primary at the fault: the node of the last commit
// before it, or else the only node answering 200 at the fault.
func oldPrimary(lastBefore *ack, events []watchEvent, fault int64) (string, string) {
	if lastBefore != nil {
		return lastBefore.Node, "acks"
	}
	if i := stateAt(events, fault); i >= 0 && len(events[i].Primaries) == 1 {
		return events[i].Primaries[0], "watch"
	}
	return "", "none"
}

// stateAt returns the index of the last event at or before t, or -1.
func stateAt(events []watchEvent, t int64) int {
	i := -1
	for j, e := range events {
		if e.At > t {
			break
		}
		i = j
	}
	return i
}

// findLeader fills the leader fields and the API observations of r and
// returns when the leader appeared (Unix ns; 0 when it did not). From the
// API: the first time one node other than the old primary alone answers 200,
// or the old primary alone again after it had stopped answering. Failing
// that, from the writer: the node of its first commit on a connection opened
// after the fault.
func findLeader(r *report, events []watchEvent, firstNew *ack, fault int64) int64 {
	i := stateAt(events, fault)
	oldAt200 := i >= 0 && slices.Contains(events[i].Primaries, r.Old)
	if i >= 0 {
		r.Max200 = len(events[i].Primaries)
	}
	var leaderAt, oldLeft int64
	for _, e := range events[i+1:] {
		r.Max200 = max(r.Max200, len(e.Primaries))
		if oldLeft == 0 && !slices.Contains(e.Primaries, r.Old) {
			oldLeft = e.At
		}
		if leaderAt != 0 || len(e.Primaries) != 1 {
			continue
		}
		switch p := e.Primaries[0]; {
		case p != r.Old:
			r.Leader, r.LeaderHow, leaderAt = p, "failover", e.At
		case oldLeft != 0:
			r.Leader, r.LeaderHow, leaderAt = p, "restart-in-place", e.At
		}
	}
	switch {
	case oldLeft != 0:
		r.OldStill200S = secs(oldLeft - fault)
	case oldAt200:
		r.OldAlways200 = true
	}
	if leaderAt != 0 {
		r.LeaderFrom, r.LeaderS = "api", secs(leaderAt-fault)
		return leaderAt
	}
	if firstNew == nil {
		r.LeaderFrom = "none"
		return 0
	}
	r.Leader, r.LeaderFrom, r.LeaderS = firstNew.Node, "writer", secs(firstNew.At-fault)
	r.LeaderHow = "failover"
	if firstNew.Node == r.Old {
		r.LeaderHow = "restart-in-place"
	}
	return firstNew.At
}

func secs(ns int64) *float64 {
	s := math.Round(float64(ns)/1e6) / 1e3
	return &s
}
