package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// Exit codes of wal fetch, as restore_command's caller reads them: 1 means
// "not in the archive" and lets recovery end there; a status above 125
// makes PostgreSQL abort recovery, which is what an unreadable repository
// must do rather than end recovery early and lose the rest of the WAL.
const (
	exitFetchNotFound = 1
	exitFetchError    = 255
)

// exitError carries a command's own exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func (a *app) newWalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "wal", Short: "Archive and fetch write-ahead log (archive_command, restore_command, streaming)"}
	cmd.AddCommand(a.newWalPushCmd(), a.newWalFetchCmd(), a.newWalPushDaemonCmd(), a.newWalFetchDaemonCmd(), a.newWalReceiveCmd())
	return cmd
}

// openArchive opens the repository's WAL archive without loading the pack
// index: a push or fetch must start in milliseconds however large the
// repository is.
func (a *app) openArchive(ctx context.Context, f repoFlags) (*archive.Archive, error) {
	r, err := a.openRepoWith(ctx, f, repo.Options{SkipIndex: true})
	if err != nil {
		return nil, err
	}
	return archive.New(r), nil
}

type pushFlags struct {
	repo     repoFlags
	async    bool
	spoolDir string
	jobs     int
	timeout  time.Duration
	idle     time.Duration
}

func (a *app) newWalPushCmd() *cobra.Command {
	var f pushFlags
	cmd := &cobra.Command{
		Use:   "push WALFILE",
		Short: "Archive one WAL file (archive_command = 'bulwark wal push %p')",
		Long: `Archive one WAL file: a segment, a timeline history file, a backup history
file or a .partial segment. The file is compressed, encrypted and written to
the repository before the command returns 0. Pushing a file that is already
archived with the same content succeeds; different content under the same
name is refused and nothing is overwritten.

With --async the file is pushed by a background process that pushes every
file PostgreSQL has marked ready, several at once, ahead of PostgreSQL's
requests (pgBackRest's archive-async). It records each outcome in the spool
directory; this command returns as soon as its file's outcome is there.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if f.async {
				return a.pushAsync(cmd.Context(), f, argv[0])
			}
			ar, err := a.openArchive(cmd.Context(), f.repo)
			if err != nil {
				return err
			}
			return a.pushFile(cmd.Context(), ar, argv[0])
		},
	}
	f.repo.register(cmd)
	cmd.Flags().BoolVar(&f.async, "async", false, "push in a background process, in parallel and ahead of PostgreSQL")
	cmd.Flags().StringVar(&f.spoolDir, "spool-dir", "", "where --async keeps its outcome files (default: a directory under $TMPDIR named after pg_wal)")
	cmd.Flags().IntVar(&f.jobs, "jobs", runtime.NumCPU(), "files the --async process pushes at once")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Minute, "how long --async waits for its file before failing (PostgreSQL retries)")
	cmd.Flags().DurationVar(&f.idle, "async-idle-exit", defaultDaemonIdle, "the --async background process exits after this long without work")
	return cmd
}

// pushFile archives the file at path (relative to the working directory,
// which PostgreSQL sets to the data directory).
func (a *app) pushFile(ctx context.Context, ar *archive.Archive, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("wal push: %w", err)
	}
	start := time.Now()
	existed, err := ar.Push(ctx, filepath.Base(path), data)
	if err != nil {
		return fmt.Errorf("wal push: %w", err)
	}
	if existed {
		a.log.Info("already archived with the same content", "file", filepath.Base(path))
		return nil
	}
	a.log.Debug("archived", "file", filepath.Base(path), "bytes", len(data), "duration", time.Since(start))
	return nil
}

func (a *app) newWalFetchCmd() *cobra.Command {
	var f fetchFlags
	cmd := &cobra.Command{
		Use:   "fetch WALFILE DEST",
		Short: "Restore one WAL file from the archive (restore_command = 'bulwark wal fetch %f %p')",
		Long: `Restore one WAL file from the archive to DEST (relative to the working
directory, which PostgreSQL sets to the data directory).

Exit codes: 0 restored; 1 the archive does not hold the file (recovery ends
there, as PostgreSQL expects); 255 any other error (the repository cannot be
read, the object is damaged, a bad option): PostgreSQL then aborts recovery
instead of ending it early without the rest of the WAL.

With --prefetch N a background process keeps the repository open and fetches
the N segments after the one asked for into pg_wal/bulwark-prefetch, so that
recovery does not wait for one process and one key unlock per segment.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var err error
			if f.prefetch > 0 {
				err = a.fetchAhead(cmd.Context(), f, argv[0], argv[1])
			} else {
				err = a.fetch(cmd.Context(), f.repo, argv[0], argv[1])
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, archive.ErrNotFound):
				return &exitError{exitFetchNotFound, err}
			case errors.Is(err, context.Canceled):
				return err
			}
			return &exitError{exitFetchError, err}
		},
	}
	f.repo.register(cmd)
	cmd.Flags().IntVar(&f.prefetch, "prefetch", 0, "segments a background process fetches ahead (0: none)")
	cmd.Flags().StringVar(&f.spoolDir, "spool-dir", "", "where prefetched segments wait (default: pg_wal/"+defaultPrefetchDir+" beside DEST)")
	cmd.Flags().IntVar(&f.jobs, "jobs", 2, "segments the background process fetches at once")
	cmd.Flags().DurationVar(&f.idle, "prefetch-idle-exit", defaultDaemonIdle, "the background process exits after this long without a request")
	return cmd
}

func (a *app) fetch(ctx context.Context, f repoFlags, name, dest string) error {
	ar, err := a.openArchive(ctx, f)
	if err != nil {
		return err
	}
	data, err := ar.Fetch(ctx, name)
	if err != nil {
		return err
	}
	if err := writeAtomic(dest, data); err != nil {
		return err
	}
	a.log.Debug("restored from the archive", "file", name)
	return nil
}
