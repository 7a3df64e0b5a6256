package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Server describes a running PostgreSQL server, as Probe sees it.
type Server struct {
	Version        int    // server_version_num, e.g. 150004
	SystemID       uint64 // pg_control's system identifier: same on a primary and its standbys
	InRecovery     bool   // a standby (or a server still recovering)
	DataDirectory  string // absolute path of PGDATA on the server's host
	WALSegmentSize uint64 // bytes; checked with wal.CheckSegmentSize
	BlockSize      int    // bytes per page; PageSize unless built otherwise
	DataChecksums  bool
	ArchiveMode    string // "off", "on" or "always"
}

// probeSQL reads everything in one statement so the answers are
// consistent with each other. data_directory needs superuser or
// pg_read_all_settings; pg_control_system needs superuser or an explicit
// grant.
const probeSQL = `SELECT
	current_setting('server_version_num')::int,
	(SELECT system_identifier FROM pg_control_system()),
	pg_is_in_recovery(),
	current_setting('data_directory'),
	(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
	current_setting('block_size')::int,
	current_setting('data_checksums') = 'on',
	current_setting('archive_mode')`

// Probe asks the server on conn what it is. It fails if the server reports
// a WAL segment size PostgreSQL could not have (the result would map LSNs
// to the wrong files); other values are reported for the caller to judge.
func Probe(ctx context.Context, conn *pgx.Conn) (Server, error) {
	var (
		s        Server
		sysID    int64 // bigint on the wire; pg_control holds it unsigned
		segBytes int64
	)
	err := conn.QueryRow(ctx, probeSQL).Scan(&s.Version, &sysID, &s.InRecovery, &s.DataDirectory,
		&segBytes, &s.BlockSize, &s.DataChecksums, &s.ArchiveMode)
	if err != nil {
		return Server{}, fmt.Errorf("probe server: %w", err)
	}
	s.SystemID = uint64(sysID)
	if segBytes <= 0 {
		return Server{}, fmt.Errorf("probe server: wal_segment_size %d is invalid", segBytes)
	}
	s.WALSegmentSize = uint64(segBytes)
	if err := wal.CheckSegmentSize(s.WALSegmentSize); err != nil {
		return Server{}, fmt.Errorf("probe server: %w", err)
	}
	return s, nil
}
