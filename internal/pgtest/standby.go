package pgtest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// replayTimeout bounds WaitReplayed.
const replayTimeout = 60 * time.Second

// StartStandby clones primary with pg_basebackup (-R: standby.signal and
// primary_conninfo, WAL streamed) into a new data directory, applies
// opts.Conf and starts it as a hot standby streaming from primary. It returns
// once the standby accepts read-only connections; cleanup as for Start.
func StartStandby(t testing.TB, primary *Instance, opts Options) *Instance {
	t.Helper()
	Require(t)
	opts = opts.withDefaults("standby")
	data := newDataDir(t, opts.Name)
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := chownOwner(data); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cmd := primary.Command("pg_basebackup", "-D", data, "-R", "-X", "stream",
		"-c", "fast", "--no-sync", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port))
	cmd.Dir = "/"
	AsOwner(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: %s: %v\n%s", cmd, err, out)
	}
	if err := appendConf(data, opts.Conf); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return launch(t, data, opts.Name, nil)
}

// CurrentLSN returns the primary's current WAL write position, as text
// ("0/3000148").
func (i *Instance) CurrentLSN(t testing.TB) string {
	t.Helper()
	return i.QueryString(t, "SELECT pg_current_wal_lsn()::text")
}

// WaitReplayed waits up to a minute until standby has replayed WAL up to
// lsn (as returned by CurrentLSN), and fails the test otherwise.
func WaitReplayed(t testing.TB, standby *Instance, lsn string) {
	t.Helper()
	Eventually(t, replayTimeout, func() error {
		var replayed string
		err := standby.queryRow("SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')", nil, &replayed)
		if err != nil {
			return err
		}
		var done bool
		err = standby.queryRow("SELECT $1::pg_lsn >= $2::pg_lsn", []any{replayed, lsn}, &done)
		if err != nil || done {
			return err
		}
		return fmt.Errorf("%s replayed %s, want %s", standby.Name, replayed, lsn)
	})
}
