package pg

import (
	"strconv"
	"strings"
)

// Fork is a relation fork (ForkNumber in common/relpath.h); the values
// match PostgreSQL's.
type Fork int

const (
	ForkMain Fork = iota // the data itself; no suffix in the file name
	ForkFSM              // free space map, "_fsm"
	ForkVM               // visibility map, "_vm"
	ForkInit             // init fork of an unlogged relation, "_init"
)

// forkNames are the file-name suffixes (forkNames[] in relpath.c).
var forkNames = [...]string{ForkMain: "main", ForkFSM: "fsm", ForkVM: "vm", ForkInit: "init"}

// String returns PostgreSQL's name for the fork: "main", "fsm", "vm" or
// "init".
func (f Fork) String() string {
	if f < 0 || int(f) >= len(forkNames) {
		return "fork(" + strconv.Itoa(int(f)) + ")"
	}
	return forkNames[f]
}

// oidChars is OIDCHARS: the most decimal digits an OID has.
const oidChars = 10

// RelFile is a relation data file in a data directory, as named by
// PostgreSQL's relpath(): which database, tablespace, relation, fork and
// 1 GiB segment it holds.
type RelFile struct {
	DBOid         uint32 // 0 for shared relations in global/
	TablespaceOID uint32 // 0 for the default tablespaces (base/ and global/)
	RelFilenode   uint32
	Fork          Fork
	Segment       int  // 0 for the first 1 GiB, which has no ".N" suffix
	Temp          bool // a temporary relation, "t<backend>_<relfilenode>"
}

// ParseRelFile recognises a relation data file by its path relative to the
// data directory, slash-separated, with no leading "./":
//
//	base/<db>/<relfilenode>[_fsm|_vm|_init][.<segment>]
//	global/<relfilenode>[_fsm|_vm|_init][.<segment>]
//	pg_tblspc/<spc>/PG_<major>_<catversion>/<db>/<relfilenode>...
//	base/<db>/t<backend>_<relfilenode>...  (temporary; also in tablespaces)
//
// It returns ok=false for everything else, such as pg_filenode.map,
// PG_VERSION, pg_internal.init or global/pg_control. Names follow
// PostgreSQL's own checks (parse_filename_for_nontemp_relation,
// looks_like_temp_rel_name); in addition OIDs must fit in 32 bits and be
// non-zero. A version directory of any major version is accepted; callers
// walking a tablespace choose their server's.
func ParseRelFile(rel string) (RelFile, bool) {
	parts := strings.Split(rel, "/")
	dir, name := parts[:len(parts)-1], parts[len(parts)-1]
	var r RelFile
	switch {
	case len(dir) == 1 && dir[0] == "global":
		// Shared catalogs: no database, never temporary.
		n, ok := parseRelName(name)
		if !ok || n.temp {
			return RelFile{}, false
		}
		return n.relFile(r), true
	case isDBDir(dir):
		var ok bool
		if r.DBOid, ok = parseOID(dir[len(dir)-1]); !ok {
			return RelFile{}, false
		}
		if dir[0] == "pg_tblspc" {
			if r.TablespaceOID, ok = parseOID(dir[1]); !ok {
				return RelFile{}, false
			}
		}
		n, ok := parseRelName(name)
		if !ok {
			return RelFile{}, false
		}
		return n.relFile(r), true
	}
	return RelFile{}, false
}

// relName is a relation file name split into its parts.
type relName struct {
	temp    bool
	node    uint32
	fork    Fork
	segment int
}

func (n relName) relFile(r RelFile) RelFile {
	r.RelFilenode, r.Fork, r.Segment, r.Temp = n.node, n.fork, n.segment, n.temp
	return r
}

// parseRelName parses "[t<backend>_]<node>[_<fork>][.<segment>]" with
// numeric checks on top of PostgreSQL's syntax checks.
func parseRelName(name string) (relName, bool) {
	syn, ok := scanRelName(name)
	if !ok {
		return relName{}, false
	}
	n := relName{temp: syn.temp, fork: syn.fork}
	if n.node, ok = parseOID(syn.node); !ok {
		return relName{}, false
	}
	if syn.segment != "" {
		// A relation has at most 2^32 blocks, so far fewer than 2^31 segments.
		seg, err := strconv.ParseInt(syn.segment, 10, 32)
		if err != nil {
			return relName{}, false
		}
		n.segment = int(seg)
	}
	return n, true
}

// relSyntax is what scanRelName found, still as text.
type relSyntax struct {
	temp    bool
	node    string // digits
	fork    Fork
	segment string // digits, or "" without a ".N" suffix
}

// scanRelName checks a file name exactly as PostgreSQL does, and splits it.
// Non-temporary: 1 to OIDCHARS digits (parse_filename_for_nontemp_relation).
// Temporary: "t", digits, "_", digits of any length (looks_like_temp_rel_name).
// Both may have "_fsm", "_vm" or "_init", then ".<digits>".
func scanRelName(name string) (relSyntax, bool) {
	var s relSyntax
	rest := name
	if strings.HasPrefix(rest, "t") {
		backend, after, found := strings.Cut(rest[1:], "_")
		if !found || !isDigits(backend) {
			return relSyntax{}, false
		}
		s.temp, rest = true, after
	}
	end := 0
	for end < len(rest) && isDigit(rest[end]) {
		end++
	}
	if end == 0 || (!s.temp && end > oidChars) {
		return relSyntax{}, false
	}
	s.node, rest = rest[:end], rest[end:]
	if after, found := strings.CutPrefix(rest, "_"); found {
		f, n := scanFork(after)
		if n == 0 {
			return relSyntax{}, false
		}
		s.fork, rest = f, after[n:]
	}
	if after, found := strings.CutPrefix(rest, "."); found {
		if !isDigits(after) {
			return relSyntax{}, false
		}
		s.segment, rest = after, ""
	}
	return s, rest == ""
}

// scanFork matches a fork name other than "main" at the start of s
// (forkname_chars) and returns it and its length, or length 0.
func scanFork(s string) (Fork, int) {
	for f := ForkFSM; f <= ForkInit; f++ {
		if strings.HasPrefix(s, forkNames[f]) {
			return f, len(forkNames[f])
		}
	}
	return ForkMain, 0
}

// isDBDir reports whether the slash-split directory is a database directory
// that holds relation files: base/<digits> or
// pg_tblspc/<digits>/PG_<major>_<catversion>/<digits>.
func isDBDir(dir []string) bool {
	switch len(dir) {
	case 2:
		return dir[0] == "base" && isDigits(dir[1])
	case 4:
		return dir[0] == "pg_tblspc" && isDigits(dir[1]) && isVersionDir(dir[2]) && isDigits(dir[3])
	}
	return false
}

// isVersionDir reports whether name looks like a tablespace version
// directory (TABLESPACE_VERSION_DIRECTORY), "PG_15_202209061".
func isVersionDir(name string) bool {
	rest, ok := strings.CutPrefix(name, "PG_")
	if !ok {
		return false
	}
	major, catversion, ok := strings.Cut(rest, "_")
	return ok && isDigits(major) && isDigits(catversion)
}

// parseOID parses a decimal OID: 1 to 10 digits, non-zero, fitting in 32
// bits.
func parseOID(s string) (uint32, bool) {
	if !isDigits(s) || len(s) > oidChars {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint32(v), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isDigits reports whether s is non-empty and all ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
