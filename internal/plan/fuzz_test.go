package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that it returns a plan or an
// *Error whose problems all name the file, and that a plan it accepts is
// accepted again, unchanged, once written back out.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		minimal,
		"",
		"version: 2\n",
		"{version: 1, service: {rto: 0}}",
		"x: &a [*a]\n",
		"a: 1\n---\nb: 2\n",
		"- - - 1\n",
		"service: {password: x}\n",
		"repositories: [~, {url: 's3://b'}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte("\"a\\nb\": 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			checkError(t, p, err)
			return
		}
		if p.Version != Version || len(p.Repositories) == 0 || p.Service.RTO <= 0 || p.Postgres.BinDir == "" ||
			p.Archiving.Mode == "" || p.Replication.Mode == "" {
			t.Fatalf("accepted a plan that breaks an invariant: %+v", p)
		}
		for _, s := range p.Schedules {
			if _, err := p.Repository(s.Repository); err != nil || s.Repository == "" || s.Cron.MaxGap() <= 0 {
				t.Fatalf("accepted a schedule that breaks an invariant: %+v (%v)", s, err)
			}
		}
		p.Check(Facts{}) // must not panic on any plan Parse accepts
		again, err := Parse("f.yaml", format(p))
		if err != nil {
			t.Fatalf("plan written back out does not parse:\n%s\n%v", format(p), err)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("round trip changed the plan (-first +second):\n%s", diff)
		}
	})
}

// FuzzRoundTrip writes plans with arbitrary values and checks that Parse
// either refuses them or reads back exactly what was written.
func FuzzRoundTrip(f *testing.F) {
	f.Add("payments", 1, "5m", "30s", "/var/lib/postgresql/15/main", "host=/tmp", "local", "file:///srv/repo", "/etc/p")
	f.Add("a-b_c", 0, "1h30m", "0s", "/d\u00e9j\u00e0", `options='-c a=\'b\''`, "x", "s3://b/p?q=1", "")
	f.Fuzz(func(t *testing.T, name string, tier int, rto, rpo, pgdata, db, repo, url, pwfile string) {
		for _, s := range []string{name, pgdata, db, repo, url, pwfile} {
			if !utf8.ValidString(s) {
				return // YAML cannot hold it; Parse refuses such files
			}
		}
		rtoD, err1 := time.ParseDuration(rto)
		rpoD, err2 := time.ParseDuration(rpo)
		if err1 != nil || err2 != nil {
			return
		}
		in := &Plan{
			Version:      Version,
			Service:      Service{Name: name, Tier: tier, RTO: rtoD, RPO: rpoD},
			Postgres:     Postgres{PGData: pgdata, DB: db, BinDir: DefaultBinDir},
			Repositories: []Repository{{Name: repo, URL: url, PasswordFile: pwfile}},
			Archiving:    Archiving{Mode: DefaultArchiveMode},
			Replication:  Replication{Mode: DefaultReplicationMode},
			Drills:       Drills{History: "drills"},
			Path:         "f.yaml",
		}
		out, err := Parse("f.yaml", format(in))
		if err != nil {
			checkError(t, out, err)
			return
		}
		in.Postgres.PGData = filepath.Clean(pgdata)
		if pwfile != "" {
			in.Repositories[0].PasswordFile = filepath.Clean(pwfile)
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Fatalf("read back a different plan (-written +read):\n%s\nfrom:\n%s", diff, format(in))
		}
	})
}

func checkError(t *testing.T, p *Plan, err error) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("got error %v, want an *Error", err)
	}
	if p != nil {
		t.Fatalf("got a plan along with an error")
	}
	if len(perr.Problems) == 0 {
		t.Fatalf("got an *Error with no problems")
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(perr.Problems) {
		t.Fatalf("Error() has %d lines for %d problems:\n%s", lines, len(perr.Problems), err)
	}
	for _, pr := range perr.Problems {
		if pr.File != "f.yaml" || pr.Line < 0 || pr.Column < 0 || pr.Msg == "" {
			t.Fatalf("malformed problem %+v", pr)
		}
	}
}

// format writes p as a plan file, with every string double-quoted.
func format(p *Plan) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "version: %d\nservice:\n", p.Version)
	fmt.Fprintf(&b, "  name: %s\n  tier: %d\n  rto: %s\n  rpo: %s\n", q(p.Service.Name), p.Service.Tier, q(p.Service.RTO.String()), q(p.Service.RPO.String()))
	optional(&b, "  region", p.Service.Region)
	fmt.Fprintf(&b, "postgres:\n  pgdata: %s\n  db: %s\n  bin_dir: %s\n", q(p.Postgres.PGData), q(p.Postgres.DB), q(p.Postgres.BinDir))
	b.WriteString("repositories:\n")
	for _, r := range p.Repositories {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", q(r.Name), q(r.URL))
		optional(&b, "    password_file", r.PasswordFile)
		optional(&b, "    region", r.Region)
		if r.Offsite != nil {
			fmt.Fprintf(&b, "    offsite: %t\n", *r.Offsite)
		}
		if rt := r.Retention; rt != (Retention{}) {
			b.WriteString("    retention:\n")
			for _, f := range []struct {
				key string
				n   int
			}{{"full", rt.Full}, {"diff", rt.Diff}, {"daily", rt.Daily}, {"weekly", rt.Weekly}, {"monthly", rt.Monthly}} {
				if f.n != 0 {
					fmt.Fprintf(&b, "      %s: %d\n", f.key, f.n)
				}
			}
			if rt.Within != 0 {
				fmt.Fprintf(&b, "      within: %s\n", q(rt.Within.String()))
			}
		}
	}
	fmt.Fprintf(&b, "archiving:\n  mode: %s\n", q(string(p.Archiving.Mode)))
	if p.Archiving.Timeout != 0 {
		fmt.Fprintf(&b, "  archive_timeout: %s\n", q(p.Archiving.Timeout.String()))
	}
	fmt.Fprintf(&b, "replication:\n  mode: %s\n", q(string(p.Replication.Mode)))
	if p.Replication.SyncCount != 0 {
		fmt.Fprintf(&b, "  sync_count: %d\n", p.Replication.SyncCount)
	}
	if filepath.IsAbs(p.Drills.History) {
		fmt.Fprintf(&b, "drills:\n  history: %s\n", q(p.Drills.History))
	}
	if len(p.Schedules) > 0 {
		b.WriteString("schedules:\n")
	}
	for _, s := range p.Schedules {
		fmt.Fprintf(&b, "  - name: %s\n    cron: %s\n    job: %s\n    repository: %s\n", q(s.Name), q(s.Cron.String()), q(string(s.Job)), q(s.Repository))
		optional(&b, "    type", s.Type)
		optional(&b, "    to", s.To)
	}
	return []byte(b.String())
}

// optional writes "key: value" unless value is empty.
func optional(b *strings.Builder, key, value string) {
	if value != "" {
		fmt.Fprintf(b, "%s: %s\n", key, q(value))
	}
}

// FuzzCron checks that ParseCron never panics, and that an expression it
// accepts reads back the same from String and runs at least once a cycle.
func FuzzCron(f *testing.F) {
	for _, s := range []string{"@daily", "0 1 * * sun", "*/15 0-6 1,15 jan-jun mon-fri", "0 0 29 2 *", "0 0 31 2 *", "5/1 * * * *", "0-59/7 */5 * * 0-7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCron(s)
		if err != nil {
			return
		}
		again, err := ParseCron(c.String())
		if err != nil || !again.Equal(c) {
			t.Fatalf("round trip of %q: got %v, %v", s, again, err)
		}
		if g := c.MaxGap(); g <= 0 || g > cronCycleDays*24*time.Hour {
			t.Fatalf("MaxGap of %q = %v, want within (0, one cycle]", s, g)
		}
	})
}

// q quotes s as a YAML double-quoted scalar; Go's escapes are a subset of YAML's.
func q(s string) string { return strconv.Quote(s) }
