package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var fastKDF = repo.KDFParams{N: 1 << 10, R: 8, P: 1}

func newRepo(t *testing.T) (*repo.Repo, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := repo.Init(context.Background(), fsstore.New(dir), []byte("pw"), repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func take(t *testing.T, r *repo.Repo, p *pgtest.Instance, typ backup.Type) *backup.Info {
	t.Helper()
	info, err := backup.Create(context.Background(), r, backup.CreateOptions{Type: typ, PGData: p.DataDir, DB: p.ConnString()})
	if err != nil {
		t.Fatalf("%s backup: %v", typ, err)
	}
	t.Logf("%s backup %s: size %d, new %d, stored %d", typ, info.ID, info.Size, info.NewBytes, info.StoredSize)
	return info
}

// restoreAndStart restores a backup into a fresh directory, starts it and
// returns the running server.
func restoreAndStart(t *testing.T, r *repo.Repo, id string) *pgtest.Instance {
	t.Helper()
	target := filepath.Join(pgtest.Dir(t), "data")
	if _, err := backup.Restore(context.Background(), r, backup.RestoreOptions{Backup: id, PGData: target}); err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
	return pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored-" + id})
}

func TestFullIncrDiffRestore(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, _ := newRepo(t)
	p.Exec(t, `CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
		INSERT INTO accounts SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 20000) g;
		CREATE TABLE doomed (x int); INSERT INTO doomed SELECT generate_series(1, 1000);
		CREATE TABLE churn (id int, v text); INSERT INTO churn SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g;
		CREATE UNLOGGED TABLE scratch (x int); INSERT INTO scratch VALUES (1);`)
	full := take(t, r, p, backup.Full)
	want := map[string]map[string]string{full.ID: p.TableHashes(t)}

	p.Exec(t, `INSERT INTO accounts SELECT g, md5(g::text), 0 FROM generate_series(20001, 21000) g;
		UPDATE accounts SET balance = balance + 1 WHERE id % 7 = 0;
		DELETE FROM accounts WHERE id % 11 = 0;
		CREATE TABLE fresh AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g;
		DROP TABLE doomed;
		DELETE FROM churn WHERE id % 2 = 0;`)
	p.Exec(t, `VACUUM FULL churn`)
	incr := take(t, r, p, backup.Incremental)
	want[incr.ID] = p.TableHashes(t)

	p.Exec(t, `UPDATE accounts SET owner = 'changed' WHERE id BETWEEN 100 AND 200;
		INSERT INTO fresh SELECT g, 'late' FROM generate_series(3001, 4000) g;`)
	diff := take(t, r, p, backup.Differential)
	want[diff.ID] = p.TableHashes(t)

	if incr.Base != full.ID || diff.Base != full.ID {
		t.Fatalf("bases: incr %q, diff %q, want both %q", incr.Base, diff.Base, full.ID)
	}
	for _, b := range []*backup.Info{full, incr, diff} {
		s := restoreAndStart(t, r, b.ID)
		got := s.TableHashes(t)
		delete(want[b.ID], "public.scratch") // unlogged: restored empty, by design
		delete(got, "public.scratch")
		if d := cmp.Diff(want[b.ID], got); d != "" {
			t.Errorf("backup %s (%s) restored with different content (-want +got):\n%s", b.ID, b.Type, d)
		}
		if n := s.QueryInt(t, "SELECT count(*) FROM scratch"); n != 0 {
			t.Errorf("unlogged table restored with %d rows, want 0", n)
		}
		s.Stop(t)
	}
}

func TestIncrementalStoresChangedPagesOnly(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, _ := newRepo(t)
	// About 60 MB of rows that compress like real tables.
	p.Exec(t, `CREATE TABLE big (id int PRIMARY KEY, a text, b float8, c timestamptz);
		INSERT INTO big SELECT g, md5(random()::text) || md5(g::text), random(), now() - random() * interval '1 year'
		FROM generate_series(1, 500000) g;`)
	// A table nobody touches, last written an hour ago: an incremental
	// must not read it.
	p.Exec(t, `CREATE TABLE cold AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g; CHECKPOINT`)
	cold := filepath.Join(p.DataDir, p.QueryString(t, "SELECT pg_relation_filepath('cold')"))
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(cold, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	coldSize := p.QueryInt(t, "SELECT pg_relation_size('cold')")
	full := take(t, r, p, backup.Full)
	p.Exec(t, `UPDATE big SET b = b + 1 WHERE id <= 5000`) // 1% of the rows
	incr := take(t, r, p, backup.Incremental)
	if limit := full.NewBytes / 10; incr.NewBytes >= limit {
		t.Fatalf("incremental stored %d bytes, want under 10%% of the full's %d", incr.NewBytes, full.NewBytes)
	}
	if incr.ReadBytes > incr.Size-coldSize {
		t.Fatalf("incremental read %d of %d bytes: it re-read the unchanged table (%d bytes)", incr.ReadBytes, incr.Size, coldSize)
	}
	want := p.TableHashes(t)
	s := restoreAndStart(t, r, incr.ID)
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored incremental differs:\n%s", d)
	}
}

func TestCorruptionIsReportedAndRestoreLeavesNothing(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, dir := newRepo(t)
	p.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g`)
	info := take(t, r, p, backup.Full)

	// Flip one byte in the middle of the largest pack.
	var biggest string
	var size int64
	filepath.Walk(filepath.Join(dir, "data"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			biggest, size = path, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(biggest, b, 0o600); err != nil {
		t.Fatal(err)
	}

	r, err = repo.Open(ctx, fsstore.New(dir), []byte("pw"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := backup.Verify(ctx, r, true, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("verify --read-data found nothing wrong with a flipped byte")
	}
	named := false
	for _, pr := range rep.Problems {
		t.Logf("problem: %+v", pr)
		if pr.Backup == info.ID && pr.File != "" {
			named = true
		}
	}
	if !named {
		t.Fatalf("no problem names backup %s and a file: %+v", info.ID, rep.Problems)
	}

	target := filepath.Join(pgtest.Dir(t), "data")
	_, err = backup.Restore(ctx, r, backup.RestoreOptions{Backup: info.ID, PGData: target})
	if !repo.IsCorrupt(err) {
		t.Fatalf("restore from a damaged repository: got %v, want a corruption error", err)
	}
	if _, err := os.Stat(filepath.Join(target, "global", "pg_control")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed restore left global/pg_control behind (stat: %v)", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Fatalf("failed restore left %d entries in the target", len(entries))
	}
}

func TestDeltaRestore(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, _ := newRepo(t)
	p.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g`)
	first := take(t, r, p, backup.Full)
	p.Exec(t, `UPDATE t SET v = 'x' WHERE id < 100; CREATE TABLE u (x int); INSERT INTO u VALUES (7)`)
	second := take(t, r, p, backup.Incremental)
	want := p.TableHashes(t)

	target := filepath.Join(pgtest.Dir(t), "data")
	if _, err := backup.Restore(ctx, r, backup.RestoreOptions{Backup: first.ID, PGData: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Restore(ctx, r, backup.RestoreOptions{Backup: second.ID, PGData: target}); err == nil {
		t.Fatal("restore into a non-empty directory without --delta succeeded")
	}
	stray := filepath.Join(target, "base", "stray-file")
	os.WriteFile(stray, []byte("x"), 0o600)
	if _, err := backup.Restore(ctx, r, backup.RestoreOptions{Backup: second.ID, PGData: target, Delta: true}); err != nil {
		t.Fatalf("delta restore: %v", err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("delta restore kept a file the backup does not have")
	}
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "delta"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("delta-restored data differs:\n%s", d)
	}
}

func TestTablespaces(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, _ := newRepo(t)
	spc := pgtest.Dir(t)
	p.Exec(t, "CREATE TABLESPACE extra LOCATION '"+spc+"'")
	p.Exec(t, `CREATE TABLE far TABLESPACE extra AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g`)
	full := take(t, r, p, backup.Full)
	p.Exec(t, `UPDATE far SET v = 'new' WHERE id < 50`)
	incr := take(t, r, p, backup.Incremental)
	want := p.TableHashes(t)
	oid := p.QueryString(t, "SELECT oid::text FROM pg_tablespace WHERE spcname = 'extra'")

	moved := filepath.Join(pgtest.Dir(t), "spc")
	target := filepath.Join(pgtest.Dir(t), "data")
	_, err := backup.Restore(ctx, r, backup.RestoreOptions{Backup: incr.ID, PGData: target, TablespaceMap: map[string]string{oid: moved}})
	if err != nil {
		t.Fatal(err)
	}
	if link, _ := os.Readlink(filepath.Join(target, "pg_tblspc", oid)); link != moved {
		t.Fatalf("tablespace link points at %q, want %q", link, moved)
	}
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored data differs:\n%s", d)
	}
	if link, _ := os.Readlink(filepath.Join(target, "pg_tblspc", oid)); link != moved {
		t.Fatalf("after start, tablespace link points at %q, want %q", link, moved)
	}
	_ = full
}
