package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// proxyProc is a `bulwark proxy` process following a cluster.
type proxyProc struct {
	rw, ro, http string
}

// startProxy runs bulwark proxy on the cluster's plan until the test
// ends, waits until /health says it routes to a primary, and at the end
// checks that SIGTERM makes it exit 0.
func (c *haCluster) startProxy() *proxyProc {
	c.t.Helper()
	px := &proxyProc{rw: freeAddr(c.t), ro: freeAddr(c.t), http: freeAddr(c.t)}
	logPath := filepath.Join(c.t.TempDir(), "proxy.log")
	c.logs = append(c.logs, logPath)
	logFile, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := c.e.command("proxy", "--plan", c.plan, "--listen-rw", px.rw, "--listen-ro", px.ro, "--http", px.http, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		defer logFile.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		if code, err := exitCode(cmd.Wait()); err != nil || code != 0 {
			c.t.Errorf("bulwark proxy after SIGTERM: exit %d (%v), want 0", code, err)
		}
	})
	pgtest.Eventually(c.t, 30*time.Second, func() error {
		if got := c.get("http://" + px.http + "/health"); got != http.StatusOK {
			return errString("proxy /health: " + http.StatusText(got))
		}
		return nil
	})
	return px
}

func freeAddr(t *testing.T) string {
	addr, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// conn is a connection string through addr, a port of the proxy.
func (px *proxyProc) conn(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres dbname=postgres sslmode=disable connect_timeout=2"
}

// checkReadsOnReplicas opens two read-only sessions at once through the
// proxy: each lands on a replica, a different one (least connections).
func (px *proxyProc) checkReadsOnReplicas(t *testing.T, st haStatus) {
	t.Helper()
	pgtest.Eventually(t, 30*time.Second, func() error { // the proxy's watch may be a moment behind
		var h struct {
			Replicas []struct {
				LagBytes int64 `json:"lag_bytes"`
			} `json:"replicas"`
		}
		resp, err := http.Get("http://" + px.http + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			return err
		}
		for _, r := range h.Replicas {
			if r.LagBytes > 1<<20 {
				return errString("a replica is behind")
			}
		}
		if len(h.Replicas) != len(st.Members)-1 {
			return errString("the proxy does not see every replica yet")
		}
		return nil
	})
	ctx := context.Background()
	seen := map[string]bool{}
	for range 2 {
		conn, err := pgx.Connect(ctx, strings.Replace(px.conn(px.ro), "connect_timeout=2", "connect_timeout=40", 1))
		if err != nil {
			t.Fatalf("read-only port: %v", err)
		}
		defer conn.Close(ctx)
		var node string
		var recovery bool
		if err := conn.QueryRow(ctx, "SELECT current_setting('cluster_name'), pg_is_in_recovery()").Scan(&node, &recovery); err != nil {
			t.Fatal(err)
		}
		if !recovery || node == st.Leader || seen[node] {
			t.Errorf("read-only session on %s (in recovery: %v); leader %s, sessions before on %v", node, recovery, st.Leader, seen)
		}
		seen[node] = true
	}
}

// checkNoneFrom checks that, of the writes w had acknowledged since its
// first `from`, the old primary acknowledged none after the new leader of
// term was promoted, nor after the new leader acknowledged its first.
func (c *haCluster) checkNoneFrom(w *writer, from int, old string, term uint64) {
	c.t.Helper()
	ev := c.lastEvent()
	if ev.Term != term {
		c.t.Fatalf("last event is of term %d, want %d", ev.Term, term)
	}
	newSeen := false
	for _, a := range w.acked()[from:] {
		newSeen = newSeen || a.node == ev.New
		if a.node == old && (newSeen || a.at.After(ev.Promoted)) {
			c.t.Errorf("write %d acknowledged by the old primary %s after %s took over", a.seq, old, ev.New)
		}
	}
	if !newSeen {
		c.t.Errorf("no write reached the new primary %s", ev.New)
	}
}

// TestProxyFollowsFailoverAndSwitchover: a client writing through the
// proxy's read-write port keeps writing through kill -9 of the primary's
// postmaster and through a switchover; every acknowledged write survives
// and none reaches the old primary after the new one took over; the
// read-only port leads to replicas.
func TestProxyFollowsFailoverAndSwitchover(t *testing.T) {
	c := startCluster(t, "--replication", "sync", "--crash-restarts", "0")
	st := c.waitSync(60 * time.Second)
	px := c.startProxy()
	w := startWriter(t, px.conn(px.rw))
	w.waitAcks(t, 50, 30*time.Second)
	px.checkReadsOnReplicas(t, st)

	old, from := st.Leader, len(w.acked())
	c.signal(c.postmaster(old), syscall.SIGKILL)
	next := c.waitNewLeader(old, st.Term, 30*time.Second)
	w.waitAcks(t, 50, 60*time.Second)
	c.checkNoneFrom(w, from, old, next.Term)
	t.Logf("kill -9: %s -> %s", old, next.Leader)

	st = c.waitSync(60 * time.Second)
	old, from = st.Leader, len(w.acked())
	c.e.ok("cluster", "switchover", "--plan", c.plan)
	next = c.waitNewLeader(old, st.Term, 30*time.Second)
	w.waitAcks(t, 50, 60*time.Second)
	c.checkNoneFrom(w, from, old, next.Term)
	t.Logf("switchover: %s -> %s", old, next.Leader)

	st = c.waitSync(60 * time.Second)
	px.checkReadsOnReplicas(t, st)
	acks := c.checkNoneLost(w)
	t.Logf("%d writes acknowledged through the proxy, none lost; %d failed and were retried", len(acks), w.errors)
}

// TestProxyUsageErrors: bad flags are usage errors (exit 2), found
// before the plan is read.
func TestProxyUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no plan", []string{"proxy", "--listen-rw", "127.0.0.1:0"}},
		{"no port", []string{"proxy"}},
		{"bad max-lag", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--max-lag", "lots"}},
		{"bad fallback", []string{"proxy", "--listen-ro", "127.0.0.1:0", "--ro-fallback", "anywhere"}},
		{"cert without key", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--tls-cert", "/x.pem"}},
		{"bad sslmode", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--backend-sslmode", "prefer"}},
		{"CA without verify-full", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--backend-ca", "/ca.pem"}},
		{"bad wait", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--wait-primary", "0s"}},
		{"bad relay loops", []string{"proxy", "--listen-rw", "127.0.0.1:0", "--relay-loops", "-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := newEnv(t).run(tc.args...); r.code != 2 {
				t.Errorf("exit %d, want 2: %s", r.code, r.stderr)
			}
		})
	}
}
