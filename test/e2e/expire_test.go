package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

// TestExpire takes full, diff and incr backups with WAL archiving, expires
// with --keep-full 1 --keep-diff 1, and checks that exactly the expected
// backups go, that every kept backup still restores its own content, that
// the repository shrinks and that WAL before the oldest kept backup goes.
func TestExpire(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	p.Exec(t, "CREATE TABLE w (id int, pad text)")
	types := []string{"full", "incr", "diff", "incr", "full", "incr", "diff", "incr", "diff", "incr"}
	// The second full and what follows it stay; of its diffs only the
	// newest, and the incr after it.
	wantKept := []bool{false, false, false, false, true, true, false, false, true, true}
	var ids []string
	sums := map[string]int64{}
	for i, typ := range types {
		p.Exec(t, "INSERT INTO w SELECT g, repeat(md5(g::text), 20) FROM generate_series($1::int * 20000, $1::int * 20000 + 19999) g", i)
		switchAndWait(t, p)
		b := a.backupJSON(p, typ)
		id := b["id"].(string)
		ids = append(ids, id)
		sums[id] = p.QueryInt(t, "SELECT sum(id) FROM w")
	}
	repoDir := strings.TrimPrefix(a.repo, "file://")
	before := duBytes(t, repoDir)

	var dry struct {
		Backups []struct {
			ID   string `json:"id"`
			Keep bool   `json:"keep"`
		}
		Removed int `json:"backups_removed"`
	}
	if err := json.Unmarshal([]byte(a.ok("expire", "--keep-full", "1", "--keep-diff", "1", "-o", "json")), &dry); err != nil {
		t.Fatal(err)
	}
	for i, b := range dry.Backups {
		if b.ID != ids[i] || b.Keep != wantKept[i] {
			t.Fatalf("expire verdict %d: %s keep=%v, want %s keep=%v", i, b.ID, b.Keep, ids[i], wantKept[i])
		}
	}
	if after := duBytes(t, repoDir); after != before {
		t.Fatalf("a dry run changed the repository: %d -> %d bytes", before, after)
	}
	a.ok("expire", "--keep-full", "1", "--keep-diff", "1", "--apply")
	after := duBytes(t, repoDir)
	t.Logf("repository %d -> %d bytes", before, after)
	if after >= before {
		t.Errorf("the repository did not shrink: %d -> %d bytes", before, after)
	}
	var list []map[string]any
	json.Unmarshal([]byte(a.ok("backup", "list", "-o", "json")), &list)
	var left []string
	for _, b := range list {
		left = append(left, b["id"].(string))
	}
	var want []string
	for i, id := range ids {
		if wantKept[i] {
			want = append(want, id)
		}
	}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Fatalf("backups left %v, want %v", left, want)
	}
	a.ok("repo", "verify", "--read-data")
	a.ok("status") // no gaps in the WAL that is left
	for _, id := range want {
		dir := filepath.Join(a.dir, "r-"+id)
		a.ok("restore", "--backup", id, "--pgdata", dir)
		s := pgtest.StartDataDir(t, dir, pgtest.Options{Name: "restored", Conf: map[string]string{"archive_mode": "off"}})
		if got := s.QueryInt(t, "SELECT sum(id) FROM w"); got != sums[id] {
			t.Errorf("backup %s restored sum %d, want %d", id, got, sums[id])
		}
		s.Stop(t)
		os.RemoveAll(dir)
	}
}

func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExpireWhileABackupRuns: with a writer holding the repository (a
// backup running), expire --apply is refused (exit 3) and removes nothing.
func TestExpireWhileABackupRuns(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	e.ok("repo", "init")
	e.backupJSON(p, "full")
	e.backupJSON(p, "full")
	r, err := repo.Open(ctx, fsstore.New(strings.TrimPrefix(e.repo, "file://")), []byte("correct horse"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := r.Lock(ctx, "backup", true) // a backup, alive: this test process
	if err != nil {
		t.Fatal(err)
	}
	if res := e.run("expire", "--keep-full", "1", "--apply"); res.code != 3 || !strings.Contains(res.stderr, "locked") {
		t.Fatalf("expire beside a backup: exit %d, %q; want exit 3", res.code, res.stderr)
	}
	var list []any
	json.Unmarshal([]byte(e.ok("backup", "list", "-o", "json")), &list)
	if len(list) != 2 {
		t.Fatalf("expire beside a backup removed backups: %d left", len(list))
	}
	lock.Unlock(ctx)
	e.ok("expire", "--keep-full", "1", "--apply")
	json.Unmarshal([]byte(e.ok("backup", "list", "-o", "json")), &list)
	if len(list) != 1 {
		t.Fatalf("after the backup: %d backups, want 1", len(list))
	}
}
