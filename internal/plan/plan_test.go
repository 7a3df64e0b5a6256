package plan

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// minimal is the smallest valid plan; cases below edit it.
const minimal = `version: 1
service:
  name: payments
  tier: 1
  rto: 5m
  rpo: 30s
postgres:
  pgdata: /var/lib/postgresql/15/main
repositories:
  - name: local
    url: file:///var/lib/bulwark/repo
`

func TestLoadExample(t *testing.T) {
	got, err := Load("testdata/bulwark.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Plan{
		Version: 1,
		Service: Service{Name: "payments", Tier: 1, RTO: 5 * time.Minute, RPO: 30 * time.Second},
		Postgres: Postgres{
			PGData: "/var/lib/postgresql/15/main",
			DB:     "host=/var/run/postgresql user=postgres dbname=postgres",
			BinDir: "/usr/lib/postgresql/15/bin",
		},
		Repositories: []Repository{
			{Name: "local", URL: "file:///var/lib/bulwark/repo", PasswordFile: "/etc/bulwark/local.pass"},
			{Name: "offsite", URL: "file:///mnt/offsite/bulwark", PasswordFile: "/etc/bulwark/offsite.pass"},
		},
		Path: "testdata/bulwark.yaml",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "bulwark.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(p *Plan) // edits the plan parsed from minimal into the expected one
	}{
		{"minimal gets defaults", minimal, func(p *Plan) {}},
		{
			"flow style and quoted values",
			`{version: 1, service: {name: "payments", tier: 0, rto: "1h30m", rpo: "0"},
			  postgres: {pgdata: '/var/lib/postgresql/15/main'},
			  repositories: [{name: local, url: "file:///var/lib/bulwark/repo"}]}`,
			func(p *Plan) { p.Service.Tier, p.Service.RTO, p.Service.RPO = 0, 90*time.Minute, 0 },
		},
		{"bare zero rpo", strings.Replace(minimal, "rpo: 30s", "rpo: 0", 1), func(p *Plan) { p.Service.RPO = 0 }},
		{"milliseconds", strings.Replace(minimal, "rto: 5m", "rto: 500ms", 1), func(p *Plan) { p.Service.RTO = 500 * time.Millisecond }},
		{"tier 4", strings.Replace(minimal, "tier: 1", "tier: 4", 1), func(p *Plan) { p.Service.Tier = 4 }},
		{
			"paths are cleaned",
			strings.Replace(minimal, "pgdata: /var/lib/postgresql/15/main", "pgdata: /var/lib/postgresql/15/main/\n  bin_dir: /opt/pg//bin/", 1),
			func(p *Plan) { p.Postgres.BinDir = "/opt/pg/bin" },
		},
		{
			"connection URL",
			strings.Replace(minimal, "postgres:\n", "postgres:\n  db: postgresql://postgres@localhost:5432/postgres?sslmode=disable\n", 1),
			func(p *Plan) { p.Postgres.DB = "postgresql://postgres@localhost:5432/postgres?sslmode=disable" },
		},
		{
			"quoted connection string values",
			strings.Replace(minimal, "postgres:\n", "postgres:\n  db: \"host = /tmp application_name='bulwark agent' options='-c x=\\\\'y\\\\''\"\n", 1),
			func(p *Plan) { p.Postgres.DB = `host = /tmp application_name='bulwark agent' options='-c x=\'y\''` },
		},
		{
			"s3 repository and comments",
			minimal + "  # offsite copy\n  - name: offsite-1\n    url: s3://bulwark-backups/payments\n    password_file: /etc/bulwark/s3.pass\n",
			func(p *Plan) {
				p.Repositories = append(p.Repositories, Repository{Name: "offsite-1", URL: "s3://bulwark-backups/payments", PasswordFile: "/etc/bulwark/s3.pass"})
			},
		},
		{"document markers", "---\n" + minimal + "...\n", func(p *Plan) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := &Plan{
				Version:      1,
				Service:      Service{Name: "payments", Tier: 1, RTO: 5 * time.Minute, RPO: 30 * time.Second},
				Postgres:     Postgres{PGData: "/var/lib/postgresql/15/main", BinDir: DefaultBinDir},
				Repositories: []Repository{{Name: "local", URL: "file:///var/lib/bulwark/repo"}},
				Path:         "t.yaml",
			}
			tt.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// want is an expected problem: its place, its field and part of its message.
type want struct {
	line, col int
	field     string
	msg       string
}

func TestParseProblems(t *testing.T) {
	const passwordMsg = "put the passphrase in a file and name it with password_file, or use BULWARK_REPO_PASSWORD"
	edit := func(old, new string) string {
		if !strings.Contains(minimal, old) {
			panic("test edits text not in minimal: " + old)
		}
		return strings.Replace(minimal, old, new, 1)
	}
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		// Keys.
		{"unknown top-level key", minimal + "retention: 7d\n", []want{{12, 1, "retention", "unknown field (known: version, service"}}},
		{"unknown key with a suggestion", edit("  tier: 1", "  teir: 1"), []want{
			{2, 1, "service.tier", "required"},
			{4, 3, "service.teir", "unknown field (did you mean tier?)"},
		}},
		{"odd key", minimal + "\"a\\nb\": 1\n", []want{{12, 1, `"a\nb"`, "unknown field"}}},
		{"unknown repository key", minimal + "    path: /x\n", []want{{12, 5, "repositories[0].path", "unknown field"}}},
		{"duplicate key", edit("  rpo: 30s", "  rpo: 30s\n  rpo: 1m"), []want{{7, 3, "service.rpo", "duplicate key (first at line 6)"}}},
		{"unknown key holding an anchor", minimal + "x: &svc {}\n", []want{{12, 1, "x", "unknown field"}}},
		{"merge key in a mapping", edit("service:\n", "service:\n  <<: {tier: 1}\n"), []want{{3, 3, "service", "merge keys"}}},

		// Passwords.
		{"password in a repository", minimal + "    password: hunter2\n", []want{{12, 5, "repositories[0].password", passwordMsg}}},
		{"password anywhere", minimal + "extra:\n  deep:\n    - PGPASSWORD: hunter2\n", []want{
			{12, 1, "extra", "unknown field"},
			{14, 7, "extra.deep[0].PGPASSWORD", passwordMsg},
		}},
		{"passphrase at the top", "passphrase: hunter2\n" + minimal, []want{{1, 1, "passphrase", passwordMsg}}},
		{"password in a repository URL", edit("file:///var/lib/bulwark/repo", "s3://key:hunter2@bucket/x"), []want{{11, 10, "repositories[0].url", passwordMsg}}},
		{"user in a repository URL", edit("file:///var/lib/bulwark/repo", "file://me@/x"), []want{{11, 10, "repositories[0].url", "user name"}}},
		{"password in a connection URL", edit("postgres:\n", "postgres:\n  db: postgres://u:hunter2@h/db\n"), []want{{8, 7, "postgres.db", "~/.pgpass"}}},
		{"password in a connection URL query", edit("postgres:\n", "postgres:\n  db: postgres://h/db?password=hunter2\n"), []want{{8, 7, "postgres.db", "~/.pgpass"}}},
		{"password keyword in a connection string", edit("postgres:\n", "postgres:\n  db: host=/tmp password = 'hunter2'\n"), []want{{8, 7, "postgres.db", "~/.pgpass"}}},

		// Version.
		{"missing version", edit("version: 1\n", ""), []want{{1, 1, "version", "required"}}},
		{"version 2", "version: 2\nanything: else\n", []want{{1, 10, "version", "unsupported plan version 2; this bulwark reads version 1"}}},
		{"version as a string", edit("version: 1", `version: "1"`), []want{{1, 10, "version", "must be an integer, not a string"}}},

		// Service.
		{"service not a mapping", edit("service:\n  name: payments\n  tier: 1\n  rto: 5m\n  rpo: 30s\n", "service: payments\n"), []want{
			{2, 10, "service", "must be a mapping, not a string"},
		}},
		{"empty service mapping", edit("service:\n  name: payments\n  tier: 1\n  rto: 5m\n  rpo: 30s\n", "service: {}\n"), []want{
			{2, 1, "service.name", "required"},
			{2, 1, "service.tier", "required"},
			{2, 1, "service.rto", "required"},
			{2, 1, "service.rpo", "required"},
		}},
		{"empty value", edit("  rto: 5m", "  rto:"), []want{{5, 3, "service.rto", "required"}}},
		{"missing section", edit("service:\n  name: payments\n  tier: 1\n  rto: 5m\n  rpo: 30s\n", ""), []want{{1, 1, "service", "required"}}},
		{"bad name", edit("name: payments", "name: Payments!"), []want{{3, 9, "service.name", "lowercase letters"}}},
		{"name starting with -", edit("name: payments", "name: -payments"), []want{{3, 9, "service.name", "lowercase letters"}}},
		{"number as name", edit("name: payments", "name: 42"), []want{{3, 9, "service.name", "must be a string, not an integer; quote it"}}},
		{"tier too high", edit("tier: 1", "tier: 5"), []want{{4, 9, "service.tier", "from 0 (mission critical) to 4 (non-critical), not 5"}}},
		{"tier negative", edit("tier: 1", "tier: -1"), []want{{4, 9, "service.tier", "not -1"}}},
		{"tier not an integer", edit("tier: 1", "tier: 1.5"), []want{{4, 9, "service.tier", "must be an integer, not a number"}}},
		{"tier huge", edit("tier: 1", "tier: 99999999999999999999"), []want{{4, 9, "service.tier", "must be an integer"}}},
		{"bad duration", edit("rto: 5m", "rto: 5 minutes"), []want{{5, 8, "service.rto", `invalid duration "5 minutes"`}}},
		{"days are not a unit", edit("rto: 5m", "rto: 1d"), []want{{5, 8, "service.rto", "invalid duration"}}},
		{"duration without a unit", edit("rto: 5m", "rto: 300"), []want{{5, 8, "service.rto", "needs a unit"}}},
		{"duration as a list", edit("rto: 5m", "rto: [5m]"), []want{{5, 8, "service.rto", "must be a duration such as 30s or 5m, not a list"}}},
		{"zero rto", edit("rto: 5m", "rto: 0s"), []want{{5, 8, "service.rto", "must be more than 0"}}},
		{"negative rpo", edit("rpo: 30s", "rpo: -30s"), []want{{6, 8, "service.rpo", "must not be negative"}}},

		// Postgres.
		{"relative pgdata", edit("pgdata: /var/lib", "pgdata: var/lib"), []want{{8, 11, "postgres.pgdata", "must be an absolute path"}}},
		{"missing pgdata", edit("  pgdata: /var/lib/postgresql/15/main\n", "  db: host=/tmp\n"), []want{{7, 1, "postgres.pgdata", "required"}}},
		{"relative bin_dir", edit("postgres:\n", "postgres:\n  bin_dir: bin\n"), []want{{8, 12, "postgres.bin_dir", "must be an absolute path"}}},
		{"control character in a path", edit("pgdata: /var/lib/postgresql/15/main", `pgdata: "/var/lib\n"`), []want{{8, 11, "postgres.pgdata", "control characters"}}},
		{"connection string without =", edit("postgres:\n", "postgres:\n  db: host=/tmp dbname\n"), []want{{8, 7, "postgres.db", `missing "=" after "dbname"`}}},
		{"connection string with an open quote", edit("postgres:\n", "postgres:\n  db: host='/tmp\n"), []want{{8, 7, "postgres.db", `unterminated quoted value for "host"`}}},
		{"connection string without keyword", edit("postgres:\n", "postgres:\n  db: =x\n"), []want{{8, 7, "postgres.db", "keyword missing"}}},

		// Repositories.
		{"no repositories", edit("repositories:\n  - name: local\n    url: file:///var/lib/bulwark/repo\n", "repositories: []\n"), []want{
			{9, 15, "repositories", "at least one repository is required"},
		}},
		{"repositories not a list", edit("repositories:\n  - name: local\n    url: file:///var/lib/bulwark/repo\n", "repositories: {name: local}\n"), []want{
			{9, 15, "repositories", "must be a list of repositories, not a mapping"},
		}},
		{"empty flow entry", edit("repositories:\n  - name: local\n    url: file:///var/lib/bulwark/repo\n", "repositories: [{}]\n"), []want{
			{9, 16, "repositories[0].name", "required"},
			{9, 16, "repositories[0].url", "required"},
		}},
		{"empty entry", minimal + "  -\n", []want{{12, 3, "repositories[1]", "empty entry"}}},
		{"entry not a mapping", minimal + "  - local\n", []want{{12, 5, "repositories[1]", "must be a mapping, not a string"}}},
		{"missing name and url", minimal + "  - password_file: /etc/p\n", []want{
			{12, 3, "repositories[1].name", "required"},
			{12, 3, "repositories[1].url", "required"},
		}},
		{"duplicate names", minimal + "  - name: local\n    url: file:///srv/repo\n", []want{
			{12, 11, "repositories[1].name", "duplicate repository name; repositories[0] has it too (line 10)"},
		}},
		{"duplicate URLs", minimal + "  - name: other\n    url: file:///var/lib/bulwark/repo\n", []want{
			{13, 10, "repositories[1].url", "duplicate URL; repositories[0] has it too (line 11)"},
		}},
		{"unsupported scheme", edit("file:///var", "http://host/var"), []want{{11, 10, "repositories[0].url", `unsupported scheme "http"`}}},
		{"no scheme", edit("file:///var", "/var"), []want{{11, 10, "repositories[0].url", "must have a scheme"}}},
		{"relative file URL", edit("file:///var", "file://var"), []want{{11, 10, "repositories[0].url", "absolute path"}}},
		{"opaque file URL", edit("file:///var", "file:var"), []want{{11, 10, "repositories[0].url", "absolute path"}}},
		{"file URL with a query", edit("repo\n", "repo?x=1\n"), []want{{11, 10, "repositories[0].url", "no query"}}},
		{"s3 URL without bucket", edit("file:///var", "s3:///var"), []want{{11, 10, "repositories[0].url", "needs a bucket"}}},
		{"not a URL", edit("file:///var", "file://[::1"), []want{{11, 10, "repositories[0].url", "not a URL"}}},
		{"relative password_file", minimal + "    password_file: local.pass\n", []want{{12, 20, "repositories[0].password_file", "absolute path"}}},

		// YAML.
		{"anchor and alias", edit("  rpo: 30s", "  rpo: &d 30s\n  rto: *d"), []want{
			{6, 8, "service.rpo", "anchors and aliases"},
			{7, 3, "service.rto", "duplicate key (first at line 5)"},
		}},
		{"tag", edit("name: payments", "name: !!str payments"), []want{{3, 9, "service.name", "tags"}}},
		{"two documents", minimal + "---\n" + minimal, []want{{13, 1, "", "one YAML document"}}},
		{"empty", "", []want{{0, 0, "", "empty"}}},
		{"comments only", "# nothing\n", []want{{0, 0, "", "empty"}}},
		{"not a mapping", "- 1\n", []want{{1, 1, "", "must be a mapping, not a list"}}},
		{"syntax error", edit("tier: 1", "tier: [1"), []want{{5, 3, "", "invalid YAML"}}},
		{"tab indentation", edit("  tier: 1", "\ttier: 1"), []want{{4, 1, "", "invalid YAML"}}},
		{"deep nesting", "x: " + strings.Repeat("[", 1000) + strings.Repeat("]", 1000), []want{{1, 36, "", "nested more than 32 levels"}}},
		{"deep block sequences", "x:\n" + strings.Repeat("- ", 1000) + "1", []want{{2, 65, "", "nested more than 32 levels"}}},
		{"not UTF-8", edit("name: payments", "name: pay\xffments"), []want{{3, 12, "", "not UTF-8"}}},
		{"too large", minimal + strings.Repeat("#", MaxSize), []want{{0, 0, "", "larger than 64 KiB"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("t.yaml", []byte(tt.yaml))
			if p != nil {
				t.Errorf("Parse returned a plan with an error")
			}
			checkProblems(t, "t.yaml", err, tt.want)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error repeats the password:\n%v", err)
			}
		})
	}
}

// TestLoadBroken loads the broken plans in testdata: each reports every one
// of its problems, not just the first.
func TestLoadBroken(t *testing.T) {
	tests := []struct {
		file string
		want []want
	}{
		{"testdata/unknown-keys.yaml", []want{
			{1, 1, "service", "required"},
			{2, 1, "servce", "did you mean service?"},
			{6, 3, "postgres.bindir", "did you mean bin_dir?"},
			{10, 5, "repositories[0].pasword_file", "did you mean password_file?"},
		}},
		{"testdata/bad-values.yaml", []want{
			{3, 9, "service.name", "lowercase"},
			{4, 9, "service.tier", "not 7"},
			{5, 8, "service.rto", "invalid duration"},
			{6, 8, "service.rpo", "negative"},
			{8, 11, "postgres.pgdata", "absolute path"},
			{9, 7, "postgres.db", `missing "="`},
			{12, 10, "repositories[0].url", "absolute path"},
			{13, 11, "repositories[1].name", "duplicate repository name"},
			{14, 10, "repositories[1].url", "unsupported scheme"},
			{15, 3, "repositories[2].name", "required"},
			{15, 10, "repositories[2].url", "bucket"},
			{16, 20, "repositories[2].password_file", "absolute path"},
		}},
		{"testdata/password.yaml", []want{
			{9, 7, "postgres.db", "must not hold a password"},
			{13, 5, "repositories[0].password", "must not hold a password"},
		}},
		{"testdata/syntax.yaml", []want{{5, 1, "", "invalid YAML"}}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			p, err := Load(tt.file)
			if p != nil {
				t.Errorf("Load returned a plan with an error")
			}
			checkProblems(t, tt.file, err, tt.want)
		})
	}
}

func checkProblems(t *testing.T, file string, err error, want []want) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("got error %v, want an *Error", err)
	}
	got := perr.Problems
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing problem %d: %d:%d: %s: %s", i, want[i].line, want[i].col, want[i].field, want[i].msg)
		case i >= len(want):
			t.Errorf("unexpected problem %d: %s", i, got[i])
		default:
			g, w := got[i], want[i]
			if g.File != file || g.Line != w.line || g.Column != w.col || g.Field != w.field || !strings.Contains(g.Msg, w.msg) {
				t.Errorf("problem %d:\ngot  %s\nwant %s:%d:%d: %s: ...%s...", i, g, file, w.line, w.col, w.field, w.msg)
			}
		}
	}
}

func TestErrorFormat(t *testing.T) {
	err := &Error{Problems: []Problem{
		{File: "bulwark.yaml", Line: 3, Column: 9, Field: "service.name", Msg: "bad"},
		{File: "bulwark.yaml", Line: 12, Column: 1, Field: "retention", Msg: "unknown field"},
		{File: "bulwark.yaml", Msg: "empty"},
	}}
	want := "bulwark.yaml:3:9: service.name: bad\nbulwark.yaml:12:1: retention: unknown field\nbulwark.yaml: empty"
	if got := err.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRepository(t *testing.T) {
	p, err := Load("testdata/bulwark.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local, offsite := p.Repositories[0], p.Repositories[1]
	tests := []struct {
		name      string
		plan      *Plan
		nameOrURL string
		want      Repository
		wantErr   string // part of the error; "" for none
	}{
		{"empty is the first", p, "", local, ""},
		{"by name", p, "offsite", offsite, ""},
		{"by URL", p, "file:///srv/other", Repository{URL: "file:///srv/other"}, ""},
		{"URL of a plan repository", p, "file:///mnt/offsite/bulwark", Repository{URL: "file:///mnt/offsite/bulwark"}, ""},
		{"unknown name", p, "nosuch", Repository{}, `plan testdata/bulwark.yaml has no repository named "nosuch" (it has local, offsite)`},
		{"bad URL", p, "ftp://host/x", Repository{}, `repository URL: unsupported scheme "ftp"`},
		{"URL with a password", p, "s3://k:hunter2@b/x", Repository{}, "must not hold a password"},
		{"no plan, URL", nil, "file:///srv/repo", Repository{URL: "file:///srv/repo"}, ""},
		{"no plan, name", nil, "local", Repository{}, "no plan to look the name up in"},
		{"no plan, nothing", nil, "", Repository{}, "no repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.plan.Repository(tt.nameOrURL)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("error repeats the password: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestExampleInDocs keeps the plan in docs/plan.md valid.
func TestExampleInDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/plan.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/plan.md has no ```yaml block")
	}
	if _, err := Parse("docs/plan.md", []byte(example)); err != nil {
		t.Errorf("the example in docs/plan.md is not a valid plan:\n%v", err)
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"tier", "tier", 0},
		{"teir", "tier", 1},
		{"servce", "service", 1},
		{"bindir", "bin_dir", 1},
		{"", "db", 2},
		{"rot", "rto", 1},
		{"kitten", "sitting", 3},
		{"x", "repositories", 3}, // too far to count exactly
	}
	for _, tt := range tests {
		t.Run(tt.a+"/"+tt.b, func(t *testing.T) {
			if got := distance(tt.a, tt.b); got != tt.want {
				t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
