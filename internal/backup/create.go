package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// CreateOptions configure a backup. The zero value of each optional field
// means its default.
type CreateOptions struct {
	Type   Type   // full, incr, diff (logical: see CreateLogical)
	PGData string // the server's data directory, read locally
	DB     string // libpq connection string of the same server
	// Jobs is how many blobs are compressed at once; default GOMAXPROCS.
	Jobs int
	// SpreadCheckpoint waits for a spread checkpoint at the start instead
	// of an immediate one.
	SpreadCheckpoint bool
	Logger           *slog.Logger
	// Progress, if set, is called about twice a second from another goroutine.
	Progress func(Progress)
	// Now is the clock (tests inject one).
	Now func() time.Time
	// WAL says where the backup's WAL lives (default WALAuto).
	WAL WALMode
	// Archive is the repository's WAL archive. With WALArchive (or WALAuto
	// deciding so) the backup leaves its WAL to it instead of copying it,
	// and is recorded only once the archive holds every segment from its
	// start to its stop.
	Archive *archive.Archive
	// ArchiveTimeout bounds that wait (default DefaultArchiveTimeout).
	ArchiveTimeout time.Duration
}

// WALMode says whether a backup copies its WAL or relies on the archive.
type WALMode string

const (
	// WALAuto relies on the archive when the server archives with bulwark
	// (archive_mode on and archive_command runs "bulwark ... wal push"),
	// and copies otherwise.
	WALAuto WALMode = "auto"
	// WALArchive relies on the archive (filled by archive_command or by a
	// receiver).
	WALArchive WALMode = "archive"
	// WALCopy copies the WAL into the backup.
	WALCopy WALMode = "copy"
)

// ParseWALMode parses auto, archive or copy.
func ParseWALMode(s string) (WALMode, error) {
	switch m := WALMode(s); m {
	case WALAuto, WALArchive, WALCopy:
		return m, nil
	}
	return "", fmt.Errorf("--wal %q: want auto, archive or copy", s)
}

// DefaultArchiveTimeout is how long a backup waits for its WAL to reach
// the archive before it fails.
const DefaultArchiveTimeout = 5 * time.Minute

// Progress reports a long operation.
type Progress struct {
	Phase string
	Done  int64 // bytes
	Total int64 // bytes; 0 when unknown
}

func (o CreateOptions) withDefaults() CreateOptions {
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ArchiveTimeout <= 0 {
		o.ArchiveTimeout = DefaultArchiveTimeout
	}
	if o.WAL == "" {
		o.WAL = WALAuto
	}
	return o
}

// Create takes an online physical backup of the server at opts.DB, whose
// data directory is opts.PGData, into r. It holds the repository's
// exclusive lock while it runs. The backup carries the WAL from its start
// to its stop LSN, so it restores on its own, unless opts.Archive names the
// archive that holds it.
func Create(ctx context.Context, r *repo.Repo, opts CreateOptions) (*Info, error) {
	opts = opts.withDefaults()
	log := opts.Logger.With("component", "backup")
	conn, err := pgx.Connect(ctx, opts.DB)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	srv, err := checkServer(ctx, conn, opts.PGData)
	if err != nil {
		return nil, err
	}
	if opts.Archive, err = walArchive(ctx, conn, srv, opts); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, "backup", true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(ctx)

	base, typ, err := chooseBase(ctx, r, opts.Type, srv)
	if err != nil {
		return nil, err
	}
	if typ != opts.Type {
		log.Warn("no full backup of this cluster in the repository yet: taking a full backup instead", "requested", opts.Type)
	}
	info := &Info{Type: typ, PGVersion: srv.Version, SystemID: fmt.Sprint(srv.SystemID), SegSize: srv.WALSegmentSize}
	if base != nil {
		info.Base = base.ID
	}
	start := opts.Now()
	if info.ID, err = newID(ctx, r, typ, start); err != nil {
		return nil, err
	}
	log = log.With("backup", info.ID)
	log.Info("backup starting", "type", typ, "base", info.Base)
	if err := run(ctx, r, conn, opts, info, base, log); err != nil {
		return nil, err
	}
	info.Duration = opts.Now().Sub(start).Seconds()
	if err := r.SaveDoc(ctx, docKind, info.ID, info); err != nil {
		return nil, fmt.Errorf("record backup: %w", err)
	}
	log.Info("backup done", "stop_lsn", info.StopLSN, "size", info.Size, "new_bytes", info.NewBytes, "seconds", info.Duration)
	return info, nil
}

// walArchive decides whether the backup relies on the archive, and returns
// it if so.
func walArchive(ctx context.Context, conn *pgx.Conn, srv pg.Server, opts CreateOptions) (*archive.Archive, error) {
	mode := opts.WAL
	if mode == WALCopy {
		return nil, nil
	}
	if opts.Archive == nil {
		if mode == WALArchive {
			return nil, errors.New("--wal archive: no WAL archive given")
		}
		return nil, nil
	}
	if mode == WALAuto {
		var command string
		if err := conn.QueryRow(ctx, "SELECT current_setting('archive_command')").Scan(&command); err != nil {
			return nil, fmt.Errorf("read archive_command: %w", err)
		}
		if srv.ArchiveMode == "off" || !strings.Contains(command, "bulwark") || !strings.Contains(command, "wal push") {
			return nil, nil
		}
	}
	return opts.Archive, nil
}

// checkServer refuses servers the backup cannot copy safely.
func checkServer(ctx context.Context, conn *pgx.Conn, pgdata string) (pg.Server, error) {
	srv, err := pg.Probe(ctx, conn)
	if err != nil {
		return srv, err
	}
	if srv.Version < 150000 {
		return srv, fmt.Errorf("PostgreSQL %d is not supported: bulwark needs 15 or later", srv.Version/10000)
	}
	if srv.InRecovery {
		return srv, errors.New("the server is a standby: backups from a standby are not supported yet; connect --db to the primary")
	}
	want, err1 := filepath.EvalSymlinks(pgdata)
	got, err2 := filepath.EvalSymlinks(srv.DataDirectory)
	if err1 != nil {
		return srv, fmt.Errorf("--pgdata %s: %w", pgdata, err1)
	}
	if err2 != nil || want != got {
		return srv, fmt.Errorf("--pgdata %s is not the data directory of the server at --db (it says %s)", pgdata, srv.DataDirectory)
	}
	return srv, nil
}

// chooseBase finds the backup an incr (newest of any type) or diff (newest
// full) is taken against. With no full backup of this cluster, it returns
// type full.
func chooseBase(ctx context.Context, r *repo.Repo, t Type, srv pg.Server) (*Info, Type, error) {
	all, err := List(ctx, r)
	if err != nil {
		return nil, t, err
	}
	sys := fmt.Sprint(srv.SystemID)
	var newest, newestFull *Info
	for _, b := range all {
		if b.Type == Logical {
			continue
		}
		if b.SystemID != sys {
			return nil, t, fmt.Errorf("the repository holds backups of another cluster (system identifier %s, this server is %s): use one repository per cluster", b.SystemID, sys)
		}
		newest = b
		if b.Type == Full {
			newestFull = b
		}
	}
	switch {
	case t == Full:
		return nil, Full, nil
	case newestFull == nil:
		return nil, Full, nil
	case t == Differential:
		return newestFull, t, nil
	default:
		return newest, t, nil
	}
}

// run copies the data directory between pg_backup_start and pg_backup_stop.
func run(ctx context.Context, r *repo.Repo, conn *pgx.Conn, opts CreateOptions, info *Info, base *Info, log *slog.Logger) error {
	// A temporary slot holds the WAL from the backup's start until this
	// session ends, so no segment we need is recycled while we copy.
	if _, err := pg.CreateTempSlot(ctx, conn, fmt.Sprintf("bulwark_backup_%d", os.Getpid())); err != nil {
		return err
	}
	info.StartTime = opts.Now().UTC()
	bs, err := pg.StartBackup(ctx, conn, "bulwark "+info.ID, !opts.SpreadCheckpoint)
	if err != nil {
		return err
	}
	info.StartLSN, info.Timeline = bs.LSN, bs.Timeline
	log.Debug("pg_backup_start done", "lsn", bs.LSN, "timeline", bs.Timeline)

	added := r.AddedBytes()
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan storeJob, 2*opts.Jobs)
	for range opts.Jobs {
		g.Go(func() error { return storeWorker(gctx, r, jobs) })
	}
	rd := newReader(r, jobs, base)
	mw := newManifestWriter(gctx, r)
	stopProgress := reportProgress(opts, "backup", rd, opts.PGData)
	g.Go(func() error {
		defer close(jobs)
		if err := copyData(gctx, r, rd, mw, opts.PGData, base, info, opts.Jobs); err != nil {
			return err
		}
		stop, err := pg.StopBackup(gctx, conn, false)
		if err != nil {
			return err
		}
		info.StopLSN, info.StopTime, info.Label = stop.LSN, opts.Now().UTC(), stop.Label
		if !stop.Time.IsZero() {
			// The server's clock: recovery targets are compared with it.
			info.StopTime = stop.Time.UTC()
		}
		info.WALArchived = opts.Archive != nil
		return addExtras(gctx, rd, mw, opts.PGData, info, stop)
	})
	err = g.Wait()
	stopProgress()
	if err != nil {
		return err
	}
	if opts.Archive != nil {
		if err := waitArchived(ctx, opts.Archive, info, opts.ArchiveTimeout, log); err != nil {
			return err
		}
	}
	if info.Manifest, err = mw.finish(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	// One flush makes the data and the manifest durable together, before
	// the record that names them is written.
	if err := r.Flush(ctx); err != nil {
		return err
	}
	info.NewBytes = r.AddedBytes() - added
	info.Files = mw.files
	info.ReadBytes = rd.read.Load()
	info.StoredSize, err = storedSize(ctx, r, info)
	return err
}

// fileJob is one walked item on its way to the manifest.
type fileJob struct {
	it   walkItem
	base *Entry
	e    *Entry
	done chan struct{} // closed once e is complete or err set
	err  error
}

// readQueue bounds how many walked items wait for the manifest writer.
const readQueue = 64

// copyData walks the data directory and writes its manifest entries in
// walk order, while readers read several files at once.
func copyData(ctx context.Context, r *repo.Repo, rd *reader, mw *manifestWriter, pgdata string, base, info *Info, readers int) error {
	cursor := newBaseCursor(nil)
	if base != nil {
		cursor = newBaseCursor(OpenManifest(ctx, r, base))
	}
	g, gctx := errgroup.WithContext(ctx)
	queue := make(chan *fileJob, readQueue)
	reads := make(chan *fileJob, readQueue)
	for range readers {
		g.Go(func() error {
			for j := range reads {
				j.err = rd.content(gctx, j.it, j.base, j.e)
				close(j.done)
			}
			return nil
		})
	}
	g.Go(func() error { return writeEntries(gctx, mw, queue, info) })
	err := walkData(gctx, pgdata, func(it walkItem) error {
		be, err := cursor.find(it.rel)
		if err != nil {
			return err
		}
		j := &fileJob{it: it, base: be, e: rd.entry(it), done: make(chan struct{})}
		if j.e.Kind != KindFile || rd.reuse(it, be, j.e) {
			close(j.done)
		} else if err := send(gctx, reads, j); err != nil {
			return err
		}
		return send(gctx, queue, j)
	})
	close(reads)
	close(queue)
	return errors.Join(err, g.Wait())
}

// writeEntries adds each job's entry to the manifest, in walk order.
func writeEntries(ctx context.Context, mw *manifestWriter, queue <-chan *fileJob, info *Info) error {
	for j := range queue {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if errors.Is(j.err, errVanished) {
			continue // dropped while we ran: WAL replay knows
		}
		if j.err != nil {
			return j.err
		}
		if j.e.Kind == KindFile {
			info.Size += j.e.Size
		}
		if err := mw.add(j.e); err != nil {
			return err
		}
	}
	return nil
}

func send(ctx context.Context, ch chan<- *fileJob, j *fileJob) error {
	select {
	case ch <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// addExtras stores what the backup adds to the data directory: the WAL
// from start to stop, timeline history files, backup_label and
// tablespace_map.
func addExtras(ctx context.Context, rd *reader, mw *manifestWriter, pgdata string, info *Info, stop pg.BackupStop) error {
	segs := info.walSegments()
	info.StartWAL, info.StopWAL = segs[0].String(), segs[len(segs)-1].String()
	walDir := filepath.Join(pgdata, "pg_wal")
	var names []string
	if !info.WALArchived { // else the archive holds them
		for _, s := range segs {
			names = append(names, s.String())
		}
		hist, _ := filepath.Glob(filepath.Join(walDir, "*.history"))
		for _, h := range hist {
			names = append(names, filepath.Base(h))
		}
	}
	for _, n := range names {
		abs := filepath.Join(walDir, n)
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("WAL needed by the backup: %w", err)
		}
		it := walkItem{rel: "pg_wal/" + n, abs: abs, info: fi}
		e := rd.entry(it)
		if err := rd.content(ctx, it, nil, e); err != nil {
			return err
		}
		e.Extra = true
		if err := mw.add(e); err != nil {
			return err
		}
	}
	files := map[string]string{"backup_label": stop.Label, "tablespace_map": stop.TablespaceMap}
	for _, n := range []string{"backup_label", "tablespace_map"} {
		if files[n] == "" {
			continue
		}
		e, err := rd.bytesEntry(ctx, n, []byte(files[n]), pgdata)
		if err != nil {
			return err
		}
		if err := mw.add(e); err != nil {
			return err
		}
	}
	return nil
}

// waitArchived waits until the archive holds every segment the backup
// needs, from its start to its stop: only then can it be restored, and
// only then is it recorded.
func waitArchived(ctx context.Context, ar *archive.Archive, info *Info, timeout time.Duration, log *slog.Logger) error {
	segs := info.walSegments()
	deadline := time.Now().Add(timeout)
	logged := false
	for _, s := range segs {
		for {
			ok, err := ar.Has(ctx, s.String())
			if err != nil {
				return fmt.Errorf("check the archive for %s: %w", s, err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("WAL segment %s, which the backup needs, did not reach the archive in %s: is archive_command ('bulwark wal push %%p') pushing to %s? (check pg_stat_archiver)", s, timeout, ar.Repo().Location())
			}
			if !logged {
				log.Info("waiting for the backup's WAL to be archived", "segment", s)
				logged = true
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
