package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

func TestBackupRestoreWithPlan(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	p.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g`)
	planFile := filepath.Join(t.TempDir(), "bulwark.yaml")
	os.WriteFile(planFile, []byte(`version: 1
service:
  name: payments
  tier: 1
  rto: 5m
  rpo: 1m
postgres:
  pgdata: `+p.DataDir+`
  db: "`+p.ConnString()+`"
repositories:
  - name: local
    url: `+e.repo+`
`), 0o600)
	e.vars = append(e.vars, "BULWARK_REPO=") // the plan names the repository
	e.ok("repo", "init", "--plan", planFile)
	e.ok("backup", "create", "--plan", planFile, "--type", "full")
	p.Exec(t, `INSERT INTO t SELECT g, 'more' FROM generate_series(10001, 12000) g`)
	e.ok("backup", "create", "--plan", planFile, "--type", "incr")
	want := p.TableHashes(t)

	var list []map[string]any
	if err := json.Unmarshal([]byte(e.ok("backup", "list", "--plan", planFile, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("backup list: got %d backups, want 2", len(list))
	}
	for _, f := range []string{"id", "type", "base", "timeline", "start_lsn", "stop_lsn", "start_time", "stop_time", "size", "stored_size", "new_bytes"} {
		if _, ok := list[1][f]; !ok {
			t.Errorf("backup list -o json lacks field %q", f)
		}
	}
	if list[1]["base"] != list[0]["id"] || list[1]["type"] != "incr" {
		t.Errorf("second backup: type %v base %v, want incr on %v", list[1]["type"], list[1]["base"], list[0]["id"])
	}
	e.ok("backup", "info", "--plan", planFile, "latest")

	target := filepath.Join(pgtest.Dir(t), "data")
	e.ok("restore", "--plan", planFile, "--backup", "latest", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored data differs:\n%s", d)
	}
}

func TestWrongPassphrase(t *testing.T) {
	e := newEnv(t)
	e.ok("repo", "init")
	e.vars = []string{"BULWARK_REPO_PASSWORD=wrong"}
	r := e.run("backup", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "wrong repository passphrase") {
		t.Fatalf("wrong passphrase: exit %d, stderr %q; want a clear error", r.code, r.stderr)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("correct horse\n"), 0o600)
	e.vars = nil
	e.ok("backup", "list", "--password-file", pwFile)
}

func TestBadPlanIsAUsageError(t *testing.T) {
	e := newEnv(t)
	planFile := filepath.Join(t.TempDir(), "bulwark.yaml")
	os.WriteFile(planFile, []byte("version: 1\nservice:\n  name: x\n  tier: 9\n  rto: soon\n  rpo: 0\n  colour: red\n"), 0o600)
	r := e.run("backup", "list", "--plan", planFile)
	if r.code != 2 {
		t.Fatalf("bad plan: exit %d, want 2", r.code)
	}
	for _, want := range []string{"bulwark.yaml:4", "service.tier", "service.rto", "colour"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("plan error does not mention %q:\n%s", want, r.stderr)
		}
	}
}

func TestSecondWriterIsRefused(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	e.ok("repo", "init")
	r, err := repo.Open(ctx, fsstore.New(strings.TrimPrefix(e.repo, "file://")), []byte("correct horse"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := r.Lock(ctx, "backup", true) // another writer, alive: this test process
	if err != nil {
		t.Fatal(err)
	}
	res := e.run("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString())
	if res.code != 3 || !strings.Contains(res.stderr, "locked") {
		t.Fatalf("backup under another writer's lock: exit %d, %q; want exit 3 and a lock message", res.code, res.stderr)
	}
	lock.Unlock(ctx)
	e.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString())
}

func TestKillDuringBackup(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	p.Pgbench(t, "-i", "-q", "-s", "10")
	// Random text compresses about 2:1: some 100 MiB, six or more packs, so
	// that a kill after the first two lands well before the end.
	p.Exec(t, `CREATE TABLE noise AS SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 1500000) g`)
	e.ok("repo", "init")
	dataDir := filepath.Join(strings.TrimPrefix(e.repo, "file://"), "data")
	for _, wait := range []int{1, 2} { // kill after this attempt's first pack, then after two
		before := packs(dataDir) // left by the previous, killed attempt
		cmd := e.command("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString(), "--jobs", "1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgtest.Eventually(t, time.Minute, func() error {
			if packs(dataDir)-before < wait {
				return os.ErrNotExist
			}
			return nil
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		var list []any
		json.Unmarshal([]byte(e.ok("backup", "list", "-o", "json")), &list)
		if len(list) != 0 {
			t.Fatalf("a killed backup is listed: %v", list)
		}
		e.ok("repo", "verify", "--read-data")
	}
	e.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString())
	e.ok("repo", "verify", "--read-data")
	want := p.TableHashes(t)
	target := filepath.Join(pgtest.Dir(t), "data")
	e.ok("restore", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored data differs:\n%s", d)
	}
}

func packs(dir string) int {
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".tmp-") {
			n++
		}
		return nil
	})
	return n
}

func TestBackupWhilePgbenchWrites(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	p.Pgbench(t, "-i", "-q", "-s", "5")
	e.ok("repo", "init")
	bench := p.Command("pgbench", "-c", "2", "-T", "600", "--no-vacuum")
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bench.Process.Kill(); bench.Wait() }()
	pgtest.Eventually(t, time.Minute, func() error {
		if p.QueryInt(t, "SELECT count(*) FROM pgbench_history") < 100 {
			return os.ErrNotExist
		}
		return nil
	})
	before := p.QueryInt(t, "SELECT count(*) FROM pgbench_history")
	e.backupJSON(p, "full")
	bench.Process.Kill()
	bench.Wait()

	target := filepath.Join(pgtest.Dir(t), "data")
	e.ok("restore", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	check := s.Command("pg_amcheck", "--install-missing", "--heapallindexed", "-d", "postgres")
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("pg_amcheck on the restored server: %v\n%s", err, out)
	}
	// pgbench moves the same delta into an account, a teller and a branch
	// in one transaction: the sums agree in any consistent state.
	a := s.QueryInt(t, "SELECT sum(abalance) FROM pgbench_accounts")
	tl := s.QueryInt(t, "SELECT sum(tbalance) FROM pgbench_tellers")
	b := s.QueryInt(t, "SELECT sum(bbalance) FROM pgbench_branches")
	h := s.QueryInt(t, "SELECT coalesce(sum(delta), 0) FROM pgbench_history")
	if a != tl || tl != b || b != h {
		t.Fatalf("restored balances disagree: accounts %d, tellers %d, branches %d, history %d", a, tl, b, h)
	}
	if got := s.QueryInt(t, "SELECT count(*) FROM pgbench_history"); got < before {
		t.Fatalf("restored history has %d rows, fewer than the %d committed before the backup started", got, before)
	}
}

// TestKeyRotation adds a passphrase, removes the old one: a restore works
// with the new passphrase and fails with the old one.
func TestKeyRotation(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	e.ok("repo", "init") // passphrase "correct horse"
	e.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString())
	want := p.TableHashes(t)
	newPw := filepath.Join(t.TempDir(), "new")
	os.WriteFile(newPw, []byte("battery staple\n"), 0o600)
	e.ok("repo", "key", "add", "--new-password-file", newPw)
	var keys []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	json.Unmarshal([]byte(e.ok("repo", "key", "list", "-o", "json")), &keys)
	if len(keys) != 2 {
		t.Fatalf("keys after add: %+v", keys)
	}
	old := keys[0].ID // the oldest: the passphrase of init
	e.vars = []string{"BULWARK_REPO_PASSWORD_FILE=" + newPw}
	e.ok("repo", "key", "remove", old[:8])
	if r := e.run("repo", "key", "remove", keys[1].ID); r.code == 0 {
		t.Fatal("the last key was removed")
	}
	target := filepath.Join(pgtest.Dir(t), "data")
	e.vars = []string{"BULWARK_REPO_PASSWORD=correct horse"}
	if r := e.run("restore", "--pgdata", target); r.code == 0 || !strings.Contains(r.stderr, "wrong repository passphrase") {
		t.Fatalf("restore with the removed passphrase: exit %d %q", r.code, r.stderr)
	}
	e.vars = []string{"BULWARK_REPO_PASSWORD_FILE=" + newPw}
	e.ok("restore", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored data differs:\n%s", d)
	}
}
