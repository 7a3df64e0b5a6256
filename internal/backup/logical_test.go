package backup_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

func TestLogicalBackupRestore(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r, _ := newRepo(t)
	p.Exec(t, `CREATE DATABASE app`)
	app := strings.Replace(p.ConnString(), "dbname=postgres", "dbname=app", 1)
	exec := func(db, sql string) {
		t.Helper()
		cmd := p.Command("psql", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %s: %v\n%s", sql, err, out)
		}
	}
	exec("app", `CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 30000) g`)
	exec("app", `CREATE INDEX ON items (v)`)

	bin := pgtest.BinDir()
	info, err := backup.CreateLogical(ctx, r, backup.LogicalOptions{DB: app, BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != backup.Logical || info.Database != "app" || info.Size == 0 {
		t.Fatalf("logical backup record: %+v", info)
	}
	p.Exec(t, `CREATE DATABASE app_copy`)
	copyDB := strings.Replace(p.ConnString(), "dbname=postgres", "dbname=app_copy", 1)
	if _, err := backup.RestoreLogical(ctx, r, backup.LogicalOptions{DB: copyDB, BinDir: bin, Backup: info.ID}); err != nil {
		t.Fatal(err)
	}
	hash := func(db string) string {
		cmd := p.Command("psql", "-Atd", db, "-c", `SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM items t`)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if d := cmp.Diff(hash("app"), hash("app_copy")); d != "" {
		t.Fatalf("restored database differs:\n%s", d)
	}

	// pg_dump fails: the error says why and no backup is recorded.
	bad := strings.Replace(p.ConnString(), "dbname=postgres", "dbname=nosuchdb", 1)
	if _, err := backup.CreateLogical(ctx, r, backup.LogicalOptions{DB: bad, BinDir: bin}); err == nil || !strings.Contains(err.Error(), "nosuchdb") {
		t.Fatalf("dump of a missing database: got %v, want an error naming it", err)
	}
	list, _ := backup.List(ctx, r)
	if len(list) != 1 {
		t.Fatalf("got %d backups after a failed dump, want 1", len(list))
	}
}

func TestStripPassword(t *testing.T) {
	for _, tc := range []struct{ name, in, dsn, pw string }{
		{"kv", "host=h password=s3cret user=u", "host=h user=u", "s3cret"},
		{"kv quoted", "host=h password='a b' user=u", "host=h user=u", "a b"},
		{"url", "postgres://u:s3cret@h:5432/db", "postgres://u@h:5432/db", "s3cret"},
		{"none", "host=h user=u", "host=h user=u", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, pw := backup.StripPassword(tc.in)
			if dsn != tc.dsn || pw != tc.pw {
				t.Fatalf("got %q, %q; want %q, %q", dsn, pw, tc.dsn, tc.pw)
			}
		})
	}
}
