package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// maxLabelLen is the longest label pg_backup_start accepts (MAXPGPATH).
const maxLabelLen = 1024

// BackupStart is what the server reports when a backup starts.
type BackupStart struct {
	LSN      wal.LSN        // where replay of the backup must start
	Timeline wal.TimelineID // timeline of the checkpoint the backup starts from
	Time     time.Time      // the server's clock right after pg_backup_start returned
}

// StartBackup runs pg_backup_start(label, fast) on conn: it waits for a
// checkpoint (an immediate one if fast, else a spread one) and puts the
// server in backup mode. The backup belongs to conn's session: finish it
// with StopBackup on the same conn; if the session ends first, PostgreSQL
// aborts the backup. It fails if the session already runs a backup, or if
// label holds a newline or is over 1024 bytes (it would corrupt
// backup_label).
//
// fast mirrors pg_backup_start's own argument.
func StartBackup(ctx context.Context, conn *pgx.Conn, label string, fast bool) (BackupStart, error) {
	if strings.ContainsAny(label, "\r\n") || len(label) > maxLabelLen {
		return BackupStart{}, fmt.Errorf("start backup: label %q must be one line of at most %d bytes", label, maxLabelLen)
	}
	var (
		s   BackupStart
		lsn string
	)
	if err := conn.QueryRow(ctx, "SELECT pg_backup_start($1, $2)::text", label, fast).Scan(&lsn); err != nil {
		return BackupStart{}, fmt.Errorf("start backup: %w", err)
	}
	var err error
	if s.LSN, err = wal.ParseLSN(lsn); err != nil {
		return BackupStart{}, fmt.Errorf("start backup: %w", err)
	}
	// pg_backup_start has just written (or, on a standby, found) the
	// checkpoint the backup starts from, so its timeline is the backup's.
	var tli int32
	err = conn.QueryRow(ctx, "SELECT timeline_id, clock_timestamp() FROM pg_control_checkpoint()").Scan(&tli, &s.Time)
	if err != nil {
		return BackupStart{}, fmt.Errorf("start backup: read checkpoint timeline: %w", err)
	}
	if tli <= 0 {
		return BackupStart{}, fmt.Errorf("start backup: checkpoint timeline %d is invalid", tli)
	}
	s.Timeline = wal.TimelineID(tli)
	return s, nil
}

// BackupStop is what the server reports when a backup ends.
type BackupStop struct {
	LSN           wal.LSN   // replay must reach this LSN for the backup to be consistent
	Label         string    // backup_label text: store it as the backup's backup_label file
	TablespaceMap string    // tablespace_map text; "" without tablespaces
	Time          time.Time // the server's clock right after pg_backup_stop returned
}

// StopBackup runs pg_backup_stop(waitForArchive) on conn, which must be the
// session that called StartBackup. With waitForArchive it returns only once
// every WAL segment the backup needs is archived (blocking for as long as
// archiving takes; bound it with ctx); without it the caller must make sure
// of that itself. The label text is returned as is: parse it with
// wal.ParseBackupLabel.
//
// waitForArchive mirrors pg_backup_stop's own argument.
func StopBackup(ctx context.Context, conn *pgx.Conn, waitForArchive bool) (BackupStop, error) {
	var (
		s   BackupStop
		lsn string
	)
	err := conn.QueryRow(ctx,
		"SELECT lsn::text, labelfile, coalesce(spcmapfile, ''), clock_timestamp() FROM pg_backup_stop($1)",
		waitForArchive).Scan(&lsn, &s.Label, &s.TablespaceMap, &s.Time)
	if err != nil {
		return BackupStop{}, fmt.Errorf("stop backup: %w", err)
	}
	if s.LSN, err = wal.ParseLSN(lsn); err != nil {
		return BackupStop{}, fmt.Errorf("stop backup: %w", err)
	}
	return s, nil
}

// CreateTempSlot creates a temporary physical replication slot named name
// that reserves WAL at once (pg_create_physical_replication_slot(name,
// true, true)) and returns its restart LSN: the server keeps WAL from there
// on until conn's session ends, which drops the slot. It fails if a slot
// of that name exists.
func CreateTempSlot(ctx context.Context, conn *pgx.Conn, name string) (wal.LSN, error) {
	var lsn *string
	err := conn.QueryRow(ctx,
		"SELECT lsn::text FROM pg_create_physical_replication_slot($1, true, true)", name).Scan(&lsn)
	if err != nil {
		return 0, fmt.Errorf("create temporary slot %s: %w", name, err)
	}
	if lsn == nil {
		return 0, fmt.Errorf("create temporary slot %s: server reserved no WAL", name)
	}
	l, err := wal.ParseLSN(*lsn)
	if err != nil {
		return 0, fmt.Errorf("create temporary slot %s: %w", name, err)
	}
	return l, nil
}
