package pgtest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCrashRestart writes, kills the postmaster, restarts on the same data
// directory and checks that every committed row survived crash recovery.
func TestCrashRestart(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	p.Exec(t, "CREATE SCHEMA app; CREATE TABLE app.notes (id int PRIMARY KEY, body text)")
	p.Exec(t, "INSERT INTO app.notes SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	p.Exec(t, "CREATE TABLE empty (x int)")
	p.Pgbench(t, "-i", "-s", "1", "-q")
	p.Pgbench(t, "-t", "200", "-c", "2")
	before := p.TableHashes(t)
	for _, name := range []string{"app.notes", "public.empty", "public.pgbench_accounts", "public.pgbench_history"} {
		if before[name] == "" {
			t.Errorf("TableHashes has no %s: got %v", name, before)
		}
	}

	p.Kill(t)
	r := pgtest.StartDataDir(t, p.DataDir, pgtest.Options{Name: "recovered"})

	if diff := cmp.Diff(before, r.TableHashes(t)); diff != "" {
		t.Errorf("table hashes after crash recovery (-before +after):\n%s", diff)
	}
	if got := r.QueryInt(t, "SELECT count(*) FROM app.notes"); got != 1000 {
		t.Errorf("app.notes rows: got %d, want 1000", got)
	}
	if got := r.QueryInt(t, "SELECT count(*) FROM pgbench_history"); got != 400 {
		t.Errorf("pgbench_history rows: got %d, want 400", got)
	}
}

// TestTableHashesDetectChange checks that a one-row update changes the hash.
func TestTableHashesDetectChange(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{})
	p.Exec(t, "CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	before := p.TableHashes(t)
	p.Exec(t, "UPDATE t SET v = $1 WHERE id = $2", "c", 2)
	after := p.TableHashes(t)
	if before["public.t"] == after["public.t"] {
		t.Errorf("hash of public.t unchanged after an update: %s", after["public.t"])
	}
	if got := p.QueryInt(t, "SELECT count(*) FROM t"); got != 2 {
		t.Errorf("rows: got %d, want 2", got)
	}
}

// TestConfAndStop checks Options.Conf, the data checksums of the template and
// a clean restart after Stop.
func TestConfAndStop(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Conf: map[string]string{
		"application_name": "it's quoted",
		"work_mem":         "'8MB'",
	}})
	for sql, want := range map[string]string{
		"SHOW data_checksums":   "on",
		"SHOW fsync":            "off",
		"SHOW wal_level":        "replica",
		"SHOW work_mem":         "8MB",
		"SHOW application_name": "it's quoted",
	} {
		if got := p.QueryString(t, sql); got != want {
			t.Errorf("%s: got %q, want %q", sql, got, want)
		}
	}
	p.Exec(t, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
	p.Stop(t)
	r := pgtest.StartDataDir(t, p.DataDir, pgtest.Options{Conf: map[string]string{"work_mem": "16MB"}})
	if got := r.QueryString(t, "SHOW work_mem"); got != "16MB" {
		t.Errorf("work_mem after restart: got %q, want 16MB", got)
	}
	if got := r.QueryInt(t, "SELECT x FROM kept"); got != 7 {
		t.Errorf("kept: got %d, want 7", got)
	}
}

// TestStandby checks streaming replication between two instances.
func TestStandby(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	s := pgtest.StartStandby(t, p, pgtest.Options{})
	p.Exec(t, "CREATE TABLE r (x int); INSERT INTO r SELECT generate_series(1, 100)")
	pgtest.WaitReplayed(t, s, p.CurrentLSN(t))
	if diff := cmp.Diff(p.TableHashes(t), s.TableHashes(t)); diff != "" {
		t.Errorf("standby differs from primary (-primary +standby):\n%s", diff)
	}
	if got := s.QueryInt(t, "SELECT pg_is_in_recovery()::int"); got != 1 {
		t.Errorf("standby pg_is_in_recovery: got %d, want 1", got)
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	pgtest.Eventually(t, 5*time.Second, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("calls: got %d, want 3", calls)
	}
}
