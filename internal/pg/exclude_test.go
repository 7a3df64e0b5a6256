package pg_test

import (
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pg"
)

func TestExclude(t *testing.T) {
	tests := []struct {
		name  string
		rel   string
		isDir bool
		want  pg.ExcludeKind
	}{
		// Kept.
		{name: "root", rel: ".", isDir: true, want: pg.Keep},
		{name: "PG_VERSION", rel: "PG_VERSION", want: pg.Keep},
		{name: "postgresql.conf", rel: "postgresql.conf", want: pg.Keep},
		{name: "postgresql.auto.conf", rel: "postgresql.auto.conf", want: pg.Keep},
		{name: "pg_control is kept (copied last)", rel: pg.ControlFile, want: pg.Keep},
		{name: "base dir", rel: "base", isDir: true, want: pg.Keep},
		{name: "database dir", rel: "base/5", isDir: true, want: pg.Keep},
		{name: "relation", rel: "base/5/16384", want: pg.Keep},
		{name: "init fork", rel: "base/5/16384_init", want: pg.Keep},
		{name: "filenode map", rel: "base/5/pg_filenode.map", want: pg.Keep},
		{name: "pg_xact", rel: "pg_xact/0000", want: pg.Keep},
		{name: "pg_stat (permanent stats)", rel: "pg_stat/pgstat.stat", want: pg.Keep},
		{name: "pg_logical", rel: "pg_logical/replorigin_checkpoint", want: pg.Keep},
		{name: "tablespace link", rel: "pg_tblspc/16400", isDir: true, want: pg.Keep},
		{name: "tablespace relation", rel: "pg_tblspc/16400/PG_15_202209061/5/16401", want: pg.Keep},
		{name: "temp-looking name outside a database", rel: "global/t3_16390", want: pg.Keep},
		{name: "temp-looking name at top level", rel: "t3_16390", want: pg.Keep},
		{name: "pg_wal below the top is not special", rel: "base/pg_wal", isDir: true, want: pg.Keep},
		{name: "backup_label prefix is not excluded", rel: "backup_label.old", want: pg.Keep},

		// Directory contents skipped.
		{name: "pg_stat_tmp", rel: "pg_stat_tmp", isDir: true, want: pg.SkipContents},
		{name: "pg_replslot", rel: "pg_replslot", isDir: true, want: pg.SkipContents},
		{name: "pg_dynshmem", rel: "pg_dynshmem", isDir: true, want: pg.SkipContents},
		{name: "pg_notify", rel: "pg_notify", isDir: true, want: pg.SkipContents},
		{name: "pg_serial", rel: "pg_serial", isDir: true, want: pg.SkipContents},
		{name: "pg_snapshots", rel: "pg_snapshots", isDir: true, want: pg.SkipContents},
		{name: "pg_subtrans", rel: "pg_subtrans", isDir: true, want: pg.SkipContents},
		{name: "pg_wal", rel: "pg_wal", isDir: true, want: pg.SkipContents},
		{name: "pg_wal as a symlink", rel: "pg_wal", isDir: false, want: pg.SkipContents},
		{name: "archive_status kept empty", rel: "pg_wal/archive_status", isDir: true, want: pg.SkipContents},
		{name: "listed name at any depth", rel: "base/5/pg_notify", isDir: true, want: pg.SkipContents},

		// Skipped.
		{name: "WAL segment", rel: "pg_wal/000000010000000000000001", want: pg.SkipFile},
		{name: "archive status file", rel: "pg_wal/archive_status/000000010000000000000001.done", want: pg.SkipFile},
		{name: "archive_status as a file", rel: "pg_wal/archive_status", isDir: false, want: pg.SkipFile},
		{name: "slot", rel: "pg_replslot/standby1", isDir: true, want: pg.SkipFile},
		{name: "slot state", rel: "pg_replslot/standby1/state", want: pg.SkipFile},
		{name: "stats temp file", rel: "pg_stat_tmp/pgss_query_texts.stat", want: pg.SkipFile},
		{name: "subtrans file", rel: "pg_subtrans/0000", want: pg.SkipFile},
		{name: "postmaster.pid", rel: "postmaster.pid", want: pg.SkipFile},
		{name: "postmaster.opts", rel: "postmaster.opts", want: pg.SkipFile},
		{name: "backup_label", rel: "backup_label", want: pg.SkipFile},
		{name: "tablespace_map", rel: "tablespace_map", want: pg.SkipFile},
		{name: "backup_manifest", rel: "backup_manifest", want: pg.SkipFile},
		{name: "auto conf temp", rel: "postgresql.auto.conf.tmp", want: pg.SkipFile},
		{name: "current_logfiles temp", rel: "current_logfiles.tmp", want: pg.SkipFile},
		{name: "relcache init in a database", rel: "base/5/pg_internal.init", want: pg.SkipFile},
		{name: "relcache init in global", rel: "global/pg_internal.init", want: pg.SkipFile},
		{name: "relcache init temp file", rel: "base/5/pg_internal.init.4242", want: pg.SkipFile},
		{name: "pgsql_tmp dir", rel: "base/pgsql_tmp", isDir: true, want: pg.SkipFile},
		{name: "pgsql_tmp file", rel: "base/pgsql_tmp/pgsql_tmp1234.0", want: pg.SkipFile},
		{name: "pgsql_tmp in tablespace", rel: "pg_tblspc/16400/PG_15_202209061/pgsql_tmp", isDir: true, want: pg.SkipFile},
		{name: "pgsql_tmp prefix file", rel: "pgsql_tmp_abc", want: pg.SkipFile},
		{name: "temp relation", rel: "base/5/t3_16390", want: pg.SkipFile},
		{name: "temp relation fork", rel: "base/5/t3_16390_fsm.1", want: pg.SkipFile},
		{name: "temp relation long node", rel: "base/5/t3_123456789012", want: pg.SkipFile},
		{name: "temp relation in tablespace", rel: "pg_tblspc/16400/PG_15_202209061/5/t3_16390", want: pg.SkipFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pg.Exclude(tt.rel, tt.isDir); got != tt.want {
				t.Errorf("Exclude(%q, %v): got %v, want %v", tt.rel, tt.isDir, got, tt.want)
			}
		})
	}
}

func TestUnloggedFilter(t *testing.T) {
	names := []string{
		"16384", "16384_fsm", "16384_vm", "16384.1", "16384_init", // unlogged table
		"16390", "16390_fsm", "16390_vm", // logged table
		"16395_init.1",              // an init fork segment alone does not make it unlogged
		"16395",                     //
		"t3_16400", "t3_16400_init", // temporary: handled by Exclude
		"pg_filenode.map", "PG_VERSION",
	}
	tests := []struct {
		name string
		dir  string
		want map[string]bool // names the filter reports; all others false
	}{
		{name: "database directory", dir: "base/5", want: map[string]bool{"16384": true, "16384_fsm": true, "16384_vm": true, "16384.1": true}},
		{name: "tablespace database directory", dir: "pg_tblspc/16400/PG_15_202209061/5", want: map[string]bool{"16384": true, "16384_fsm": true, "16384_vm": true, "16384.1": true}},
		{name: "global", dir: "global", want: nil},
		{name: "not a database directory", dir: "pg_xact", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip := pg.UnloggedFilter(tt.dir, names)
			for _, n := range names {
				if got := skip(n); got != tt.want[n] {
					t.Errorf("%s/%s: got %v, want %v", tt.dir, n, got, tt.want[n])
				}
			}
		})
	}
}
