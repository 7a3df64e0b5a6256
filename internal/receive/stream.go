package receive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// stream is the streaming part of one connection.
type stream struct {
	r       *receiver
	conn    *pgconn.PgConn
	segSize uint64
	w       *segmentWriter
	tli     wal.TimelineID

	// reported is the flush position last sent to the server. It never
	// goes back: after a timeline switch the writer restarts below it on
	// the new timeline, but the WAL before the switch point is the same
	// WAL and is already durable under the old timeline's name.
	reported   wal.LSN
	lastStatus time.Time
	lastHeard  time.Time
}

// run streams from start (whose segment's first durable bytes the archive
// holds) and follows timeline switches until an error or the end of ctx.
// Whatever it received is flushed before it returns.
func (s *stream) run(ctx context.Context, start position, durable uint64) error {
	s.tli = start.tli
	s.w.reset(wal.SegmentOf(start.tli, start.lsn, s.segSize), durable)
	defer s.stop(ctx)
	for {
		next, err := s.timeline(ctx)
		if err != nil {
			return err
		}
		if _, err := s.r.pushHistory(ctx, s.conn, next.tli); err != nil {
			return err
		}
		s.r.log.Info("following a timeline switch", "timeline", next.tli, "lsn", next.lsn, "previous_timeline", s.tli)
		s.tli = next.tli
		seg := wal.SegmentOf(next.tli, next.lsn, s.segSize)
		durable, err := s.r.ar.Partial(ctx, seg)
		if err != nil {
			return err
		}
		s.w.reset(seg, durable)
		s.r.pub.update(func(st *State) { st.Timeline = next.tli })
	}
}

// stop flushes what was received and reports it, on any exit.
func (s *stream) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := s.w.flush(ctx); err != nil {
		// Nothing is lost: the slot keeps the WAL from the last reported
		// flush position, and the next connection streams it again.
		s.r.log.Warn("could not flush the WAL received before the connection ended", "lsn", s.w.flushed(), "err", err)
		return
	}
	_ = s.sendStatus(false) // best effort: the connection may be gone; the slot learns it next time
}

// timeline runs START_REPLICATION on the current timeline from the start
// of the writer's segment and streams until the server ends the timeline,
// returning where the next one starts.
func (s *stream) timeline(ctx context.Context) (position, error) {
	start := s.w.received()
	err := pglogrepl.StartReplication(ctx, s.conn, s.r.opts.Slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Timeline: int32(s.tli), Mode: pglogrepl.PhysicalReplication})
	if tli, lsn, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return position{wal.TimelineID(tli), wal.LSN(lsn)}, nil
	}
	if err != nil {
		return position{}, asRemoved(fmt.Errorf("start replication at %s on timeline %d: %w", start, s.tli, err))
	}
	s.r.log.Info("streaming", "timeline", s.tli, "lsn", start, "archived", s.w.archived(), "synchronous", s.r.opts.Synchronous)
	return s.copyLoop(ctx)
}

// copyLoop handles the replication stream's messages, flushing and
// reporting as they come and when they pause.
func (s *stream) copyLoop(ctx context.Context) (position, error) {
	s.lastHeard = time.Now()
	if err := s.due(ctx, false); err != nil { // reports where streaming starts
		return position{}, err
	}
	for {
		rctx, cancel := context.WithDeadline(ctx, s.deadline())
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if ctx.Err() != nil {
			return position{}, ctx.Err()
		}
		if err != nil {
			if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
				if err := s.due(ctx, true); err != nil {
					return position{}, err
				}
				continue
			}
			return position{}, asRemoved(fmt.Errorf("receive: %w", err))
		}
		s.lastHeard = time.Now()
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.copyData(ctx, m.Data); err != nil {
				return position{}, err
			}
		case *pgproto3.CopyDone:
			return s.endTimeline(ctx)
		case *pgproto3.ErrorResponse:
			return position{}, asRemoved(pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CommandComplete:
			return position{}, errors.New("the server ended streaming (shutting down?)")
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return position{}, fmt.Errorf("unexpected %T while streaming", msg)
		}
		// No more bytes buffered: the stream has paused (what the kernel
		// holds is read next time round). Synchronous mode flushes now.
		if err := s.due(ctx, s.conn.Frontend().ReadBufferLen() == 0); err != nil {
			return position{}, err
		}
	}
}

// copyData handles one CopyData message: WAL or a keepalive.
func (s *stream) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("empty CopyData message")
	}
	switch data[0] {
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		s.r.streamed = true
		s.serverLSN(wal.LSN(x.ServerWALEnd))
		return s.w.write(ctx, wal.LSN(x.WALStart), x.WALData)
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		s.serverLSN(wal.LSN(k.ServerWALEnd))
		if !k.ReplyRequested {
			return nil
		}
		// Flush first: a server shutting down waits until its standbys
		// have flushed everything it sent.
		if err := s.w.flush(ctx); err != nil {
			return err
		}
		return s.sendStatus(false)
	}
	return fmt.Errorf("unknown CopyData message %q", data[0])
}

func (s *stream) serverLSN(l wal.LSN) {
	if l != 0 {
		s.r.pub.update(func(st *State) { st.ServerLSN = l })
	}
}

// flushLimit is how long received WAL may wait for a flush.
func (s *stream) flushLimit() time.Duration {
	if s.r.opts.Synchronous {
		return syncMaxDelay
	}
	return s.r.opts.FlushInterval
}

// deadline is when the loop must wake up without a message.
func (s *stream) deadline() time.Time {
	d := s.lastStatus.Add(statusInterval)
	if f := s.w.dirtySince.Add(s.flushLimit()); s.w.dirty() && f.Before(d) {
		d = f
	}
	return d
}

// due flushes what is due (idle: the stream has paused) and sends a
// status update when the flush position moved or statusInterval passed.
func (s *stream) due(ctx context.Context, idle bool) error {
	now := time.Now()
	if s.w.dirty() && ((idle && s.r.opts.Synchronous) || now.Sub(s.w.dirtySince) >= s.flushLimit()) {
		if err := s.w.flush(ctx); err != nil {
			return err
		}
	}
	switch {
	case s.w.flushed() > s.reported:
		return s.sendStatus(false)
	case now.Sub(s.lastStatus) >= statusInterval:
		if now.Sub(s.lastHeard) > serverTimeout {
			return fmt.Errorf("no message from the server for %v", now.Sub(s.lastHeard).Round(time.Second))
		}
		return s.sendStatus(true)
	}
	return nil
}

// sendStatus reports the durable position as written, flushed and
// applied: a synchronous commit waits for one of them, and only WAL in the
// repository may release it.
func (s *stream) sendStatus(replyRequested bool) error {
	if s.conn.IsClosed() {
		// pgconn closes a broken connection in the background, using the
		// connection's writer: it must not be used concurrently.
		return errors.New("send status update: the connection is closed")
	}
	pos := max(s.reported, s.w.flushed())
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(pos),
		WALFlushPosition: pglogrepl.LSN(pos),
		WALApplyPosition: pglogrepl.LSN(pos),
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send status update: %w", err)
	}
	s.reported, s.lastStatus = pos, time.Now()
	s.r.pub.update(func(st *State) { st.FlushedLSN = pos })
	return nil
}

// endTimeline answers the server ending the timeline it streamed (CopyDone)
// and returns where the next timeline starts.
func (s *stream) endTimeline(ctx context.Context) (position, error) {
	// The timeline's last segment stays partial, as PostgreSQL leaves a
	// .partial file: the next timeline's copy of it is complete.
	if err := s.w.flush(ctx); err != nil {
		return position{}, err
	}
	if err := s.sendStatus(false); err != nil {
		return position{}, err
	}
	s.conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := s.conn.Frontend().Flush(); err != nil {
		return position{}, fmt.Errorf("end of timeline %d: %w", s.tli, err)
	}
	var next position
	for {
		msg, err := s.conn.ReceiveMessage(ctx)
		if err != nil {
			return position{}, fmt.Errorf("end of timeline %d: %w", s.tli, err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if next, err = parseNextTimeline(m.Values); err != nil {
				return position{}, fmt.Errorf("end of timeline %d: %w", s.tli, err)
			}
		case *pgproto3.ErrorResponse:
			return position{}, fmt.Errorf("end of timeline %d: %w", s.tli, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.ReadyForQuery:
			if next.tli == 0 {
				return position{}, fmt.Errorf("the server ended timeline %d without naming the next one", s.tli)
			}
			return next, nil
		}
	}
}

// parseNextTimeline reads the (next_tli, next_tli_startpos) row.
func parseNextTimeline(v [][]byte) (position, error) {
	if len(v) != 2 {
		return position{}, fmt.Errorf("next timeline row has %d columns, want 2", len(v))
	}
	tli, err := wal.ParseTimelineID(string(v[0]))
	if err != nil {
		return position{}, err
	}
	lsn, err := wal.ParseLSN(string(v[1]))
	if err != nil {
		return position{}, err
	}
	return position{tli, lsn}, nil
}
