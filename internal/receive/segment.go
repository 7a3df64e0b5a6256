package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// segmentWriter holds the segment being streamed in memory and makes it
// durable in the archive: the bytes not yet durable as a partial piece
// (flush), the whole segment once it is complete.
//
// Streaming always starts at the beginning of a segment, as pg_receivewal
// does: a server keeps or removes WAL a whole segment at a time, so if it
// has the resume position it has that segment's start, and after a
// timeline switch the new timeline's file starts with a copy of the old
// one. The buffer therefore always holds the segment from byte 0 and a
// complete segment never needs its beginning fetched back from the
// archive. Bytes below durable, streamed again after a reconnect, are
// already in the archive and are not pushed twice.
type segmentWriter struct {
	ar      *archive.Archive
	log     *slog.Logger
	segSize uint64
	seg     wal.SegmentName
	buf     []byte // buf[:have] is the segment from its start
	have    uint64 // bytes of seg received
	durable uint64 // bytes of seg durable in the archive, a prefix
	// dirtySince is when bytes beyond durable first arrived; zero when
	// everything received is durable.
	dirtySince time.Time
	// pieces are those this writer stored for seg, oldest first.
	pieces []piece
}

// piece is a stored range of the segment. Every mergeFanIn pieces of one
// level are merged into one of the next level, so that a segment streamed
// in thousands of small flushes (synchronous mode, one per commit) is held
// in a few dozen objects, and each byte is rewritten only a logarithmic
// number of times.
type piece struct {
	from, to uint64
	level    int
}

const mergeFanIn = 4

// newSegmentWriter returns a writer using buf if it is segSize bytes long.
func newSegmentWriter(ar *archive.Archive, log *slog.Logger, segSize uint64, buf []byte) *segmentWriter {
	if uint64(len(buf)) != segSize {
		buf = make([]byte, segSize)
	}
	return &segmentWriter{ar: ar, log: log, segSize: segSize, buf: buf}
}

// reset starts segment seg afresh, of which the archive already holds the
// first durable bytes.
func (w *segmentWriter) reset(seg wal.SegmentName, durable uint64) {
	w.seg, w.have, w.durable, w.dirtySince, w.pieces = seg, 0, durable, time.Time{}, w.pieces[:0]
}

// received is the end of the WAL received.
func (w *segmentWriter) received() wal.LSN { return w.seg.StartLSN(w.segSize) + wal.LSN(w.have) }

// flushed is the end of the WAL received and durable in the archive. WAL
// the archive held before it was streamed again on this connection counts
// only once received: a flush position is never reported for WAL this
// server has not sent.
func (w *segmentWriter) flushed() wal.LSN {
	return w.seg.StartLSN(w.segSize) + wal.LSN(min(w.durable, w.have))
}

// archived is the end of the WAL of this segment the archive holds.
func (w *segmentWriter) archived() wal.LSN { return w.seg.StartLSN(w.segSize) + wal.LSN(w.durable) }

func (w *segmentWriter) dirty() bool { return w.have > w.durable }

// write appends the WAL data that starts at start, which must be where
// the received WAL ends. Each segment it completes is pushed whole.
func (w *segmentWriter) write(ctx context.Context, start wal.LSN, data []byte) error {
	if start != w.received() {
		return fmt.Errorf("server sent WAL from %s, expected %s", start, w.received())
	}
	for len(data) > 0 {
		n := copy(w.buf[w.have:], data)
		data = data[n:]
		w.have += uint64(n)
		if w.dirtySince.IsZero() && w.dirty() {
			w.dirtySince = time.Now()
		}
		if w.have == w.segSize {
			if err := w.complete(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush makes every received byte durable: it returns once the archive
// holds them.
func (w *segmentWriter) flush(ctx context.Context) error {
	if !w.dirty() {
		return nil
	}
	if err := w.ar.PushPartial(ctx, w.seg, w.durable, w.buf[w.durable:w.have]); err != nil {
		return err
	}
	w.pieces = append(w.pieces, piece{from: w.durable, to: w.have})
	w.durable, w.dirtySince = w.have, time.Time{}
	return w.merge(ctx)
}

// merge replaces the last mergeFanIn pieces by one while they share a
// level. The merged piece is durable before the old ones are deleted, so
// the archive holds every byte at every moment.
func (w *segmentWriter) merge(ctx context.Context) error {
	for n := len(w.pieces); n >= mergeFanIn; n = len(w.pieces) {
		last := w.pieces[n-mergeFanIn:]
		level := last[0].level
		for _, p := range last {
			if p.level != level {
				return nil
			}
		}
		m := piece{from: last[0].from, to: last[len(last)-1].to, level: level + 1}
		if err := w.ar.PushPartial(ctx, w.seg, m.from, w.buf[m.from:m.to]); err != nil {
			return err
		}
		for _, p := range last {
			if err := w.ar.DeletePiece(ctx, w.seg, p.from, p.to); err != nil {
				w.log.Warn("could not delete a merged partial piece", "segment", w.seg, "err", err)
			}
		}
		w.pieces = append(w.pieces[:n-mergeFanIn], m)
	}
	return nil
}

// complete archives the full segment, drops its partial pieces and moves
// on to the next segment.
func (w *segmentWriter) complete(ctx context.Context) error {
	if _, err := w.ar.Push(ctx, w.seg.String(), w.buf); err != nil {
		var ce *archive.ConflictError
		if errors.As(err, &ce) {
			return permanent(err)
		}
		return err
	}
	if err := w.ar.DropPartial(ctx, w.seg); err != nil {
		// The full segment is archived and readers prefer it: pieces left
		// beside it only cost space, so streaming goes on.
		w.log.Warn("could not drop the partial pieces of an archived segment", "segment", w.seg, "err", err)
	}
	w.log.Debug("segment archived", "segment", w.seg)
	w.reset(w.seg.Next(w.segSize), 0)
	return nil
}
