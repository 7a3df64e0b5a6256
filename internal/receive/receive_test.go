package receive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/receive"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fastKDF keeps tests quick; production uses repo.DefaultKDF.
var fastKDF = repo.KDFParams{N: 1 << 10, R: 8, P: 1}

const waitTimeout = 30 * time.Second

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	r, err := repo.Init(context.Background(), fsstore.New(t.TempDir()), []byte("pw"), repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startReceiver runs receive.Run until the test ends, and checks that it
// then returns nil. Register it after the servers it uses, so that it
// stops first.
func startReceiver(t *testing.T, r *repo.Repo, opts receive.Options) (stop func()) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- receive.Run(ctx, archive.New(r), opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("receive.Run: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("receive.Run did not return %v after cancel", waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitStreaming waits until the server lists the receiver as streaming.
func waitStreaming(t *testing.T, connString, appName string) {
	t.Helper()
	pgtest.Eventually(t, waitTimeout, func() error {
		var n int
		err := query(connString, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", []any{appName}, &n)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d streaming connections named %s", n, appName)
		}
		return err
	})
}

// query runs one statement on a fresh connection (servers restart in these
// tests) and scans its first row into dst, if any.
func query(connString, sql string, args []any, dst ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if len(dst) == 0 {
		_, err = c.Exec(ctx, sql, args...)
		return err
	}
	return c.QueryRow(ctx, sql, args...).Scan(dst...)
}

// mustExec runs sql, retrying while the server is not back yet.
func mustExec(t *testing.T, connString, sql string) {
	t.Helper()
	pgtest.Eventually(t, waitTimeout, func() error { return query(connString, sql, nil) })
}

func flushLSN(t *testing.T, connString string) wal.LSN {
	t.Helper()
	var s string
	pgtest.Eventually(t, waitTimeout, func() error {
		return query(connString, "SELECT pg_current_wal_flush_lsn()::text", nil, &s)
	})
	l, err := wal.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// makeWAL writes some WAL and completes the current segment n times.
func makeWAL(t *testing.T, connString string, switches int) {
	t.Helper()
	mustExec(t, connString, "CREATE TABLE IF NOT EXISTS t (x int, pad text)")
	for range switches {
		mustExec(t, connString, "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
		mustExec(t, connString, "SELECT pg_switch_wal()")
	}
}

// waitArchived waits until the archive holds timeline tli up to lsn.
func waitArchived(t *testing.T, ar *archive.Archive, tli wal.TimelineID, lsn wal.LSN, timeout time.Duration) *archive.Contents {
	t.Helper()
	var c *archive.Contents
	pgtest.Eventually(t, timeout, func() error {
		var err error
		if c, err = ar.Contents(context.Background()); err != nil {
			return err
		}
		tl := c.Timeline(tli)
		if tl == nil || tl.End.LSN < lsn {
			return fmt.Errorf("archive holds timeline %d to %v, want %s", tli, tl, lsn)
		}
		return nil
	})
	return c
}

// compareSegments checks that each full segment archived on tli and still
// in dataDir's pg_wal is identical to the server's file, and returns how
// many it compared.
func compareSegments(t *testing.T, ar *archive.Archive, c *archive.Contents, dataDir string, tli wal.TimelineID) int {
	t.Helper()
	tl := c.Timeline(tli)
	if tl == nil || tl.First == "" {
		return 0
	}
	first, _ := wal.ParseSegmentName(tl.First)
	last, _ := wal.ParseSegmentName(tl.Last)
	n := 0
	for _, seg := range wal.SegmentsBetween(tli, first.StartLSN(c.SegmentSize), last.StartLSN(c.SegmentSize), c.SegmentSize) {
		file, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", seg.String()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a checkpoint since
		} else if err != nil {
			t.Fatal(err)
		}
		got, err := ar.Fetch(context.Background(), seg.String())
		if err != nil {
			t.Errorf("fetch %s: %v", seg, err)
			continue
		}
		if !bytes.Equal(got, file) {
			t.Errorf("archived %s differs from the server's file (%d bytes, want %d)", seg, len(got), len(file))
		}
		n++
	}
	return n
}

// checkPrefix checks that the archive holds the server's WAL of the
// segment holding the byte before lsn, from its start to lsn.
func checkPrefix(t *testing.T, ar *archive.Archive, segSize uint64, dataDir string, tli wal.TimelineID, lsn wal.LSN) {
	t.Helper()
	seg := wal.SegmentOf(tli, lsn-1, segSize)
	off := uint64(lsn - seg.StartLSN(segSize))
	got, err := ar.Fetch(context.Background(), seg.String())
	if err != nil {
		t.Fatalf("fetch %s: %v", seg, err)
	}
	file, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", seg.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:off], file[:off]) {
		t.Errorf("archived %s differs from the server's file before %s", seg, lsn)
	}
}

// loadState returns the one receiver state published in r.
func loadState(r *repo.Repo) (receive.State, error) {
	states, err := receive.LoadStates(context.Background(), r)
	if err != nil {
		return receive.State{}, err
	}
	if len(states) != 1 {
		return receive.State{}, fmt.Errorf("LoadStates: got %d states, want 1: %+v", len(states), states)
	}
	return states[0], nil
}

// waitState waits until the published state satisfies ok.
func waitState(t *testing.T, r *repo.Repo, want string, ok func(receive.State) bool) receive.State {
	t.Helper()
	var s receive.State
	pgtest.Eventually(t, waitTimeout, func() error {
		var err error
		if s, err = loadState(r); err != nil {
			return err
		}
		if !ok(s) {
			return fmt.Errorf("state %+v, want %s", s, want)
		}
		return nil
	})
	return s
}

func checkNoGaps(t *testing.T, r *repo.Repo, c *archive.Contents) {
	t.Helper()
	for _, tl := range c.Timelines {
		if len(tl.Gaps) > 0 {
			t.Errorf("timeline %d has gaps: %v", tl.TLI, tl.Gaps)
		}
	}
	s := waitState(t, r, "published", func(receive.State) bool { return true })
	if len(s.Gaps) > 0 {
		t.Errorf("receiver state records gaps: %v", s.Gaps)
	}
}

func TestAsync(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r := newRepo(t)
	const interval = 500 * time.Millisecond
	startReceiver(t, r, receive.Options{ConnString: p.ConnString(), FlushInterval: interval})
	waitStreaming(t, p.ConnString(), receive.DefaultApplicationName)

	makeWAL(t, p.ConnString(), 3)
	ar := archive.New(r)
	waitArchived(t, ar, 1, flushLSN(t, p.ConnString()), waitTimeout)
	mustExec(t, p.ConnString(), "INSERT INTO t VALUES (0, 'tail')")
	end := flushLSN(t, p.ConnString())
	// The tail is in a partial segment: it must be durable within the
	// flush interval (plus polling and scheduling slack).
	c := waitArchived(t, ar, 1, end, interval+3*time.Second)
	tl := c.Timeline(1)
	if tl.Streamed == nil || tl.Streamed.EndLSN < end {
		t.Errorf("streamed part: got %+v, want one reaching %s", tl.Streamed, end)
	}
	if tl.Segments < 3 {
		t.Errorf("full segments: got %d, want at least 3", tl.Segments)
	}
	if n := compareSegments(t, ar, c, p.DataDir, 1); n < 3 {
		t.Errorf("compared %d full segments with pg_wal, want at least 3", n)
	}
	checkPrefix(t, ar, c.SegmentSize, p.DataDir, 1, end)

	waitState(t, r, "connected on timeline 1, flushed and server LSN at least "+end.String(), func(s receive.State) bool {
		return s.Connected && s.FlushedLSN >= end && s.ServerLSN >= end && s.Timeline == 1 &&
			s.Slot == receive.DefaultSlot && s.ApplicationName == receive.DefaultApplicationName && !s.Synchronous
	})
	checkNoGaps(t, r, c)
}

func TestSynchronous(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: map[string]string{
		"synchronous_standby_names": receive.DefaultApplicationName,
		"autovacuum":                "off", // no background WAL between a commit and the LSN the test reads after it
	}})
	r := newRepo(t)
	opts := receive.Options{ConnString: p.ConnString(), Synchronous: true, FlushInterval: time.Hour}
	stop := startReceiver(t, r, opts)
	waitStreaming(t, p.ConnString(), receive.DefaultApplicationName)
	if got := p.QueryString(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", receive.DefaultApplicationName); got != "sync" {
		t.Fatalf("sync_state: got %q, want sync", got)
	}
	p.Exec(t, "SELECT pg_switch_wal()") // start the commits on a fresh segment
	ar := archive.New(r)

	conn := p.Conn(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE s (x int)"); err != nil {
		t.Fatal(err)
	}
	segSize := uint64(0)
	for i := range 40 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := conn.Exec(cctx, "INSERT INTO s VALUES ($1)", i)
		cancel()
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		var s string
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
			t.Fatal(err)
		}
		flushed, _ := wal.ParseLSN(s)
		// No waiting: the commit returned, so its WAL is in the repository.
		c, err := ar.Contents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tl := c.Timeline(1); tl == nil || tl.End.LSN < flushed {
			t.Fatalf("commit %d returned at %s but the archive holds %+v", i, flushed, tl)
		}
		segSize = c.SegmentSize
		if i%10 == 9 {
			checkPrefix(t, ar, segSize, p.DataDir, 1, flushed)
		}
	}
	// One flush per commit, but merged pieces: a few objects, not 40.
	pieces := 0
	for key, err := range r.Store().List(ctx, "wal/") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(key, ".stream/") {
			pieces++
		}
	}
	if pieces > 12 {
		t.Errorf("%d partial pieces after 40 synchronous commits, want them merged (at most 12)", pieces)
	}

	// Without the receiver a commit waits; it returns once a new one has
	// archived its WAL.
	stop()
	committed := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		_, err := conn.Exec(cctx, "INSERT INTO s VALUES (100)")
		committed <- err
	}()
	select {
	case err := <-committed:
		t.Fatalf("commit returned without a synchronous standby: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	startReceiver(t, r, opts)
	if err := <-committed; err != nil {
		t.Fatalf("commit after the receiver restarted: %v", err)
	}
	end := flushLSN(t, p.ConnString())
	c := waitArchived(t, ar, 1, end, time.Second)
	checkPrefix(t, ar, segSize, p.DataDir, 1, end)
	checkNoGaps(t, r, c)
}

func TestServerRestart(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	px := startProxy(t, p.Port)
	r := newRepo(t)
	connString := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", px.port())
	stop := startReceiver(t, r, receive.Options{ConnString: connString, FlushInterval: 200 * time.Millisecond})
	waitStreaming(t, p.ConnString(), receive.DefaultApplicationName)
	ar := archive.New(r)

	makeWAL(t, p.ConnString(), 2)
	c := waitArchived(t, ar, 1, flushLSN(t, p.ConnString()), waitTimeout)
	compareSegments(t, ar, c, p.DataDir, 1)

	// The postmaster dies; a new one starts on the same data directory
	// (on another port: the proxy follows it).
	p.Kill(t)
	q := pgtest.StartDataDir(t, p.DataDir, pgtest.Options{Name: "restarted"})
	px.retarget(q.Port)
	makeWAL(t, q.ConnString(), 2)
	c = waitArchived(t, ar, 1, flushLSN(t, q.ConnString()), waitTimeout)
	compareSegments(t, ar, c, q.DataDir, 1)

	// A backend is killed: the postmaster restarts all of them and runs
	// crash recovery.
	waitStreaming(t, q.ConnString(), receive.DefaultApplicationName)
	var pid int
	if err := query(q.ConnString(), "SELECT pid FROM pg_stat_replication WHERE application_name = $1", []any{receive.DefaultApplicationName}, &pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	makeWAL(t, q.ConnString(), 2)
	mustExec(t, q.ConnString(), "INSERT INTO t VALUES (0, 'tail')")
	end := flushLSN(t, q.ConnString())
	c = waitArchived(t, ar, 1, end, waitTimeout)
	if n := compareSegments(t, ar, c, q.DataDir, 1); n < 2 {
		t.Errorf("compared %d full segments with pg_wal, want at least 2", n)
	}
	checkPrefix(t, ar, c.SegmentSize, q.DataDir, 1, end)
	waitState(t, r, "connected, flushed to "+end.String(), func(s receive.State) bool {
		return s.Connected && s.FlushedLSN >= end
	})
	checkNoGaps(t, r, c)
	stop() // before q, which started after the receiver, shuts down
}

func TestSystemIDMismatch(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	name := p.QueryString(t, "SELECT pg_walfile_name(pg_switch_wal())")
	data, err := os.ReadFile(filepath.Join(p.DataDir, "pg_wal", name))
	if err != nil {
		t.Fatal(err)
	}
	data[24] ^= 0xff // the long page header's system identifier
	r := newRepo(t)
	if _, err := archive.New(r).Push(context.Background(), name, data); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err = receive.Run(ctx, archive.New(r), receive.Options{ConnString: p.ConnString(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "database system") {
		t.Fatalf("Run: got %v, want a system identifier mismatch", err)
	}
	if s, err := loadState(r); err != nil || s.Connected || !strings.Contains(s.LastError, "database system") {
		t.Errorf("state: got %+v (%v), want disconnected with the mismatch as last error", s, err)
	}
}

func TestBadOptions(t *testing.T) {
	r := newRepo(t)
	tests := []struct {
		name string
		opts receive.Options
		want string
	}{
		{"no conn string", receive.Options{}, "no connection string"},
		{"bad slot", receive.Options{ConnString: "host=x", Slot: "Bad-Slot"}, "slot name"},
		{"bad conn string", receive.Options{ConnString: "host=x password=secret port=notaport"}, "connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := receive.Run(context.Background(), archive.New(r), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestGap makes the server remove WAL the archive lacks before the
// receiver gets it: the receiver must record the gap, log it and go on
// from the oldest WAL the server still has.
func TestGap(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r := newRepo(t)
	ar := archive.New(r)
	opts := receive.Options{ConnString: p.ConnString(), FlushInterval: 200 * time.Millisecond}
	stop := startReceiver(t, r, opts)
	waitStreaming(t, p.ConnString(), receive.DefaultApplicationName)
	makeWAL(t, p.ConnString(), 1)
	c := waitArchived(t, ar, 1, flushLSN(t, p.ConnString()), waitTimeout)
	lost := wal.SegmentOf(1, c.Timeline(1).End.LSN, c.SegmentSize)
	stop()

	// Without the slot the server recycles the next segments at a checkpoint.
	mustExec(t, p.ConnString(), "SELECT pg_drop_replication_slot('"+receive.DefaultSlot+"')")
	makeWAL(t, p.ConnString(), 3)
	mustExec(t, p.ConnString(), "CHECKPOINT")

	startReceiver(t, r, opts)
	s := waitState(t, r, "a gap", func(s receive.State) bool { return len(s.Gaps) > 0 })
	if len(s.Gaps) != 1 || !strings.HasPrefix(s.Gaps[0], lost.String()) {
		t.Errorf("gaps: got %q, want one from %s", s.Gaps, lost)
	}
	makeWAL(t, p.ConnString(), 1)
	end := flushLSN(t, p.ConnString())
	c = waitArchived(t, ar, 1, end, waitTimeout)
	if gaps := c.Timeline(1).Gaps; len(gaps) != 1 || gaps[0].From != lost.String() {
		t.Errorf("archive gaps: got %v, want one from %s", gaps, lost)
	}
}
