package pg

import (
	"slices"
	"strings"
)

// ExcludeKind says what a base backup does with one path of the data
// directory.
type ExcludeKind int

const (
	Keep         ExcludeKind = iota // back it up (a directory: recurse into it)
	SkipFile                        // leave it out entirely, and everything below it
	SkipContents                    // keep the directory itself, empty: skip what is in it
)

// String returns "keep", "skip-file" or "skip-contents".
func (k ExcludeKind) String() string {
	switch k {
	case Keep:
		return "keep"
	case SkipFile:
		return "skip-file"
	case SkipContents:
		return "skip-contents"
	}
	return "exclude-kind(?)"
}

// ControlFile is the path of pg_control. Exclude keeps it; like
// pg_basebackup, a backup should copy it last, after every other file.
const ControlFile = "global/pg_control"

// excludeDirContents are directories whose contents a base backup skips
// (excludeDirContents[] in PostgreSQL 15's basebackup.c), matched by name
// at any depth, as PostgreSQL does.
var excludeDirContents = []string{
	"pg_stat_tmp", // PG_STAT_TMP_DIR: extensions write temporary statistics here
	"pg_replslot", // slots are not useful on a restored server
	"pg_dynshmem", // removed on startup
	"pg_notify",   // removed on startup
	"pg_serial",   // only kept for debugging
	"pg_snapshots",
	"pg_subtrans", // zeroed on startup
}

// excludeFiles are file names a base backup skips at any depth
// (excludeFiles[] in basebackup.c). pg_internal.init matches as a prefix,
// which also covers its temporary files ("pg_internal.init.1234").
var excludeFiles = []string{
	"postgresql.auto.conf.tmp",
	"current_logfiles.tmp",
	"backup_label",    // belongs to a backup that started this server, not to ours
	"tablespace_map",  // likewise
	"backup_manifest", // likewise
	"postmaster.pid",
	"postmaster.opts",
}

const (
	relCacheInitFile = "pg_internal.init" // rebuilt on startup
	tempFilePrefix   = "pgsql_tmp"        // PG_TEMP_FILE_PREFIX: temp files and directories
)

// Exclude reports what pg_basebackup in PostgreSQL 15 does with rel, a
// slash-separated path relative to the data directory with no leading "./"
// (see sendDir in basebackup.c):
//
//   - SkipFile for pgsql_tmp* files and directories, temporary relations
//     (t<backend>_<relfilenode>... in a database directory), and the
//     excluded files: postgresql.auto.conf.tmp, current_logfiles.tmp,
//     pg_internal.init* (in any directory), backup_label, tablespace_map,
//     backup_manifest, postmaster.pid and postmaster.opts;
//   - SkipContents for pg_stat_tmp, pg_replslot, pg_dynshmem, pg_notify,
//     pg_serial, pg_snapshots and pg_subtrans, and for the top-level pg_wal
//     (WAL comes from the archive) and its archive_status, which
//     pg_basebackup also writes as an empty directory;
//   - SkipFile for anything below a path that is skipped or whose contents
//     are, so a caller walking every path gets the same answer;
//   - Keep otherwise, including ControlFile (to be copied last).
//
// Like basebackup.c it goes by name, whatever the type: isDir matters only
// for pg_wal/archive_status. Pass a symbolic link to a directory (pg_wal
// often is one) as a directory. Unlogged relations need the directory's
// listing: see UnloggedFilter.
func Exclude(rel string, isDir bool) ExcludeKind {
	if rel == "" || rel == "." {
		return Keep
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		switch excludeEntry(parts[:i]) {
		case SkipFile:
			return SkipFile
		case SkipContents:
			if rel == "pg_wal/archive_status" && isDir {
				return SkipContents
			}
			return SkipFile
		}
	}
	return excludeEntry(parts)
}

// excludeEntry decides for the last element of parts by its name and its
// parent, in the order of sendDir's checks.
func excludeEntry(parts []string) ExcludeKind {
	dir, name := parts[:len(parts)-1], parts[len(parts)-1]
	switch {
	case strings.HasPrefix(name, tempFilePrefix):
		return SkipFile
	case isDBDir(dir) && isTempRelName(name):
		return SkipFile
	case strings.HasPrefix(name, relCacheInitFile), slices.Contains(excludeFiles, name):
		return SkipFile
	case slices.Contains(excludeDirContents, name):
		return SkipContents
	case len(parts) == 1 && name == "pg_wal":
		return SkipContents
	}
	return Keep
}

// isTempRelName is looks_like_temp_rel_name.
func isTempRelName(name string) bool {
	s, ok := scanRelName(name)
	return ok && s.temp
}

// UnloggedFilter returns a predicate that reports which entries of one
// directory pg_basebackup leaves out because they belong to an unlogged
// relation: the main, FSM and VM forks (any segment) of a relation whose
// "<relfilenode>_init" file is among names. The init fork itself is kept:
// recovery copies it over the main fork. dir is the directory's path
// relative to the data directory and names is its full listing (os.ReadDir).
// Outside database directories (base/<db>, a tablespace's <db>) the
// predicate is always false, as in basebackup.c.
//
// PostgreSQL checks for the init fork while it reads the directory; taking
// the listing once is the same up to concurrent changes, which WAL replay
// repairs.
func UnloggedFilter(dir string, names []string) func(name string) bool {
	if !isDBDir(strings.Split(dir, "/")) {
		return func(string) bool { return false }
	}
	unlogged := make(map[string]bool)
	for _, name := range names {
		if node, ok := strings.CutSuffix(name, "_init"); ok {
			if s, ok := scanRelName(name); ok && !s.temp && s.node == node {
				unlogged[node] = true
			}
		}
	}
	return func(name string) bool {
		s, ok := scanRelName(name)
		return ok && !s.temp && s.fork != ForkInit && unlogged[s.node]
	}
}
