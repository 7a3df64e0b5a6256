package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/ha"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// localSQL reads the local server's role and position in one statement.
const localSQL = `SELECT
	pg_is_in_recovery(),
	(SELECT system_identifier FROM pg_control_system())::text,
	CASE WHEN pg_is_in_recovery() THEN
		greatest(coalesce(pg_last_wal_receive_lsn(), '0/0'), coalesce(pg_last_wal_replay_lsn(), '0/0'))
	ELSE pg_current_wal_lsn() END::text,
	CASE WHEN pg_is_in_recovery() THEN
		coalesce((SELECT received_tli FROM pg_stat_wal_receiver WHERE received_tli > 0),
			(SELECT timeline_id FROM pg_control_checkpoint()))
	ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
	coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
	current_setting('primary_conninfo'),
	coalesce(pg_last_wal_replay_lsn(), '0/0')::text,
	coalesce((SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart), '')`

// localView adds what only the agent needs to ha.Local.
type localView struct {
	ha.Local
	ReplayLSN      wal.LSN
	PendingRestart []string
}

// probeLocal connects to the local server and reads its state. A stopped
// server is not an error.
func (a *Agent) probeLocal(ctx context.Context) (localView, error) {
	v := localView{Local: ha.Local{Initialized: a.o.PG.Initialized()}}
	if _, ok := a.o.PG.PID(); !ok {
		return v, nil
	}
	v.Running = true
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := a.localConn(ctx)
	if err != nil {
		return v, fmt.Errorf("connect to local server: %w", err)
	}
	defer conn.Close(context.Background())
	var sysID, lsn, primaryConninfo, replay, pending string
	var tli int64
	if err := conn.QueryRow(ctx, localSQL).Scan(&v.Primary, &sysID, &lsn, &tli, &v.Streaming, &primaryConninfo, &replay, &pending); err != nil {
		return v, fmt.Errorf("probe local server: %w", err)
	}
	v.Primary = !v.Primary // the query reads pg_is_in_recovery()
	v.Reachable = true
	fmt.Sscan(sysID, &v.SystemID)
	v.LSN, _ = wal.ParseLSN(lsn)
	v.ReplayLSN, _ = wal.ParseLSN(replay)
	v.Timeline = wal.TimelineID(tli)
	if !v.Primary {
		v.Following = a.followedNode(primaryConninfo)
	}
	if pending != "" {
		v.PendingRestart = strings.Split(pending, ",")
	}
	return v, nil
}

// observeLocal is probeLocal for the main loop: an error is logged and
// leaves the server counted as running but not reachable.
func (a *Agent) observeLocal(ctx context.Context) ha.Local {
	v, err := a.probeLocal(ctx)
	if err != nil {
		a.log.Debug("local probe", "err", err)
	}
	a.mu.Lock()
	a.st.view, a.st.localAt = v, time.Now()
	a.st.stepAt = a.st.localAt
	a.st.lastLSN = max(a.st.lastLSN, v.LSN)
	if v.Primary || v.Streaming {
		a.st.replicaStarts = 0
	}
	switch {
	case !v.Running || v.Primary || v.Streaming:
		a.st.notStreamingSince = time.Time{}
	case a.st.notStreamingSince.IsZero():
		a.st.notStreamingSince = time.Now()
	}
	a.mu.Unlock()
	return v.Local
}

// followedNode returns the name of the node primary_conninfo points at.
func (a *Agent) followedNode(conninfo string) string {
	for _, n := range a.o.Nodes {
		if strings.Contains(conninfo, fmt.Sprintf("host=%s port=%d ", n.Host, n.Port)) {
			return n.Name
		}
	}
	return ""
}

// peers asks every other member's agent for its position, in parallel.
func (a *Agent) peers(ctx context.Context) map[string]ha.Peer {
	out := map[string]ha.Peer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range a.o.Nodes {
		if n.Name == a.o.Self.Name {
			continue
		}
		wg.Go(func() {
			p := a.askPeer(ctx, n)
			mu.Lock()
			out[n.Name] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (a *Agent) askPeer(ctx context.Context, n Node) ha.Peer {
	ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL+"/status", nil)
	if err != nil {
		return ha.Peer{}
	}
	resp, err := a.o.PeerClient.Do(req)
	if err != nil {
		return ha.Peer{}
	}
	defer resp.Body.Close()
	var m cluster.Member
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return ha.Peer{}
	}
	return ha.Peer{Reachable: true, Running: m.Role != cluster.RoleNone, Primary: m.Role == cluster.RolePrimary, Timeline: m.Timeline, LSN: m.LSN}
}

// diverged says whether the local server has WAL past the point where the
// leader's timeline forked off the local one, so that it must be rewound
// before it can follow. A stopped server that last ran as a primary counts
// as diverged when the leader is on a later timeline: pg_rewind decides
// whether anything needs rewriting.
func (a *Agent) diverged(ctx context.Context, snap cluster.Snapshot, local ha.Local) bool {
	lm, ok := snap.Members[snap.Leader.Name]
	if !ok || lm.Role != cluster.RolePrimary {
		return false
	}
	// past says whether WAL up to end on timeline tli goes beyond where
	// the leader's history leaves tli.
	past := func(end wal.LSN, tli wal.TimelineID) bool {
		if end == 0 || lm.Timeline <= tli {
			return false
		}
		fork, err := a.forkPoint(ctx, snap.Leader.Name, lm.Timeline, tli)
		if err != nil {
			a.log.Debug("read leader's timeline history", "err", err)
			return false
		}
		return end > fork
	}
	if !local.Running {
		c, err := a.o.PG.Controldata(ctx)
		if err != nil {
			return false
		}
		if c.SystemID != lm.SystemID {
			// Not a copy of this cluster at all: a misconfiguration a
			// human must look at, never a reason to wipe it.
			a.log.Error("data directory belongs to another cluster; not following", "system_id", c.SystemID, "cluster_system_id", lm.SystemID)
			return false
		}
		if c.State == "in production" || c.State == "shut down" {
			return lm.Timeline > c.Timeline // a former primary: pg_rewind decides
		}
		// Each position on its own timeline: a replica stopped after a
		// pg_rewind, or after replaying across a promotion, has its last
		// checkpoint on the old timeline and its minimum recovery point
		// on the new one, which is no divergence.
		return past(c.Checkpoint, c.Timeline) || past(c.MinRecovery, c.MinRecoveryTimeline)
	}
	if local.Primary || local.Streaming {
		return false
	}
	return past(local.LSN, local.Timeline)
}

// forkPoint reads the leader's history for its timeline and returns where
// timeline tli ends in it.
func (a *Agent) forkPoint(ctx context.Context, leader string, leaderTLI, tli wal.TimelineID) (wal.LSN, error) {
	n, ok := a.node(leader)
	if !ok {
		return 0, fmt.Errorf("no node %s", leader)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, a.conn(n, "postgres")+" replication=true")
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	res, err := pglogrepl.TimelineHistory(ctx, conn, int32(leaderTLI))
	if err != nil {
		return 0, err
	}
	entries, err := wal.ParseHistory(string(res.Content))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if e.TLI == tli {
			return e.SwitchLSN, nil
		}
	}
	return 0, errors.New("timeline not in the leader's history")
}

func (a *Agent) node(name string) (Node, bool) {
	for _, n := range a.o.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// member is what the agent publishes about itself.
func (a *Agent) member() cluster.Member {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.st.view
	m := cluster.Member{
		Name: a.o.Self.Name, Role: cluster.RoleNone, State: "stopped", Timeline: v.Timeline, LSN: v.LSN,
		ReplayLSN: v.ReplayLSN, Streaming: v.Streaming, Following: v.Following, Term: a.st.term,
		SystemID: v.SystemID, APIURL: a.o.Self.APIURL, Conn: a.conn(a.o.Self, "postgres"),
		Addr:           net.JoinHostPort(a.o.Self.Host, strconv.Itoa(a.o.Self.Port)),
		PendingRestart: v.PendingRestart, Error: a.st.lastErr, Updated: time.Now(), RestartGeneration: a.st.restartGen,
	}
	switch {
	case !v.Initialized:
		m.State = "uninitialized"
	case v.Running && !v.Reachable:
		m.State = "unreachable"
	case v.Running && a.st.fenced:
		m.Role, m.State = cluster.RolePrimary, "fenced"
	case v.Running && v.Primary:
		m.Role, m.State = cluster.RolePrimary, "running"
	case v.Running && v.Streaming:
		m.Role, m.State = cluster.RoleReplica, "streaming"
	case v.Running:
		m.Role, m.State = cluster.RoleReplica, "running"
	}
	if a.st.busy != "" {
		m.State = a.st.busy
	}
	return m
}

func (a *Agent) publish(ctx context.Context) {
	a.mu.Lock()
	lease := a.st.lease
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := a.o.Store.PutMember(ctx, a.member(), lease); err != nil {
		a.log.Debug("publish", "err", err)
	}
}
