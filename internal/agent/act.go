package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/ha"
)

// Timeouts of the PostgreSQL tools the agent runs.
const (
	startTimeout   = 60 * time.Second
	stopTimeout    = 60 * time.Second
	promoteTimeout = 60 * time.Second
)

func (a *Agent) execute(ctx context.Context, act ha.Action, in ha.Input) error {
	switch act.Kind {
	case ha.Wait:
		return nil
	case ha.Campaign:
		return a.campaign(ctx, in)
	case ha.Bootstrap:
		return a.bootstrap(ctx)
	case ha.StartPrimary:
		return a.startPrimary(ctx, in)
	case ha.Resign:
		return a.resign(ctx)
	case ha.EndLeadership:
		return a.endLeadership(ctx, in, act)
	case ha.ManageLeader:
		if err := a.rollingRestart(ctx, in, true); err != nil {
			return err
		}
		return a.manageLeader(ctx, in)
	case ha.Switchover:
		return a.switchover(ctx, in, act.Target)
	case ha.Clone, ha.Reinit:
		return a.clone(ctx, act.Target, in.Snap.SystemID, act.Kind == ha.Reinit)
	case ha.StartReplica:
		return a.startReplica(ctx, act.Target)
	case ha.ManageReplica:
		if err := a.rollingRestart(ctx, in, false); err != nil {
			return err
		}
		return a.follow(ctx, act.Target)
	case ha.Follow:
		return a.follow(ctx, act.Target)
	case ha.Demote:
		return a.demote(ctx, act.Target)
	case ha.Rewind:
		return a.rewind(ctx, act.Target)
	}
	return fmt.Errorf("unknown action %s", act.Kind)
}

func (a *Agent) leaderNode(name string) (*Node, error) {
	n, ok := a.node(name)
	if !ok {
		return nil, fmt.Errorf("leader %s is not in the plan's nodes", name)
	}
	return &n, nil
}

// campaign tries to take the leader key and, if it wins, starts leading at
// once (promotes a replica, or bootstraps a new cluster).
func (a *Agent) campaign(ctx context.Context, in ha.Input) error {
	if err := a.watchdogReady(); err != nil {
		return fmt.Errorf("not campaigning: %w", err)
	}
	a.mu.Lock()
	lease, detected, fenceAfter := a.st.lease, a.st.detected, a.fenceAfterLocked()
	a.mu.Unlock()
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	l, rev, won, err := a.o.Store.Campaign(cctx, in.Snap, a.o.Self.Name, lease, sent, fenceAfter)
	cancel()
	if err != nil || !won {
		return err
	}
	a.mu.Lock()
	a.st.leading, a.st.leaderRev, a.st.term = true, rev, l.Term
	a.st.renewedAt, a.st.renewFence = sent, fenceAfter
	a.st.restarts, a.st.fenced = 0, false
	a.mu.Unlock()
	a.log.Info("won the election", "term", l.Term)
	if !in.Local.Initialized {
		return a.bootstrap(ctx)
	}
	if in.Snap.SystemID == 0 {
		if _, err := a.o.Store.Initialize(ctx, in.Local.SystemID); err != nil {
			return err
		}
	}
	if in.Local.Running && in.Local.Primary {
		return a.manageLeader(ctx, in) // unfences a primary that kept its data
	}
	kind := "failover"
	if r := in.Snap.Request; r != nil {
		kind = "manual-failover"
		// Served (or overtaken by this election): a request left behind
		// would block every later election but for its target.
		if err := a.o.Store.DeleteRequest(ctx); err != nil {
			a.log.Warn("delete the failover request", "err", err)
		}
	}
	return a.promote(ctx, in, cluster.Event{Kind: kind, Detected: detected, Old: a.lastLeader(in), OldLSN: in.LastLeaderLSN,
		Reason: "the leader's lease expired, it fell silent or it resigned"})
}

// endLeadership deletes the key of a leader whose heartbeat stopped long
// enough ago that it has fenced itself, unless it wrote another meanwhile.
// The election follows in the next step, woken by the deletion.
func (a *Agent) endLeadership(ctx context.Context, in ha.Input, act ha.Action) error {
	detected := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ended, err := a.o.Store.EndSilentLeadership(ctx, in.Snap.LeaderRev, in.Snap.BeatRev)
	if err != nil || !ended {
		return err
	}
	a.mu.Lock()
	a.st.detected = detected
	a.mu.Unlock()
	a.log.Warn("ended a silent leadership", "leader", act.Target, "term", in.Snap.Leader.Term, "reason", act.Reason)
	return nil
}

// lastLeader guesses the previous leader: the member that last published
// itself as primary.
func (a *Agent) lastLeader(in ha.Input) string {
	for name, m := range in.Snap.Members {
		if name != a.o.Self.Name && m.Role == cluster.RolePrimary {
			return name
		}
	}
	if in.Snap.Sync != nil {
		return in.Snap.Sync.Leader
	}
	return ""
}

// bootstrap creates the cluster's data: initdb, start as primary, record
// the system identifier.
func (a *Agent) bootstrap(ctx context.Context) error {
	a.log.Info("initializing a new cluster")
	if err := a.o.PG.Initdb(ctx); err != nil {
		return err
	}
	s := a.settings(nil)
	s["synchronous_standby_names"] = ""
	if err := a.applyLeaderConf(s); err != nil {
		return err
	}
	if err := a.o.PG.Start(ctx, startTimeout); err != nil {
		return err
	}
	c, err := a.o.PG.Controldata(ctx)
	if err != nil {
		return err
	}
	id, err := a.o.Store.Initialize(ctx, c.SystemID)
	if err != nil {
		return err
	}
	if id != c.SystemID {
		return errors.Join(fmt.Errorf("etcd records system %d for this cluster, but this node initialized %d; refusing to lead", id, c.SystemID),
			a.o.PG.Stop(ctx, "fast", stopTimeout))
	}
	a.mu.Lock()
	term := a.st.term
	a.mu.Unlock()
	return a.o.Store.AddEvent(ctx, cluster.Event{Term: term, Kind: "bootstrap", New: a.o.Self.Name, Promoted: time.Now(), Timeline: 1})
}

// startPrimary starts the local server as primary (the leader's server
// crashed) or promotes it (this node was handed leadership).
func (a *Agent) startPrimary(ctx context.Context, in ha.Input) error {
	if in.Local.Running && !in.Local.Primary {
		return a.promote(ctx, in, cluster.Event{Kind: "switchover", Old: a.lastLeader(in), OldLSN: in.LastLeaderLSN,
			Detected: time.Now(), Reason: "leadership handed over"})
	}
	a.mu.Lock()
	a.st.restarts++
	a.st.restartedAt = time.Now()
	a.mu.Unlock()
	c, err := a.o.PG.Controldata(ctx)
	if err != nil {
		return err
	}
	if c.State == "in archive recovery" || c.State == "shut down in recovery" {
		// A replica that won the election and went down before it was
		// promoted: started without standby.signal it would leave
		// recovery on the old timeline. Start it as a standby; the next
		// step promotes it onto a new one.
		a.log.Warn("leader's server is a stopped replica; starting it to promote it")
		return a.startReplicaOf(ctx, nil)
	}
	a.log.Warn("leader's PostgreSQL is down; restarting it in place")
	if err := a.o.PG.SetStandby(false); err != nil {
		return err
	}
	if err := a.writeLeaderConf(ctx, in, true); err != nil {
		return err
	}
	return a.o.PG.Start(ctx, startTimeout)
}

// promote ends recovery of the local replica, which now leads. In strict
// sync modes the synchronous standbys are named before the promotion, so
// the new primary never acknowledges a commit no standby has.
func (a *Agent) promote(ctx context.Context, in ha.Input, ev cluster.Event) error {
	if err := a.withLocal(ctx, time.Second, a.createSlots); err != nil {
		a.log.Warn("create replication slots before promotion", "err", err)
	}
	if err := a.writeLeaderConf(ctx, in, true); err != nil {
		return err
	}
	// PostgreSQL removes standby.signal itself when it promotes, and
	// fails the promotion if the file is already gone.
	if err := a.o.PG.Promote(ctx, promoteTimeout); err != nil {
		return err
	}
	v, err := a.probeLocal(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	ev.Term, ev.New, ev.Promoted, ev.Timeline, ev.NewLSN = a.st.term, a.o.Self.Name, time.Now(), v.Timeline, v.LSN
	a.mu.Unlock()
	if !ev.Detected.IsZero() {
		ev.Downtime = cluster.Duration(ev.Promoted.Sub(ev.Detected))
	}
	a.log.Info("promoted", "timeline", v.Timeline, "lsn", v.LSN, "term", ev.Term)
	if err := a.o.Store.AddEvent(ctx, ev); err != nil {
		a.log.Warn("record failover", "err", err)
	}
	return nil
}

// resign gives up the leader key at once, so a replica can take over
// without waiting for the lease to expire.
func (a *Agent) resign(ctx context.Context) error {
	a.mu.Lock()
	rev := a.st.leaderRev
	a.st.leading = false
	a.mu.Unlock()
	a.log.Warn("resigning leadership")
	return a.o.Store.Resign(ctx, rev)
}

// clone copies the leader into an empty (or, with wipe, emptied) data
// directory and starts it as a replica.
func (a *Agent) clone(ctx context.Context, leader string, systemID uint64, wipe bool) error {
	n, err := a.leaderNode(leader)
	if err != nil {
		return err
	}
	a.setBusy("cloning")
	defer a.setBusy("")
	if wipe {
		if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
			return err
		}
		if err := a.o.PG.Wipe(); err != nil {
			return err
		}
	}
	if err := a.seedOrClone(ctx, *n, systemID); err != nil {
		return err
	}
	if wipe {
		if err := a.o.Store.SetReinit(ctx, a.o.Self.Name, false); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.st.notStreamingSince, a.st.lastLSN, a.st.replicaStarts = time.Time{}, 0, 0
	a.mu.Unlock()
	return a.startReplica(ctx, leader)
}

// seedOrClone fills the empty data directory: from the repository's
// newest backup of the cluster when there is one (the leader is not
// loaded; the replica catches up from the archive, then streams), else
// with pg_basebackup from the leader.
func (a *Agent) seedOrClone(ctx context.Context, leader Node, systemID uint64) error {
	a.mu.Lock()
	// A seeded replica that had to be cloned again within minutes could
	// not catch up from the archive: seeding again would loop.
	seed := a.o.Seed != nil && systemID != 0 && time.Since(a.st.seededAt) > 10*time.Minute
	a.mu.Unlock()
	if seed {
		id, err := a.o.Seed(ctx, a.o.PG.DataDir, systemID)
		if err == nil {
			a.log.Info("seeded from the repository", "backup", id)
			a.mu.Lock()
			a.st.seededAt = time.Now()
			a.mu.Unlock()
			return nil
		}
		a.log.Info("not seeding from the repository; cloning the leader", "leader", leader.Name, "reason", err)
		if err := a.o.PG.Wipe(); err != nil {
			return err
		}
	} else {
		a.log.Info("cloning the leader", "leader", leader.Name)
	}
	return a.o.PG.Clone(ctx, a.libpqConn(leader))
}

func (a *Agent) setBusy(s string) {
	a.mu.Lock()
	a.st.busy = s
	a.mu.Unlock()
}

// startReplica starts the stopped local server as a replica of leader.
func (a *Agent) startReplica(ctx context.Context, leader string) error {
	n, err := a.leaderNode(leader)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.st.replicaStarts++
	starts := a.st.replicaStarts
	a.mu.Unlock()
	a.log.Info("starting as a replica", "leader", leader, "start", starts)
	return a.startReplicaOf(ctx, n)
}

// startReplicaOf starts the local server in recovery, streaming from n
// (nil: from nobody).
func (a *Agent) startReplicaOf(ctx context.Context, n *Node) error {
	if err := a.o.PG.SetStandby(true); err != nil {
		return err
	}
	if err := a.applyConf(a.settings(n)); err != nil {
		return err
	}
	return a.o.PG.Start(ctx, startTimeout)
}

// follow points a running replica at leader (a reload: primary_conninfo is
// reloadable since PostgreSQL 13) and keeps its configuration current.
func (a *Agent) follow(ctx context.Context, leader string) error {
	n, err := a.leaderNode(leader)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.st.fenced = false
	a.mu.Unlock()
	return a.applyConf(a.settings(n))
}

// demote turns a primary that does not lead into a replica of leader:
// fence first (milliseconds), stop, rewind, start following.
func (a *Agent) demote(ctx context.Context, leader string) error {
	a.fence(ctx, "another node leads")
	a.log.Info("demoting", "leader", leader)
	if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
		return err
	}
	return a.rewind(ctx, leader)
}

// rewind stops the local server, rewinds it from leader with pg_rewind and
// starts it as a replica. What pg_rewind discarded is recorded in the
// history. If pg_rewind fails, the node is cloned afresh.
func (a *Agent) rewind(ctx context.Context, leader string) error {
	n, err := a.leaderNode(leader)
	if err != nil {
		return err
	}
	a.setBusy("rewinding")
	defer a.setBusy("")
	a.mu.Lock()
	lastLSN := a.st.lastLSN
	term := a.st.term
	a.mu.Unlock()
	if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
		return err
	}
	// pg_rewind may run the server in single-user mode to finish crash
	// recovery, which refuses standby mode; the primary's settings
	// (synchronous standbys) must not be in force then either.
	if err := a.o.PG.SetStandby(false); err != nil {
		return err
	}
	if err := a.applyConf(a.settings(n)); err != nil {
		return err
	}
	if err := a.checkpointSource(ctx, *n); err != nil {
		return err
	}
	r, err := a.o.PG.RewindFrom(ctx, a.libpqConn(*n))
	a.mu.Lock()
	a.st.lastLSN = 0 // a new life on the leader's timeline
	a.mu.Unlock()
	rec := &cluster.Rewound{Node: a.o.Self.Name, At: time.Now()}
	if err != nil && strings.Contains(err.Error(), "connection to server") {
		return fmt.Errorf("pg_rewind could not reach %s; retrying: %w", leader, err)
	}
	if err != nil {
		a.log.Warn("pg_rewind failed; cloning afresh", "err", err)
		if werr := a.o.PG.Wipe(); werr != nil {
			return errors.Join(err, werr)
		}
		rec.Recloned = true
		a.recordRewind(ctx, term, rec)
		a.mu.Lock()
		systemID := a.st.snap.SystemID
		a.mu.Unlock()
		return a.clone(ctx, leader, systemID, false)
	}
	if r.Needed {
		rec.Timeline, rec.From, rec.To = r.Timeline, r.Diverged, max(r.OldEnd, lastLSN)
		a.log.Warn("rewound: WAL only this node had was discarded", "timeline", r.Timeline, "from", rec.From, "to", rec.To)
		a.recordRewind(ctx, term, rec)
	}
	return a.startReplica(ctx, leader)
}

// checkpointSource makes sure the leader's control file shows its current
// timeline before pg_rewind reads it: until the first checkpoint after a
// promotion it still shows the old one, and pg_rewind would then report
// "no rewind required" for a node that diverged.
func (a *Agent) checkpointSource(ctx context.Context, n Node) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := connect(ctx, a.conn(n, "postgres"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	var stale bool
	err = conn.QueryRow(ctx, `SELECT (SELECT timeline_id FROM pg_control_checkpoint()) <>
		('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int`).Scan(&stale)
	if err != nil || !stale {
		return err
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// rollingRestart restarts the local server when a rolling restart was
// requested (bulwark cluster restart): replicas one at a time in name
// order, the leader last and in place, so settings that need a restart
// take effect with one short interruption of writes.
func (a *Agent) rollingRestart(ctx context.Context, in ha.Input, leader bool) error {
	a.mu.Lock()
	done := a.st.restartGen
	a.mu.Unlock()
	gen := in.Config.RestartGeneration
	if gen <= done || in.Config.Paused {
		return nil
	}
	for name, m := range in.Snap.Members {
		if name == a.o.Self.Name || m.Role != cluster.RoleReplica || m.RestartGeneration >= gen {
			continue
		}
		if leader || name < a.o.Self.Name {
			return nil // its turn first
		}
	}
	a.log.Info("rolling restart", "generation", gen)
	if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
		return err
	}
	if err := a.o.PG.Start(ctx, startTimeout); err != nil {
		return err
	}
	a.mu.Lock()
	a.st.restartGen = gen
	a.mu.Unlock()
	return nil
}

func (a *Agent) recordRewind(ctx context.Context, term uint64, r *cluster.Rewound) {
	ev, ok, err := a.o.Store.Event(ctx, term)
	if err != nil || !ok {
		ev = cluster.Event{Term: term, Kind: "rejoin"}
	}
	// A crashed primary's end of WAL is not in its control file; the
	// position it last published, which the new leader recorded, is a
	// better bound.
	if ev.Old == r.Node && ev.OldLSN > r.To {
		r.To = ev.OldLSN
	}
	ev.Rewound = r
	if err := a.o.Store.AddEvent(ctx, ev); err != nil {
		a.log.Warn("record rewind", "err", err)
	}
}
