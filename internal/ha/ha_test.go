package ha

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

var now = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)

func replica(lsn wal.LSN) Local {
	return Local{Initialized: true, Running: true, Reachable: true, Timeline: 1, LSN: lsn, Streaming: true, SystemID: 7}
}

func input(self string, mode cluster.Mode, local Local) Input {
	return Input{
		Self: self, Now: now, Local: local, MaxRestarts: 1,
		Config: cluster.Config{Mode: mode, MaximumLagOnFailover: 1 << 20},
		Snap:   cluster.Snapshot{SystemID: 7, Members: map[string]cluster.Member{}},
	}
}

func TestDecide(t *testing.T) {
	sync := &cluster.Sync{Leader: "a", Standbys: []string{"b"}, Quorum: 1}
	cases := []struct {
		name string
		in   Input
		want Kind
	}{
		{"new cluster", func() Input { in := input("a", cluster.ModeAsync, Local{}); in.Snap.SystemID = 0; return in }(), Campaign},
		{"empty node waits for the leader's server", func() Input {
			in := input("b", cluster.ModeAsync, Local{})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			return in
		}(), Wait},
		{"empty node clones", func() Input {
			in := input("b", cluster.ModeAsync, Local{})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			in.Snap.Members["a"] = cluster.Member{Role: cluster.RolePrimary}
			return in
		}(), Clone},
		{"leader whose server died restarts it", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			return in
		}(), StartPrimary},
		{"leader whose restart failed resigns", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			in.Restarts = 1
			return in
		}(), Resign},
		{"leader with an empty volume resigns rather than initialize", func() Input {
			in := input("a", cluster.ModeAsync, Local{})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			return in
		}(), Resign},
		{"paused leader does not restart", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			in.Config.Paused = true
			return in
		}(), Wait},
		{"primary that does not lead is demoted", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true, Running: true, Reachable: true, Primary: true})
			in.Snap.Leader = &cluster.Leader{Name: "b"}
			return in
		}(), Demote},
		{"diverged replica rewinds", func() Input {
			l := replica(100)
			l.Diverged, l.Following = true, "b"
			in := input("a", cluster.ModeAsync, l)
			in.Snap.Leader = &cluster.Leader{Name: "b"}
			return in
		}(), Rewind},
		{"replica of the old leader follows the new", func() Input {
			l := replica(100)
			l.Following = "a"
			in := input("c", cluster.ModeAsync, l)
			in.Snap.Leader = &cluster.Leader{Name: "b"}
			return in
		}(), Follow},
		{"most advanced replica campaigns", func() Input {
			in := input("b", cluster.ModeAsync, replica(200))
			in.Peers = map[string]Peer{"c": {Reachable: true, Running: true, LSN: 100}}
			return in
		}(), Campaign},
		{"less advanced replica waits", func() Input {
			in := input("c", cluster.ModeAsync, replica(100))
			in.Peers = map[string]Peer{"b": {Reachable: true, Running: true, LSN: 200}}
			return in
		}(), Wait},
		{"non-synchronous replica may not be promoted in sync mode", func() Input {
			in := input("c", cluster.ModeSync, replica(300))
			in.Snap.Sync = sync
			in.Peers = map[string]Peer{"b": {Reachable: true, Running: true, LSN: 200}}
			return in
		}(), Wait},
		{"synchronous replica is promoted even if another has more WAL", func() Input {
			in := input("b", cluster.ModeSync, replica(200))
			in.Snap.Sync = sync
			in.Peers = map[string]Peer{"c": {Reachable: true, Running: true, LSN: 300}}
			return in
		}(), Campaign},
		{"lagging replica is never promoted", func() Input {
			in := input("b", cluster.ModeAsync, replica(100))
			in.LastLeaderLSN = 100 + 2<<20
			return in
		}(), Wait},
		{"failsafe promise blocks a campaign", func() Input {
			in := input("b", cluster.ModeAsync, replica(100))
			in.Promised = now.Add(time.Second)
			return in
		}(), Wait},
		{"requested failover to another node blocks a campaign", func() Input {
			in := input("b", cluster.ModeAsync, replica(100))
			in.Snap.Request = &cluster.Request{Kind: "failover", To: "c"}
			return in
		}(), Wait},
		{"switchover to a streaming replica", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true, Running: true, Reachable: true, Primary: true})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			in.Snap.Members["b"] = cluster.Member{Role: cluster.RoleReplica, Streaming: true, Following: "a"}
			in.Snap.Request = &cluster.Request{Kind: "switchover", From: "a"}
			return in
		}(), Switchover},
		{"scheduled switchover waits for its time", func() Input {
			in := input("a", cluster.ModeAsync, Local{Initialized: true, Running: true, Reachable: true, Primary: true})
			in.Snap.Leader = &cluster.Leader{Name: "a"}
			in.Snap.Members["b"] = cluster.Member{Role: cluster.RoleReplica, Streaming: true, Following: "a"}
			in.Snap.Request = &cluster.Request{Kind: "switchover", From: "a", At: now.Add(time.Hour)}
			return in
		}(), ManageLeader},
		{"replica down after three starts is cloned afresh", down(MaxReplicaStarts, true), Reinit},
		{"replica down after two starts is started again", down(MaxReplicaStarts-1, true), StartReplica},
		{"replica down after three starts waits for a running leader to clone from", down(MaxReplicaStarts, false), StartReplica},
		{"replica ends the leadership of a leader silent past its fence and the margin", silent(3*time.Second+TakeoverMargin, nil), EndLeadership},
		{"replica waits for the margin after the leader's fence", silent(3*time.Second+TakeoverMargin-time.Millisecond, nil), ManageReplica},
		{"replica that saw no heartbeat of this leadership waits for the lease", silent(0, nil), ManageReplica},
		{"paused: a silent leader is left alone", silent(time.Minute, func(in *Input) { in.Config.Paused = true }), Wait},
		{"failsafe promise: a silent leader is left alone", silent(time.Minute, func(in *Input) { in.Promised = now.Add(time.Second) }), ManageReplica},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.in); got.Kind != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestQuorumNeverLosesACommit checks Eligible against random states: in
// quorum mode, whichever node may campaign has every commit that was
// acknowledged (each acknowledged commit is on Quorum of the standbys), so
// long as the node compares itself only with peers it can see.
func TestQuorumNeverLosesACommit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"b", "c", "d", "e"}
	for range 20000 {
		k := 1 + r.IntN(len(names))
		acked := wal.LSN(1000)
		lsn := map[string]wal.LSN{}
		// Exactly k standbys have the last acknowledged commit; the others
		// may lag.
		perm := r.Perm(len(names))
		for i, p := range perm {
			if i < k {
				lsn[names[p]] = acked + wal.LSN(r.IntN(50))
			} else {
				lsn[names[p]] = acked - 1 - wal.LSN(r.IntN(500))
			}
		}
		reachable := map[string]bool{}
		for _, n := range names {
			reachable[n] = r.IntN(3) > 0
		}
		for _, self := range names {
			if !reachable[self] {
				continue
			}
			in := input(self, cluster.ModeQuorum, replica(lsn[self]))
			in.Config.SyncCount = k
			in.Config.MaximumLagOnFailover = 1 << 30
			in.Snap.Sync = &cluster.Sync{Leader: "a", Standbys: names, Quorum: k}
			in.Peers = map[string]Peer{}
			for _, n := range names {
				if n != self && reachable[n] {
					in.Peers[n] = Peer{Reachable: true, Running: true, LSN: lsn[n]}
				}
			}
			if ok, _ := Eligible(in); ok && lsn[self] < acked {
				t.Fatalf("k=%d lsn=%v reachable=%v: %s may campaign without commit %d", k, lsn, reachable, self, acked)
			}
		}
	}
}

func TestPlanSync(t *testing.T) {
	members := map[string]cluster.Member{"a": {LSN: 300}, "b": {LSN: 100}, "c": {LSN: 200}}
	cases := []struct {
		name    string
		cfg     cluster.Config
		healthy map[string]bool
		want    string
		current []string
	}{
		{"async", cluster.Config{Mode: cluster.ModeAsync}, map[string]bool{"b": true}, "", nil},
		{"sync picks the most advanced healthy", cluster.Config{Mode: cluster.ModeSync}, map[string]bool{"b": true, "c": true}, `ANY 1 ("c")`, nil},
		{"sync falls back to async", cluster.Config{Mode: cluster.ModeSync}, map[string]bool{}, "", nil},
		{"strict sync blocks", cluster.Config{Mode: cluster.ModeSync, Strict: true}, map[string]bool{}, `ANY 1 ("b")`, nil},
		{"quorum", cluster.Config{Mode: cluster.ModeQuorum, SyncCount: 1}, map[string]bool{"b": true, "c": true}, `ANY 1 ("b", "c")`, nil},
		{"sync keeps the current standby while healthy", cluster.Config{Mode: cluster.ModeSync}, map[string]bool{"b": true, "c": true}, `ANY 1 ("b")`, []string{"b"}},
		{"quorum short of standbys degrades", cluster.Config{Mode: cluster.ModeQuorum, SyncCount: 2}, map[string]bool{"b": true}, `ANY 1 ("b")`, nil},
		{"strict quorum short of standbys blocks", cluster.Config{Mode: cluster.ModeQuorum, SyncCount: 2, Strict: true}, map[string]bool{"b": true}, `ANY 2 ("b", "c")`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlanSync(tc.cfg, "a", members, tc.healthy, tc.current).StandbyNames(`"fenced"`); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// silent is a replica of a leader b whose heartbeat says it fences 3 s
// after a renewal, last seen d ago.
func silent(d time.Duration, change func(*Input)) Input {
	l := replica(100)
	l.Following = "b"
	in := input("a", cluster.ModeAsync, l)
	in.Snap.Leader = &cluster.Leader{Name: "b", Term: 4}
	in.Snap.Members["b"] = cluster.Member{Role: cluster.RolePrimary}
	in.Snap.Beat = &cluster.Beat{Term: 4, FenceAfter: 3 * time.Second}
	in.Silent = d
	if change != nil {
		change(&in)
	}
	return in
}

// down is a replica of leader b whose server is down after starts starts.
func down(starts int, leaderUp bool) Input {
	in := input("a", cluster.ModeAsync, Local{Initialized: true, Timeline: 1, SystemID: 7})
	in.Snap.Leader = &cluster.Leader{Name: "b", Term: 4}
	if leaderUp {
		in.Snap.Members["b"] = cluster.Member{Role: cluster.RolePrimary}
	}
	in.ReplicaStarts = starts
	return in
}
