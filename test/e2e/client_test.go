package e2e

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// TestClientLibraryFollowsFailover: an application writing through
// pkg/failover keeps writing through kill -9 of the primary and through a
// switchover, with the cluster followed through etcd and through the
// agents' APIs. Every acknowledged write is present afterwards, and none
// was acknowledged by an old primary after its successor took over
// (checkNoneFrom, as through the proxy).
func TestClientLibraryFollowsFailover(t *testing.T) {
	c := startCluster(t, "--replication", "sync", "--crash-restarts", "0")
	st := c.waitSync(60 * time.Second)
	p, err := plan.Load(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, m := range st.Members {
		urls = append(urls, m.APIURL)
	}
	sources := map[string]failover.Source{
		"etcd":   &failover.EtcdSource{Endpoints: p.Cluster.Etcd.Endpoints, Cluster: p.Cluster.Name},
		"agents": &failover.AgentsSource{URLs: urls},
	}
	var writers []*writer
	for _, name := range []string{"etcd", "agents"} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		pool, err := failover.Open(ctx, failover.Config{
			ConnString: "user=postgres dbname=postgres connect_timeout=2", Source: sources[name]})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(pool.Close)
		w := startPoolWriter(t, pool)
		w.waitAcks(t, 50, 30*time.Second)
		writers = append(writers, w)
	}

	from := ackCounts(writers)
	c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
	next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
	for i, w := range writers {
		w.waitAcks(t, 50, 30*time.Second)
		c.checkNoneFrom(w, from[i], st.Leader, next.Term)
	}
	st = c.waitSync(60 * time.Second)

	from = ackCounts(writers)
	c.e.ok("cluster", "switchover", "--plan", c.plan)
	after := c.waitNewLeader(next.Leader, st.Term, 30*time.Second)
	for i, w := range writers {
		w.waitAcks(t, 50, 30*time.Second)
		c.checkNoneFrom(w, from[i], next.Leader, after.Term)
	}
	for _, w := range writers {
		acks := c.checkNoneLost(w)
		t.Logf("%d writes acknowledged through the library, none lost; %d of unknown outcome", len(acks), len(w.unknown))
	}
}

// ackCounts is how many writes each writer has had acknowledged so far.
func ackCounts(writers []*writer) []int {
	n := make([]int, len(writers))
	for i, w := range writers {
		n[i] = len(w.acked())
	}
	return n
}

// startPoolWriter is startWriter through a failover.Pool: one numbered
// INSERT per Write. A write of unknown outcome is not counted as
// acknowledged.
func startPoolWriter(t *testing.T, pool *failover.Pool) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{base: writers.Add(1) * 1_000_000_000, stop: cancel, done: make(chan struct{})}
	pgtest.Eventually(t, 30*time.Second, func() error {
		return pool.Write(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ha_writes (seq bigint PRIMARY KEY, node text NOT NULL, at timestamptz DEFAULT now())`)
			return err
		})
	})
	go func() {
		defer close(w.done)
		for seq := w.base + 1; ctx.Err() == nil; seq++ {
			var node string
			err := pool.Write(ctx, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `INSERT INTO ha_writes (seq, node) VALUES ($1, current_setting('cluster_name')) RETURNING node`, seq).Scan(&node)
			})
			w.mu.Lock()
			switch {
			case err == nil:
				w.acks = append(w.acks, ack{seq, node, time.Now()})
			case errors.Is(err, failover.ErrUnknownOutcome):
				w.unknown = append(w.unknown, seq)
			default:
				w.errors++
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.halt)
	return w
}
