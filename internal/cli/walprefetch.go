package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Prefetching for restore_command, on pgBackRest's archive-get async
// model. Recovery asks for one segment at a time and each `wal fetch` is a
// process that must unlock the repository: with --prefetch N, a fetch
// also tells a background process (`wal fetch-daemon`) which segment was
// asked for last, and that process, keeping the repository open, fetches
// the N segments after it into a spool directory inside pg_wal. The next
// fetch finds its segment there and only renames it into place.
//
// Only segments archived whole are prefetched: they never change, so a
// spooled file is always what a direct fetch would return. The spool
// remembers which repository it holds files from and is emptied when that
// changes.

const (
	fetchLock   = "fetch-daemon.lock"
	fetchWant   = "want"   // the segment PostgreSQL asked for last
	fetchSource = "source" // the repository the spooled files come from
	// defaultPrefetchDir is the spool directory's name inside pg_wal, so
	// that a spooled segment is renamed into place on the same file system.
	defaultPrefetchDir = "bulwark-prefetch"
)

type fetchFlags struct {
	repo     repoFlags
	prefetch int
	spoolDir string
	jobs     int
	idle     time.Duration
	pgdata   string // the daemon: the data directory in recovery
}

// fetchAhead serves name from the spool when it is there, fetches it
// directly otherwise, and points the background process at what follows.
func (a *app) fetchAhead(ctx context.Context, f fetchFlags, name, dest string) error {
	kind, _, err := archive.Classify(name)
	if err != nil || kind != archive.KindSegment {
		return a.fetch(ctx, f.repo, name, dest)
	}
	absDest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	spool := f.spoolDir
	if spool == "" {
		spool = filepath.Join(filepath.Dir(absDest), defaultPrefetchDir)
	}
	pr, err := a.resolveRepo(f.repo)
	if err != nil {
		return err
	}
	if err := prepareFetchSpool(spool, pr.URL); err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	if err := os.Rename(filepath.Join(spool, name), absDest); err == nil {
		a.log.Debug("restored from the prefetch spool", "file", name)
	} else if err := a.fetch(ctx, f.repo, name, dest); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(spool, fetchWant), []byte(name)); err != nil {
		return err
	}
	if !daemonRunning(spool, fetchLock) {
		pgdata, err := os.Getwd() // PostgreSQL runs restore_command in the data directory
		if err != nil {
			return err
		}
		argv := []string{"wal", "fetch-daemon", "--spool-dir", spool, "--pgdata", pgdata, "--prefetch", fmt.Sprint(f.prefetch), "--jobs", fmt.Sprint(f.jobs), "--idle-exit", f.idle.String()}
		if err := spawnBackground(append(argv, a.repoArgs(f.repo)...)); err != nil {
			a.log.Warn("could not start the prefetching process", "err", err)
		}
	}
	return nil
}

// prepareFetchSpool makes the spool directory and empties it when its
// files came from another repository.
func prepareFetchSpool(spool, source string) error {
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	if old, err := os.ReadFile(filepath.Join(spool, fetchSource)); err == nil && string(old) == source {
		return nil
	}
	clearSpool(spool, func(string) bool { return true })
	return writeAtomic(filepath.Join(spool, fetchSource), []byte(source))
}

// clearSpool removes the spooled segments for which drop is true.
func clearSpool(spool string, drop func(name string) bool) {
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		n := strings.TrimSuffix(e.Name(), ".tmp")
		if _, err := wal.ParseSegmentName(n); err == nil && drop(n) {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (a *app) newWalFetchDaemonCmd() *cobra.Command {
	var f fetchFlags
	cmd := &cobra.Command{
		Use:    "fetch-daemon",
		Short:  "Background prefetcher of wal fetch --prefetch (started by it)",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.daemon(cmd.Context(), f.spoolDir, fetchLock, f.repo, nil, func(ar *archive.Archive) error {
				return a.prefetch(cmd.Context(), ar, f)
			})
		},
	}
	f.repo.register(cmd)
	cmd.Flags().StringVar(&f.spoolDir, "spool-dir", "", "where prefetched segments wait")
	cmd.Flags().IntVar(&f.prefetch, "prefetch", 8, "segments to fetch ahead")
	cmd.Flags().IntVar(&f.jobs, "jobs", 2, "segments fetched at once")
	cmd.Flags().DurationVar(&f.idle, "idle-exit", defaultDaemonIdle, "exit after this long without a new request")
	cmd.Flags().StringVar(&f.pgdata, "pgdata", "", "exit once this data directory has left recovery")
	return cmd
}

// prefetch keeps the f.prefetch segments after the last one asked for in
// the spool, until no new segment is asked for during f.idle or the data
// directory has left recovery (no recovery.signal or standby.signal).
func (a *app) prefetch(ctx context.Context, ar *archive.Archive, f fetchFlags) (err error) {
	info, err := ar.Info(ctx)
	if err != nil {
		return err
	}
	w := startWorkers(f.jobs, time.Second, func(name string) error {
		data, err := ar.FetchComplete(ctx, name)
		if err == nil {
			err = writeAtomic(filepath.Join(f.spoolDir, name), data)
		}
		if err != nil && !errors.Is(err, archive.ErrNotFound) {
			a.log.Warn("prefetch failed", "file", name, "err", err)
		}
		return err
	})
	recovered := false
	defer func() {
		w.stop()
		if recovered {
			// Recovery is over: nothing will be asked for again.
			err = errors.Join(err, os.RemoveAll(f.spoolDir))
		}
	}()
	last, lastChange := "", time.Now()
	for {
		b, rerr := os.ReadFile(filepath.Join(f.spoolDir, fetchWant))
		if errors.Is(rerr, fs.ErrNotExist) {
			if _, serr := os.Stat(f.spoolDir); serr != nil {
				return nil // the spool (or the whole data directory) is gone
			}
		} else if rerr != nil {
			return rerr
		}
		if f.pgdata != "" && !inRecovery(f.pgdata) {
			recovered = true
			return nil
		}
		want := string(b)
		if want != last {
			last, lastChange = want, time.Now()
		} else if time.Since(lastChange) > f.idle {
			return nil
		}
		if seg, err := wal.ParseSegmentName(want); err == nil {
			names := make([]string, 0, f.prefetch)
			window := map[string]bool{}
			for next := seg; len(names) < f.prefetch; {
				next = next.Next(info.SegmentSize)
				names = append(names, next.String())
				window[next.String()] = true
			}
			clearSpool(f.spoolDir, func(n string) bool { return !window[n] && !w.busy(n) })
			for _, n := range names {
				if _, err := os.Stat(filepath.Join(f.spoolDir, n)); err == nil {
					continue
				}
				w.submit(ctx, n)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func inRecovery(pgdata string) bool {
	for _, n := range []string{"recovery.signal", "standby.signal"} {
		if _, err := os.Stat(filepath.Join(pgdata, n)); err == nil {
			return true
		}
	}
	return false
}
