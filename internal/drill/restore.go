package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Restorer restores the cluster's backups for the restore-test scenario.
// The drill decides what to check; the Restorer knows the repository and
// how to run a server on this machine.
type Restorer interface {
	// Newest names the newest physical backup and when it started.
	Newest(ctx context.Context) (id string, started time.Time, err error)
	// Archived reports whether the WAL file named (such as
	// 000000020000000000000007) is in the archive.
	Archived(ctx context.Context, walFile string) (bool, error)
	// Restore restores backup id into a fresh scratch directory and
	// starts a server on it; with a target time instead (id ""), the
	// backup is the newest that finished before it and recovery replays
	// the archived WAL to it, then promotes. It returns once the server
	// takes writes, with a connection string (to database postgres) and
	// a stop that stops the server and removes the directory.
	Restore(ctx context.Context, id string, target time.Time) (conn string, stop func(), err error)
}

// restoreTest restores the newest backup, then a point in time just
// after two marker writes, and checks each copy: it starts, amcheck finds
// no corruption in any database, and the drill table holds the rows it
// must. RestoreS is the longer of the two, each timed from the start of
// the restore to the end of its checks.
func restoreTest(ctx context.Context, o Options, id string) (Run, error) {
	if o.Restorer == nil {
		return Run{}, errors.New("restore-test needs the plan's repository")
	}
	before, err := waitHealthy(ctx, o)
	if err != nil {
		return Run{}, fmt.Errorf("cluster not healthy: %w", err)
	}
	if err := createTable(ctx, before); err != nil {
		return Run{}, err
	}
	leader := before.Leader.Name
	primary := before.Members[leader].Conn
	run := Run{Scenario: RestoreTest, OldPrimary: leader, NewPrimary: leader, Start: time.Now(), Consistent: true, Rejoined: true}
	fail := func(format string, args ...any) { run.Failures = append(run.Failures, fmt.Sprintf(format, args...)) }
	event := func(kind, detail string) {
		run.Events = append(run.Events, Event{At: time.Now(), Kind: kind, Detail: detail})
	}
	judged := func() (Run, error) {
		run.Passed = len(run.Failures) == 0
		return run, nil
	}

	backupID, started, err := o.Restorer.Newest(ctx)
	if err != nil {
		fail("no backup to restore: %v", err)
		return judged()
	}
	// Rows written before the backup began are in it.
	var older int64
	if err := withConn(ctx, primary, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM `+Table+` WHERE at < $1`, started).Scan(&older)
	}); err != nil {
		return Run{}, fmt.Errorf("primary %s: %w", leader, err)
	}
	run.Fault = time.Now()
	event("fault", "restore of backup "+backupID+" started")
	var n int64
	// The backup whose start the rows were counted against, even if a
	// newer one lands meanwhile.
	d, err := restoreAndCheck(ctx, o, backupID, time.Time{}, func(conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, Table).Scan(&exists); err != nil || !exists {
			return err // a backup older than the first drill has no table
		}
		return conn.QueryRow(ctx, `SELECT count(*) FROM `+Table+` WHERE at < $1`, started).Scan(&n)
	})
	run.RestoreS = d.Seconds()
	switch {
	case err != nil:
		fail("restore of backup %s: %v", backupID, err)
	case n != older:
		fail("restore of backup %s: %d rows of %s older than the backup, the primary has %d", backupID, n, Table, older)
	default:
		run.Notes = append(run.Notes, fmt.Sprintf("backup %s restored, started and checked in %.3fs: %d rows of %s older than the backup, as on the primary",
			backupID, d.Seconds(), n, Table))
	}
	event("healthy", fmt.Sprintf("backup %s restored and checked", backupID))

	if !o.PITR {
		run.Notes = append(run.Notes, "no point-in-time recovery: the plan archives no WAL")
		return judged()
	}
	point, walFile, wantPoint, err := markPoint(ctx, primary, id)
	if err != nil {
		return Run{}, fmt.Errorf("primary %s: %w", leader, err)
	}
	at := point.UTC().Format(time.RFC3339Nano)
	if err := waitArchived(ctx, o, walFile); err != nil {
		fail("WAL file %s, holding the recovery point, did not reach the archive: %v", walFile, err)
		return judged()
	}
	event("note", "point-in-time recovery to "+at+" started")
	var pre, post int64
	d, err = restoreAndCheck(ctx, o, "", point, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE at <= $1), count(*) FILTER (WHERE run = $2 AND seq = 1), count(*) FILTER (WHERE run = $2 AND seq = 2) FROM `+Table,
			point, id).Scan(&n, &pre, &post)
	})
	run.RestoreS = max(run.RestoreS, d.Seconds())
	switch {
	case err != nil:
		fail("point-in-time recovery to %s: %v", at, err)
	case pre != 1 || post != 0:
		fail("point-in-time recovery to %s: the write before that point is there %d times (want 1), the write after it %d times (want 0)", at, pre, post)
	case n != wantPoint:
		fail("point-in-time recovery to %s: %d rows of %s up to that point, the primary has %d", at, n, Table, wantPoint)
	default:
		run.Notes = append(run.Notes, fmt.Sprintf("point-in-time recovery to %s restored, replayed, started and checked in %.3fs: %d rows of %s up to that point, as on the primary",
			at, d.Seconds(), n, Table))
	}
	event("healthy", "point-in-time recovery checked")
	return judged()
}

// markPoint writes two marker rows of run id on the primary, seq 1 before
// the point in time it returns and seq 2 after, then switches WAL so that
// the file holding both gets archived. want is how many rows of the drill
// table a recovery to the point must hold.
func markPoint(ctx context.Context, primary, id string) (point time.Time, walFile string, want int64, err error) {
	err = withConn(ctx, primary, func(conn *pgx.Conn) error {
		const insert = `INSERT INTO ` + Table + ` (run, seq, node) VALUES ($1, $2, current_setting('cluster_name'))`
		if _, err := conn.Exec(ctx, insert, id, 1); err != nil {
			return err
		}
		// Read after the first commit and before the second: recovery to
		// it stops between them.
		if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&point); err != nil {
			return err
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+Table+` WHERE at <= $1`, point).Scan(&want); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, insert, id, 2); err != nil {
			return err
		}
		return conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&walFile)
	})
	return point, walFile, want, err
}

func waitArchived(ctx context.Context, o Options, walFile string) error {
	deadline := time.Now().Add(o.Timeout)
	for {
		ok, err := o.Restorer.Archived(ctx, walFile)
		switch {
		case ok:
			return nil
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("not archived after %s", o.Timeout)
			}
			return err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// restoreAndCheck restores (backup id, or to target), checks every
// database of the copy with amcheck, runs check on database postgres, and
// stops the copy. It returns how long it took up to the end of the checks.
func restoreAndCheck(ctx context.Context, o Options, id string, target time.Time, check func(*pgx.Conn) error) (time.Duration, error) {
	start := time.Now()
	conn, stop, err := o.Restorer.Restore(ctx, id, target)
	if err != nil {
		return time.Since(start), err
	}
	defer stop()
	if err := checkIntegrity(ctx, conn); err != nil {
		return time.Since(start), err
	}
	err = withConn(ctx, conn, check)
	return time.Since(start), err
}

// amcheck's two checks: heap pages and tuples of every table, and the
// ordering of every valid B-tree index.
const (
	heapCheckSQL = `SELECT c.oid::regclass::text, v.blkno, v.msg
FROM pg_class c CROSS JOIN LATERAL verify_heapam(c.oid) v
WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' LIMIT 5`
	indexCheckSQL = `SELECT count(bt_index_check(c.oid))
FROM pg_class c JOIN pg_am a ON a.oid = c.relam JOIN pg_index i ON i.indexrelid = c.oid
WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid AND i.indisready`
)

// checkIntegrity runs amcheck over every database of the server at conn
// (which names database postgres). Reading every page also verifies the
// data checksums.
func checkIntegrity(ctx context.Context, conn string) error {
	var dbs []string
	if err := withConn(ctx, conn, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname`)
		if err != nil {
			return err
		}
		dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}); err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		cfg.Database = db
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
		err = checkDatabase(ctx, c)
		c.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
	}
	return nil
}

func checkDatabase(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS amcheck`); err != nil {
		return fmt.Errorf("amcheck: %w", err)
	}
	rows, err := c.Query(ctx, heapCheckSQL)
	if err != nil {
		return fmt.Errorf("verify_heapam: %w", err)
	}
	var problems []string
	var rel, msg string
	var blk *int64
	if _, err := pgx.ForEachRow(rows, []any{&rel, &blk, &msg}, func() error {
		b := "-"
		if blk != nil {
			b = fmt.Sprint(*blk)
		}
		problems = append(problems, fmt.Sprintf("%s block %s: %s", rel, b, msg))
		return nil
	}); err != nil {
		return fmt.Errorf("verify_heapam: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("corruption: %s", strings.Join(problems, "; "))
	}
	var n int64
	if err := c.QueryRow(ctx, indexCheckSQL).Scan(&n); err != nil {
		return fmt.Errorf("bt_index_check: %w", err)
	}
	return nil
}
