package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// haCluster is a local cluster started with bulwark up for one test.
type haCluster struct {
	t    *testing.T
	e    *env
	dir  string
	plan string
	// logs are more logs to print when the test fails, after the
	// cluster's: the last lines of CI's output then show them.
	logs []string
}

type haMember struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	State    string `json:"state"`
	Timeline int    `json:"timeline"`
	LSN      string `json:"lsn"`
	LagBytes int64  `json:"lag_bytes"`
	Sync     bool   `json:"sync"`
	Leader   bool   `json:"leader"`
	APIURL   string `json:"api_url"`
	Conn     string `json:"conn"`
}

// port is the member's PostgreSQL port, from its connection string.
func (m haMember) port() string {
	for _, kv := range strings.Fields(m.Conn) {
		if v, ok := strings.CutPrefix(kv, "port="); ok {
			return v
		}
	}
	return ""
}

type haStatus struct {
	Leader  string     `json:"leader"`
	Term    uint64     `json:"term"`
	Members []haMember `json:"members"`
}

// startCluster runs bulwark up with args and stops the cluster when the
// test ends, printing the agents' logs if it failed.
func startCluster(t *testing.T, args ...string) *haCluster {
	t.Helper()
	pgtest.Require(t)
	c := &haCluster{t: t, e: newEnv(t), dir: pgtest.Dir(t)}
	c.plan = filepath.Join(c.dir, "bulwark.yaml")
	t.Cleanup(func() {
		c.e.run("down", "--dir", c.dir)
		if t.Failed() {
			for _, log := range slices.Concat(globLogs(c.dir, "*/pgdata.log"), globLogs(c.dir, "*/agent.log"), c.logs) {
				data, _ := os.ReadFile(log)
				t.Logf("==== %s\n%s", log, tailLines(string(data), 60))
			}
		}
	})
	c.e.ok(append([]string{"up", "--dir", c.dir, "--timeout", "90s"}, args...)...)
	return c
}

func globLogs(dir, pattern string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	return m
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *haCluster) status() haStatus {
	c.t.Helper()
	var st haStatus
	out := c.e.ok("cluster", "status", "--plan", c.plan, "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("cluster status: %v: %s", err, out)
	}
	return st
}

func (s haStatus) member(name string) haMember {
	for _, m := range s.Members {
		if m.Name == name {
			return m
		}
	}
	return haMember{}
}

// waitHealthy waits until a primary runs and every other member streams,
// and returns the status.
func (c *haCluster) waitHealthy(timeout time.Duration) haStatus {
	c.t.Helper()
	var st haStatus
	pgtest.Eventually(c.t, timeout, func() error {
		st = c.status()
		if st.Leader == "" {
			return fmt.Errorf("no leader")
		}
		for _, m := range st.Members {
			if m.Leader && (m.Role != "primary" || m.State != "running") {
				return fmt.Errorf("leader %s is %s %s", m.Name, m.Role, m.State)
			}
			if !m.Leader && m.State != "streaming" {
				return fmt.Errorf("%s is %s", m.Name, m.State)
			}
		}
		return nil
	})
	return st
}

// waitNewLeader waits until a primary other than old leads (or, with
// old == "", any primary) and returns its name.
func (c *haCluster) waitNewLeader(old string, term uint64, timeout time.Duration) haStatus {
	c.t.Helper()
	var st haStatus
	pgtest.Eventually(c.t, timeout, func() error {
		st = c.status()
		m := st.member(st.Leader)
		if st.Leader == "" || st.Term <= term || m.Role != "primary" || m.State != "running" {
			return fmt.Errorf("leader %q term %d (%s %s)", st.Leader, st.Term, m.Role, m.State)
		}
		if old != "" && st.Leader == old {
			return fmt.Errorf("%s still leads", old)
		}
		return nil
	})
	return st
}

func (c *haCluster) pidFile(path string) int {
	c.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		c.t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// stopAgents stops the agents of nodes with SIGTERM and waits until they
// have exited (a zombie not yet reaped counts as exited).
func (c *haCluster) stopAgents(nodes ...string) {
	c.t.Helper()
	for _, n := range nodes {
		c.signal(c.agent(n), syscall.SIGTERM)
	}
	pgtest.Eventually(c.t, 15*time.Second, func() error {
		for _, n := range nodes {
			if pg.Alive(c.agent(n)) {
				return fmt.Errorf("%s's agent still runs", n)
			}
		}
		return nil
	})
}

func (c *haCluster) postmaster(node string) int {
	return c.pidFile(filepath.Join(c.dir, node, "pgdata", "postmaster.pid"))
}

func (c *haCluster) agent(node string) int { return c.pidFile(filepath.Join(c.dir, node, "agent.pid")) }

func (c *haCluster) signal(pid int, sig syscall.Signal) {
	c.t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// multiHost is a connection string naming every node, for a client that
// finds the primary itself (target_session_attrs=read-write).
func (c *haCluster) multiHost(st haStatus) string {
	var hosts, ports []string
	for _, m := range st.Members {
		if v := m.port(); v != "" {
			hosts, ports = append(hosts, "127.0.0.1"), append(ports, v)
		}
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres connect_timeout=2 target_session_attrs=read-write",
		strings.Join(hosts, ","), strings.Join(ports, ","))
}

// ack is one write the server acknowledged.
type ack struct {
	seq  int64
	node string
	at   time.Time
}

// writer inserts one row per transaction, numbered, and records which
// node acknowledged each. A write whose outcome is unknown (the
// connection broke during the commit) is not counted as acknowledged.
type writer struct {
	conn    string
	base    int64 // seq numbers start after it: writers sharing a table do not collide
	mu      sync.Mutex
	acks    []ack
	unknown []int64
	errors  int
	stop    context.CancelFunc
	done    chan struct{}
}

var writers atomic.Int64

func startWriter(t *testing.T, conn string) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{conn: conn, base: writers.Add(1) * 1_000_000_000, stop: cancel, done: make(chan struct{})}
	pgtest.Eventually(t, 30*time.Second, func() error {
		setup, err := pgx.Connect(ctx, conn)
		if err != nil {
			return err
		}
		defer setup.Close(ctx)
		_, err = setup.Exec(ctx, `CREATE TABLE IF NOT EXISTS ha_writes (seq bigint PRIMARY KEY, node text NOT NULL, at timestamptz DEFAULT now())`)
		return err
	})
	go w.run(ctx)
	t.Cleanup(w.halt)
	return w
}

func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	var conn *pgx.Conn
	seq := w.base
	for ctx.Err() == nil {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgx.Connect(cctx, w.conn)
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			conn = c
		}
		seq++
		var node string
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := conn.QueryRow(qctx, `INSERT INTO ha_writes (seq, node) VALUES ($1, current_setting('cluster_name')) RETURNING node`, seq).Scan(&node)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acks = append(w.acks, ack{seq, node, time.Now()})
		} else {
			w.unknown = append(w.unknown, seq)
			w.errors++
		}
		w.mu.Unlock()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			time.Sleep(20 * time.Millisecond)
		}
	}
	if conn != nil {
		conn.Close(context.Background())
	}
}

func (w *writer) halt() {
	w.stop()
	<-w.done
}

// acked returns the acknowledged writes so far.
func (w *writer) acked() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ack(nil), w.acks...)
}

// waitAcks waits until n more writes were acknowledged than now.
func (w *writer) waitAcks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	start := len(w.acked())
	pgtest.Eventually(t, timeout, func() error {
		if got := len(w.acked()) - start; got < n {
			return fmt.Errorf("%d new acknowledged writes, want %d", got, n)
		}
		return nil
	})
}

// checkNoneLost stops the writer and checks that every acknowledged write
// is on the current primary.
func (c *haCluster) checkNoneLost(w *writer) []ack {
	c.t.Helper()
	acks, lost := c.lost(w)
	if len(lost) > 0 {
		c.t.Errorf("%d of %d acknowledged writes lost: %v", len(lost), len(acks), lost[:min(len(lost), 20)])
	}
	return acks
}

// lost stops the writer and returns the acknowledged writes and those of
// them the current primary does not have.
func (c *haCluster) lost(w *writer) ([]ack, []int64) {
	c.t.Helper()
	w.halt()
	st := c.waitHealthy(60 * time.Second)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.multiHost(st))
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	present := map[int64]bool{}
	rows, err := conn.Query(ctx, "SELECT seq FROM ha_writes")
	if err != nil {
		c.t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		rows.Scan(&s)
		present[s] = true
	}
	acks := w.acked()
	var lost []int64
	for _, a := range acks {
		if !present[a.seq] {
			lost = append(lost, a.seq)
		}
	}
	return acks, lost
}

func (c *haCluster) get(url string) int {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
