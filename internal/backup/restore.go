package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// RestoreOptions configure a physical restore.
type RestoreOptions struct {
	Backup string // backup ID or "latest"
	PGData string // target data directory
	// Delta rewrites only the files of a non-empty target that differ
	// from the backup, and removes files the backup does not have.
	Delta bool
	Jobs  int // parallel file writers; default GOMAXPROCS
	// TablespaceMap moves tablespaces: tablespace OID (the name under
	// pg_tblspc) to the directory it is restored into. Unmapped
	// tablespaces go back to their original directory.
	TablespaceMap map[string]string
	Logger        *slog.Logger
	Progress      func(Progress)
	// Target, when set, configures a point-in-time recovery: the backup is
	// chosen for it (unless Backup names one), and recovery.signal and the
	// recovery settings are written, with RestoreCommand.
	Target         Target
	RestoreCommand string
	// ReadAhead, when set, reads packs this many bytes at a time (for
	// object stores, where each request costs milliseconds).
	ReadAhead int64
	// Archive is the repository's WAL archive: needed for a target, and
	// for a backup whose WAL is in the archive (its segments are copied
	// into pg_wal so that the restore starts on its own).
	Archive *archive.Archive
}

// Restore writes the data directory of a backup into opts.PGData in one
// pass whatever the backup's type: every block is rebuilt from the parts
// the manifest names and checked against its hash. On failure the target
// is left without global/pg_control (and emptied if it was empty).
func Restore(ctx context.Context, r *repo.Repo, opts RestoreOptions) (*Info, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.Target.Validate(); err != nil {
		return nil, err
	}
	info, err := chooseRestore(ctx, r, opts)
	if err != nil {
		return nil, err
	}
	if info.Type == Logical {
		return nil, fmt.Errorf("backup %s is a logical backup: restore it into a database with --type logical --db CONNSTRING", info.ID)
	}
	if err := checkRestoreWAL(ctx, info, opts); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, "restore", false)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(ctx)
	target, err := filepath.Abs(opts.PGData)
	if err != nil {
		return nil, err
	}
	fresh, err := prepareTarget(target, opts.Delta)
	if err != nil {
		return nil, err
	}
	if opts.ReadAhead > 0 {
		r.SetReadAhead(opts.ReadAhead, 2*opts.Jobs+4)
		defer r.SetReadAhead(0, 0)
	}
	rs := &restorer{r: r, key: r.Key(), target: target, delta: opts.Delta, asRoot: os.Geteuid() == 0, spcMap: opts.TablespaceMap, opts: opts, info: info}
	err = rs.run(ctx)
	if err != nil {
		if fresh {
			cleanTarget(target)
		}
		return nil, fmt.Errorf("restore %s into %s: %w", info.ID, target, err)
	}
	opts.Logger.Info("restore done", "backup", info.ID, "target", target, "bytes", rs.done.Load())
	return info, nil
}

// chooseRestore loads the backup to restore: the one named, or for a
// point-in-time target the newest that finished before it.
func chooseRestore(ctx context.Context, r *repo.Repo, opts RestoreOptions) (*Info, error) {
	if opts.Target.IsSet() && (opts.Backup == "" || opts.Backup == "latest") {
		all, err := List(ctx, r)
		if err != nil {
			return nil, err
		}
		info, err := ChooseBackup(all, opts.Target)
		if err != nil {
			return nil, err
		}
		opts.Logger.Info("backup chosen for the recovery target", "backup", info.ID, "stop_time", info.StopTime, "stop_lsn", info.StopLSN, "target", opts.Target.String())
		return info, nil
	}
	return Load(ctx, r, opts.Backup, false)
}

// checkRestoreWAL makes sure, before anything is written, that the archive
// holds the WAL the restore needs, naming each missing segment.
func checkRestoreWAL(ctx context.Context, info *Info, opts RestoreOptions) error {
	if !opts.Target.IsSet() && !info.WALArchived {
		return nil
	}
	if opts.Archive == nil {
		return fmt.Errorf("backup %s needs the WAL archive, and none was given", info.ID)
	}
	if opts.Target.IsSet() && opts.RestoreCommand == "" {
		return errors.New("a point-in-time restore needs a restore_command")
	}
	missing, fatal, err := CheckArchive(ctx, opts.Archive, info, opts.Target)
	switch {
	case err != nil && fatal:
		return err
	case err != nil:
		opts.Logger.Warn(err.Error())
		return nil
	case len(missing) == 0:
		return nil
	case fatal:
		return fmt.Errorf("the WAL archive lacks %s, which recovery to %s from backup %s needs: %w", strings.Join(missing, ", "), opts.Target, info.ID, archive.ErrNotFound)
	}
	opts.Logger.Warn("the WAL archive has gaps: recovery cannot pass the first missing segment", "missing", strings.Join(missing, ", "), "target", opts.Target.String())
	return nil
}

// recovery copies the backup's WAL from the archive into pg_wal when the
// backup does not carry it, and writes the recovery settings for a target.
func (rs *restorer) recovery(ctx context.Context) error {
	info := rs.info
	if info.WALArchived {
		for _, seg := range info.walSegments() {
			data, err := rs.opts.Archive.Fetch(ctx, seg.String())
			if err != nil {
				return fmt.Errorf("WAL the backup needs: %w", err)
			}
			if err := writeOwned(rs.target, rs.path("pg_wal/"+seg.String()), data); err != nil {
				return err
			}
		}
	}
	if !rs.opts.Target.IsSet() {
		return nil
	}
	return writeRecovery(rs.target, rs.opts.Target, rs.opts.RestoreCommand, time.Now())
}

// chownLike gives path the owner of dir (restoring as root, dir belongs
// to postgres).
func chownLike(dir, path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}

// prepareTarget checks the target and reports whether it was empty (so
// that a failed restore may remove what it wrote).
func prepareTarget(target string, delta bool) (fresh bool, err error) {
	entries, err := os.ReadDir(target)
	if errors.Is(err, fs.ErrNotExist) {
		return true, os.MkdirAll(target, 0o700)
	}
	if err != nil {
		return false, fmt.Errorf("restore target: %w", err)
	}
	if len(entries) == 0 {
		return true, nil
	}
	if !delta {
		return false, fmt.Errorf("restore target %s is not empty: choose an empty directory, or use --delta to rewrite only the files that differ", target)
	}
	if pid, err := os.ReadFile(filepath.Join(target, "postmaster.pid")); err == nil {
		return false, fmt.Errorf("restore target %s has postmaster.pid (pid %s): stop that server before a delta restore", target, strings.SplitN(string(pid), "\n", 2)[0])
	}
	// Mark the directory incomplete before touching anything else.
	if err := os.Remove(filepath.Join(target, filepath.FromSlash(pg.ControlFile))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return false, nil
}

func cleanTarget(target string) {
	entries, _ := os.ReadDir(target)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(target, e.Name()))
	}
}

type restorer struct {
	r      *repo.Repo
	key    *repo.Key
	target string
	delta  bool
	asRoot bool
	owners ownerIDs
	done   atomic.Int64
	kept   map[string]bool // delta: paths the backup has
	spcMap map[string]string
	opts   RestoreOptions
	info   *Info
}

func (rs *restorer) run(ctx context.Context) error {
	info, opts := rs.info, rs.opts
	stop := func() {}
	if opts.Progress != nil {
		stop = ticker(func() { opts.Progress(Progress{Phase: "restore", Done: rs.done.Load(), Total: info.Size}) }, func() {})
	}
	defer stop()
	if rs.delta {
		rs.kept = map[string]bool{".": true}
	}
	g, gctx := errgroup.WithContext(ctx)
	files := make(chan *Entry, 2*opts.Jobs)
	for range opts.Jobs {
		g.Go(func() error {
			for e := range files {
				if err := rs.file(gctx, e); err != nil {
					for range files {
					}
					return fmt.Errorf("%s: %w", e.Path, err)
				}
			}
			return nil
		})
	}
	var control *Entry
	var dirs []*Entry
	g.Go(func() error {
		defer close(files)
		m := OpenManifest(gctx, rs.r, info)
		for {
			e, err := m.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if rs.kept != nil {
				rs.kept[e.Path] = true
			}
			switch {
			case e.Path == pg.ControlFile:
				// Written last: a data directory without it does not
				// start, so an interrupted restore never looks complete.
				control = e
			case e.Path == tablespaceMap:
				// The links are made here (and may be moved by TablespaceMap);
				// PostgreSQL would re-point them at the original paths.
			case e.Kind == KindFile:
				select {
				case files <- e:
				case <-gctx.Done():
					return gctx.Err()
				}
			default:
				if err := rs.dirOrLink(e); err != nil {
					return err
				}
				if e.Kind == KindDir {
					dirs = append(dirs, e)
				}
			}
		}
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return rs.finish(ctx, control, dirs)
}

// finish removes what a delta restore must not keep, writes pg_control,
// and fixes directory times and modes after their content is written.
func (rs *restorer) finish(ctx context.Context, control *Entry, dirs []*Entry) error {
	if control == nil {
		return fmt.Errorf("%w: the backup has no %s", repo.ErrCorrupt, pg.ControlFile)
	}
	if rs.kept != nil {
		if err := rs.removeExtra(); err != nil {
			return err
		}
	}
	if err := rs.recovery(ctx); err != nil {
		return err
	}
	if err := rs.file(ctx, control); err != nil {
		return fmt.Errorf("%s: %w", pg.ControlFile, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		p := rs.path(dirs[i].Path)
		if err := syncPath(p); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) path(rel string) string {
	if rel == "." {
		return rs.target
	}
	return filepath.Join(rs.target, filepath.FromSlash(rel))
}

func (rs *restorer) dirOrLink(e *Entry) error {
	p := rs.path(e.Path)
	switch e.Kind {
	case KindDir:
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, e.Mode&fs.ModePerm); err != nil {
			return err
		}
		return rs.owners.chown(p, e, rs.asRoot)
	case KindLink:
		return rs.link(p, e)
	}
	return fmt.Errorf("%w: entry %s of unknown kind %q", repo.ErrCorrupt, e.Path, e.Kind)
}

// tablespaceMap is the file pg_backup_stop returns to describe tablespace
// links; restore recreates the links itself instead.
const tablespaceMap = "tablespace_map"

// link recreates a symlink; for a tablespace, its directory too.
func (rs *restorer) link(p string, e *Entry) error {
	if oid, ok := strings.CutPrefix(e.Path, "pg_tblspc/"); ok && rs.spcMap[oid] != "" {
		moved := *e
		moved.Target = rs.spcMap[oid]
		e = &moved
	}
	if cur, err := os.Readlink(p); err == nil && cur == e.Target {
		return nil
	}
	os.Remove(p)
	if strings.HasPrefix(e.Path, "pg_tblspc/") {
		dir := e.Target
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(p), dir)
		}
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !rs.delta {
			return fmt.Errorf("tablespace directory %s is not empty", dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := rs.owners.chown(dir, e, rs.asRoot); err != nil {
			return err
		}
	}
	if err := os.Symlink(e.Target, p); err != nil {
		return err
	}
	return rs.owners.lchown(p, e, rs.asRoot)
}

func (rs *restorer) removeExtra() error {
	return filepath.WalkDir(rs.target, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rs.target, p)
		rel = filepath.ToSlash(rel)
		if rs.kept[rel] {
			return nil
		}
		if rel == pg.ControlFile {
			return nil
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
