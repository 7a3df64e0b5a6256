package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// ensureLease grants the agent's lease if it has none (first step, or the
// old one expired while the agent was stopped or cut off).
func (a *Agent) ensureLease(ctx context.Context, snap cluster.Snapshot) error {
	a.mu.Lock()
	lease, ttl := a.st.lease, time.Duration(a.st.cfg.TTL)
	a.mu.Unlock()
	if lease != 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sent := time.Now()
	if l := snap.Leader; l != nil && l.Name == a.o.Self.Name && snap.LeaderLease != 0 {
		// This node leads under a lease an earlier run of the agent
		// granted: adopt it rather than let the key lapse under a
		// primary that keeps running.
		if granted, err := a.o.Store.LeaseTTL(ctx, snap.LeaderLease); err == nil && a.o.Store.KeepAlive(ctx, snap.LeaderLease) == nil {
			a.mu.Lock()
			a.st.lease, a.st.leaseTTL, a.st.renewedAt = snap.LeaderLease, granted, sent
			a.mu.Unlock()
			a.log.Info("adopted the leader lease of an earlier run")
			return nil
		}
	}
	id, err := a.o.Store.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.st.lease, a.st.leaseTTL, a.st.renewedAt = id, ttl, sent
	a.mu.Unlock()
	return nil
}

// fenceAfterLocked is how long after sending a renewal the leader fences
// unless a later one succeeds: one margin (a loop, at least a second)
// before the lease can expire. The TTL is the shorter of the configured
// one and the one the lease was granted with: a TTL raised at runtime
// applies to the next lease, not to the one etcd already counts down.
func (a *Agent) fenceAfterLocked() time.Duration {
	ttl, loop := time.Duration(a.st.cfg.TTL), time.Duration(a.st.cfg.LoopWait)
	if a.st.leaseTTL > 0 {
		ttl = min(ttl, a.st.leaseTTL)
	}
	return ttl - max(loop, time.Second)
}

// fenceDeadlineLocked is fenceDeadline with a.mu held. It is never later
// than the last heartbeat promised (renewFence): replicas end a silent
// leadership on the strength of that promise.
func (a *Agent) fenceDeadlineLocked() time.Time {
	after := a.fenceAfterLocked()
	if a.st.renewFence > 0 {
		after = min(after, a.st.renewFence)
	}
	last := a.st.renewedAt
	if a.st.failsafeAt.After(last) {
		last = a.st.failsafeAt
	}
	return last.Add(after)
}

// keepLease renews the lease every LoopWait, apart from the main loop so
// that a slow action (a clone, a promotion) never delays it. On a failed
// renewal the leader runs a failsafe round; on a lost lease it fences at
// once.
func (a *Agent) keepLease(ctx context.Context) {
	var wait time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		a.mu.Lock()
		lease, loop := a.st.lease, time.Duration(a.st.cfg.LoopWait)
		a.mu.Unlock()
		start := time.Now()
		if lease != 0 {
			a.renew(ctx, lease, loop)
		}
		wait = max(0, loop-time.Since(start))
	}
}

// renew renews the lease once, within half a loop so that a failed attempt
// leaves time for a failsafe round before the next. A leader then writes
// its heartbeat, and only a renewal with its heartbeat moves the fence
// deadline: a replica that saw the heartbeat knows the leader fences by
// then plus the FenceAfter it published.
func (a *Agent) renew(ctx context.Context, lease int64, loop time.Duration) {
	a.mu.Lock()
	leading, rev, term, fenceAfter := a.st.leading, a.st.leaderRev, a.st.term, a.fenceAfterLocked()
	a.mu.Unlock()
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, loop/2)
	err := a.o.Store.KeepAlive(rctx, lease)
	if err == nil && leading {
		err = a.o.Store.Beat(rctx, rev, lease, cluster.Beat{Term: term, FenceAfter: fenceAfter})
	}
	cancel()
	switch {
	case err == nil:
		a.mu.Lock()
		if leading && a.st.lease == lease && a.st.leading && a.st.leaderRev == rev {
			a.st.renewedAt, a.st.renewFence = sent, fenceAfter
		}
		a.mu.Unlock()
	case errors.Is(err, cluster.ErrNotLeader):
		a.mu.Lock()
		lost := a.st.leading && a.st.leaderRev == rev
		a.mu.Unlock()
		if lost {
			a.log.Warn("leader key gone or replaced; fencing")
			a.fence(ctx, "lost the leader key")
		}
	case errors.Is(err, cluster.ErrLeaseLost):
		a.mu.Lock()
		leading := a.st.leading
		if a.st.lease == lease {
			a.st.lease, a.st.leading = 0, false
		}
		a.mu.Unlock()
		if leading {
			a.log.Warn("leader lease expired; fencing")
			a.fence(ctx, "lease expired")
		}
	case ctx.Err() == nil:
		a.log.Debug("lease renewal failed", "err", err)
		if a.leading() {
			a.failsafe(ctx)
		}
	}
}

func (a *Agent) leading() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.leading
}

// fenceDeadline is when a leader must have fenced: one margin before the
// earliest moment its lease could expire in etcd. The lease was renewed by
// a request sent at renewedAt, so etcd expires it no earlier than renewedAt
// + TTL; a confirmed failsafe round counts as a renewal.
func (a *Agent) fenceDeadline() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fenceDeadlineLocked()
}

// watchFence fences the leader's PostgreSQL when the fence deadline passes.
// It wakes every 50 ms, so a process resumed after SIGSTOP fences within
// that of waking up.
func (a *Agent) watchFence(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.mu.Lock()
		due := a.st.leading && !a.st.fenced
		a.mu.Unlock()
		if due && time.Now().After(a.fenceDeadline()) {
			a.log.Warn("leader lease not renewed in time; fencing")
			a.fence(ctx, "lease not renewed")
		}
	}
}

// fence stops the local PostgreSQL from acknowledging writes, in
// milliseconds and without a restart: synchronous_standby_names names a
// standby that does not exist (so every commit waits) and client sessions
// are terminated (so waiting commits are never acknowledged). The agent
// stops leading; the main loop demotes or, if it wins again, unfences.
func (a *Agent) fence(ctx context.Context, why string) {
	a.confMu.Lock()
	a.mu.Lock()
	a.st.fenced, a.st.leading = true, false
	a.mu.Unlock()
	a.blockCommitsLocked()
	a.confMu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if n, err := a.terminateClients(tctx); err != nil {
		a.log.Warn("fence: terminate client sessions", "err", err)
	} else {
		a.log.Info("fenced", "reason", why, "sessions_terminated", n)
	}
	// Sessions with synchronous_commit off or local do not wait for a
	// standby, and new ones may connect: stop the server (fast: waiting
	// commits are cancelled unacknowledged). It starts again as a
	// replica, or as primary if this node wins again.
	if err := a.o.PG.Stop(ctx, "fast", stopTimeout); err != nil {
		a.log.Error("fence: stop PostgreSQL", "err", err)
	}
}

// blockCommitsLocked makes every commit wait, with confMu held: the fence's
// first step. synchronous_standby_names names a standby that does not
// exist, and synchronous_commit is on for sessions that do not set it.
func (a *Agent) blockCommitsLocked() {
	settings := a.settings(nil)
	settings["synchronous_standby_names"] = fenceName
	settings["synchronous_commit"] = "on"
	if _, err := a.o.PG.WriteConf(settings); err != nil {
		a.log.Error("block commits: write configuration", "err", err)
	}
	if err := a.o.PG.Reload(); err != nil {
		a.log.Debug("block commits: reload", "err", err)
	}
}

// stopLeading runs when the agent stops. PostgreSQL keeps running, so
// that a restarted agent adopts its lease and carries on; but a primary
// whose agent stays away could go on taking writes after another node is
// elected. So a leader blocks commits (the fence's first two steps) until
// an agent leads here again, unless the cluster is paused for maintenance.
// Sessions that set synchronous_commit to local or off are not held by
// this: only the watchdog or stopping PostgreSQL stops them. It reports
// whether it held the node, in which case the watchdog stays armed.
func (a *Agent) stopLeading(ctx context.Context) bool {
	a.mu.Lock()
	leading, paused := a.st.leading, a.st.cfg.Paused
	a.mu.Unlock()
	if !leading {
		return false
	}
	// A pause asked for just before the stop may not have reached a step:
	// read it from etcd, and keep what the agent knew if etcd is away.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	if snap, err := a.o.Store.Read(rctx); err == nil && snap.Config != nil {
		paused = snap.Config.Paused
	}
	cancel()
	if paused {
		return false
	}
	a.confMu.Lock()
	a.blockCommitsLocked()
	a.confMu.Unlock()
	// Commits already waiting would be released as "committed locally"
	// by a cancel: end their sessions instead, unacknowledged.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := a.terminateClients(tctx); err != nil {
		a.log.Warn("stop: terminate client sessions", "err", err)
	}
	a.log.Warn("stopped while leading: commits wait until an agent leads again (pause the cluster to stop an agent without this)")
	return true
}

// failsafeRequest is what a leader cut off from etcd asks each member.
type failsafeRequest struct {
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
}

// failsafe runs one round of the etcd-down rule: the leader asks every
// member directly to confirm that it cannot reach etcd either, and so
// cannot elect another leader; each confirming member promises not to
// campaign for a TTL from its answer. With a majority of the members
// (itself included) confirming, and its synchronous standbys among them,
// the leader counts the round as a lease renewal sent when it started
// asking: every promise runs from a later moment.
func (a *Agent) failsafe(ctx context.Context) {
	sent := time.Now()
	a.mu.Lock()
	req := failsafeRequest{Leader: a.o.Self.Name, Term: a.st.term}
	a.mu.Unlock()
	body, _ := json.Marshal(req)
	var mu sync.Mutex
	confirmed := map[string]bool{a.o.Self.Name: true}
	var wg sync.WaitGroup
	for _, n := range a.o.Nodes {
		if n.Name == a.o.Self.Name {
			continue
		}
		wg.Go(func() {
			if a.askFailsafe(ctx, n, body) {
				mu.Lock()
				confirmed[n.Name] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Every member must confirm (synchronous standbys included): one that
	// can still reach etcd (and does not answer here) could be elected
	// there. A majority is not enough.
	if len(confirmed) != len(a.o.Nodes) {
		a.log.Warn("etcd unreachable and not every member confirms this primary", "confirmed", len(confirmed), "members", len(a.o.Nodes))
		return
	}
	a.mu.Lock()
	a.st.failsafeAt = sent
	a.mu.Unlock()
	a.log.Warn("etcd unreachable; every member confirms this primary, which keeps serving", "confirmed", len(confirmed))
}

func (a *Agent) askFailsafe(ctx context.Context, n Node, body []byte) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.APIURL+"/failsafe", bytes.NewReader(body))
	if err != nil {
		return false
	}
	if a.o.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+a.o.APIToken)
	}
	resp, err := a.o.PeerClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// confirmFailsafe answers a failsafe request: yes only if this agent cannot
// reach etcd itself, does not lead, and follows that leader's term; it then
// promises not to campaign for a TTL.
func (a *Agent) confirmFailsafe(ctx context.Context, req failsafeRequest) error {
	a.mu.Lock()
	leading, term, ttl := a.st.leading, a.st.term, time.Duration(a.st.cfg.TTL)
	a.mu.Unlock()
	if leading {
		return errors.New("this node leads")
	}
	if req.Term < term {
		return fmt.Errorf("term %d is older than %d", req.Term, term)
	}
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := a.o.Store.Read(ctx); err == nil {
		return errors.New("etcd is reachable from here: the leader lease decides")
	}
	a.mu.Lock()
	a.st.promised = time.Now().Add(ttl)
	a.mu.Unlock()
	return nil
}
