package receive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// server is what IDENTIFY_SYSTEM and friends told about the server.
type server struct {
	systemID uint64
	tli      wal.TimelineID
	xlogPos  wal.LSN
	segSize  uint64
	history  []wal.HistoryEntry // of tli: the timelines it descends from
}

// slotInfo is the replication slot as READ_REPLICATION_SLOT shows it.
type slotInfo struct {
	restart wal.LSN // 0: the slot reserves no WAL
	tli     wal.TimelineID
}

// connection runs one replication connection: it identifies the server,
// archives its timeline histories, prepares the slot, chooses where to
// resume and streams until an error or the end of ctx.
func (r *receiver) connection(ctx context.Context) error {
	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(setupCtx, r.cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the server may be gone already
	}()
	srv, err := r.identify(setupCtx, conn)
	if err != nil {
		return err
	}
	if srv.history, err = r.histories(setupCtx, conn, srv.tli); err != nil {
		return err
	}
	slot, err := r.ensureSlot(setupCtx, conn)
	if err != nil {
		return err
	}
	start, err := r.resume(setupCtx, srv, slot)
	if err != nil {
		return err
	}
	durable, err := r.ar.Partial(setupCtx, wal.SegmentOf(start.tli, start.lsn, srv.segSize))
	if err != nil {
		return err
	}
	r.log.Info("connected", "host", conn.Conn().RemoteAddr().String(), "user", r.cfg.User,
		"system_id", srv.systemID, "timeline", srv.tli, "server_lsn", srv.xlogPos)
	r.pub.update(func(s *State) { s.Connected, s.LastError, s.Timeline, s.ServerLSN = true, "", start.tli, srv.xlogPos })
	w := newSegmentWriter(r.ar, r.log, srv.segSize, r.buf)
	r.buf = w.buf // 16 MiB or more: kept across reconnections
	st := &stream{r: r, conn: conn, segSize: srv.segSize, w: w}
	return st.run(ctx, start, durable)
}

// identify runs IDENTIFY_SYSTEM, learns the segment size and checks both
// against the archive.
func (r *receiver) identify(ctx context.Context, conn *pgconn.PgConn) (server, error) {
	id, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return server{}, fmt.Errorf("identify system: %w", err)
	}
	sysID, err := strconv.ParseUint(id.SystemID, 10, 64)
	if err != nil || id.Timeline < 1 {
		return server{}, fmt.Errorf("identify system: system id %q, timeline %d", id.SystemID, id.Timeline)
	}
	srv := server{systemID: sysID, tli: wal.TimelineID(id.Timeline), xlogPos: wal.LSN(id.XLogPos)}
	if srv.segSize, err = segmentSize(ctx, conn); err != nil {
		return server{}, err
	}
	// Recorded now, not with the first full segment, so that streamed
	// pieces are usable from the start.
	var mismatch *archive.MismatchError
	if err := r.ar.Identify(ctx, archive.Info{SystemID: sysID, SegmentSize: srv.segSize}); errors.As(err, &mismatch) {
		return server{}, permanent(fmt.Errorf("refusing to mix WAL: %w", err))
	} else if err != nil {
		return server{}, err
	}
	return srv, nil
}

// segmentSize reads wal_segment_size ("16MB") over the replication
// connection.
func segmentSize(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("show wal_segment_size: unexpected result")
	}
	size, err := parseSize(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("show wal_segment_size: %w", err)
	}
	if err := wal.CheckSegmentSize(size); err != nil {
		return 0, permanent(err)
	}
	return size, nil
}

// parseSize parses a size as SHOW prints one: "16MB", "1GB", "512kB".
func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil {
				break
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("cannot parse size %q", s)
}

// histories archives the history files of timeline tli and of the
// timelines it descends from, and returns tli's history.
func (r *receiver) histories(ctx context.Context, conn *pgconn.PgConn, tli wal.TimelineID) ([]wal.HistoryEntry, error) {
	if tli == 1 {
		return nil, nil
	}
	data, err := r.pushHistory(ctx, conn, tli)
	if err != nil {
		return nil, err
	}
	h, err := wal.ParseHistory(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s from the server: %w", wal.HistoryFileName(tli), err)
	}
	for _, e := range h {
		if e.TLI == 1 {
			continue
		}
		if _, err := r.pushHistory(ctx, conn, e.TLI); err != nil {
			if isPermanent(err) {
				return nil, err
			}
			// Restore needs only the newest history file, which holds the
			// whole chain; an older one the server lacks is no gap.
			r.log.Warn("could not archive an older timeline history", "timeline", e.TLI, "err", err)
		}
	}
	return h, nil
}

// pushHistory fetches the history file of tli from the server and
// archives it.
func (r *receiver) pushHistory(ctx context.Context, conn *pgconn.PgConn, tli wal.TimelineID) ([]byte, error) {
	res, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return nil, fmt.Errorf("timeline history %d: %w", tli, err)
	}
	name := wal.HistoryFileName(tli)
	existed, err := r.ar.Push(ctx, name, res.Content)
	if err != nil {
		if errors.As(err, new(*archive.ConflictError)) {
			return nil, permanent(err)
		}
		return nil, err
	}
	if !existed {
		r.log.Info("archived timeline history", "timeline", tli, "file", name)
	}
	return res.Content, nil
}

// ensureSlot returns the replication slot, creating it (reserving WAL
// from now on) if it does not exist or reserves nothing.
func (r *receiver) ensureSlot(ctx context.Context, conn *pgconn.PgConn) (slotInfo, error) {
	typ, slot, err := readSlot(ctx, conn, r.opts.Slot)
	if err != nil {
		return slotInfo{}, err
	}
	switch {
	case typ == "physical" && slot.restart != 0:
		return slot, nil
	case typ != "" && typ != "physical":
		return slotInfo{}, permanent(fmt.Errorf("replication slot %s is a %s slot, not a physical one", r.opts.Slot, typ))
	case typ == "physical":
		// Created without RESERVE_WAL, or invalidated (max_slot_wal_keep_size):
		// it protects nothing. Whatever was lost shows as removed WAL when
		// streaming resumes.
		r.log.Warn("replication slot reserves no WAL; recreating it")
		if _, err := conn.Exec(ctx, "DROP_REPLICATION_SLOT "+r.opts.Slot).ReadAll(); err != nil {
			return slotInfo{}, fmt.Errorf("drop replication slot %s: %w", r.opts.Slot, err)
		}
	}
	_, err = conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+r.opts.Slot+" PHYSICAL RESERVE_WAL").ReadAll()
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && pe.Code == "42710") { // duplicate_object: created meanwhile
		return slotInfo{}, fmt.Errorf("create replication slot %s: %w", r.opts.Slot, err)
	}
	if typ, slot, err = readSlot(ctx, conn, r.opts.Slot); err != nil {
		return slotInfo{}, err
	}
	r.log.Info("created replication slot", "lsn", slot.restart)
	return slot, nil
}

// readSlot runs READ_REPLICATION_SLOT (PostgreSQL 15 and later). typ is
// empty when the slot does not exist.
func readSlot(ctx context.Context, conn *pgconn.PgConn, name string) (typ string, slot slotInfo, err error) {
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return "", slotInfo{}, fmt.Errorf("read replication slot %s (needs PostgreSQL 15 or later): %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 3 {
		return "", slotInfo{}, fmt.Errorf("read replication slot %s: unexpected result", name)
	}
	row := res[0].Rows[0]
	if row[0] == nil {
		return "", slotInfo{}, nil
	}
	if row[1] != nil {
		if slot.restart, err = wal.ParseLSN(string(row[1])); err != nil {
			return "", slotInfo{}, fmt.Errorf("read replication slot %s: %w", name, err)
		}
	}
	if row[2] != nil {
		if slot.tli, err = wal.ParseTimelineID(string(row[2])); err != nil {
			return "", slotInfo{}, fmt.Errorf("read replication slot %s: %w", name, err)
		}
	}
	return string(row[0]), slot, nil
}

// resume chooses where streaming starts: the end of what the archive holds
// on the server's timeline chain, else the slot's restart position, else
// the server's current position. After the server said it had removed the
// WAL there, it records the gap and resumes where the server still has
// WAL. The result is on the timeline that holds it in the server's history.
func (r *receiver) resume(ctx context.Context, srv server, slot slotInfo) (position, error) {
	c, err := r.ar.Contents(ctx)
	if err != nil {
		return position{}, err
	}
	var p position
	chain := []wal.TimelineID{srv.tli} // newest first
	for _, e := range slices.Backward(srv.history) {
		chain = append(chain, e.TLI)
	}
	for _, tli := range chain {
		if tl := c.Timeline(tli); tl != nil && tl.End.LSN != 0 {
			p = position{tli, tl.End.LSN}
			break
		}
	}
	switch {
	case p.lsn != 0:
	case slot.restart != 0:
		p = position{cmp.Or(slot.tli, srv.tli), slot.restart}
	default:
		p = position{srv.tli, srv.xlogPos}
	}
	if r.removed != "" {
		p = r.skipRemoved(p, srv, slot)
		r.removed = ""
	}
	return followHistory(p, srv.history, srv.tli), nil
}

// skipRemoved moves p past the WAL the server removed: to the slot's
// restart position, which the server keeps, else to its current position.
// The WAL in between is lost to the archive: it is logged and recorded.
func (r *receiver) skipRemoved(p position, srv server, slot slotInfo) position {
	removed, err := wal.ParseSegmentName(r.removed)
	if err != nil {
		return p
	}
	size := srv.segSize
	if uint64(p.lsn)/size > removed.SegNo(size) {
		return p // already past it
	}
	next := position{srv.tli, srv.xlogPos}
	if slot.restart != 0 && uint64(slot.restart)/size > removed.SegNo(size) {
		next = position{cmp.Or(slot.tli, srv.tli), slot.restart}
	}
	from := wal.SegmentOf(p.tli, p.lsn, size)
	firstKept := uint64(next.lsn) / size
	if firstKept <= from.SegNo(size) {
		return p // the server has nothing newer to offer: keep asking
	}
	g := archive.Gap{
		From:  from.String(),
		To:    wal.SegmentOf(next.tli, wal.LSN((firstKept-1)*size), size).String(),
		Count: int(firstKept - from.SegNo(size)),
	}
	r.log.Error("WAL lost: the server removed it before it was archived; the archive has a gap there (take a new base backup)",
		"from", g.From, "to", g.To, "segments", g.Count, "resume_lsn", next.lsn)
	r.pub.addGap(g.String(), g.From)
	return next
}

// followHistory moves p onto the timeline that holds it in the server's
// history: past the end of its own timeline, WAL continues on the child
// timeline from the switch point.
func followHistory(p position, history []wal.HistoryEntry, current wal.TimelineID) position {
	for i, e := range history {
		if e.TLI != p.tli || p.lsn < e.SwitchLSN {
			continue
		}
		next := current
		if i+1 < len(history) {
			next = history[i+1].TLI
		}
		p = position{next, e.SwitchLSN}
	}
	return p
}
