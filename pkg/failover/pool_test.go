package failover_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pair starts a primary and a streaming standby with a table t.
func pair(t *testing.T) (primary, standby *pgtest.Instance) {
	primary = pgtest.Start(t, pgtest.Options{Name: "primary"})
	primary.Exec(t, "CREATE TABLE t (id bigint PRIMARY KEY, port int NOT NULL DEFAULT inet_server_port())")
	standby = pgtest.StartStandby(t, primary, pgtest.Options{})
	pgtest.WaitReplayed(t, standby, primary.CurrentLSN(t))
	return primary, standby
}

// hosts returns a multi-host connection string naming insts.
func hosts(insts ...*pgtest.Instance) string {
	var hs, ports []string
	for _, in := range insts {
		hs, ports = append(hs, "127.0.0.1"), append(ports, strconv.Itoa(in.Port))
	}
	return "host=" + strings.Join(hs, ",") + " port=" + strings.Join(ports, ",") + " user=postgres dbname=postgres sslmode=disable"
}

func open(t *testing.T, cfg failover.Config) *failover.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg.ConnString = "user=postgres dbname=postgres sslmode=disable"
	cfg.FailoverTimeout = 30 * time.Second
	p, err := failover.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func insert(p *failover.Pool, id int64) (port int, err error) {
	err = p.Write(context.Background(), func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "INSERT INTO t (id) VALUES ($1) RETURNING port", id).Scan(&port)
	})
	return port, err
}

func serverPort(t *testing.T, p *failover.Pool, read bool) int {
	t.Helper()
	var port int
	fn := func(tx pgx.Tx) error { return tx.QueryRow(t.Context(), "SELECT inet_server_port()").Scan(&port) }
	var err error
	if read {
		err = p.Read(t.Context(), fn)
	} else {
		err = p.Write(t.Context(), fn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestPoolFollowsPromotion: writes go to the primary and reads to the
// standby; while both claim to be primaries nobody is written to; after
// the old primary stops, writes land on the promoted standby.
func TestPoolFollowsPromotion(t *testing.T) {
	primary, standby := pair(t)
	p := open(t, failover.Config{Source: &failover.HostsSource{ConnString: hosts(primary, standby), Interval: 100 * time.Millisecond}})
	pgtest.Eventually(t, 30*time.Second, func() error {
		if tp := p.Topology(); tp.Primary == nil || len(tp.Replicas) != 1 {
			return fmt.Errorf("topology %+v", tp)
		}
		return nil
	})
	if got := serverPort(t, p, false); got != primary.Port {
		t.Fatalf("write went to port %d, want the primary's %d", got, primary.Port)
	}
	if got := serverPort(t, p, true); got != standby.Port {
		t.Fatalf("read went to port %d, want the standby's %d", got, standby.Port)
	}
	for i := range int64(10) {
		if _, err := insert(p, i); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.WaitReplayed(t, standby, primary.CurrentLSN(t))

	standby.Exec(t, "SELECT pg_promote()")
	pgtest.Eventually(t, 30*time.Second, func() error {
		if tp := p.Topology(); tp.Primary != nil {
			return fmt.Errorf("two servers claim to be primaries, yet the pool names %s", tp.Primary.Name)
		}
		return nil
	})
	primary.Stop(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range 5 {
		wg.Go(func() {
			var port int
			port, errs[i] = insert(p, int64(100+i))
			if errs[i] == nil && port != standby.Port {
				errs[i] = fmt.Errorf("write %d landed on port %d, not the new primary %d", i, port, standby.Port)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := standby.QueryInt(t, "SELECT count(*) FROM t"); n != 15 {
		t.Errorf("%d rows on the new primary, want 15", n)
	}
}

// TestPoolUnknownOutcome: a connection lost while COMMIT waits is
// reported as ErrUnknownOutcome and not retried; a commit the server
// refuses is returned as is.
func TestPoolUnknownOutcome(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{Name: "primary"})
	primary.Exec(t, "CREATE TABLE t (id bigint PRIMARY KEY, port int NOT NULL DEFAULT inet_server_port())")
	p := open(t, failover.Config{Source: &failover.HostsSource{ConnString: hosts(primary), Interval: 100 * time.Millisecond}})

	primary.Exec(t, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
	primary.Exec(t, "SELECT pg_reload_conf()")
	calls := 0
	done := make(chan error, 1)
	go func() {
		// Commits wait for the standby only once the checkpointer has read
		// the new setting, which the reload does not wait for: a commit
		// that did not wait came too early, and the next one is tried.
		for id := 1; ; id++ {
			calls = 0
			err := p.Write(context.Background(), func(tx pgx.Tx) error {
				calls++
				_, err := tx.Exec(context.Background(), "INSERT INTO t (id) VALUES ($1)", id)
				return err
			})
			if err != nil || id == 100 {
				done <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	pgtest.Eventually(t, 30*time.Second, func() error {
		if n := primary.QueryInt(t, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"); n != 1 {
			return errors.New("no commit waits for the standby yet")
		}
		return nil
	})
	if err := <-done; !errors.Is(err, failover.ErrUnknownOutcome) || calls != 1 {
		t.Fatalf("Write = %v after %d calls, want ErrUnknownOutcome after 1", err, calls)
	}
	primary.Exec(t, "ALTER SYSTEM RESET synchronous_standby_names")
	primary.Exec(t, "SELECT pg_reload_conf()")

	primary.Exec(t, "CREATE TABLE u (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)")
	err := p.Write(t.Context(), func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), "INSERT INTO u VALUES (1), (1)")
		return err
	})
	if err == nil || errors.Is(err, failover.ErrUnknownOutcome) {
		t.Errorf("a commit refused for a duplicate key: Write = %v, want the server's error", err)
	}
}

// chanSource is a Source fed by the test: a fault-free stand-in for the
// cluster that lets the test move the primary at a chosen moment.
type chanSource chan failover.Topology

func (c chanSource) Follow(ctx context.Context, update func(failover.Topology)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case t := <-c:
			update(t)
		}
	}
}

// twoServers starts two unrelated servers, each with table t, and a
// source whose first topology names a as the primary.
func twoServers(t *testing.T) (a, b *pgtest.Instance, src chanSource) {
	a = pgtest.Start(t, pgtest.Options{Name: "a"})
	b = pgtest.Start(t, pgtest.Options{Name: "b"})
	for _, in := range []*pgtest.Instance{a, b} {
		in.Exec(t, "CREATE TABLE t (id bigint PRIMARY KEY, port int NOT NULL DEFAULT inet_server_port())")
	}
	src = make(chanSource, 1)
	src <- failover.Topology{Term: 1, Primary: node(a)}
	return a, b, src
}

func node(in *pgtest.Instance) *failover.Node {
	return &failover.Node{Name: in.Name, Addr: fmt.Sprintf("127.0.0.1:%d", in.Port)}
}

// moveDuringWrite runs a Write that inserts a row into t and notes the
// server's port; on its first run the function then calls first. It
// checks that the function ran on a, then on b, and that only b kept the
// row.
func moveDuringWrite(t *testing.T, p *failover.Pool, a, b *pgtest.Instance, first func(pgx.Tx) error) {
	t.Helper()
	var ports []int
	err := p.Write(t.Context(), func(tx pgx.Tx) error {
		var port int
		if err := tx.QueryRow(t.Context(), "INSERT INTO t (id) VALUES (1) RETURNING port").Scan(&port); err != nil {
			return err
		}
		ports = append(ports, port)
		if len(ports) == 1 {
			return first(tx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 || ports[0] != a.Port || ports[1] != b.Port {
		t.Fatalf("fn ran on ports %v, want [%d %d]", ports, a.Port, b.Port)
	}
	if n := a.QueryInt(t, "SELECT count(*) FROM t"); n != 0 {
		t.Errorf("the old primary kept %d rows, want 0", n)
	}
	if n := b.QueryInt(t, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("the new primary has %d rows, want 1", n)
	}
}

// TestPoolTermChangeBeforeCommit: when the topology names another primary
// while fn runs, the transaction is rolled back and run on the new one.
func TestPoolTermChangeBeforeCommit(t *testing.T) {
	a, b, src := twoServers(t)
	p := open(t, failover.Config{Source: src})
	moveDuringWrite(t, p, a, b, func(pgx.Tx) error {
		src <- failover.Topology{Term: 2, Primary: node(b)}
		pgtest.Eventually(t, 10*time.Second, func() error {
			if p.Topology().Term != 2 {
				return errors.New("the pool has not seen term 2 yet")
			}
			return nil
		})
		return nil
	})
}

// TestPoolCutsCallsOnReplacedPrimary: a call stuck on the primary (here a
// query that would run for an hour, as on a hung or cut-off server) is cut
// off when the topology names another primary, and runs again there. A
// topology that names no primary in between cuts nothing.
func TestPoolCutsCallsOnReplacedPrimary(t *testing.T) {
	a, b, src := twoServers(t)
	p := open(t, failover.Config{Source: src, FailoverTimeout: time.Minute})
	var cut error
	const sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)'"
	moveDuringWrite(t, p, a, b, func(tx pgx.Tx) error {
		go func() {
			// Once the query below is under way (no t here: not the
			// test's goroutine; a failure shows as the query's error).
			if conn, err := pgx.Connect(context.Background(), a.ConnString()); err == nil {
				for n := 0; n == 0 && conn.QueryRow(context.Background(), sleeping).Scan(&n) == nil; {
					time.Sleep(10 * time.Millisecond)
				}
				conn.Close(context.Background())
			}
			src <- failover.Topology{Term: 2} // no primary: the call goes on
			src <- failover.Topology{Term: 3, Primary: node(b)}
		}()
		// Without the cut, statement_timeout would end it.
		if _, err := tx.Exec(t.Context(), "SET LOCAL statement_timeout = '20s'"); err != nil {
			return err
		}
		_, cut = tx.Exec(t.Context(), "SELECT pg_sleep(3600)")
		return cut
	})
	if pgErr := (*pgconn.PgError)(nil); cut == nil || errors.As(cut, &pgErr) {
		t.Errorf("the query on the old primary ended with %v, want its connection cut", cut)
	}
	// The server ends the query because pgx sends a cancel request when
	// its connection is closed under it; the library does not promise it.
	pgtest.Eventually(t, 10*time.Second, func() error {
		if n := a.QueryInt(t, sleeping); n != 0 {
			return fmt.Errorf("the old primary still runs %d cut-off queries", n)
		}
		return nil
	})
}

// TestPoolKeepsCallsWhenThePrimaryStays: a topology without a primary (a
// failed probe, say) then the same primary again cuts no call in flight.
// (The transaction still runs again: its pool was retired, and Write
// commits only on the current one.)
func TestPoolKeepsCallsWhenThePrimaryStays(t *testing.T) {
	a, _, src := twoServers(t)
	p := open(t, failover.Config{Source: src})
	runs := 0
	var after error
	err := p.Write(t.Context(), func(tx pgx.Tx) error {
		runs++
		if _, err := tx.Exec(t.Context(), "INSERT INTO t (id) VALUES (1)"); err != nil || runs > 1 {
			return err
		}
		src <- failover.Topology{Term: 1}
		src <- failover.Topology{Term: 1, Primary: node(a)}
		pgtest.Eventually(t, 10*time.Second, func() error {
			if p.Topology().Primary == nil {
				return errors.New("the pool has not seen the primary again")
			}
			return nil
		})
		// In flight long enough for a cut, which lands in a goroutine of
		// its own, to break it.
		_, after = tx.Exec(t.Context(), "SELECT pg_sleep(0.5)")
		return after
	})
	if err != nil {
		t.Fatalf("Write = %v", err)
	}
	if after != nil {
		t.Errorf("a query after the primary came back failed: %v", after)
	}
	if n := a.QueryInt(t, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("the primary has %d rows, want 1", n)
	}
}
