package pg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestProbe(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	ctx := testContext(t)
	got, err := pg.Probe(ctx, p.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version < 150000 || got.Version >= 160000 {
		t.Errorf("Version: got %d, want 15xxxx", got.Version)
	}
	if got.SystemID == 0 || got.InRecovery || got.WALSegmentSize != wal.DefaultSegmentSize ||
		got.BlockSize != pg.PageSize || !got.DataChecksums || got.ArchiveMode != "off" {
		t.Errorf("primary: got %+v", got)
	}
	if !sameDir(t, got.DataDirectory, p.DataDir) {
		t.Errorf("DataDirectory: got %q, want %q", got.DataDirectory, p.DataDir)
	}

	s := pgtest.StartStandby(t, p, pgtest.Options{})
	standby, err := pg.Probe(ctx, s.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if !standby.InRecovery || standby.SystemID != got.SystemID {
		t.Errorf("standby: got InRecovery %v, SystemID %d; want true, %d", standby.InRecovery, standby.SystemID, got.SystemID)
	}
}

func sameDir(t *testing.T, a, b string) bool {
	t.Helper()
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func TestBackupStartStop(t *testing.T) {
	archive := pgtest.Dir(t)
	p := pgtest.Start(t, pgtest.Options{Conf: map[string]string{
		"archive_mode":    "on",
		"archive_command": "cp %p " + archive + "/%f",
	}})
	ctx := testContext(t)
	conn := p.Conn(t)

	start, err := pg.StartBackup(ctx, conn, "bulwark test", true)
	if err != nil {
		t.Fatal(err)
	}
	if start.LSN == wal.InvalidLSN || start.Timeline != 1 || time.Since(start.Time) > time.Minute {
		t.Errorf("StartBackup: got %+v", start)
	}
	if _, err := pg.StartBackup(ctx, conn, "again", true); err == nil {
		t.Error("second StartBackup in the same session: got nil error")
	}
	p.Exec(t, "CREATE TABLE during (x int); INSERT INTO during SELECT generate_series(1, 1000)")

	stop, err := pg.StopBackup(ctx, conn, true)
	if err != nil {
		t.Fatal(err)
	}
	if stop.LSN <= start.LSN || stop.TablespaceMap != "" || stop.Time.Before(start.Time) {
		t.Errorf("StopBackup: got %+v after start %+v", stop, start)
	}
	label, err := wal.ParseBackupLabel(stop.Label)
	if err != nil {
		t.Fatalf("parse label %q: %v", stop.Label, err)
	}
	want := wal.BackupLabel{
		StartLSN: start.LSN, StartSegment: wal.SegmentOf(start.Timeline, start.LSN, wal.DefaultSegmentSize),
		CheckpointLSN: label.CheckpointLSN, Method: "streamed", From: "primary",
		StartTime: label.StartTime, Label: "bulwark test", StartTimeline: start.Timeline,
	}
	if label != want {
		t.Errorf("backup_label: got %+v, want %+v", label, want)
	}
	if got := label.String(); got != stop.Label {
		t.Errorf("label.String(): got %q, want the server's %q", got, stop.Label)
	}

	// pg_backup_stop waited for the WAL the backup needs: up to the segment
	// holding the byte before the stop LSN.
	for _, seg := range wal.SegmentsBetween(start.Timeline, start.LSN, stop.LSN-1, wal.DefaultSegmentSize) {
		if _, err := os.Stat(filepath.Join(archive, seg.String())); err != nil {
			t.Errorf("segment %v not archived: %v", seg, err)
		}
	}

	if _, err := pg.StopBackup(ctx, conn, false); err == nil {
		t.Error("StopBackup without a backup: got nil error")
	}
	if _, err := pg.StartBackup(ctx, conn, "two\nlines", false); err == nil {
		t.Error("StartBackup with a newline in the label: got nil error")
	}
}

func TestCreateTempSlot(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{})
	ctx := testContext(t)
	conn := p.Conn(t)

	lsn, err := pg.CreateTempSlot(ctx, conn, "bulwark_backup")
	if err != nil {
		t.Fatal(err)
	}
	if lsn == wal.InvalidLSN {
		t.Errorf("restart LSN: got %v", lsn)
	}
	restart := p.QueryString(t, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'bulwark_backup' AND temporary")
	if restart != lsn.String() {
		t.Errorf("pg_replication_slots restart_lsn: got %q, want %q", restart, lsn)
	}
	if _, err := pg.CreateTempSlot(ctx, conn, "bulwark_backup"); err == nil {
		t.Error("second slot with the same name: got nil error")
	}

	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, func() error {
		if n := p.QueryInt(t, "SELECT count(*) FROM pg_replication_slots"); n != 0 {
			return fmt.Errorf("%d slots left after the session ended", n)
		}
		return nil
	})
}

// TestRealRelationFiles checks ParseRelFile and the page functions on files
// a real server wrote, in base/, global/ and a tablespace.
func TestRealRelationFiles(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{})
	tsDir := pgtest.Dir(t)
	p.Exec(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
	p.Exec(t, `CREATE TABLE heap (id int PRIMARY KEY, body text);
		INSERT INTO heap SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
		CREATE TABLE spaced (x int) TABLESPACE ts; INSERT INTO spaced VALUES (1);
		CHECKPOINT`)
	dbOid := uint32(p.QueryInt(t, "SELECT oid::bigint FROM pg_database WHERE datname = current_database()"))
	current, err := wal.ParseLSN(p.CurrentLSN(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		rel    string // regclass
		dbOid  uint32
		spaced bool
	}{
		{name: "heap", rel: "heap", dbOid: dbOid},
		{name: "btree index", rel: "heap_pkey", dbOid: dbOid},
		{name: "shared catalog", rel: "pg_database", dbOid: 0},
		{name: "tablespace", rel: "spaced", dbOid: dbOid, spaced: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := p.QueryString(t, "SELECT pg_relation_filepath($1::regclass)", tt.rel)
			node := uint32(p.QueryInt(t, "SELECT pg_relation_filenode($1::regclass)::bigint", tt.rel))
			rf, ok := pg.ParseRelFile(path)
			if !ok || rf.RelFilenode != node || rf.DBOid != tt.dbOid || (rf.TablespaceOID != 0) != tt.spaced || rf.Fork != pg.ForkMain || rf.Temp {
				t.Fatalf("ParseRelFile(%q): got %+v, %v", path, rf, ok)
			}
			if got := pg.Exclude(path, false); got != pg.Keep {
				t.Errorf("Exclude(%q): got %v, want keep", path, got)
			}
			data, err := os.ReadFile(filepath.Join(p.DataDir, path))
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 || len(data)%pg.PageSize != 0 {
				t.Fatalf("%s: %d bytes, want whole pages", path, len(data))
			}
			for off := 0; off < len(data); off += pg.PageSize {
				page := data[off : off+pg.PageSize]
				if pg.PageIsNew(page) || !pg.PageHeaderValid(page) {
					t.Errorf("%s page %d: new %v, header valid %v", path, off/pg.PageSize, pg.PageIsNew(page), pg.PageHeaderValid(page))
				}
				if lsn := pg.PageLSN(page); lsn > current {
					t.Errorf("%s page %d: LSN %v after the current %v", path, off/pg.PageSize, lsn, current)
				}
			}
		})
	}
}

// TestExcludeMatchesBasebackup uses pg_basebackup as the oracle: walking the
// data directory with Exclude and UnloggedFilter must select exactly the
// paths pg_basebackup copies.
func TestExcludeMatchesBasebackup(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Conf: map[string]string{"autovacuum": "off"}})
	p.Exec(t, `CREATE TABLE logged (x int); INSERT INTO logged SELECT generate_series(1, 1000);
		CREATE UNLOGGED TABLE scratch (x int); INSERT INTO scratch SELECT generate_series(1, 1000);
		SELECT pg_create_physical_replication_slot('kept_slot')`)
	p.Exec(t, "VACUUM logged, scratch") // creates the FSM and VM forks
	// A temporary table lives as long as its session.
	temp := p.Conn(t)
	if _, err := temp.Exec(testContext(t), "CREATE TEMP TABLE tmp AS SELECT generate_series(1, 1000) x"); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Dir(p.QueryString(t, "SELECT pg_relation_filepath('logged')"))
	for _, stray := range []string{
		"postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_manifest",
		dbDir + "/pg_internal.init.4242", "base/pgsql_tmp/pgsql_tmp4242.0",
	} {
		full := filepath.Join(p.DataDir, stray)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	backup := pgtest.Dir(t)
	cmd := p.Command("pg_basebackup", "-D", backup, "-X", "none", "-c", "fast", "--no-sync", "--no-manifest",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port))
	cmd.Dir = "/"
	pgtest.AsOwner(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}

	want := listTree(t, backup)
	delete(want, "backup_label") // written by pg_basebackup, not copied
	got := selectTree(t, p.DataDir)
	for rel := range want {
		if !got[rel] {
			t.Errorf("pg_basebackup copied %s; Exclude leaves it out", rel)
		}
	}
	for rel := range got {
		if !want[rel] {
			t.Errorf("Exclude keeps %s; pg_basebackup left it out", rel)
		}
	}
	// The cases above must actually have been exercised.
	var tempRel string
	if err := temp.QueryRow(testContext(t), "SELECT pg_relation_filepath('tmp')").Scan(&tempRel); err != nil {
		t.Fatal(err)
	}
	unloggedRel := p.QueryString(t, "SELECT pg_relation_filepath('scratch')")
	walRel := "pg_wal/" + p.QueryString(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	for _, rel := range []string{
		"pg_replslot/kept_slot", "postgresql.auto.conf.tmp", "base/pgsql_tmp", tempRel,
		unloggedRel, unloggedRel + "_fsm", unloggedRel + "_vm", walRel,
	} {
		if _, err := os.Stat(filepath.Join(p.DataDir, rel)); err != nil || got[rel] {
			t.Errorf("%s: want present in PGDATA and excluded (stat err %v)", rel, err)
		}
	}
	for _, rel := range []string{unloggedRel + "_init", "pg_wal/archive_status", "pg_replslot"} {
		if !want[rel] {
			t.Errorf("%s: want in the backup", rel)
		}
	}
}

// listTree returns every path below root, relative and slash-separated.
func listTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// selectTree walks a data directory as a base backup would, with Exclude and
// UnloggedFilter, and returns the paths it keeps.
func selectTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		unlogged := pg.UnloggedFilter(rel, names)
		for _, e := range entries {
			child := e.Name()
			if rel != "." {
				child = rel + "/" + e.Name()
			}
			kind := pg.Exclude(child, e.IsDir())
			if kind == pg.SkipFile || unlogged(e.Name()) {
				continue
			}
			out[child] = true
			if e.IsDir() {
				// Descend even for SkipContents: Exclude answers SkipFile for
				// what is inside, except pg_wal/archive_status.
				walk(child)
			}
		}
	}
	walk(".")
	return out
}
