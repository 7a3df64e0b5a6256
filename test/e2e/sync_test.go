package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
