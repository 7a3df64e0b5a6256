package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// TestSyncThenRestoreFromTheCopy backs up with WAL archiving into one
// repository, syncs it into an empty location, deletes the original and
// restores --latest from the copy alone. A second sync of a synced pair
// copies nothing.
func TestSyncThenRestoreFromTheCopy(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	p.Exec(t, "CREATE TABLE w (id int)")
	a.backupJSON(p, "full")
	p.Exec(t, "INSERT INTO w SELECT generate_series(1, 5000)")
	a.backupJSON(p, "incr")
	p.Exec(t, "INSERT INTO w SELECT generate_series(5001, 6000)")
	switchAndWait(t, p)
	want := p.QueryInt(t, "SELECT sum(id) FROM w")

	copyURL := "file://" + filepath.Join(a.dir, "copy")
	var st struct {
		Copied  int `json:"objects_copied"`
		Present int `json:"objects_present"`
	}
	json.Unmarshal([]byte(a.ok("repo", "sync", "--from", a.repo, "--to", copyURL, "-o", "json")), &st)
	if st.Copied == 0 {
		t.Fatalf("first sync copied nothing: %+v", st)
	}
	json.Unmarshal([]byte(a.ok("repo", "sync", "--from", a.repo, "--to", copyURL, "-o", "json")), &st)
	if st.Copied != 0 || st.Present == 0 {
		t.Fatalf("sync of a synced pair: %+v, want nothing copied", st)
	}
	p.Stop(t)
	if err := os.RemoveAll(strings.TrimPrefix(a.repo, "file://")); err != nil {
		t.Fatal(err)
	}
	a.repo = copyURL
	a.ok("repo", "verify", "--read-data")
	a.ok("status")
	a.restoreLatestSum(t, want)
}

// TestBackupToTwoRepositories reads the database once and writes the
// backup to a repository and to its copy; the copy restores on its own.
func TestBackupToTwoRepositories(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	e := newEnv(t)
	e.ok("repo", "init")
	p.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
	copyURL := "file://" + filepath.Join(t.TempDir(), "copy")
	e.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString(), "--also", copyURL)
	p.Exec(t, "UPDATE t SET v = 'changed' WHERE id % 7 = 0")
	b := e.backupJSON(p, "incr") // into the first repository only
	e.ok("backup", "create", "--type", "incr", "--pgdata", p.DataDir, "--db", p.ConnString(), "--also", copyURL)
	want := p.TableHashes(t)

	c := *e
	c.repo = copyURL
	var list []map[string]any
	json.Unmarshal([]byte(c.ok("backup", "list", "-o", "json")), &list)
	if len(list) != 3 || list[1]["id"] != b["id"] {
		t.Fatalf("the copy holds %d backups, want all 3 (the one taken without --also synced before the next)", len(list))
	}
	c.ok("repo", "verify", "--read-data")
	os.RemoveAll(strings.TrimPrefix(e.repo, "file://"))
	target := filepath.Join(pgtest.Dir(t), "data")
	c.ok("restore", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored from the copy:\n%s", d)
	}
}
