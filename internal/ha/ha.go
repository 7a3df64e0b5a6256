// Package ha makes the HA decisions of an agent: from what the agent
// observed (its PostgreSQL, the cluster state read from etcd, its peers'
// positions) it returns what to do next. It is pure: no I/O, no clock, no
// goroutines; the agent package observes and acts around it, and the tests
// here drive it with made-up states.
package ha

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Local is the agent's own PostgreSQL.
type Local struct {
	Initialized bool // the data directory holds a cluster
	Running     bool
	Reachable   bool // running and answering queries
	Primary     bool // running, answering and out of recovery
	Timeline    wal.TimelineID
	LSN         wal.LSN // primary: write position; replica: received (or replayed, whichever is further)
	Streaming   bool    // replica: WAL receiver streaming
	Following   string  // replica: the node its configuration points at
	SystemID    uint64
	// Diverged says the local WAL went past where the leader's timeline
	// forked off (known from the leader's timeline history): the node
	// must be rewound before it can follow.
	Diverged bool
}

// Peer is another member's position as it answered a direct request just
// now (not as published in etcd, which may be a loop old).
type Peer struct {
	Reachable bool
	Running   bool
	Primary   bool
	Timeline  wal.TimelineID
	LSN       wal.LSN
}

// Input is one observation.
type Input struct {
	Self     string
	Now      time.Time
	Config   cluster.Config
	Snap     cluster.Snapshot
	Local    Local
	Peers    map[string]Peer // filled only when there is no leader
	Restarts int             // restarts of a crashed primary tried in this leadership
	// MaxRestarts is how many in-place restarts a leader tries before it
	// gives up leadership.
	MaxRestarts int
	// Promised is when the agent's failsafe promise (not to campaign while
	// an etcd-less primary relies on it) ends; zero if none.
	Promised time.Time
	// LastLeaderLSN is the last position the leader published.
	LastLeaderLSN wal.LSN
	// NotStreaming is how long a running replica has not streamed from
	// the leader; after StuckAfter it is cloned afresh.
	NotStreaming time.Duration
	StuckAfter   time.Duration
	// ReplicaStarts counts the times the agent started the local server
	// as a replica since it last streamed (or was cloned). A server that
	// is down again after MaxReplicaStarts of them fails in recovery each
	// time (NotStreaming never grows while it is down): it is cloned afresh.
	ReplicaStarts int
	// Silent is how long ago the agent first saw the leader's last
	// heartbeat (Snap.Beat) of the current leadership; 0 if it has seen
	// none. Past the heartbeat's FenceAfter plus TakeoverMargin the leader
	// has surely fenced, and a replica ends its leadership.
	Silent time.Duration
}

// MaxReplicaStarts is how many starts as a replica a server may fail (be
// found down again) before it is cloned afresh.
const MaxReplicaStarts = 3

// TakeoverMargin is how long a replica waits, after a silent leader must
// have fenced, before it ends that leadership: time for the fence itself
// (commits blocked, sessions terminated) to take effect. A new primary
// accepts writes only after a further election and promotion.
const TakeoverMargin = 500 * time.Millisecond

// Kind is what an Action does.
type Kind string

const (
	Wait          Kind = "wait"           // nothing to do now
	Bootstrap     Kind = "bootstrap"      // initdb, start as primary (the agent holds the leader key)
	Campaign      Kind = "campaign"       // try to take the leader key, then promote
	StartPrimary  Kind = "start-primary"  // start the local server as primary (it leads)
	Resign        Kind = "resign"         // give up the leader key now
	EndLeadership Kind = "end-leadership" // delete a silent leader's key (it has fenced), so an election follows
	Clone         Kind = "clone"          // copy the leader (empty data directory)
	StartReplica  Kind = "start-replica"  // start following the leader
	Follow        Kind = "follow"         // repoint a running replica at the leader
	Demote        Kind = "demote"         // fence and stop a primary that does not lead, then follow
	Rewind        Kind = "rewind"         // stop, pg_rewind from the leader, start following
	Reinit        Kind = "reinit"         // wipe and clone again (asked for)
	Switchover    Kind = "switchover"     // hand leadership to Target
	ManageLeader  Kind = "manage"         // the steady state of a leader: sync standbys, slots, lease
	ManageReplica Kind = "manage-replica" // the steady state of a replica
)

// Action is the decision.
type Action struct {
	Kind   Kind
	Target string // Follow/StartReplica/Clone/Rewind: the leader; Switchover: the node to promote
	Reason string
}

func (a Action) String() string {
	if a.Target != "" {
		return fmt.Sprintf("%s %s (%s)", a.Kind, a.Target, a.Reason)
	}
	return fmt.Sprintf("%s (%s)", a.Kind, a.Reason)
}

// Decide returns what the agent should do next.
func Decide(in Input) Action {
	l, leader := in.Local, in.Snap.Leader
	switch {
	case in.Snap.Reinit[in.Self] && leader != nil && leader.Name != in.Self && in.Snap.Members[leader.Name].Role == cluster.RolePrimary:
		return Action{Kind: Reinit, Target: leader.Name, Reason: "re-clone requested"}
	case leader != nil && leader.Name == in.Self:
		return decideLeader(in)
	case leader != nil:
		return decideFollower(in, leader.Name)
	case in.Config.Paused:
		return Action{Kind: Wait, Reason: "paused: no leader, and no automatic election during maintenance"}
	case in.Snap.SystemID == 0 && l.Initialized:
		return Action{Kind: Campaign, Reason: "the cluster has no recorded data; this node has a data directory"}
	case in.Snap.SystemID == 0:
		return Action{Kind: Campaign, Reason: "new cluster: the first node to lead initializes it"}
	}
	if ok, why := Eligible(in); !ok {
		return Action{Kind: Wait, Reason: "no leader; not eligible: " + why}
	}
	return Action{Kind: Campaign, Reason: "no leader; this node is the best candidate"}
}

func leaderName(l *cluster.Leader) string {
	if l == nil {
		return ""
	}
	return l.Name
}

func decideLeader(in Input) Action {
	l := in.Local
	switch {
	case !l.Initialized && in.Snap.SystemID == 0:
		return Action{Kind: Bootstrap, Reason: "this node leads a cluster with no data"}
	case !l.Initialized:
		// The cluster has data, this node has none (an empty volume):
		// initializing an empty database here would replace the cluster.
		return Action{Kind: Resign, Reason: "the data directory is empty but the cluster has data"}
	case l.SystemID != 0 && in.Snap.SystemID != 0 && l.SystemID != in.Snap.SystemID:
		return Action{Kind: Resign, Reason: "the data directory belongs to another cluster"}
	case !l.Running && in.Config.Paused:
		return Action{Kind: Wait, Reason: "paused: PostgreSQL is down and will not be restarted"}
	case !l.Running && in.Restarts < in.MaxRestarts:
		return Action{Kind: StartPrimary, Reason: fmt.Sprintf("PostgreSQL is down; restart %d of %d", in.Restarts+1, in.MaxRestarts)}
	case !l.Running:
		return Action{Kind: Resign, Reason: "PostgreSQL is down and did not restart; another node may lead"}
	case !l.Reachable:
		return Action{Kind: Wait, Reason: "PostgreSQL runs but does not answer yet"}
	case !l.Primary:
		return Action{Kind: StartPrimary, Reason: "leader whose server is still in recovery: promote"}
	}
	if r := in.Snap.Request; r != nil && !in.Config.Paused && (r.From == "" || r.From == in.Self) && !r.At.After(in.Now) {
		to, why := SwitchoverTarget(in, r.To)
		if to == "" {
			return Action{Kind: ManageLeader, Reason: "switchover refused: " + why}
		}
		return Action{Kind: Switchover, Target: to, Reason: "requested " + r.Kind}
	}
	return Action{Kind: ManageLeader, Reason: "leader"}
}

func decideFollower(in Input, leader string) Action {
	l := in.Local
	lm, known := in.Snap.Members[leader]
	leaderUp := known && lm.Role == cluster.RolePrimary
	switch {
	case takeoverDue(in) && !in.Config.Paused && !in.Now.Before(in.Promised):
		return Action{Kind: EndLeadership, Target: leader, Reason: fmt.Sprintf("no heartbeat from %s for %s: it has fenced itself",
			leader, in.Silent.Round(time.Millisecond))}
	case !l.Initialized && !leaderUp:
		return Action{Kind: Wait, Reason: "empty data directory; waiting for the leader's server to run before cloning"}
	case !l.Initialized:
		return Action{Kind: Clone, Target: leader, Reason: "empty data directory"}
	case l.Running && l.Primary:
		return Action{Kind: Demote, Target: leader, Reason: leader + " leads; this server must not accept writes"}
	case l.Running && !l.Reachable:
		// Do not reconfigure a server whose role is unknown: it may be a
		// primary (just resumed), and a replica's settings would release
		// its waiting commits.
		return Action{Kind: Wait, Reason: "PostgreSQL runs but does not answer yet"}
	case in.Config.Paused:
		return Action{Kind: Wait, Reason: "paused"}
	case !l.Running && leaderUp && in.ReplicaStarts >= MaxReplicaStarts:
		return Action{Kind: Reinit, Target: leader, Reason: fmt.Sprintf("PostgreSQL stopped after each of %d starts as a replica", in.ReplicaStarts)}
	case l.Diverged:
		return Action{Kind: Rewind, Target: leader, Reason: "local WAL diverged from the leader's timeline"}
	case !l.Running:
		return Action{Kind: StartReplica, Target: leader, Reason: "PostgreSQL is down"}
	case l.Following != leader:
		return Action{Kind: Follow, Target: leader, Reason: "following " + cmp.Or(l.Following, "nobody")}
	case leaderUp && in.StuckAfter > 0 && in.NotStreaming > in.StuckAfter:
		return Action{Kind: Reinit, Target: leader, Reason: fmt.Sprintf("not streaming from a running leader for %s", in.NotStreaming.Round(time.Second))}
	}
	return Action{Kind: ManageReplica, Target: leader, Reason: "replica"}
}

// UntilTakeover is how long until the leader's silence (Input.Silent) is
// long enough for this replica to end its leadership: the heartbeat's
// FenceAfter plus TakeoverMargin. false when that does not apply (this
// node leads, or it has seen no heartbeat of the current leadership).
func UntilTakeover(in Input) (time.Duration, bool) {
	if in.Silent <= 0 || in.Snap.Beat == nil || in.Snap.Leader == nil || in.Snap.Leader.Name == in.Self {
		return 0, false
	}
	return in.Snap.Beat.FenceAfter + TakeoverMargin - in.Silent, true
}

func takeoverDue(in Input) bool {
	d, ok := UntilTakeover(in)
	return ok && d <= 0
}

// Eligible says whether the agent may campaign for leadership now that
// there is none, and if not, why. The rules, in order:
//   - its server runs (or at least has data) and has the cluster's system ID;
//   - it made no failsafe promise that is still running;
//   - a pending failover request naming another node wins;
//   - in sync and quorum modes it must be in the last Sync record (or be
//     its leader): only those hold every acknowledged commit. With a
//     quorum of k among n standbys, it must see n-k+1 of them (itself
//     included) so that the furthest of those has every commit;
//   - it is within MaximumLagOnFailover of the last leader position;
//   - no reachable healthy candidate has more WAL (ties go to the smaller
//     name, so two equal nodes do not both wait).
func Eligible(in Input) (bool, string) {
	l := in.Local
	switch {
	case !l.Initialized:
		return false, "no data directory"
	case l.SystemID != 0 && in.Snap.SystemID != 0 && l.SystemID != in.Snap.SystemID:
		return false, "data directory belongs to another cluster"
	case in.Now.Before(in.Promised):
		return false, "promised an etcd-less primary not to campaign until " + in.Promised.Format(time.RFC3339Nano)
	}
	if r := in.Snap.Request; r != nil && r.Kind == "failover" && r.To != "" && r.To != in.Self {
		return false, "a failover to " + r.To + " was requested"
	}
	candidates := map[string]bool{}
	if sy := in.Snap.Sync; sy != nil && sy.Quorum > 0 && in.Config.Required() > 0 {
		candidates[sy.Leader] = true
		for _, s := range sy.Standbys {
			candidates[s] = true
		}
		if !candidates[in.Self] {
			return false, fmt.Sprintf("not a synchronous standby (%v): it may lack acknowledged commits", sy.Standbys)
		}
		seen := 1 // itself
		for _, s := range sy.Standbys {
			if p, ok := in.Peers[s]; s != in.Self && ok && p.Reachable && p.Running {
				seen++
			}
		}
		if need := len(sy.Standbys) - sy.Quorum + 1; seen < need {
			return false, fmt.Sprintf("sees %d of the synchronous standbys, needs %d to be sure it has every commit", seen, need)
		}
	}
	if lag := int64(in.LastLeaderLSN) - int64(l.LSN); in.LastLeaderLSN != 0 && lag > in.Config.MaximumLagOnFailover {
		return false, fmt.Sprintf("%d bytes behind the last leader position, over maximum_lag_on_failover %d", lag, in.Config.MaximumLagOnFailover)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Peers)) {
		p := in.Peers[name]
		if name == in.Self || !p.Reachable || !p.Running {
			continue
		}
		if p.Primary {
			return false, name + " still runs as a primary"
		}
		if len(candidates) > 0 && !candidates[name] {
			continue
		}
		if p.LSN > l.LSN || (p.LSN == l.LSN && name < in.Self) {
			return false, fmt.Sprintf("%s has more WAL (%s, here %s)", name, p.LSN, l.LSN)
		}
	}
	return true, ""
}

// SwitchoverTarget picks the replica a switchover hands leadership to:
// want if it is a healthy streaming replica (and synchronous in sync or
// quorum mode), else, when want is "", the healthy replica with the most
// WAL. "" and why when there is none.
func SwitchoverTarget(in Input, want string) (string, string) {
	var best string
	var bestLSN wal.LSN
	syncs := map[string]bool{}
	if in.Snap.Sync != nil {
		for _, s := range in.Snap.Sync.Standbys {
			syncs[s] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.Snap.Members)) {
		m := in.Snap.Members[name]
		ok := name != in.Self && m.Role == cluster.RoleReplica && m.Streaming && m.Following == in.Self
		if ok && in.Config.Required() > 0 && in.Snap.Sync != nil && in.Snap.Sync.Quorum > 0 && !syncs[name] {
			ok = false
		}
		if name == want {
			if !ok {
				return "", want + " is not a healthy streaming (and, in sync modes, synchronous) replica"
			}
			return want, ""
		}
		if ok && want == "" && (best == "" || m.LSN > bestLSN) {
			best, bestLSN = name, m.LSN
		}
	}
	if want != "" {
		return "", "no member named " + want
	}
	if best == "" {
		return "", "no healthy streaming replica"
	}
	return best, ""
}

// SyncPlan is what the leader should name as synchronous.
type SyncPlan struct {
	Standbys []string // the standbys named in synchronous_standby_names
	Quorum   int      // how many must confirm each commit; 0 for async
	// Blocked: strict mode with too few healthy standbys; commits wait
	// (synchronous_standby_names names standbys that are absent).
	Blocked bool
}

// PlanSync picks the synchronous standbys for the leader: the healthy
// streaming replicas (most WAL first), as many as the mode needs. In
// strict mode with too few of them it still names the required number
// (healthy first, then any member) so that commits wait rather than run
// unprotected. healthy maps member names to whether they stream from the
// leader right now. Standbys in current (the ones named now) stay first
// while healthy, so the choice does not flap with every change of position;
// the names are sorted.
func PlanSync(cfg cluster.Config, self string, members map[string]cluster.Member, healthy map[string]bool, current []string) SyncPlan {
	need := cfg.Required()
	if need == 0 {
		return SyncPlan{}
	}
	var good, rest []string
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if name == self {
			continue
		}
		if healthy[name] {
			good = append(good, name)
		} else {
			rest = append(rest, name)
		}
	}
	slices.SortStableFunc(good, func(a, b string) int {
		ca, cb := slices.Contains(current, a), slices.Contains(current, b)
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return cmp.Compare(members[b].LSN, members[a].LSN)
	})
	switch {
	case cfg.Mode == cluster.ModeSync && len(good) > 0:
		return SyncPlan{Standbys: good[:1], Quorum: 1}
	case cfg.Mode == cluster.ModeQuorum && len(good) >= need:
		return SyncPlan{Standbys: sorted(good), Quorum: need}
	case !cfg.Strict:
		if cfg.Mode == cluster.ModeQuorum && len(good) > 0 {
			return SyncPlan{Standbys: sorted(good), Quorum: len(good)}
		}
		return SyncPlan{}
	}
	all := append(good, rest...)
	if cfg.Mode == cluster.ModeSync {
		if len(all) == 0 {
			return SyncPlan{Standbys: nil, Quorum: 1, Blocked: true}
		}
		return SyncPlan{Standbys: all[:1], Quorum: 1, Blocked: true}
	}
	return SyncPlan{Standbys: sorted(all), Quorum: need, Blocked: true}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// StandbyNames renders a SyncPlan as synchronous_standby_names. A blocked
// plan with no standby at all names one that cannot exist.
func (p SyncPlan) StandbyNames(fenceName string) string {
	if p.Quorum == 0 {
		return ""
	}
	if len(p.Standbys) == 0 {
		return fenceName
	}
	quoted := make([]string, len(p.Standbys))
	for i, s := range p.Standbys {
		quoted[i] = `"` + s + `"`
	}
	return fmt.Sprintf("ANY %d (%s)", p.Quorum, strings.Join(quoted, ", "))
}
