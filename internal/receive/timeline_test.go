package receive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/receive"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// TestTimelineSwitch streams from a standby that is then promoted: the
// receiver streams the old timeline to the switch point, archives the new
// timeline's history and follows it.
func TestTimelineSwitch(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	s := pgtest.StartStandby(t, p, pgtest.Options{Name: "standby"})
	r := newRepo(t)
	startReceiver(t, r, receive.Options{ConnString: s.ConnString(), FlushInterval: 200 * time.Millisecond})
	waitStreaming(t, s.ConnString(), receive.DefaultApplicationName)
	ar := archive.New(r)

	makeWAL(t, p.ConnString(), 2)
	mustExec(t, p.ConnString(), "INSERT INTO t VALUES (0, 'before the switch')") // the switch falls mid-segment
	pgtest.WaitReplayed(t, s, p.CurrentLSN(t))
	waitArchived(t, ar, 1, flushLSN(t, p.ConnString()), waitTimeout)

	s.Exec(t, "SELECT pg_promote()")
	makeWAL(t, s.ConnString(), 2)
	mustExec(t, s.ConnString(), "INSERT INTO t VALUES (0, 'tail')")
	end := flushLSN(t, s.ConnString())
	c := waitArchived(t, ar, 2, end, waitTimeout)
	tl := c.Timeline(2)
	if tl.Parent != 1 || tl.SwitchLSN == 0 {
		t.Errorf("timeline 2: parent %d, switch %s; want its history archived", tl.Parent, tl.SwitchLSN)
	}
	if uint64(tl.SwitchLSN)%c.SegmentSize == 0 {
		t.Errorf("switch point %s is on a segment boundary; the test wants it mid-segment", tl.SwitchLSN)
	}
	if old := c.Timeline(1); old.End.LSN < tl.SwitchLSN {
		t.Errorf("timeline 1 archived to %s, want up to the switch point %s", old.End.LSN, tl.SwitchLSN)
	}
	if n := compareSegments(t, ar, c, s.DataDir, 2); n < 2 {
		t.Errorf("compared %d full segments of timeline 2 with pg_wal, want at least 2", n)
	}
	first, _ := wal.ParseSegmentName(c.Timeline(1).First)
	if missing, err := c.Missing(1, first.StartLSN(c.SegmentSize), 2, 0); err != nil || len(missing) > 0 {
		t.Errorf("replaying from timeline 1 into timeline 2 misses %v (%v)", missing, err)
	}
	checkPrefix(t, ar, c.SegmentSize, s.DataDir, 2, end)
	waitState(t, r, "timeline 2 flushed to "+end.String(), func(s receive.State) bool {
		return s.Timeline == 2 && s.FlushedLSN >= end
	})
	checkNoGaps(t, r, c)
}

// TestFailover moves the receiver's address from a primary to its
// promoted standby: the receiver learns the new timeline from
// IDENTIFY_SYSTEM, archives its history, takes the old timeline to the
// switch point and streams the new one.
func TestFailover(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	s := pgtest.StartStandby(t, p, pgtest.Options{Name: "standby"})
	px := startProxy(t, p.Port)
	r := newRepo(t)
	connString := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", px.port())
	startReceiver(t, r, receive.Options{ConnString: connString, FlushInterval: 200 * time.Millisecond})
	waitStreaming(t, p.ConnString(), receive.DefaultApplicationName)
	ar := archive.New(r)

	makeWAL(t, p.ConnString(), 1)
	mustExec(t, p.ConnString(), "INSERT INTO t VALUES (0, 'before the failover')")
	waitArchived(t, ar, 1, flushLSN(t, p.ConnString()), waitTimeout)
	p.Stop(t) // a clean shutdown: the standby and the receiver get everything
	s.Exec(t, "SELECT pg_promote()")
	px.retarget(s.Port)

	makeWAL(t, s.ConnString(), 1)
	mustExec(t, s.ConnString(), "INSERT INTO t VALUES (0, 'after the failover')")
	end := flushLSN(t, s.ConnString())
	c := waitArchived(t, ar, 2, end, waitTimeout)
	tl := c.Timeline(2)
	if tl.Parent != 1 || tl.SwitchLSN == 0 {
		t.Errorf("timeline 2: parent %d, switch %s; want its history archived", tl.Parent, tl.SwitchLSN)
	}
	if old := c.Timeline(1); old.End.LSN < tl.SwitchLSN {
		t.Errorf("timeline 1 archived to %s, want up to the switch point %s", old.End.LSN, tl.SwitchLSN)
	}
	first, _ := wal.ParseSegmentName(c.Timeline(1).First)
	if missing, err := c.Missing(1, first.StartLSN(c.SegmentSize), 2, 0); err != nil || len(missing) > 0 {
		t.Errorf("replaying from timeline 1 into timeline 2 misses %v (%v)", missing, err)
	}
	if n := compareSegments(t, ar, c, s.DataDir, 2); n < 1 {
		t.Errorf("compared %d full segments of timeline 2 with pg_wal, want at least 1", n)
	}
	checkPrefix(t, ar, c.SegmentSize, s.DataDir, 2, end)
	checkNoGaps(t, r, c)
}
