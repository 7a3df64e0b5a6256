package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/ha"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// pendingSync is a change of synchronous standbys in progress: the new
// standbys are named to PostgreSQL since lsn, and the Sync record may be
// narrowed to them once enough of them have flushed past lsn.
type pendingSync struct {
	want cluster.Sync
	lsn  wal.LSN
}

// standbyState is a replica as the primary's pg_stat_replication shows it.
type standbyState struct {
	streaming bool
	flush     wal.LSN
}

func standbys(ctx context.Context, conn *pgx.Conn) (map[string]standbyState, wal.LSN, error) {
	rows, err := conn.Query(ctx, `SELECT application_name, state = 'streaming', coalesce(flush_lsn, '0/0')::text FROM pg_stat_replication`)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]standbyState{}
	for rows.Next() {
		var name, flush string
		var st standbyState
		if err := rows.Scan(&name, &st.streaming, &flush); err != nil {
			return nil, 0, err
		}
		st.flush, _ = wal.ParseLSN(flush)
		if prev, ok := out[name]; !ok || st.flush > prev.flush {
			out[name] = st
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	lsn, err := currentLSN(ctx, conn)
	if err != nil {
		return nil, 0, err
	}
	return out, lsn, nil
}

// writeLeaderConf writes the primary's configuration. Before a promotion
// or restart (initial), synchronous_standby_names is set from the replicas
// that were streaming, in strict mode only; the Sync record then names no
// standby, so nobody else may be promoted until one has caught up.
func (a *Agent) writeLeaderConf(ctx context.Context, in ha.Input, initial bool) error {
	s := a.settings(nil)
	s["synchronous_standby_names"] = ""
	cfg := in.Config
	if initial && cfg.Required() > 0 {
		healthy := map[string]bool{}
		for name, m := range in.Snap.Members {
			healthy[name] = m.Role == cluster.RoleReplica && m.Streaming
		}
		plan := ha.PlanSync(cfg, a.o.Self.Name, in.Snap.Members, healthy, nil)
		if cfg.Strict {
			s["synchronous_standby_names"] = plan.StandbyNames(fenceName)
		}
		a.mu.Lock()
		term := a.st.term
		a.st.ssn = s["synchronous_standby_names"]
		a.mu.Unlock()
		rec := cluster.Sync{Term: term, Leader: a.o.Self.Name, Standbys: []string{}, Quorum: cfg.Required()}
		if err := a.putSync(ctx, rec); err != nil {
			return err
		}
		a.mu.Lock()
		a.st.syncPending = &pendingSync{want: cluster.Sync{Term: term, Leader: a.o.Self.Name, Standbys: plan.Standbys, Quorum: plan.Quorum}}
		a.mu.Unlock()
	}
	return a.applyLeaderConf(s)
}

func (a *Agent) putSync(ctx context.Context, s cluster.Sync) error {
	a.mu.Lock()
	rev := a.st.leaderRev
	a.mu.Unlock()
	if s.Standbys == nil {
		s.Standbys = []string{}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return a.o.Store.PutSync(ctx, rev, s)
}

// manageLeader keeps the leader's server in step with the cluster: its
// configuration (unfencing it if it was fenced), replication slots for the
// other members, and synchronous_standby_names with the Sync record.
func (a *Agent) manageLeader(ctx context.Context, in ha.Input) error {
	a.mu.Lock()
	ssn := a.st.ssn
	if a.st.restarts > 0 && time.Since(a.st.restartedAt) > time.Duration(a.st.cfg.TTL) {
		a.st.restarts = 0 // it ran a TTL since: the next crash gets a restart again
	}
	a.mu.Unlock()
	s := a.settings(nil)
	s["synchronous_standby_names"] = ssn
	if err := a.applyLeaderConf(s); err != nil {
		return err
	}
	// One connection per loop for the slots and the standbys' state.
	return a.withLocal(ctx, 3*time.Second, func(ctx context.Context, conn *pgx.Conn) error {
		if err := a.createSlots(ctx, conn); err != nil {
			a.log.Warn("replication slots", "err", err)
		}
		return a.manageSync(ctx, in, conn)
	})
}

func (a *Agent) manageSync(ctx context.Context, in ha.Input, conn *pgx.Conn) error {
	cfg := in.Config
	states, lsn, err := standbys(ctx, conn)
	if err != nil {
		return err
	}
	healthy := map[string]bool{}
	for name := range in.Snap.Members {
		healthy[name] = states[name].streaming
	}
	var current []string
	if in.Snap.Sync != nil {
		current = in.Snap.Sync.Standbys
	}
	plan := ha.PlanSync(cfg, a.o.Self.Name, in.Snap.Members, healthy, current)
	names := plan.StandbyNames(fenceName)
	a.mu.Lock()
	term, cur, pending := a.st.term, a.st.ssn, a.st.syncPending
	a.mu.Unlock()
	want := cluster.Sync{Term: term, Leader: a.o.Self.Name, Standbys: plan.Standbys, Quorum: plan.Quorum}
	if names != cur {
		// Widen the record first: it must cover both the standbys that
		// confirmed past commits and those that will confirm new ones.
		// A record naming no standby says only the leader holds every
		// acknowledged commit (just promoted): it stays so until the new
		// standbys have caught up, below.
		rec := in.Snap.Sync
		if rec != nil && rec.Quorum > 0 && plan.Quorum > 0 && len(rec.Standbys) > 0 {
			wide := cluster.Sync{Term: term, Leader: a.o.Self.Name, Quorum: min(rec.Quorum, plan.Quorum),
				Standbys: union(rec.Standbys, plan.Standbys)}
			if err := a.putSync(ctx, wide); err != nil {
				return err
			}
		}
		s := a.settings(nil)
		s["synchronous_standby_names"] = names
		if err := a.applyLeaderConf(s); err != nil {
			return err
		}
		if err := waitSetting(ctx, conn, "synchronous_standby_names", names); err != nil {
			return err
		}
		a.log.Info("synchronous standbys", "names", names)
		// Commits acknowledged until now may be on the old standbys only:
		// the record narrows once the new ones have flushed past here.
		pending = &pendingSync{want: want}
		a.mu.Lock()
		a.st.ssn, a.st.syncPending = names, pending
		a.mu.Unlock()
	}
	if pending == nil {
		if rec := in.Snap.Sync; rec == nil || rec.Term != term || rec.Quorum != want.Quorum || !slices.Equal(rec.Standbys, nonNil(want.Standbys)) {
			pending = &pendingSync{want: want, lsn: lsn}
		} else {
			return nil
		}
	}
	if pending.lsn == 0 {
		// The position from which the new standbys confirm every commit:
		// read now that the setting is in force (or the server runs).
		cur, err := currentLSN(ctx, conn)
		if err != nil {
			return err
		}
		pending.lsn = cur
		a.mu.Lock()
		a.st.syncPending = pending
		a.mu.Unlock()
		return nil
	}
	caught := 0
	for _, s := range pending.want.Standbys {
		if st, ok := states[s]; ok && st.flush >= pending.lsn {
			caught++
		}
	}
	if pending.want.Quorum > 0 && caught < pending.want.Quorum {
		a.mu.Lock()
		a.st.syncPending = pending
		a.mu.Unlock()
		return nil // not yet: the narrowed record would overstate them
	}
	if err := a.putSync(ctx, pending.want); err != nil {
		return err
	}
	a.mu.Lock()
	a.st.syncPending = nil
	a.mu.Unlock()
	return nil
}

func currentLSN(ctx context.Context, conn *pgx.Conn) (wal.LSN, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return 0, err
	}
	return wal.ParseLSN(s)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// createSlots creates a physical replication slot for every other member
// that lacks one. It works on a replica too, so a replica about to be
// promoted has its slots ready.
func (a *Agent) createSlots(ctx context.Context, conn *pgx.Conn) error {
	for _, n := range a.o.Nodes {
		if n.Name == a.o.Self.Name {
			continue
		}
		_, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)
			WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, slotName(n.Name))
		if err != nil {
			return fmt.Errorf("slot for %s: %w", n.Name, err)
		}
	}
	return nil
}

// switchover hands leadership to target with no acknowledged commit lost:
// stop the local server cleanly (its WAL senders send everything up to the
// shutdown checkpoint), wait until target has flushed that far, then move
// the leader key to target in one transaction. If target does not catch
// up, the local server starts again as primary and the request is dropped.
func (a *Agent) switchover(ctx context.Context, in ha.Input, target string) error {
	a.log.Info("switchover: stopping the primary", "to", target)
	if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
		return err
	}
	err := a.handover(ctx, in, target)
	if err == nil {
		return nil
	}
	// The handover may have committed even if its answer was lost: serve
	// again only if the leader key is still ours. Drop the request, so it
	// is not retried in a loop.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	a.o.Store.DeleteRequest(rctx)
	snap, rerr := a.o.Store.Read(rctx)
	a.mu.Lock()
	ours := rerr == nil && snap.Leader != nil && snap.Leader.Name == a.o.Self.Name && snap.LeaderRev == a.st.leaderRev
	if !ours {
		a.st.leading = false
	}
	a.mu.Unlock()
	if !ours {
		a.log.Warn("switchover: leadership is no longer ours; not restarting as primary", "to", target, "err", err)
		return err
	}
	a.log.Warn("switchover abandoned; restarting as primary", "to", target, "err", err)
	return errors.Join(err, a.o.PG.Start(ctx, startTimeout))
}

func (a *Agent) handover(ctx context.Context, in ha.Input, target string) error {
	n, _ := a.node(target)
	c, err := a.o.PG.Controldata(ctx)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		p := a.askPeer(ctx, n)
		if p.Reachable && p.LSN >= c.Checkpoint {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not receive all WAL (needs %s, has %s)", target, c.Checkpoint, p.LSN)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.mu.Lock()
	rev := a.st.leaderRev
	a.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l, err := a.o.Store.Handover(hctx, rev, in.Snap, target, time.Now())
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.st.leading, a.st.term = false, l.Term
	a.mu.Unlock()
	a.log.Info("switchover: leadership handed over", "to", target, "term", l.Term, "lsn", c.Checkpoint)
	return nil
}
