package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/s3test"
)

// TestS3BackupRestore backs up to an S3 repository on a real S3 server
// (versitygw), whose bucket repo init creates, and restores from it.
func TestS3BackupRestore(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	srv := s3test.Start(t)
	e := newEnv(t)
	e.repo = "s3://bulwark-e2e/clusters/payments"
	e.vars = append(e.vars, srv.Env()...)

	p.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g`)
	out := e.ok("repo", "init")
	if !strings.Contains(out, "s3://bulwark-e2e/clusters/payments") {
		t.Errorf("repo init: got %q, want the S3 location", out)
	}
	e.backupJSON(p, "full")
	p.Exec(t, `INSERT INTO t SELECT g, 'more' FROM generate_series(20001, 25000) g; UPDATE t SET v = 'changed' WHERE id % 100 = 0`)
	e.backupJSON(p, "incr")
	want := p.TableHashes(t)
	e.ok("repo", "verify", "--read-data")

	// The objects are in the bucket, under the prefix.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for obj := range srv.Client(t).ListObjectsIter(ctx, "bulwark-e2e", minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if !strings.HasPrefix(obj.Key, "clusters/payments/") {
			t.Errorf("object %s is outside the repository's prefix", obj.Key)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the bucket is empty after two backups")
	}

	target := filepath.Join(pgtest.Dir(t), "data")
	e.ok("restore", "--backup", "latest", "--pgdata", target)
	s := pgtest.StartDataDir(t, target, pgtest.Options{Name: "restored"})
	if d := cmp.Diff(want, s.TableHashes(t)); d != "" {
		t.Fatalf("restored data differs:\n%s", d)
	}
}

// TestS3DeadEndpoint: with the S3 server killed, a command fails in
// bounded time with an error naming the endpoint, and works again once the
// server is back.
func TestS3DeadEndpoint(t *testing.T) {
	srv := s3test.Start(t)
	e := newEnv(t)
	e.repo = "s3://bulwark-e2e/repo"
	e.vars = append(e.vars, srv.Env()...)
	e.ok("repo", "init")
	srv.Kill()
	start := time.Now()
	r := e.run("backup", "list")
	if r.code == 0 || !strings.Contains(r.stderr, srv.Endpoint) || time.Since(start) > 30*time.Second {
		t.Fatalf("backup list with the server down: exit %d after %v, %q; want a failure naming %s within 30s",
			r.code, time.Since(start), r.stderr, srv.Endpoint)
	}
	if strings.Contains(r.stderr, srv.SecretKey) {
		t.Fatalf("the error shows the secret key: %s", r.stderr)
	}
	srv.Restart(t)
	e.ok("backup", "list")
}

// s3Env points the test's own environment at srv too, for what the
// restored server runs (restore_command fetches from S3).
func s3Env(t *testing.T, srv *s3test.Server) []string {
	t.Helper()
	env := srv.Env()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

// TestS3SyncRestoreAndPITR: back up to disk with WAL archiving, sync to
// S3, delete the disk repository, then restore --latest and a PITR from S3
// alone.
func TestS3SyncRestoreAndPITR(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: a.conf()})
	p.Exec(t, "CREATE TABLE w (id int PRIMARY KEY)")
	a.backupJSON(p, "full")
	for i := 1; i <= 100; i++ {
		p.Exec(t, "INSERT INTO w VALUES ($1)", i)
	}
	micros := func(i int) int64 {
		return p.QueryInt(t, "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint FROM w WHERE id = $1", i)
	}
	mid := (micros(50) + micros(51)) / 2
	switchAndWait(t, p)
	want := p.QueryInt(t, "SELECT sum(id) FROM w")
	p.Stop(t)

	srv := s3test.Start(t)
	a.vars = append(a.vars, s3Env(t, srv)...)
	s3URL := "s3://offsite/payments"
	a.ok("repo", "sync", "--from", a.repo, "--to", s3URL)
	if err := os.RemoveAll(strings.TrimPrefix(a.repo, "file://")); err != nil {
		t.Fatal(err)
	}
	a.repo = s3URL
	a.ok("repo", "verify", "--read-data")
	a.restoreLatestSum(t, want)

	dir := filepath.Join(a.dir, "pitr")
	a.ok("restore", "--pgdata", dir, "--target-time", time.UnixMicro(mid).UTC().Format(time.RFC3339Nano))
	if got := startRecovered(t, dir).QueryInt(t, "SELECT count(*) FROM w"); got != 50 {
		t.Fatalf("PITR from S3: %d rows, want 50", got)
	}
}

// TestS3KilledDuringSyncAndBackup kills the S3 server in the middle of a
// sync and of a backup: each fails with a clear error, the repository stays
// consistent, and the next run completes.
func TestS3KilledDuringSyncAndBackup(t *testing.T) {
	a := newArchiveEnv(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	// Random text compresses about 2:1: some 100 MiB of packs, several of them.
	p.Exec(t, "CREATE TABLE noise AS SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 1500000) g")
	a.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString(), "--wal", "copy")
	srv := s3test.Start(t)
	a.vars = append(a.vars, s3Env(t, srv)...)
	const bucket = "killed"
	s3URL := "s3://" + bucket + "/repo"

	// killMidway runs bulwark, kills the S3 server once the bucket holds a
	// few objects, and returns what bulwark said.
	killMidway := func(args ...string) result {
		t.Helper()
		cmd := a.command(args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		client := srv.Client(t)
		for killed := false; !killed; {
			select {
			case err := <-done:
				t.Fatalf("bulwark %s finished before the S3 server could be killed: %v\n%s", strings.Join(args, " "), err, errb.String())
			case <-time.After(20 * time.Millisecond):
			}
			n := 0
			for obj := range client.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
				if obj.Err == nil && strings.Contains(obj.Key, "/data/") {
					n++
				}
			}
			if n >= 1 {
				srv.Kill()
				killed = true
			}
		}
		code, _ := exitCode(<-done)
		t.Logf("bulwark %s with S3 killed -> %d\n%s", strings.Join(args, " "), code, errb.String())
		return result{stdout: out.String(), stderr: errb.String(), code: code}
	}

	r := killMidway("repo", "sync", "--from", a.repo, "--to", s3URL, "--jobs", "1")
	if r.code == 0 || !strings.Contains(r.stderr, srv.Endpoint) || !strings.Contains(r.stderr, "run again to resume") {
		t.Fatalf("sync with S3 killed: exit %d, %q; want a failure naming the endpoint and saying how to resume", r.code, r.stderr)
	}
	srv.Restart(t)
	a.ok("repo", "sync", "--from", a.repo, "--to", s3URL)
	s3 := *a.env
	s3.repo = s3URL
	s3.ok("repo", "verify", "--read-data")

	// A backup straight into S3, killed midway.
	p.Exec(t, "UPDATE noise SET v = md5(v) WHERE g % 3 = 0")
	r = killMidway("backup", "create", "--repo", s3URL, "--pgdata", p.DataDir, "--db", p.ConnString(), "--wal", "copy", "--type", "full")
	if r.code == 0 || !strings.Contains(r.stderr, srv.Endpoint) {
		t.Fatalf("backup with S3 killed: exit %d, %q; want a failure naming the endpoint", r.code, r.stderr)
	}
	srv.Restart(t)
	var list []any
	json.Unmarshal([]byte(s3.ok("backup", "list", "-o", "json")), &list)
	if len(list) != 1 {
		t.Fatalf("backups in S3 after the killed backup: %d, want the synced one only", len(list))
	}
	s3.ok("repo", "verify", "--read-data")
	s3.ok("backup", "create", "--pgdata", p.DataDir, "--db", p.ConnString(), "--wal", "copy")
	s3.ok("repo", "verify")
}
