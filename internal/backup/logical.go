package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// LogicalOptions configure a logical backup or restore.
type LogicalOptions struct {
	DB     string // connection string of the database to dump or restore into
	BinDir string // where pg_dump and pg_restore live; default PATH
	Backup string // restore: backup ID or "latest"
	// Clean drops objects before recreating them (pg_restore --clean --if-exists).
	Clean  bool
	Jobs   int
	Logger *slog.Logger
}

// CreateLogical runs pg_dump (custom format) into the repository. The dump
// is read back from the repository through pg_restore --list before the
// backup is recorded.
func CreateLogical(ctx context.Context, r *repo.Repo, opts LogicalOptions) (*Info, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.GOMAXPROCS(0)
	}
	conn, err := pgx.Connect(ctx, opts.DB)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	srv, err := pg.Probe(ctx, conn)
	var db string
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	}
	conn.Close(ctx)
	if err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, "backup", true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(ctx)
	start := time.Now()
	info := &Info{Type: Logical, Database: db, PGVersion: srv.Version, SystemID: fmt.Sprint(srv.SystemID), StartTime: start.UTC()}
	if info.ID, err = newID(ctx, r, Logical, start); err != nil {
		return nil, err
	}
	added := r.AddedBytes()
	e, err := dump(ctx, r, opts, db)
	if err != nil {
		return nil, err
	}
	mw := newManifestWriter(ctx, r)
	if err := mw.add(e); err != nil {
		return nil, err
	}
	if info.Manifest, err = mw.finish(); err != nil {
		return nil, err
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	if err := checkDump(ctx, r, opts, e); err != nil {
		return nil, fmt.Errorf("dump read back from the repository is not valid, backup not recorded: %w", err)
	}
	info.StopTime, info.Size, info.Files = time.Now().UTC(), e.Size, 1
	info.Duration = time.Since(start).Seconds()
	info.NewBytes = r.AddedBytes() - added
	if info.StoredSize, err = storedSize(ctx, r, info); err != nil {
		return nil, err
	}
	if err := r.SaveDoc(ctx, docKind, info.ID, info); err != nil {
		return nil, fmt.Errorf("record backup: %w", err)
	}
	return info, nil
}

// dump streams pg_dump's output into blobs.
func dump(ctx context.Context, r *repo.Repo, opts LogicalOptions, db string) (*Entry, error) {
	cmd, stderr := pgCommand(ctx, opts.BinDir, "pg_dump", opts.DB, "--format=custom", "--no-password")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pg_dump: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan storeJob, 2*opts.Jobs)
	for range opts.Jobs {
		g.Go(func() error { return storeWorker(gctx, r, jobs) })
	}
	rd := newReader(r, jobs, nil)
	e := &Entry{Path: "dump/" + db + ".pgdump", Kind: KindFile, Mode: 0o600, Extra: true, MTime: time.Now().UnixNano()}
	g.Go(func() error {
		defer close(jobs)
		err := rd.fill(gctx, out, e, nil, false)
		io.Copy(io.Discard, out)
		if werr := cmd.Wait(); werr != nil {
			return fmt.Errorf("pg_dump: %w: %s", werr, strings.TrimSpace(stderr.String()))
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return e, nil
}

// checkDump pipes the stored dump into pg_restore --list.
func checkDump(ctx context.Context, r *repo.Repo, opts LogicalOptions, e *Entry) error {
	cmd, stderr := pgCommand(ctx, opts.BinDir, "pg_restore", "", "--list")
	return feed(ctx, r, cmd, stderr, e)
}

// RestoreLogical restores a logical backup into the database at opts.DB
// with pg_restore, streaming the dump from the repository.
func RestoreLogical(ctx context.Context, r *repo.Repo, opts LogicalOptions) (*Info, error) {
	info, err := Load(ctx, r, opts.Backup, true)
	if err != nil {
		return nil, err
	}
	if info.Type != Logical {
		return nil, fmt.Errorf("backup %s is a %s backup, not logical: restore it with --pgdata", info.ID, info.Type)
	}
	m := OpenManifest(ctx, r, info)
	e, err := m.Next()
	if err != nil {
		return nil, err
	}
	args := []string{"--exit-on-error", "--no-password"}
	if opts.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	cmd, stderr := pgCommand(ctx, opts.BinDir, "pg_restore", opts.DB, args...)
	if err := feed(ctx, r, cmd, stderr, e); err != nil {
		return nil, err
	}
	return info, nil
}

// feed runs cmd with the content of e on its standard input.
func feed(ctx context.Context, r *repo.Repo, cmd *exec.Cmd, stderr *bytes.Buffer, e *Entry) error {
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	var werr error
	for _, b := range e.Blocks {
		data, err := loadBlock(ctx, r, b, nil)
		if err != nil {
			werr = err
			break
		}
		if _, err := in.Write(data); err != nil {
			break // the command exited; its status says why
		}
	}
	in.Close()
	err = cmd.Wait()
	if werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// pgCommand builds a pg_dump/pg_restore command. The password of conn is
// passed through PGPASSWORD, never on the command line where ps shows it.
func pgCommand(ctx context.Context, binDir, name, conn string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	bin := name
	if binDir != "" {
		bin = filepath.Join(binDir, name)
	}
	env := os.Environ()
	if conn != "" {
		dsn, pw := stripPassword(conn)
		args = append([]string{"--dbname=" + dsn}, args...)
		if pw != "" {
			env = append(env, "PGPASSWORD="+pw)
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 64 << 10}
	return cmd, &stderr
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)\s*`)

// stripPassword removes the password from a libpq connection string or URL.
func stripPassword(conn string) (string, string) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil || u.User == nil {
			return conn, ""
		}
		pw, ok := u.User.Password()
		if !ok {
			return conn, ""
		}
		u.User = url.User(u.User.Username())
		return u.String(), pw
	}
	m := kvPassword.FindStringSubmatch(conn)
	if m == nil {
		return conn, ""
	}
	pw := strings.Trim(m[2], "'")
	return strings.TrimSpace(kvPassword.ReplaceAllString(conn, "$1")), pw
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
