package pg_test

import (
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pg"
)

func TestParseRelFile(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   pg.RelFile
		wantOK bool
	}{
		{name: "main fork", in: "base/5/16384", want: pg.RelFile{DBOid: 5, RelFilenode: 16384}, wantOK: true},
		{name: "fsm", in: "base/5/16384_fsm", want: pg.RelFile{DBOid: 5, RelFilenode: 16384, Fork: pg.ForkFSM}, wantOK: true},
		{name: "vm", in: "base/5/16384_vm", want: pg.RelFile{DBOid: 5, RelFilenode: 16384, Fork: pg.ForkVM}, wantOK: true},
		{name: "init", in: "base/5/16384_init", want: pg.RelFile{DBOid: 5, RelFilenode: 16384, Fork: pg.ForkInit}, wantOK: true},
		{name: "segment", in: "base/5/16384.3", want: pg.RelFile{DBOid: 5, RelFilenode: 16384, Segment: 3}, wantOK: true},
		{name: "fork and segment", in: "base/5/16384_fsm.12", want: pg.RelFile{DBOid: 5, RelFilenode: 16384, Fork: pg.ForkFSM, Segment: 12}, wantOK: true},
		{name: "max oid", in: "base/4294967295/4294967295", want: pg.RelFile{DBOid: 1<<32 - 1, RelFilenode: 1<<32 - 1}, wantOK: true},
		{name: "global", in: "global/1262", want: pg.RelFile{RelFilenode: 1262}, wantOK: true},
		{name: "global vm", in: "global/1262_vm", want: pg.RelFile{RelFilenode: 1262, Fork: pg.ForkVM}, wantOK: true},
		{name: "tablespace", in: "pg_tblspc/16400/PG_15_202209061/5/16401.1", want: pg.RelFile{DBOid: 5, TablespaceOID: 16400, RelFilenode: 16401, Segment: 1}, wantOK: true},
		{name: "temp", in: "base/5/t3_16390", want: pg.RelFile{DBOid: 5, RelFilenode: 16390, Temp: true}, wantOK: true},
		{name: "temp fork and segment", in: "base/5/t12_16390_fsm.2", want: pg.RelFile{DBOid: 5, RelFilenode: 16390, Fork: pg.ForkFSM, Segment: 2, Temp: true}, wantOK: true},
		{name: "temp in tablespace", in: "pg_tblspc/16400/PG_15_202209061/5/t3_16390", want: pg.RelFile{DBOid: 5, TablespaceOID: 16400, RelFilenode: 16390, Temp: true}, wantOK: true},

		{name: "filenode map", in: "base/5/pg_filenode.map"},
		{name: "global filenode map", in: "global/pg_filenode.map"},
		{name: "relcache init", in: "base/5/pg_internal.init"},
		{name: "pg_control", in: "global/pg_control"},
		{name: "PG_VERSION", in: "base/5/PG_VERSION"},
		{name: "top-level PG_VERSION", in: "PG_VERSION"},
		{name: "database directory", in: "base/5"},
		{name: "relation outside a database", in: "base/16384"},
		{name: "relation at top level", in: "16384"},
		{name: "temp in global", in: "global/t3_16390"},
		{name: "main suffix", in: "base/5/16384_main"},
		{name: "unknown fork", in: "base/5/16384_xyz"},
		{name: "fork prefix", in: "base/5/16384_fsmx"},
		{name: "empty segment", in: "base/5/16384."},
		{name: "negative segment", in: "base/5/16384.-1"},
		{name: "two segments", in: "base/5/16384.1.2"},
		{name: "oid too long", in: "base/5/12345678901"},
		{name: "oid overflow", in: "base/5/4294967296"},
		{name: "zero relfilenode", in: "base/5/0"},
		{name: "zero database", in: "base/0/16384"},
		{name: "non-numeric database", in: "base/x/16384"},
		{name: "temp without backend", in: "base/5/t_16390"},
		{name: "temp without node", in: "base/5/t3_"},
		{name: "pgsql_tmp file", in: "base/pgsql_tmp/pgsql_tmp1234.0"},
		{name: "tablespace without version dir", in: "pg_tblspc/16400/5/16401"},
		{name: "tablespace bad version dir", in: "pg_tblspc/16400/PG_15/5/16401"},
		{name: "leading ./", in: "./base/5/16384"},
		{name: "absolute", in: "/base/5/16384"},
		{name: "double slash", in: "base//5/16384"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pg.ParseRelFile(tt.in)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseRelFile(%q): got %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestForkString(t *testing.T) {
	for f, want := range map[pg.Fork]string{pg.ForkMain: "main", pg.ForkFSM: "fsm", pg.ForkVM: "vm", pg.ForkInit: "init", 9: "fork(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Fork(%d): got %q, want %q", int(f), got, want)
		}
	}
}

// relFileName renders r's file name the way PostgreSQL names it; tempPrefix
// is "t<backend>_" for a temporary relation.
func relFileName(r pg.RelFile, tempPrefix string) string {
	var sb strings.Builder
	if r.Temp {
		sb.WriteString(tempPrefix)
	}
	sb.WriteString(strconv.FormatUint(uint64(r.RelFilenode), 10))
	if r.Fork != pg.ForkMain {
		sb.WriteString("_" + r.Fork.String())
	}
	if r.Segment != 0 {
		sb.WriteString("." + strconv.Itoa(r.Segment))
	}
	return sb.String()
}

func FuzzParseRelFile(f *testing.F) {
	for _, s := range []string{
		"base/5/16384", "base/5/16384_fsm.12", "global/1262_vm", "base/5/t3_16390_init.1",
		"pg_tblspc/16400/PG_15_202209061/5/16401.1", "base/5/pg_filenode.map", "base/5/0016384.01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		r, ok := pg.ParseRelFile(rel)
		kind := pg.Exclude(rel, false) // must not panic on anything either
		if !ok {
			return
		}
		if r.RelFilenode == 0 || r.Fork < pg.ForkMain || r.Fork > pg.ForkInit || r.Segment < 0 {
			t.Fatalf("ParseRelFile(%q): out-of-range result %+v", rel, r)
		}
		if r.Temp && kind != pg.SkipFile {
			t.Fatalf("Exclude(%q) of a temporary relation: got %v, want skip-file", rel, kind)
		}
		// Rendering the name again (without leading zeros) parses to the same file.
		dir, name := path.Split(rel)
		prefix, _, _ := strings.Cut(name, "_")
		again := dir + relFileName(r, prefix+"_")
		if r2, ok := pg.ParseRelFile(again); !ok || r2 != r {
			t.Fatalf("round trip of %q via %q: got %+v, %v; want %+v", rel, again, r2, ok, r)
		}
	})
}
