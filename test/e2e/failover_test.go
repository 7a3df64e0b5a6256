package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// TestHACrashAndNodeLoss: kill -9 of the primary's postmaster is repaired
// by a restart in place; kill -9 of agent and postmaster together by a new
// leader after the TTL; the old node rejoins as a replica.
func TestHACrashAndNodeLoss(t *testing.T) {
	c := startCluster(t, "--ttl", "4s")
	st := c.waitHealthy(30 * time.Second)
	w := startWriter(t, c.multiHost(st))
	w.waitAcks(t, 50, 30*time.Second)

	c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
	w.waitAcks(t, 50, 30*time.Second)
	if now := c.status(); now.Leader != st.Leader {
		t.Logf("crash: %s took over from %s", now.Leader, st.Leader)
	}

	st = c.waitHealthy(30 * time.Second)
	old := st.Leader
	c.signal(c.agent(old), syscall.SIGKILL)
	c.signal(c.postmaster(old), syscall.SIGKILL)
	next := c.waitNewLeader(old, st.Term, 30*time.Second)
	w.waitAcks(t, 50, 30*time.Second)
	t.Logf("node loss: %s leads after %s", next.Leader, old)
	// The replicas ended the lost leader's leadership when its heartbeat
	// was old enough, before its lease could expire.
	var ended []string
	for _, m := range st.Members {
		log, _ := os.ReadFile(filepath.Join(c.dir, m.Name, "agent.log"))
		if m.Name != old && strings.Contains(string(log), "ended a silent leadership") {
			ended = append(ended, m.Name)
		}
	}
	if len(ended) == 0 {
		t.Errorf("no replica logged that it ended %s's silent leadership: the failover waited for the lease", old)
	}

	c.e.ok("up", "--dir", c.dir, "--timeout", "60s") // restarts the lost agent
	st = c.waitHealthy(60 * time.Second)
	if m := st.member(old); m.Role != "replica" || m.Timeline != st.member(st.Leader).Timeline {
		t.Errorf("old primary %s rejoined as %+v", old, m)
	}
	acks, lost := c.lost(w) // async: reported, not required
	t.Logf("async: %d of %d acknowledged writes lost through the crash and the node loss", len(lost), len(acks))
}

// TestHAReplicaThatCannotStartIsRecloned: a replica whose server stops
// again after every start (here a setting PostgreSQL rejects; in the field a
// recovery that fails the same way each time) is cloned afresh after
// ha.MaxReplicaStarts starts, rather than started forever. The 30-second
// rule for replicas that do not stream never fires for it: it is not running.
func TestHAReplicaThatCannotStartIsRecloned(t *testing.T) {
	c := startCluster(t)
	st := c.waitHealthy(30 * time.Second)
	var r string
	for _, m := range st.Members {
		if !m.Leader {
			r = m.Name
		}
	}
	c.stopAgents(r)
	pm := c.postmaster(r)
	c.signal(pm, syscall.SIGINT) // fast shutdown
	pgtest.Eventually(t, 30*time.Second, func() error {
		if pg.Alive(pm) {
			return errString(r + "'s postmaster still runs")
		}
		return nil
	})
	auto := filepath.Join(c.dir, r, "pgdata", "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("shared_buffers = 'not a size'\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// up may return at once: r's published state outlives its agent for
	// a TTL. Wait for the re-clone, then for r to stream again.
	c.e.ok("up", "--dir", c.dir, "--timeout", "90s") // restarts r's agent
	pgtest.Eventually(t, 90*time.Second, func() error {
		log, _ := os.ReadFile(filepath.Join(c.dir, r, "agent.log"))
		if !strings.Contains(string(log), "PostgreSQL stopped after each of 3 starts as a replica") {
			return errString(r + "'s agent has not re-cloned; its log ends:\n" + tailLines(string(log), 10))
		}
		return nil
	})
	st = c.waitHealthy(90 * time.Second)
	if m := st.member(r); m.State != "streaming" {
		t.Errorf("%s is %s", r, m.State)
	}
	if conf, _ := os.ReadFile(auto); strings.Contains(string(conf), "not a size") {
		t.Errorf("%s still has the bad setting: it was not cloned afresh", r)
	}
}

// TestHASyncFailoversLoseNothing: in sync and quorum modes every
// acknowledged commit survives 20 consecutive failovers.
func TestHASyncFailoversLoseNothing(t *testing.T) {
	for _, mode := range []string{"sync", "quorum"} {
		t.Run(mode, func(t *testing.T) {
			c := startCluster(t, "--replication", mode, "--crash-restarts", "0")
			st := c.waitSync(60 * time.Second)
			w := startWriter(t, c.multiHost(st))
			w.waitAcks(t, 20, 30*time.Second)
			var windows []time.Duration
			for i := range 20 {
				c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
				next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
				window := c.noSyncWindow(next.Term)
				windows = append(windows, window)
				w.waitAcks(t, 20, 30*time.Second)
				t.Logf("failover %d: %s -> %s; synchronous standby named %s after the promotion", i+1, st.Leader, next.Leader, window.Round(time.Millisecond))
				st = c.waitSync(60 * time.Second)
			}
			acks := c.checkNoneLost(w)
			slices.Sort(windows)
			t.Logf("%d writes acknowledged, none lost; time from promotion to a named synchronous standby: median %s, max %s",
				len(acks), windows[len(windows)/2].Round(time.Millisecond), windows[len(windows)-1].Round(time.Millisecond))
		})
	}
}

// noSyncWindow waits until the leader of term names a synchronous standby
// in its sync record and returns how long after its promotion that was (as
// seen by polling, so up to a poll late).
func (c *haCluster) noSyncWindow(term uint64) time.Duration {
	c.t.Helper()
	var named time.Time
	pgtest.Eventually(c.t, 30*time.Second, func() error {
		var st struct {
			Sync *struct {
				Term     uint64   `json:"term"`
				Standbys []string `json:"standbys"`
			} `json:"sync"`
		}
		json.Unmarshal([]byte(c.e.ok("cluster", "status", "--plan", c.plan, "-o", "json")), &st)
		if st.Sync == nil || st.Sync.Term != term || len(st.Sync.Standbys) == 0 {
			return errString("no synchronous standby named in term " + strconv.FormatUint(term, 10))
		}
		named = time.Now()
		return nil
	})
	return named.Sub(c.lastEvent().Promoted)
}

// waitSync waits until the cluster is healthy and a synchronous standby
// is named.
func (c *haCluster) waitSync(timeout time.Duration) haStatus {
	c.t.Helper()
	var st haStatus
	pgtest.Eventually(c.t, timeout, func() error {
		st = c.waitHealthy(timeout)
		for _, m := range st.Members {
			if m.Sync {
				return nil
			}
		}
		return errString("no synchronous standby yet")
	})
	return st
}

type errString string

func (e errString) Error() string { return string(e) }

// TestHASwitchoverUnderLoad: planned switchovers lose nothing and each old
// primary rejoins and streams.
func TestHASwitchoverUnderLoad(t *testing.T) {
	c := startCluster(t, "--replication", "sync")
	st := c.waitSync(60 * time.Second)
	w := startWriter(t, c.multiHost(st))
	w.waitAcks(t, 50, 30*time.Second)
	for range 3 {
		out := c.e.ok("cluster", "switchover", "--plan", c.plan)
		next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
		t.Logf("%s: %s -> %s", strings.TrimSpace(out), st.Leader, next.Leader)
		w.waitAcks(t, 50, 30*time.Second)
		st = c.waitSync(60 * time.Second)
	}
	c.checkNoneLost(w)
	var events []struct {
		Kind string `json:"kind"`
		New  string `json:"new"`
	}
	if err := json.Unmarshal([]byte(c.e.ok("cluster", "history", "--plan", c.plan, "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	if n := len(events); n != 4 || events[n-1].Kind != "switchover" {
		t.Errorf("history: %+v, want bootstrap and 3 switchovers", events)
	}
}

// freeze stops (or continues) every process of a node, as a paused VM
// would: its agent, the postmaster and each of its children (PostgreSQL
// puts every child in its own process group, so one group signal is not
// enough). The postmaster stops first, so it forks nothing meanwhile.
func (c *haCluster) freeze(node string, sig syscall.Signal) {
	c.t.Helper()
	pm := c.postmaster(node)
	c.signal(pm, sig)
	for _, pid := range pg.ChildPIDs(pm) {
		syscall.Kill(pid, sig) // a child may have exited meanwhile
	}
	c.signal(c.agent(node), sig)
}

type event struct {
	Term     uint64    `json:"term"`
	Kind     string    `json:"kind"`
	New      string    `json:"new"`
	Old      string    `json:"old"`
	Promoted time.Time `json:"promoted"`
}

func (c *haCluster) lastEvent() event {
	c.t.Helper()
	var events []event
	if err := json.Unmarshal([]byte(c.e.ok("cluster", "history", "--plan", c.plan, "-o", "json")), &events); err != nil {
		c.t.Fatal(err)
	}
	return events[len(events)-1]
}

// TestHANodeFreeze: the whole primary node is stopped (SIGSTOP) for longer
// than the TTL, then continued. In sync mode the old primary never
// acknowledges a write after the new one was promoted; in async mode the
// window is measured. Its /primary never answers 200 after the promotion.
func TestHANodeFreeze(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			c := startCluster(t, "--replication", mode, "--ttl", "4s")
			st := c.waitHealthy(60 * time.Second)
			if mode == "sync" {
				st = c.waitSync(60 * time.Second)
			}
			old := st.member(st.Leader)
			w := startWriter(t, c.multiHost(st))
			pinned := startWriter(t, strings.Replace(old.Conn, "connect_timeout=2", "connect_timeout=1", 1))
			w.waitAcks(t, 50, 30*time.Second)
			pinned.waitAcks(t, 10, 30*time.Second)

			probe := make(chan []time.Time)
			ctx, cancel := context.WithCancel(context.Background())
			go func() { // when the old node's /primary answered 200
				var ok []time.Time
				for ctx.Err() == nil {
					if c.get(old.APIURL+"/primary") == http.StatusOK {
						ok = append(ok, time.Now())
					}
					time.Sleep(50 * time.Millisecond)
				}
				probe <- ok
			}()
			c.freeze(old.Name, syscall.SIGSTOP)
			next := c.waitNewLeader(old.Name, st.Term, 30*time.Second)
			time.Sleep(time.Second)
			c.freeze(old.Name, syscall.SIGCONT)
			w.waitAcks(t, 50, 30*time.Second)
			time.Sleep(2 * time.Second)
			cancel()
			okTimes := <-probe
			promoted := c.lastEvent().Promoted
			for _, at := range okTimes {
				if at.After(promoted) {
					t.Errorf("old primary's /primary answered 200 at %s, after %s was promoted at %s", at.Format(time.StampMilli), next.Leader, promoted.Format(time.StampMilli))
				}
			}
			var late []ack
			for _, a := range append(w.acked(), pinned.acked()...) {
				if a.node == old.Name && a.at.After(promoted) {
					late = append(late, a)
				}
			}
			switch {
			case mode == "sync" && len(late) > 0:
				t.Errorf("old primary %s acknowledged %d writes after %s was promoted (first %+v)", old.Name, len(late), next.Leader, late[0])
			case mode == "async" && len(late) > 0:
				t.Logf("async: old primary %s acknowledged %d writes up to %s after the promotion", old.Name, len(late), late[len(late)-1].at.Sub(promoted).Round(time.Millisecond))
			default:
				t.Logf("%s: old primary %s acknowledged no write after the promotion", mode, old.Name)
			}
			pinned.halt()
			if mode == "sync" {
				c.checkNoneLost(w)
			}
			c.waitHealthy(60 * time.Second)
		})
	}
}

// TestHAHealthEndpoints checks the REST answers in each state, including
// the trap Patroni falls into: a leader whose PostgreSQL crashed is not
// /primary.
func TestHAHealthEndpoints(t *testing.T) {
	c := startCluster(t)
	st := c.waitHealthy(30 * time.Second)
	want := func(url string, code int) {
		t.Helper()
		pgtest.Eventually(t, 10*time.Second, func() error {
			if got := c.get(url); got != code {
				return errString(url + ": got " + http.StatusText(got) + ", want " + http.StatusText(code))
			}
			return nil
		})
	}
	for _, m := range st.Members {
		primary, replica := http.StatusServiceUnavailable, http.StatusOK
		if m.Leader {
			primary, replica = http.StatusOK, http.StatusServiceUnavailable
		}
		for _, p := range []string{"/primary", "/leader", "/read-write", "/master"} {
			want(m.APIURL+p, primary)
		}
		want(m.APIURL+"/replica", replica)
		want(m.APIURL+"/replica?lag=16MB", replica)
		want(m.APIURL+"/async", replica)
		want(m.APIURL+"/sync", http.StatusServiceUnavailable)
		want(m.APIURL+"/read-only", http.StatusOK)
		want(m.APIURL+"/health", http.StatusOK)
		want(m.APIURL+"/readiness", http.StatusOK)
		want(m.APIURL+"/liveness", http.StatusOK)
		want(m.APIURL+"/cluster", http.StatusOK)
		want(m.APIURL+"/metrics", http.StatusOK)
	}
	leader := st.member(st.Leader)

	// Mutating endpoints need the token.
	body := strings.NewReader(`{"leader": "` + leader.Name + `"}`)
	resp, err := http.Post(leader.APIURL+"/switchover", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("switchover without a token: %s, want 401", resp.Status)
	}
	token, err := os.ReadFile(filepath.Join(c.dir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, leader.APIURL+"/switchover", strings.NewReader(`{"leader": "`+leader.Name+`"}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("switchover with the token: %s", resp.Status)
	}
	st = c.waitNewLeader(leader.Name, st.Term, 30*time.Second)
	st = c.waitHealthy(30 * time.Second)
	leader = st.member(st.Leader)

	// Paused, the agents leave a crashed PostgreSQL alone: the leader's
	// endpoints must say so rather than trust the leader key.
	c.e.ok("cluster", "pause", "--plan", c.plan)
	c.signal(c.postmaster(leader.Name), syscall.SIGKILL)
	want(leader.APIURL+"/primary", http.StatusServiceUnavailable)
	want(leader.APIURL+"/health", http.StatusServiceUnavailable)
	time.Sleep(2 * time.Second)
	if now := c.status(); now.Leader != leader.Name || now.member(leader.Name).Role != "stopped" {
		t.Errorf("paused cluster acted: leader %s, %+v", now.Leader, now.member(leader.Name))
	}
	c.e.ok("cluster", "resume", "--plan", c.plan)
	c.waitHealthy(30 * time.Second)
}

// TestHAProxyFollowsThePrimary: a real HAProxy configured as for Patroni
// (health check GET /primary on the agents' API) routes a client to the
// new primary after a failover.
func TestHAProxyFollowsThePrimary(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("BULWARK_TEST_REQUIRE") != "" {
			t.Fatalf("haproxy not installed (scripts/install-deps.sh installs it): %v", err)
		}
		t.Skip("haproxy not installed")
	}
	c := startCluster(t, "--crash-restarts", "0")
	st := c.waitHealthy(30 * time.Second)
	port, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30m\n  timeout server 30m\n  timeout check 1s\n")
	cfg.WriteString("listen primary\n  bind " + port + "\n  option httpchk GET /primary\n  http-check expect status 200\n")
	cfg.WriteString("  default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions\n")
	for _, m := range st.Members {
		apiPort := m.APIURL[strings.LastIndex(m.APIURL, ":")+1:]
		cfg.WriteString("  server " + m.Name + " 127.0.0.1:" + m.port() + " maxconn 100 check port " + apiPort + "\n")
	}
	conf := filepath.Join(t.TempDir(), "haproxy.cfg")
	pgtest.WriteFile(t, conf, []byte(cfg.String()))
	cmd := exec.Command(haproxy, "-f", conf)
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	host, p, _ := strings.Cut(port, ":")
	w := startWriter(t, "host="+host+" port="+p+" user=postgres dbname=postgres connect_timeout=2")
	w.waitAcks(t, 50, 30*time.Second)
	c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
	next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
	pgtest.Eventually(t, 30*time.Second, func() error {
		acks := w.acked()
		if a := acks[len(acks)-1]; a.node != next.Leader {
			return errString("through HAProxy the last write went to " + a.node + ", not " + next.Leader)
		}
		return nil
	})
}

// TestHAEtcdDown: with etcd unreachable the primary keeps serving while a
// majority of members confirm it directly; once they cannot, it fences.
func TestHAEtcdDown(t *testing.T) {
	c := startCluster(t, "--replication", "sync", "--ttl", "4s")
	st := c.waitSync(60 * time.Second)
	leader := st.member(st.Leader)
	w := startWriter(t, leader.Conn)
	w.waitAcks(t, 20, 30*time.Second)
	etcd := c.pidFile(filepath.Join(c.dir, "etcd.pid"))
	c.signal(etcd, syscall.SIGSTOP)
	defer syscall.Kill(etcd, syscall.SIGCONT)

	time.Sleep(8 * time.Second) // twice the TTL
	w.waitAcks(t, 50, 10*time.Second)
	if got := c.get(leader.APIURL + "/primary"); got != http.StatusOK {
		t.Errorf("etcd down, all members up: /primary %d, want 200", got)
	}

	// Without one replica's agent not every member confirms: the primary
	// fences.
	for _, m := range st.Members {
		if !m.Leader {
			c.signal(c.agent(m.Name), syscall.SIGKILL)
			break
		}
	}
	pgtest.Eventually(t, 15*time.Second, func() error {
		if got := c.get(leader.APIURL + "/primary"); got == http.StatusOK {
			return errString("still /primary")
		}
		return nil
	})
	// /primary turns 503 at the fence deadline and the watchdog fences
	// within 50 ms of it; from then on no write may be acknowledged.
	time.Sleep(500 * time.Millisecond)
	fencedAt := time.Now()
	time.Sleep(3 * time.Second)
	for _, a := range w.acked() {
		if a.at.After(fencedAt) {
			t.Fatalf("write %d acknowledged at %s, after the primary fenced (%s)", a.seq, a.at.Format(time.StampMilli), fencedAt.Format(time.StampMilli))
		}
	}
	syscall.Kill(etcd, syscall.SIGCONT)
	c.e.ok("up", "--dir", c.dir, "--timeout", "60s")
	c.waitSync(60 * time.Second)
	w.halt()
	c.checkNoneLost(w)
}

// TestClusterStatusEtcdUnreachable: a clear error, not a hang.
func TestClusterStatusEtcdUnreachable(t *testing.T) {
	e := newEnv(t)
	addr, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "bulwark.yaml")
	pgtest.WriteFile(t, planFile, []byte(`version: 1
service: {name: x, tier: 2, rto: 1m, rpo: 0s}
postgres: {pgdata: /var/lib/postgresql/15/main}
repositories: [{name: r, url: "file:///tmp/r"}]
cluster:
  etcd: {endpoints: ["http://`+addr+`"]}
  nodes: [{name: n1, host: 127.0.0.1, port: 5432, api: "127.0.0.1:8008"}]
`))
	start := time.Now()
	r := e.run("cluster", "status", "--plan", planFile)
	if r.code != 1 || !strings.Contains(r.stderr, "read cluster state") {
		t.Errorf("exit %d, stderr %q; want 1 and a read error", r.code, r.stderr)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

// TestHAConfigAndRollingRestart: a parameter set at runtime reaches every
// node; one that needs a restart shows as pending until a rolling restart,
// which keeps the leader.
func TestHAConfigAndRollingRestart(t *testing.T) {
	c := startCluster(t)
	st := c.waitHealthy(30 * time.Second)
	c.e.ok("cluster", "config", "set", "--plan", c.plan, "parameters.work_mem=8MB", "parameters.shared_buffers=48MB")
	if r := c.e.run("cluster", "config", "set", "--plan", c.plan, "ttl=1s"); r.code != 2 {
		t.Errorf("ttl=1s: exit %d, want 2 (usage error): %s", r.code, r.stderr)
	}
	show := func(m haMember, name string) string { // "" while the node restarts
		conn, err := pgx.Connect(context.Background(), m.Conn)
		if err != nil {
			return ""
		}
		defer conn.Close(context.Background())
		var v string
		conn.QueryRow(context.Background(), "SELECT current_setting($1)", name).Scan(&v)
		return v
	}
	pgtest.Eventually(t, 20*time.Second, func() error {
		for _, m := range st.Members {
			if got := show(m, "work_mem"); got != "8MB" {
				return errString(m.Name + " work_mem " + got)
			}
		}
		return nil
	})
	c.e.ok("cluster", "restart", "--plan", c.plan)
	pgtest.Eventually(t, 60*time.Second, func() error {
		for _, m := range c.waitHealthy(30 * time.Second).Members {
			if got := show(m, "shared_buffers"); got != "48MB" {
				return errString(m.Name + " shared_buffers " + got)
			}
		}
		return nil
	})
	if now := c.status(); now.Leader != st.Leader || now.Term != st.Term {
		t.Errorf("rolling restart changed the leader: %s term %d, was %s term %d", now.Leader, now.Term, st.Leader, st.Term)
	}
}

// TestHAReplicaSeededFromRepository: a re-initialized replica starts from
// the repository's latest backup, not from a copy of the primary, then
// streams.
func TestHAReplicaSeededFromRepository(t *testing.T) {
	c := startCluster(t)
	st := c.waitHealthy(30 * time.Second)
	leader := st.member(st.Leader)
	// The cluster's own repository and passphrase file, from its plan;
	// it belongs to the agents' OS user.
	c.e.owner, c.e.repo, c.e.vars = true, "", nil
	c.e.ok("backup", "create", "--plan", c.plan, "--type", "full",
		"--pgdata", filepath.Join(c.dir, leader.Name, "pgdata"), "--db", leader.Conn)
	var replica string
	for _, m := range st.Members {
		if !m.Leader {
			replica = m.Name
		}
	}
	c.e.ok("cluster", "reinit", replica, "--plan", c.plan)
	pgtest.Eventually(t, 60*time.Second, func() error {
		log, _ := os.ReadFile(filepath.Join(c.dir, replica, "agent.log"))
		if !strings.Contains(string(log), "seeded from the repository") {
			return errString(replica + " not seeded yet")
		}
		return nil
	})
	if st := c.waitHealthy(60 * time.Second); st.member(replica).State != "streaming" {
		t.Errorf("%s is %s", replica, st.member(replica).State)
	}
}

// TestHAAgentStopBlocksCommits: stopping the leader's agent cleanly leaves
// its PostgreSQL running but blocks commits, so that a primary whose agent
// stays away cannot take writes after another node is elected; the
// restarted agent adopts its lease and commits go on, in the same term.
// Paused, a stopped agent leaves commits alone.
func TestHAAgentStopBlocksCommits(t *testing.T) {
	c := startCluster(t, "--ttl", "10s") // the agent is away for a few seconds, well within the TTL
	st := c.waitHealthy(30 * time.Second)
	leader := st.member(st.Leader)
	insert := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, leader.Conn)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS stop_t (x int); INSERT INTO stop_t VALUES (1)")
		return err
	}
	if err := insert(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.stopAgents(leader.Name)
	if err := insert(2 * time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a commit on the primary of a stopped agent: %v, want it to wait (until the timeout)", err)
	}
	c.e.ok("up", "--dir", c.dir, "--timeout", "60s")
	pgtest.Eventually(t, 30*time.Second, func() error { return insert(2 * time.Second) })
	if now := c.waitHealthy(30 * time.Second); now.Leader != st.Leader || now.Term != st.Term {
		t.Errorf("after the agent's restart: leader %s term %d, want %s term %d", now.Leader, now.Term, st.Leader, st.Term)
	}

	c.e.ok("cluster", "pause", "--plan", c.plan)
	c.stopAgents(leader.Name)
	if err := insert(5 * time.Second); err != nil {
		t.Errorf("paused, a stopped agent blocked commits: %v", err)
	}
	c.e.ok("up", "--dir", c.dir, "--timeout", "60s")
	c.e.ok("cluster", "resume", "--plan", c.plan)
}

// TestHAArchivesWAL: with the plan's archiving on (bulwark up --archive),
// the primary archives WAL into the repository, and so does the node
// promoted after it.
func TestHAArchivesWAL(t *testing.T) {
	c := startCluster(t, "--archive", "--crash-restarts", "0")
	st := c.waitHealthy(30 * time.Second)
	checkArchives(t, st.member(st.Leader).Conn)
	c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
	next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
	checkArchives(t, next.member(next.Leader).Conn)
}

// checkArchives switches the primary at conn to a new WAL segment and
// waits until the one it closed is archived, with no archive failure.
func checkArchives(t *testing.T, conn string) {
	t.Helper()
	ctx := t.Context()
	db, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	// A record first: pg_switch_wal on an empty segment switches nothing
	// and names the segment before, which may already be archived and yet
	// sort after the last file archived (a backup history file,
	// 000000010000000000000003.00000028.backup, sorts before segment 4).
	var seg string
	if err := db.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal()) FROM pg_logical_emit_message(false, 'bulwark-test', 'switch')").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, func() error {
		var ok bool
		var failed int64
		if err := db.QueryRow(ctx, "SELECT coalesce(last_archived_wal, '') >= $1, failed_count FROM pg_stat_archiver", seg).Scan(&ok, &failed); err != nil {
			return err
		}
		if failed > 0 {
			return errString("archive_command failed")
		}
		if !ok {
			return errString(seg + " not archived yet")
		}
		return nil
	})
}
