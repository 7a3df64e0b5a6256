// Package agent runs beside one PostgreSQL node: it observes the local
// server and the cluster state in etcd, asks package ha what to do, and does
// it (start, promote, clone, rewind, fence, name synchronous standbys). It
// also serves the node's REST API (health checks compatible with Patroni's,
// cluster state, metrics).
//
// The leader's safety rests on three timers, all in this package: the lease
// keeper renews the leader lease every LoopWait; the fence watchdog fences
// PostgreSQL (commits blocked, client sessions terminated) once the lease
// may be about to expire, before any other node can win an election; and
// the failsafe lets a primary that lost etcd keep serving while a majority
// of members confirm, directly, that none of them can elect another leader.
package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/ha"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Node is a member of the cluster as the plan describes it.
type Node struct {
	Name   string
	Host   string
	Port   int
	APIURL string // http(s)://host:port of its agent
}

// Options configure an Agent.
type Options struct {
	Self   Node
	Nodes  []Node // every member, Self included
	PG     pg.Instance
	Store  *cluster.Store
	Config cluster.Config // the configuration stored if etcd has none yet
	// ConnOptions are libpq settings added to every connection to a node's
	// PostgreSQL (user, sslmode, passfile, ...).
	ConnOptions string
	APIListen   string      // host:port for the REST API
	APITLS      *tls.Config // nil: plain HTTP
	APIToken    string      // bearer token for mutating endpoints; "" means client certificates only
	PeerClient  *http.Client
	// Seed, when set, fills an empty data directory from a backup of the
	// cluster (system identifier systemID) instead of cloning the leader,
	// so the primary is not loaded, and returns the backup's ID. Any
	// error falls back to pg_basebackup.
	Seed func(ctx context.Context, dataDir string, systemID uint64) (string, error)
	// RestoreCommand is the replicas' restore_command ("" for none): WAL
	// the leader no longer has comes from the archive.
	RestoreCommand string
	// ArchiveCommand is every node's archive_command ("" leaves WAL
	// archiving alone): archive_mode is then on, so the primary archives.
	ArchiveCommand string
	ArchiveTimeout time.Duration // archive_timeout with ArchiveCommand; 0 for PostgreSQL's default
	// Watchdog is the Linux watchdog device armed while this node leads
	// (docs/ha.md); WatchdogMode "" or WatchdogOff leaves it alone.
	Watchdog, WatchdogMode string
	// InjectFault, when set, enables POST /drill/fault: it starts the
	// process that hangs or kills this node (fault.go), which waits for
	// act: the agent calls it once its answer is sent.
	InjectFault func(Fault) (act func(), err error)
	Logger      *slog.Logger
}

// fenceName is a synchronous standby name no standby has: naming it makes
// every commit wait.
const fenceName = `"bulwark_fenced"`

// Agent is one node's agent. Build it with New and run it with Run.
type Agent struct {
	o   Options
	log *slog.Logger
	api *http.Server

	// confMu orders writes of bulwark.conf: the fence's against a step's.
	// Taken before mu, never while holding it.
	confMu sync.Mutex
	mu     sync.Mutex // guards st, read by the API and timers
	st     state
	wd     *watchdog // nil: no watchdog
}

// state is what the agent knows and has done; guarded by Agent.mu.
type state struct {
	cfg      cluster.Config
	snap     cluster.Snapshot
	view     localView // the last local probe
	localAt  time.Time // when view was taken, by the main loop or an API request
	stepAt   time.Time // when the main loop last observed: is it stuck?
	busy     string    // a long action under way (cloning, rewinding), published as the state
	lease    int64
	leaseTTL time.Duration // the TTL the lease was granted with
	// restartGen is the rolling-restart generation this node has done.
	restartGen uint64
	leading    bool   // this agent holds the leader key (leaderRev) as far as it knows
	leaderRev  int64  // creation revision of our leader key
	term       uint64 // the term we lead in, or follow
	// renewedAt is the send time of the last renewal that counts for the
	// fence: while leading, a lease renewal followed by a heartbeat, the
	// campaign or the claim of a key handed over; renewFence is the
	// FenceAfter that heartbeat published.
	renewedAt  time.Time
	renewFence time.Duration
	// beatRev is the leader's last heartbeat of the current leadership
	// this agent saw, first seen at beatAt (local clock); 0 if none.
	beatRev int64
	beatAt  time.Time
	// failsafeAt is the send time of the last failsafe round a majority
	// confirmed while etcd was unreachable.
	failsafeAt time.Time
	fenced     bool
	promised   time.Time // our failsafe promise not to campaign ends then
	restarts   int
	// notStreamingSince is when the local replica was last seen running
	// but not streaming (zero while it streams or is not a replica).
	notStreamingSince time.Time
	// replicaStarts counts starts as a replica since the local server
	// last streamed or was cloned (ha.Input.ReplicaStarts).
	replicaStarts int
	seededAt      time.Time // when the data directory was last seeded from the repository
	lastLSN       wal.LSN   // the furthest local position seen (a crashed server's end of WAL)
	restartedAt   time.Time
	detected      time.Time // when this agent noticed the leader was gone
	lastAction    string
	lastErr       string
	syncPending   *pendingSync
	ssn           string  // synchronous_standby_names the leader last set
	leaderLSN     wal.LSN // last LSN the leader published
}

// New checks o and builds an Agent.
func New(o Options) (*Agent, error) {
	if o.Store == nil || o.Self.Name == "" {
		return nil, errors.New("agent: Store and Self are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PeerClient == nil {
		o.PeerClient = &http.Client{Timeout: time.Second}
	}
	a := &Agent{o: o, log: o.Logger.With("component", "agent", "node", o.Self.Name)}
	a.st.cfg = o.Config
	switch o.WatchdogMode {
	case "", WatchdogOff:
	case WatchdogAutomatic, WatchdogRequired:
		a.wd = &watchdog{device: cmp.Or(o.Watchdog, "/dev/watchdog"), mode: o.WatchdogMode}
	default:
		return nil, fmt.Errorf("agent: watchdog mode %q: want off, automatic or required", o.WatchdogMode)
	}
	return a, nil
}

func (a *Agent) cfg() cluster.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.cfg
}

// Run runs the agent until ctx ends. It stops acting then, and leaves
// PostgreSQL running: stopping the agent is not a failover. A leader's
// PostgreSQL stops acknowledging commits until an agent leads it again,
// unless the cluster is paused (stopLeading).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.startAPI(); err != nil {
		return err
	}
	keepArmed := false
	defer func() { a.releaseWatchdog(keepArmed) }() // once its goroutine is done
	var wg sync.WaitGroup
	defer wg.Wait()
	defer a.stopAPI()
	wg.Go(func() { a.keepLease(ctx) })
	wg.Go(func() { a.watchFence(ctx) })
	if a.wd != nil {
		wg.Go(func() { a.runWatchdog(ctx) })
	}
	// Until etcd holds the configuration (this agent's, if it is the
	// first), try again every loop: etcd may not answer yet, as when a
	// cluster's members start together.
	configured := a.initConfig(ctx)
	changes := a.o.Store.Watch(ctx)
	died := make(chan struct{}, 1)
	wg.Go(func() { a.watchPostmaster(ctx, died) })
	for {
		if !configured {
			configured = a.initConfig(ctx)
		}
		next := a.step(ctx)
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			keepArmed = a.stopLeading(ctx)
			return nil
		case <-changes:
		case <-died:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// watchPostmaster checks every 100 ms that the postmaster it last saw
// still runs, and wakes the main loop when it dies, so a crash is acted on
// in a tenth of a second rather than a LoopWait.
func (a *Agent) watchPostmaster(ctx context.Context, died chan<- struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pid, ok := a.o.PG.PID()
		if !ok && last != 0 {
			select {
			case died <- struct{}{}:
			default:
			}
		}
		last = pid
	}
}

// initConfig writes the plan's configuration to etcd unless it holds one,
// and adopts the one in force. false: etcd could not be reached.
func (a *Agent) initConfig(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := a.o.Store.InitConfig(ctx, a.o.Config)
	if err != nil {
		a.log.Warn("cannot initialize the configuration in etcd; will retry", "err", err)
		return false
	}
	a.mu.Lock()
	a.st.cfg = c
	a.st.restartGen = c.RestartGeneration // restarts requested before this agent ran are done
	a.mu.Unlock()
	return true
}

// step observes, decides and acts once, and says when to step next.
func (a *Agent) step(ctx context.Context) time.Duration {
	cfg := a.cfg()
	loop := time.Duration(cfg.LoopWait)
	local := a.observeLocal(ctx)
	rctx, cancel := context.WithTimeout(ctx, cmp.Or(loop, time.Second))
	snap, err := a.o.Store.Read(rctx)
	cancel()
	a.mu.Lock()
	if err == nil {
		a.st.snap = snap
		if snap.Config != nil {
			a.st.cfg = *snap.Config
		}
	}
	a.mu.Unlock()
	if err != nil {
		a.setErr(fmt.Errorf("etcd unreachable: %w", err))
		return loop // the lease keeper and the fence watchdog handle the leader's safety
	}
	a.observeBeat(snap)
	if err := a.ensureLease(ctx, snap); err != nil {
		a.setErr(err)
		return loop
	}
	if err := a.claim(ctx, snap); err != nil {
		a.setErr(err)
		return loop
	}
	if a.observeLeadership(snap) {
		a.fence(ctx, "lost the leader key")
	}
	a.publish(ctx)
	in := a.input(ctx, snap, local)
	act := ha.Decide(in)
	a.note(act)
	if err := a.execute(ctx, act, in); err != nil {
		a.setErr(fmt.Errorf("%s: %w", act.Kind, err))
		a.log.Warn("action failed; retrying next loop", "action", act.Kind, "err", err)
		return loop
	}
	a.setErr(nil)
	if a.hurry() {
		return min(loop, 100*time.Millisecond)
	}
	// Wake when a silent leader's heartbeat gets old enough to end its
	// leadership, not up to a loop later.
	if d, ok := ha.UntilTakeover(in); ok {
		if d -= time.Since(in.Now); d > 0 && d < loop {
			return d
		}
	}
	return loop
}

// observeBeat notes when this agent first saw the leader's latest
// heartbeat. A heartbeat of another leadership (an older term, or one the
// new leader has not claimed yet) does not count.
func (a *Agent) observeBeat(snap cluster.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case snap.Leader == nil || snap.Beat == nil || snap.Beat.Term != snap.Leader.Term:
		a.st.beatRev, a.st.beatAt = 0, time.Time{}
	case snap.BeatRev != a.st.beatRev:
		a.st.beatRev, a.st.beatAt = snap.BeatRev, time.Now()
	}
}

// claim makes the heartbeat of a leader key this agent finds under its own
// lease without leading it yet (handed over by a switchover, or held by an
// earlier run of the agent) before it starts leading: its fence deadline
// then runs from a heartbeat that replicas saw after it was sent.
func (a *Agent) claim(ctx context.Context, snap cluster.Snapshot) error {
	a.mu.Lock()
	l, lease := snap.Leader, a.st.lease
	need := l != nil && l.Name == a.o.Self.Name && snap.LeaderLease == lease && lease != 0 &&
		(!a.st.leading || a.st.leaderRev != snap.LeaderRev)
	fenceAfter := a.fenceAfterLocked()
	a.mu.Unlock()
	if !need {
		return nil
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := a.o.Store.Beat(ctx, snap.LeaderRev, lease, cluster.Beat{Term: l.Term, FenceAfter: fenceAfter}); err != nil {
		return fmt.Errorf("claim the leader key: %w", err)
	}
	a.mu.Lock()
	a.st.renewedAt, a.st.renewFence = sent, fenceAfter
	a.mu.Unlock()
	return nil
}

// hurry says whether the next step should come sooner than LoopWait: the
// leader waits for a synchronous standby it needs.
func (a *Agent) hurry() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.leading && a.st.syncPending != nil
}

func (a *Agent) note(act ha.Action) {
	a.mu.Lock()
	changed := a.st.lastAction != act.String()
	a.st.lastAction = act.String()
	a.mu.Unlock()
	if changed && act.Kind != ha.Wait {
		a.log.Info("decision", "action", act.Kind, "target", act.Target, "reason", act.Reason)
	} else if changed {
		a.log.Debug("decision", "action", act.Kind, "reason", act.Reason)
	}
}

func (a *Agent) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.st.lastErr = ""
		return
	}
	a.st.lastErr = err.Error()
}

// observeLeadership reconciles what the agent believes about its own
// leadership with the leader key it just read, and says whether the agent
// just lost a leadership it held (the caller then fences).
func (a *Agent) observeLeadership(snap cluster.Snapshot) (lost bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := snap.Leader
	was := a.st.leading
	defer func() { lost = was && !a.st.leading && !a.st.fenced }()
	switch {
	case l != nil && l.Name == a.o.Self.Name && snap.LeaderLease == a.st.lease && a.st.lease != 0:
		if !a.st.leading || a.st.leaderRev != snap.LeaderRev {
			// Handed over to us (switchover), or adopted after a
			// restart: the key lives under our lease, which the lease
			// keeper renews; claim set renewedAt.
			a.st.leading, a.st.leaderRev = true, snap.LeaderRev
			a.st.restarts = 0
		}
		a.st.term = l.Term
		a.st.detected = time.Time{}
	case l != nil:
		a.st.leading = false
		a.st.term = l.Term
		a.st.detected = time.Time{}
		if m, ok := snap.Members[l.Name]; ok {
			a.st.leaderLSN = max(a.st.leaderLSN, m.LSN)
		}
	default:
		a.st.leading = false
		if a.st.detected.IsZero() {
			a.st.detected = time.Now()
		}
	}
	return
}

func (a *Agent) input(ctx context.Context, snap cluster.Snapshot, local ha.Local) ha.Input {
	a.mu.Lock()
	in := ha.Input{
		Self: a.o.Self.Name, Now: time.Now(), Config: a.st.cfg, Snap: snap, Local: local,
		Restarts: a.st.restarts, MaxRestarts: a.st.cfg.CrashRestarts, Promised: a.st.promised,
		LastLeaderLSN: a.st.leaderLSN, StuckAfter: max(30*time.Second, 3*time.Duration(a.st.cfg.TTL)),
		ReplicaStarts: a.st.replicaStarts,
	}
	if !a.st.notStreamingSince.IsZero() {
		in.NotStreaming = time.Since(a.st.notStreamingSince)
	}
	if !a.st.beatAt.IsZero() {
		in.Silent = max(time.Since(a.st.beatAt), time.Nanosecond)
	}
	a.mu.Unlock()
	if snap.Leader == nil {
		in.Peers = a.peers(ctx)
	}
	if snap.Leader != nil && snap.Leader.Name != a.o.Self.Name && local.Initialized {
		in.Local.Diverged = a.diverged(ctx, snap, local)
	}
	return in
}

// Status is the agent's view, for the API and for tests.
type Status struct {
	Member  cluster.Member   `json:"member"`
	Leading bool             `json:"leading"`
	Term    uint64           `json:"term"`
	Fenced  bool             `json:"fenced"`
	Action  string           `json:"action"`
	Sync    *cluster.Sync    `json:"sync,omitempty"`
	Config  cluster.Config   `json:"config"`
	Leader  *cluster.Leader  `json:"leader,omitempty"`
	Members []cluster.Member `json:"members,omitempty"`
}
