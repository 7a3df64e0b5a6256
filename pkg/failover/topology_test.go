package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func member(name string, role cluster.Role, state string, term uint64, lsn wal.LSN) cluster.Member {
	return cluster.Member{Name: name, Role: role, State: state, Term: term, LSN: lsn, Following: "a",
		Addr: "10.0.0." + name + ":5432"}
}

func TestMembersTopology(t *testing.T) {
	leader := &cluster.Leader{Name: "a", Term: 7}
	running := map[string]cluster.Member{
		"a": member("a", cluster.RolePrimary, "running", 7, 1000),
		"b": member("b", cluster.RoleReplica, "streaming", 7, 900),
		"c": member("c", cluster.RoleReplica, "streaming", 7, 1000),
		"d": member("d", cluster.RoleReplica, "running", 7, 1000), // not streaming
	}
	// The record alone: a fresh check each time, members here have no API.
	never := func(ctx context.Context, m cluster.Member, term uint64) bool {
		return newLeaderCheck(nil).ok(ctx, m, term)
	}
	always := func(context.Context, cluster.Member, uint64) bool { return true }
	a := &Node{Name: "a", Addr: "10.0.0.a:5432"}
	tests := []struct {
		name        string
		leader      *cluster.Leader
		members     map[string]cluster.Member
		confirm     func(context.Context, cluster.Member, uint64) bool
		want        Topology
		wantSettled bool
	}{
		{"no leader", nil, running, always, Topology{}, false},
		{"steady", leader, running, never, Topology{Term: 7, Primary: a, Replicas: []Node{
			{Name: "c", Addr: "10.0.0.c:5432"},
			{Name: "b", Addr: "10.0.0.b:5432", LagBytes: 100},
		}}, true},
		{"leader's record is of an older term, API says no", leader, map[string]cluster.Member{
			"a": member("a", cluster.RoleReplica, "streaming", 6, 1000),
		}, never, Topology{Term: 7}, false},
		{"leader's record is of an older term, API confirms", leader, map[string]cluster.Member{
			"a": member("a", cluster.RoleReplica, "streaming", 6, 1000),
		}, always, Topology{Term: 7, Primary: a}, true},
		{"leader crashed", leader, map[string]cluster.Member{
			"a": member("a", cluster.RoleNone, "crashed", 7, 1000),
		}, never, Topology{Term: 7}, false},
		{"leader has no record", leader, map[string]cluster.Member{}, always, Topology{Term: 7}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, settled := membersTopology(t.Context(), tt.leader, tt.members, tt.confirm)
			if diff := cmp.Diff(tt.want, got); diff != "" || settled != tt.wantSettled {
				t.Errorf("settled %v (want %v); topology (-want +got):\n%s", settled, tt.wantSettled, diff)
			}
		})
	}
}

// TestLeaderCheckSticks: once a leader is confirmed in a term, a record
// that says otherwise does not drop it; a new term is confirmed afresh.
func TestLeaderCheckSticks(t *testing.T) {
	c := newLeaderCheck(nil)
	ctx := t.Context()
	if !c.ok(ctx, member("a", cluster.RolePrimary, "running", 3, 0), 3) {
		t.Fatal("a running primary of term 3 was not confirmed")
	}
	if !c.ok(ctx, member("a", cluster.RoleNone, "unreachable", 3, 0), 3) {
		t.Error("a confirmed leader was dropped for a record that lags")
	}
	if c.ok(ctx, member("a", cluster.RoleNone, "unreachable", 3, 0), 4) {
		t.Error("term 4 was confirmed on term 3's confirmation")
	}
	if c.ok(ctx, member("b", cluster.RoleReplica, "streaming", 3, 0), 3) {
		t.Error("another node was confirmed on a's confirmation")
	}
}

func TestHostsTopology(t *testing.T) {
	p := hostState{addr: "p:1", primary: true, lsn: 500, reachable: true}
	r := hostState{addr: "r:1", lsn: 400, reachable: true}
	down := hostState{addr: "d:1"}
	tests := []struct {
		name    string
		states  []hostState
		want    Topology
		wantErr bool
	}{
		{"one primary", []hostState{r, down, p}, Topology{Primary: &Node{Name: "p:1", Addr: "p:1"},
			Replicas: []Node{{Name: "r:1", Addr: "r:1", LagBytes: 100}}}, false},
		{"two primaries: none", []hostState{p, {addr: "q:1", primary: true, reachable: true}}, Topology{}, true},
		{"no primary", []hostState{r, down}, Topology{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hostsTopology(tt.states)
			if diff := cmp.Diff(tt.want, got); diff != "" || (err != nil) != tt.wantErr {
				t.Errorf("err %v (want error: %v); topology (-want +got):\n%s", err, tt.wantErr, diff)
			}
		})
	}
}

func TestTopologyEqualAndWithin(t *testing.T) {
	t1 := Topology{Term: 1, Primary: &Node{Name: "a"}, Replicas: []Node{{Name: "b", LagBytes: 10}, {Name: "c", LagBytes: 1 << 30}}}
	t2 := t1
	t2.Primary = &Node{Name: "a"}
	if !t1.Equal(t2) {
		t.Error("equal topologies with distinct Primary pointers compare unequal")
	}
	t2.Term = 2
	if t1.Equal(t2) {
		t.Error("topologies of different terms compare equal")
	}
	if got := t1.ReplicasWithin(1 << 20); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("ReplicasWithin(1MiB) = %v, want only b", got)
	}
	if len(t1.Replicas) != 2 {
		t.Error("ReplicasWithin changed the topology")
	}
}

func TestLostConnection(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "40001"}, false},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{errNotPrimary, true},
		{errors.New("application error"), false},
	}
	for _, tt := range tests {
		if got := lostConnection(tt.err); got != tt.want {
			t.Errorf("lostConnection(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
