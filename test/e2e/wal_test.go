package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// archiveEnv is a repository that the server's OS user owns, with its
// passphrase in a file, as archive_command and restore_command need.
type archiveEnv struct {
	*env
	dir    string
	pwFile string
	// keyFile opens the repository too: archive_command uses it, as the
	// docs advise (no scrypt per segment).
	keyFile string
}

func newArchiveEnv(t *testing.T) *archiveEnv {
	dir := pgtest.Dir(t)
	pw := filepath.Join(dir, "passphrase")
	pgtest.WriteFile(t, pw, []byte("correct horse\n"))
	e := &env{t: t, repo: "file://" + filepath.Join(dir, "repo"), vars: []string{"BULWARK_REPO_PASSWORD_FILE=" + pw}, owner: true}
	e.ok("repo", "init")
	key := filepath.Join(dir, "archive.key")
	e.ok("repo", "key", "add", "--new-key-file", key)
	return &archiveEnv{env: e, dir: dir, pwFile: pw, keyFile: key}
}

// conf archives to the repository with bulwark wal push.
func (a *archiveEnv) conf(extra ...string) map[string]string {
	c := map[string]string{
		"archive_mode":           "on",
		"archive_command":        fmt.Sprintf("%s wal push --repo %s --password-file %s %%p", binary, a.repo, a.keyFile),
		"track_commit_timestamp": "on",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i]] = extra[i+1]
	}
	return c
}

// switchAndWait ends the current segment and waits until it is archived.
func switchAndWait(t *testing.T, p *pgtest.Instance) string {
	t.Helper()
	seg := p.QueryString(t, "SELECT pg_walfile_name(pg_switch_wal())")
	pgtest.Eventually(t, time.Minute, func() error {
		last := p.QueryString(t, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
		if len(last) < 24 || last[:24] < seg {
			return fmt.Errorf("archived up to %q, waiting for %s", last, seg)
		}
		return nil
	})
	return seg
}

// restoreLatestSum restores --latest into a new directory, starts it and
// checks that the rows of table w sum to want. It returns the directory.
func (a *archiveEnv) restoreLatestSum(t *testing.T, want int64) string {
	t.Helper()
	dir := filepath.Join(a.dir, "restored")
	a.ok("restore", "--pgdata", dir, "--latest")
	if got := startRecovered(t, dir).QueryInt(t, "SELECT sum(id) FROM w"); got != want {
		t.Fatalf("restored sum %d, want %d", got, want)
	}
	return dir
}

// startRecovered starts a restored data directory (not archiving) and
// waits until recovery has ended.
func startRecovered(t *testing.T, dir string) *pgtest.Instance {
	t.Helper()
	s := pgtest.StartDataDir(t, dir, pgtest.Options{Name: "restored", Conf: map[string]string{"archive_mode": "off"}})
	pgtest.Eventually(t, 2*time.Minute, func() error {
		if s.QueryInt(t, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END") == 1 {
			return fmt.Errorf("still in recovery")
		}
		return nil
	})
	return s
}

// TestPITRRandomTargets commits rows one per transaction, then restores to
// random times and LSNs between commits: each restored server must hold
// exactly the rows committed at or before its target.
func TestPITRRandomTargets(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	p.Exec(t, "CREATE TABLE w (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
	const n = 240
	lsnAfter := make([]string, n+1)
	commit := func(i int) {
		p.Exec(t, "INSERT INTO w (id) VALUES ($1)", i)
		lsnAfter[i] = p.QueryString(t, "SELECT pg_current_wal_insert_lsn()::text")
	}
	for i := 1; i <= n/4; i++ {
		commit(i)
	}
	full := a.backupJSON(p, "full")
	if full["wal_archived"] != true {
		t.Fatalf("a backup taken while bulwark archives should rely on the archive: %v", full["wal_archived"])
	}
	first := n/4 + 1
	for i := first; i <= n; i++ {
		commit(i)
		if i%20 == 0 {
			switchAndWait(t, p) // spread the rows over segments
		}
		if i == n/2 {
			a.backupJSON(p, "incr")
		}
	}
	switchAndWait(t, p)

	commitMicros := func(i int) int64 {
		return p.QueryInt(t, "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint FROM w WHERE id = $1", i)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	pick := func() int { return first + 2 + rng.IntN(n-first-4) }
	type target struct {
		flag, value string
		rows        int
	}
	var targets []target
	for range 5 {
		i := pick()
		mid := (commitMicros(i) + commitMicros(i+1)) / 2
		targets = append(targets, target{"--target-time", time.UnixMicro(mid).UTC().Format(time.RFC3339Nano), i})
	}
	for range 5 {
		i := pick()
		targets = append(targets, target{"--target-lsn", lsnAfter[i], i})
	}
	for _, tg := range targets {
		dir := filepath.Join(a.dir, fmt.Sprintf("pitr-%d", tg.rows))
		os.RemoveAll(dir)
		a.ok("restore", "--pgdata", dir, tg.flag, tg.value)
		s := startRecovered(t, dir)
		count, top := s.QueryInt(t, "SELECT count(*) FROM w"), s.QueryInt(t, "SELECT coalesce(max(id), 0) FROM w")
		if count != int64(tg.rows) || top != int64(tg.rows) {
			t.Errorf("restore %s %s: %d rows up to id %d, want exactly rows 1..%d", tg.flag, tg.value, count, top, tg.rows)
		}
		s.Stop(t)
		os.RemoveAll(dir)
	}
}

// TestArchiveGapIsNamed deletes one archived segment: status and restore
// must name exactly that segment.
func TestArchiveGapIsNamed(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	a.backupJSON(p, "full")
	p.Exec(t, "CREATE TABLE g (x int)")
	var segs []string
	for range 3 {
		p.Exec(t, "INSERT INTO g VALUES (1)")
		segs = append(segs, switchAndWait(t, p))
	}
	a.ok("status")
	victim := segs[1]
	if err := os.Remove(filepath.Join(strings.TrimPrefix(a.repo, "file://"), "wal", victim[:16], victim)); err != nil {
		t.Fatal(err)
	}
	r := a.run("status", "-o", "json")
	if r.code != 4 {
		t.Errorf("status with a gap: exit %d, want 4", r.code)
	}
	var st struct{ Problems []string }
	json.Unmarshal([]byte(r.stdout), &st)
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], victim) {
		t.Errorf("status problems %q, want exactly one naming %s", st.Problems, victim)
	}
	res := a.run("restore", "--pgdata", filepath.Join(a.dir, "r"), "--latest")
	if res.code == 0 || !strings.Contains(res.stderr, victim) || strings.Contains(res.stderr, segs[2]) {
		t.Errorf("restore --latest over a gap: exit %d, stderr %q; want a failure naming only %s", res.code, res.stderr, victim)
	}
}

// TestWalFetchExitCodes: "not found" is 1, so that recovery ends there;
// any real error is above 125, so that PostgreSQL aborts recovery instead.
func TestWalFetchExitCodes(t *testing.T) {
	a := newArchiveEnv(t)
	dest := filepath.Join(a.dir, "dest")
	if r := a.run("wal", "fetch", "0000000100000000000000AA", dest); r.code != 1 {
		t.Errorf("fetch of a missing segment: exit %d, want 1", r.code)
	}
	if r := a.run("wal", "fetch", "00000005.history", dest); r.code != 1 {
		t.Errorf("fetch of a missing history file: exit %d, want 1", r.code)
	}
	bad := filepath.Join(a.dir, "wrong")
	pgtest.WriteFile(t, bad, []byte("wrong\n"))
	if r := a.run("wal", "fetch", "--password-file", bad, "0000000100000000000000AA", dest); r.code <= 125 {
		t.Errorf("fetch with a wrong passphrase: exit %d, want > 125", r.code)
	}
	a2 := *a.env
	a2.repo = "file://" + filepath.Join(a.dir, "nothing-here")
	if r := a2.run("wal", "fetch", "0000000100000000000000AA", dest); r.code <= 125 {
		t.Errorf("fetch from a missing repository: exit %d, want > 125", r.code)
	}
}

// TestWalPushRefusesDifferentContent: the same content twice is fine, other
// content under an archived name is refused and the archive keeps the first.
func TestWalPushRefusesDifferentContent(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	seg := switchAndWait(t, p)
	pgWal := filepath.Join(a.dir, "copy")
	os.Mkdir(pgWal, 0o755)
	orig, err := os.ReadFile(filepath.Join(p.DataDir, "pg_wal", seg))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(pgWal, seg)
	pgtest.WriteFile(t, file, orig)
	a.ok("wal", "push", file)
	changed := append([]byte(nil), orig...)
	changed[len(changed)-1] ^= 0xff
	pgtest.WriteFile(t, file, changed)
	r := a.run("wal", "push", file)
	if r.code == 0 || !strings.Contains(r.stderr, "different content") {
		t.Fatalf("push of different content: exit %d, %q; want a refusal", r.code, r.stderr)
	}
	out := filepath.Join(a.dir, "fetched")
	a.ok("wal", "fetch", seg, out)
	got, _ := os.ReadFile(out)
	if string(got) != string(orig) {
		t.Fatal("the archived segment changed after a refused push")
	}
}

// TestTimelines promotes a restored copy, writes on the new timeline while
// it archives to the same repository, and restores to a time on it.
func TestTimelines(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	p.Exec(t, "CREATE TABLE w (id int PRIMARY KEY)")
	a.backupJSON(p, "full")
	p.Exec(t, "INSERT INTO w SELECT generate_series(1, 50)")
	switchAndWait(t, p)

	dir1 := filepath.Join(a.dir, "copy")
	a.ok("restore", "--pgdata", dir1, "--latest")
	c := pgtest.StartDataDir(t, dir1, pgtest.Options{Name: "copy"}) // archives, as its primary did
	pgtest.Eventually(t, 2*time.Minute, func() error {
		if c.QueryInt(t, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END") == 1 {
			return fmt.Errorf("still in recovery")
		}
		return nil
	})
	if tli := c.QueryInt(t, "SELECT timeline_id FROM pg_control_checkpoint()"); tli < 2 {
		c.Exec(t, "CHECKPOINT")
	}
	for i := 1001; i <= 1040; i++ {
		c.Exec(t, "INSERT INTO w VALUES ($1)", i)
	}
	micros := func(i int) int64 {
		return c.QueryInt(t, "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint FROM w WHERE id = $1", i)
	}
	mid := (micros(1020) + micros(1021)) / 2
	switchAndWait(t, c)

	var st struct {
		Archive struct {
			Timelines []struct {
				Timeline int `json:"timeline"`
				Parent   int `json:"parent"`
			}
		}
	}
	json.Unmarshal([]byte(a.ok("status", "-o", "json")), &st)
	if n := len(st.Archive.Timelines); n != 2 || st.Archive.Timelines[1].Timeline != 2 || st.Archive.Timelines[1].Parent != 1 {
		t.Fatalf("status timelines %+v, want 1 and 2 (from 1)", st.Archive.Timelines)
	}

	dir2 := filepath.Join(a.dir, "pitr")
	a.ok("restore", "--pgdata", dir2, "--target-time", time.UnixMicro(mid).UTC().Format(time.RFC3339Nano))
	s := startRecovered(t, dir2)
	if got := s.QueryInt(t, "SELECT count(*) FROM w WHERE id <= 50"); got != 50 {
		t.Errorf("rows of timeline 1: %d, want 50", got)
	}
	if got := s.QueryInt(t, "SELECT count(*) FROM w WHERE id > 1000"); got != 20 {
		t.Errorf("rows of timeline 2 before the target: %d, want 20", got)
	}
}

// TestRPO kills the primary (kill -9) under a writer, deletes its data
// directory and restores --latest from the repository alone. With the
// synchronous receiver no acknowledged commit may be lost; with
// archive_command alone and with the asynchronous receiver the loss is
// measured and logged ("RPO mode=... acked=... lost=...").
func TestRPO(t *testing.T) {
	for _, mode := range []string{"sync-receiver", "async-receiver", "archive-command"} {
		t.Run(mode, func(t *testing.T) { testRPO(t, mode) })
	}
}

func testRPO(t *testing.T, mode string) {
	a := newArchiveEnv(t)
	conf := map[string]string{}
	walMode := "archive"
	switch mode {
	case "archive-command":
		conf = a.conf()
	case "sync-receiver":
		conf["synchronous_standby_names"] = "bulwark_receive"
	}
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: conf})
	var recv *exec.Cmd
	if mode != "archive-command" {
		args := []string{"wal", "receive", "--db", p.ConnString()}
		if mode == "sync-receiver" {
			args = append(args, "--synchronous")
		}
		recv = a.command(args...)
		recv.Stdout, recv.Stderr = os.Stderr, os.Stderr
		if err := recv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { recv.Process.Kill(); recv.Wait() })
	}
	p.Exec(t, "CREATE TABLE w (id int PRIMARY KEY)") // with the synchronous receiver: once it streams
	a.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString(), "--wal", walMode)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := p.Conn(t)
	acked := make(chan int, 1)
	go func() {
		last := 0
		for i := 1; ; i++ {
			if _, err := conn.Exec(ctx, "INSERT INTO w VALUES ($1)", i); err != nil {
				acked <- last
				return
			}
			last = i
		}
	}()
	time.Sleep(3 * time.Second)
	p.Kill(t)
	last := <-acked
	if recv != nil {
		time.Sleep(2 * time.Second) // an async receiver flushes what it has received
		recv.Process.Signal(syscall.SIGTERM)
		recv.Wait()
	}
	if err := os.RemoveAll(p.DataDir); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(a.dir, "restored")
	a.ok("restore", "--pgdata", dir, "--latest")
	s := startRecovered(t, dir)
	kept := s.QueryInt(t, "SELECT count(*) FROM w WHERE id <= $1", last)
	lost := int64(last) - kept
	t.Logf("RPO mode=%s acked=%d lost=%d", mode, last, lost)
	if mode == "sync-receiver" && lost != 0 {
		t.Fatalf("synchronous receiver: %d of %d acknowledged commits lost, want 0", lost, last)
	}
	if last == 0 {
		t.Fatal("the writer committed nothing")
	}
}

// TestAsyncPush archives through the background pusher and restores from it.
func TestAsyncPush(t *testing.T) {
	a := newArchiveEnv(t)
	spool := filepath.Join(a.dir, "spool")
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf("archive_command",
		fmt.Sprintf("%s wal push --async --async-idle-exit 1s --spool-dir %s --repo %s --password-file %s %%p", binary, spool, a.repo, a.keyFile))})
	a.backupJSON(p, "full")
	p.Exec(t, "CREATE TABLE w (id int)")
	for i := range 4 {
		p.Exec(t, "INSERT INTO w SELECT generate_series(1, 1000) + $1", i*1000)
		switchAndWait(t, p)
	}
	want := p.QueryInt(t, "SELECT sum(id) FROM w")
	if n := p.QueryInt(t, "SELECT failed_count FROM pg_stat_archiver"); n != 0 {
		t.Errorf("archiver failures: %d", n)
	}
	a.ok("status")
	a.restoreLatestSum(t, want)
}

// TestArchiveOutageLosesNothing makes the repository unwritable for the
// archiver: archive_command fails with a clear error, PostgreSQL keeps the
// WAL and retries, and once the repository is back everything is archived
// and restores.
func TestArchiveOutageLosesNothing(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	a.backupJSON(p, "full")
	p.Exec(t, "CREATE TABLE w (id int)")
	walDir := filepath.Join(strings.TrimPrefix(a.repo, "file://"), "wal")
	chmodDirs := func(mode os.FileMode) {
		t.Helper()
		err := filepath.WalkDir(walDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				err = os.Chmod(p, mode)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	chmodDirs(0o500) // the archiver (postgres) can no longer write
	t.Cleanup(func() { chmodDirs(0o700) })
	for i := range 3 {
		p.Exec(t, "INSERT INTO w SELECT generate_series(1, 1000) + $1", i*1000)
		p.Exec(t, "SELECT pg_switch_wal()")
	}
	pgtest.Eventually(t, time.Minute, func() error {
		if p.QueryInt(t, "SELECT failed_count FROM pg_stat_archiver") == 0 {
			return fmt.Errorf("archive_command has not failed yet")
		}
		return nil
	})
	chmodDirs(0o700)
	switchAndWait(t, p)
	want := p.QueryInt(t, "SELECT sum(id) FROM w")
	a.ok("status")
	a.restoreLatestSum(t, want)
}

// TestRestorePrefetch replays a dozen segments through restore_command with
// the prefetching process, which cleans up once recovery is over.
func TestRestorePrefetch(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	a.backupJSON(p, "full")
	p.Exec(t, "CREATE TABLE w (id int)")
	for i := range 12 {
		p.Exec(t, "INSERT INTO w SELECT generate_series(1, 100) + $1", i*100)
		switchAndWait(t, p)
	}
	dir := a.restoreLatestSum(t, p.QueryInt(t, "SELECT sum(id) FROM w"))
	conf, err := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(conf), "--prefetch") {
		t.Fatalf("restore_command without --prefetch: %s %v", conf, err)
	}
	pgtest.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(dir, "pg_wal", "bulwark-prefetch")); err == nil {
			return fmt.Errorf("the prefetch spool is still there after recovery")
		}
		return nil
	})
}
