package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
)

// Asynchronous archiving, on pgBackRest's archive-async model. PostgreSQL
// calls `wal push --async %p` once per file, one at a time. The first call
// starts a background process (`wal push-daemon`) that keeps the
// repository open and pushes every file that pg_wal/archive_status marks
// ready, several at once. It records each outcome in the spool directory
// as <file>.ok or <file>.error; the foreground call waits for its file's
// outcome, removes it and exits 0 or 1. A file counts as archived only
// once its push has returned, so nothing is acknowledged early; a lost
// spool directory only costs pushes again, which the archive accepts.

const (
	spoolOK    = ".ok"
	spoolError = ".error"
	pushLock   = "push-daemon.lock"
	// defaultDaemonIdle is how long the background process waits for new
	// work before it exits.
	defaultDaemonIdle = 30 * time.Second
	// retryAfter is how long a failed file waits before it is pushed again.
	retryAfter = time.Second
)

func defaultSpoolDir(walDir string) string {
	sum := sha256.Sum256([]byte(walDir))
	return filepath.Join(os.TempDir(), fmt.Sprintf("bulwark-spool-%d-%s", os.Getuid(), hex.EncodeToString(sum[:6])))
}

// pushAsync is the foreground half: wait for the daemon's outcome for path.
func (a *app) pushAsync(ctx context.Context, f pushFlags, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	walDir, name := filepath.Dir(abs), filepath.Base(abs)
	if _, _, err := archive.Classify(name); err != nil {
		return fmt.Errorf("wal push: %w", err)
	}
	if f.spoolDir == "" {
		f.spoolDir = defaultSpoolDir(walDir)
	}
	if err := os.MkdirAll(f.spoolDir, 0o700); err != nil {
		return fmt.Errorf("wal push: spool directory: %w", err)
	}
	deadline := time.Now().Add(f.timeout)
	var lastSpawn time.Time
	for {
		done, err := takeOutcome(f.spoolDir, abs)
		if done {
			if err != nil {
				return fmt.Errorf("wal push %s (async): %w", name, err)
			}
			return nil
		}
		if time.Since(lastSpawn) > time.Second && !daemonRunning(f.spoolDir, pushLock) {
			if err := a.spawnDaemon(f, walDir); err != nil {
				return fmt.Errorf("wal push: start the background pusher: %w", err)
			}
			lastSpawn = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wal push %s (async): no outcome after %s; see the background pusher's log in the server log", name, f.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// takeOutcome consumes the spool's outcome file for the WAL file at path,
// if there is one. An outcome older than the file is stale (left from
// before the file was rewritten, say after a restore into the same data
// directory) and is discarded: the file is pushed again.
func takeOutcome(spool, path string) (bool, error) {
	name := filepath.Base(path)
	ok := filepath.Join(spool, name+spoolOK)
	if st, err := os.Stat(ok); err == nil {
		os.Remove(ok)
		if wf, err := os.Stat(path); err == nil && st.ModTime().Before(wf.ModTime()) {
			return false, nil
		}
		return true, nil
	}
	bad := filepath.Join(spool, name+spoolError)
	msg, err := os.ReadFile(bad)
	if err != nil {
		return false, nil
	}
	os.Remove(bad)
	return true, errors.New(strings.TrimSpace(string(msg)))
}

// daemonRunning reports whether a background process holds the lock file
// lockName of the spool directory.
func daemonRunning(spool, lockName string) bool {
	fd, ok, err := takeLock(spool, lockName)
	if err != nil {
		return false
	}
	if ok {
		syscall.Flock(int(fd.Fd()), syscall.LOCK_UN)
	}
	fd.Close()
	return !ok
}

// takeLock tries to lock the file lockName of the spool directory; ok is
// false when another process holds it. The caller closes the file.
func takeLock(spool, lockName string) (fd *os.File, ok bool, err error) {
	fd, err = os.OpenFile(filepath.Join(spool, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fd, false, nil
	}
	return fd, true, nil
}

// repoArgs repeats how this command named its repository, for a
// background process (the passphrase itself stays in the environment or
// its file).
func (a *app) repoArgs(f repoFlags) []string {
	var argv []string
	if a.planPath != "" {
		argv = append(argv, "--plan", a.planPath)
	}
	if f.repo != "" {
		argv = append(argv, "--repo", f.repo)
	}
	if f.passwordFile != "" {
		argv = append(argv, "--password-file", f.passwordFile)
	}
	return append(argv, "--log-level", a.logLevel)
}

// spawnBackground starts this binary with argv, detached from this
// process (its own session), logging to our stderr: PostgreSQL's log, like
// the archive or restore command's own.
func spawnBackground(argv []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, argv...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() //nolint:errcheck // it outlives us; its outcome is in the spool
	return cmd.Process.Release()
}

// daemon runs fn as the only background process holding lockName in the
// spool directory, with the repository open; onOpenError, if set, hears
// why the repository could not be opened. It returns nil at once when
// another process holds the lock.
func (a *app) daemon(ctx context.Context, spool, lockName string, rf repoFlags, onOpenError func(error), fn func(*archive.Archive) error) error {
	lock, ok, err := takeLock(spool, lockName)
	if err != nil {
		return err
	}
	defer lock.Close()
	if !ok {
		return nil
	}
	ar, err := a.openArchive(ctx, rf)
	if err != nil {
		if onOpenError != nil {
			onOpenError(err)
		}
		return err
	}
	return fn(ar)
}

// spawnDaemon starts `bulwark wal push-daemon` with the same repository
// settings (flags, plan, environment).
func (a *app) spawnDaemon(f pushFlags, walDir string) error {
	argv := []string{"wal", "push-daemon", "--pg-wal", walDir, "--spool-dir", f.spoolDir, "--jobs", fmt.Sprint(f.jobs), "--idle-exit", f.idle.String()}
	return spawnBackground(append(argv, a.repoArgs(f.repo)...))
}

func (a *app) newWalPushDaemonCmd() *cobra.Command {
	var f pushFlags
	var walDir string
	cmd := &cobra.Command{
		Use:    "push-daemon",
		Short:  "Background pusher of wal push --async (started by it)",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every waiting push learns why the repository would not open.
			onOpenError := func(err error) { writeOutcomes(walDir, f.spoolDir, err) }
			return a.daemon(cmd.Context(), f.spoolDir, pushLock, f.repo, onOpenError, func(ar *archive.Archive) error {
				return a.pushDaemon(cmd.Context(), ar, walDir, f)
			})
		},
	}
	f.repo.register(cmd)
	cmd.Flags().StringVar(&walDir, "pg-wal", "", "the server's pg_wal directory")
	cmd.Flags().StringVar(&f.spoolDir, "spool-dir", "", "outcome files")
	cmd.Flags().IntVar(&f.jobs, "jobs", runtime.NumCPU(), "files pushed at once")
	cmd.Flags().DurationVar(&f.idle, "idle-exit", defaultDaemonIdle, "exit after this long without work")
	return cmd
}

// readyFiles lists the files PostgreSQL has marked ready for archiving,
// oldest first (history files first: PostgreSQL archives them first too).
func readyFiles(walDir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".ready"); ok {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(x, y string) int {
		hx, hy := strings.HasSuffix(x, ".history"), strings.HasSuffix(y, ".history")
		if hx != hy {
			if hx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	return names, nil
}

func writeOutcomes(walDir, spool string, err error) {
	names, _ := readyFiles(walDir)
	for _, n := range names {
		writeSpool(spool, n, err)
	}
}

// writeSpool records one outcome atomically.
func writeSpool(spool, name string, err error) error {
	final, body := filepath.Join(spool, name+spoolOK), ""
	if err != nil {
		final, body = filepath.Join(spool, name+spoolError), err.Error()+"\n"
	}
	return writeAtomic(final, []byte(body))
}

func (a *app) pushDaemon(ctx context.Context, ar *archive.Archive, walDir string, f pushFlags) error {
	a.log.Info("background WAL pusher started", "pg_wal", walDir, "jobs", f.jobs, "repository", ar.Repo().Location())
	w := startWorkers(f.jobs, retryAfter, func(name string) error {
		err := a.pushFile(ctx, ar, filepath.Join(walDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // archived and recycled meanwhile by a foreground push of ours
		}
		if err != nil {
			a.log.Error("push failed", "file", name, "err", err)
		}
		if werr := writeSpool(f.spoolDir, name, err); werr != nil {
			a.log.Error("record outcome", "file", name, "err", werr)
		}
		return err
	})
	defer w.stop()
	idleSince := time.Now()
	for {
		names, err := readyFiles(walDir)
		if err != nil {
			return fmt.Errorf("list ready WAL: %w", err)
		}
		sent := 0
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(f.spoolDir, n+spoolOK)); err == nil {
				continue // done, waiting for its foreground call
			}
			if w.submit(ctx, n) {
				sent++
			}
		}
		if sent > 0 || !w.idle() {
			idleSince = time.Now()
		} else if time.Since(idleSince) > f.idle {
			a.log.Info("background WAL pusher idle, exiting")
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}
