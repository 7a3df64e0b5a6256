package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// localRestorer restores the plan's repository into scratch directories
// on this machine and runs a server on each, for the restore-test drill.
type localRestorer struct {
	a       *app
	p       *plan.Plan
	rf      repoFlags
	r       *repo.Repo
	scratch string              // where the scratch directories go
	owner   *syscall.Credential // the server's OS user when running as root
	timeout time.Duration       // for the server to start and finish recovery
}

var _ drill.Restorer = (*localRestorer)(nil)

func (a *app) newLocalRestorer(ctx context.Context, p *plan.Plan, rf repoFlags, scratch string, timeout time.Duration) (*localRestorer, error) {
	r, err := a.openRepo(ctx, rf)
	if err != nil {
		return nil, err
	}
	owner, err := postgresOwner()
	if err != nil {
		return nil, err
	}
	if scratch == "" {
		scratch = os.TempDir()
	}
	return &localRestorer{a: a, p: p, rf: rf, r: r, scratch: scratch, owner: owner, timeout: timeout}, nil
}

func (l *localRestorer) Newest(ctx context.Context) (string, time.Time, error) {
	info, err := backup.Load(ctx, l.r, "latest", false)
	if err != nil {
		return "", time.Time{}, err
	}
	return info.ID, info.StartTime, nil
}

func (l *localRestorer) Archived(ctx context.Context, walFile string) (bool, error) {
	return archive.New(l.r).Has(ctx, walFile)
}

func (l *localRestorer) Restore(ctx context.Context, id string, target time.Time) (string, func(), error) {
	dir, err := os.MkdirTemp(l.scratch, "bulwark-restore-test-")
	if err != nil {
		return "", nil, err
	}
	removeDir := func() { os.RemoveAll(dir) }
	if l.owner != nil {
		if err := os.Chown(dir, int(l.owner.Uid), int(l.owner.Gid)); err != nil {
			removeDir()
			return "", nil, err
		}
	}
	opts := backup.RestoreOptions{Backup: cmp.Or(id, "latest"), PGData: filepath.Join(dir, "pgdata"), Logger: l.a.log, Archive: archive.New(l.r), ReadAhead: readAheadFor(l.r.Location())}
	if !target.IsZero() {
		// The newest timeline: a failover since the backup moved the
		// writes there, and the old timeline's last file may never have
		// been archived.
		opts.Target = backup.Target{Time: target, Action: "promote", Timeline: "latest"}
		if opts.RestoreCommand, err = l.a.restoreCommand(l.rf); err != nil {
			removeDir()
			return "", nil, err
		}
	}
	if _, err := backup.Restore(ctx, l.r, opts); err != nil {
		removeDir()
		return "", nil, err
	}
	// The copy listens on a socket in its directory only. It must not
	// archive into the cluster's repository, wait for its standbys,
	// stream from its primary or need its certificates.
	const port = 5432
	inst := &pg.Instance{BinDir: l.p.Postgres.BinDir, DataDir: opts.PGData, LogFile: filepath.Join(dir, "postgres.log"), RunAs: l.owner,
		Settings: map[string]string{"port": strconv.Itoa(port), "listen_addresses": "", "unix_socket_directories": dir,
			"archive_mode": "off", "synchronous_standby_names": "", "primary_conninfo": "", "primary_slot_name": "",
			"ssl": "off", "cluster_name": "restore-test", "hot_standby": "on"}}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		inst.Stop(sctx, "fast", time.Minute)
		removeDir()
	}
	if err := inst.Start(ctx, l.timeout); err != nil {
		stop()
		return "", nil, fmt.Errorf("the restored server did not start: %w", err)
	}
	conn := fmt.Sprintf("host=%s port=%d %s", dir, port, clusterConn(l.p.Cluster))
	if err := waitPrimary(ctx, conn, l.timeout); err != nil {
		stop()
		return "", nil, err
	}
	return conn, stop, nil
}

// waitPrimary waits until the server at conn has finished recovery.
func waitPrimary(ctx context.Context, conn string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		inRecovery, err := func() (bool, error) {
			c, err := pgx.Connect(ctx, conn)
			if err != nil {
				return false, err
			}
			defer c.Close(context.WithoutCancel(ctx))
			var r bool
			return r, c.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&r)
		}()
		switch {
		case err == nil && !inRecovery:
			return nil
		case time.Now().After(deadline):
			if err == nil {
				err = errors.New("still in recovery")
			}
			return fmt.Errorf("the restored server did not finish recovery in %s: %w", timeout, err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
}
