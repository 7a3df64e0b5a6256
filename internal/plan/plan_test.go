package plan

import (
	"errors"
	"fmt"
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
	const day = 24 * time.Hour
	want := &Plan{
		Version: 1,
		Service: Service{Name: "payments", Tier: 1, RTO: 5 * time.Minute, RPO: 30 * time.Second, Region: "eu-west-1"},
		Postgres: Postgres{
			PGData: "/var/lib/postgresql/15/main",
			DB:     "host=/var/run/postgresql user=postgres dbname=postgres",
			BinDir: "/usr/lib/postgresql/15/bin",
		},
		Repositories: []Repository{
			{
				Name: "local", URL: "file:///var/lib/bulwark/repo", PasswordFile: "/etc/bulwark/local.pass",
				Region: "eu-west-1", Retention: Retention{Full: 2, Diff: 6},
			},
			{
				Name: "offsite", URL: "file:///mnt/offsite/bulwark", PasswordFile: "/etc/bulwark/offsite.pass",
				Offsite: ptr(true), Retention: Retention{Within: 14 * day, Daily: 7, Weekly: 4, Monthly: 12},
			},
		},
		Archiving:   Archiving{Mode: ArchiveCommand, Timeout: 30 * time.Second},
		Replication: Replication{Mode: ReplicationAsync},
		Schedules: []Schedule{
			{Name: "weekly-full", Cron: mustCron(t, "0 1 * * sun"), Job: JobBackup, Type: "full", Repository: "local"},
			{Name: "nightly-diff", Cron: mustCron(t, "0 1 * * mon-sat"), Job: JobBackup, Type: "diff", Repository: "local"},
			{Name: "to-offsite", Cron: mustCron(t, "30 2 * * *"), Job: JobSync, Repository: "local", To: "offsite"},
			{Name: "expire", Cron: mustCron(t, "@daily"), Job: JobExpire, Repository: "local"},
		},
		Drills: Drills{History: "testdata/drills"},
		Path:   "testdata/bulwark.yaml",
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

		// Regions, retention, archiving, replication and schedules.
		{"service region", strings.Replace(minimal, "  rpo: 30s\n", "  rpo: 30s\n  region: eu-west-1\n", 1), func(p *Plan) { p.Service.Region = "eu-west-1" }},
		{
			"repository region, offsite and retention",
			minimal + "    region: eu-central-1\n    offsite: false\n    retention:\n      full: 1\n      diff: 0\n      within: 720h\n      daily: 7\n      weekly: 4\n      monthly: 0\n",
			func(p *Plan) {
				r := &p.Repositories[0]
				r.Region, r.Offsite = "eu-central-1", ptr(false)
				r.Retention = Retention{Full: 1, Within: 720 * time.Hour, Daily: 7, Weekly: 4}
			},
		},
		{"retention within days", minimal + "    retention: {within: 30d}\n", func(p *Plan) { p.Repositories[0].Retention.Within = 30 * 24 * time.Hour }},
		{"retention within weeks", minimal + "    retention: {within: 4w}\n", func(p *Plan) { p.Repositories[0].Retention.Within = 28 * 24 * time.Hour }},
		{"retention within a Go duration", minimal + "    retention: {within: 1h30m}\n", func(p *Plan) { p.Repositories[0].Retention.Within = 90 * time.Minute }},
		{"empty sections get defaults", minimal + "archiving: {}\nreplication:\nschedules: []\n", func(p *Plan) {}},
		{"sync receiver", minimal + "archiving:\n  mode: sync_receiver\n", func(p *Plan) { p.Archiving.Mode = ArchiveSyncReceiver }},
		{
			"archive_command with a timeout",
			minimal + "archiving: {mode: archive_command, archive_timeout: 1m}\n",
			func(p *Plan) { p.Archiving = Archiving{Mode: ArchiveCommand, Timeout: time.Minute} },
		},
		{"async replication", minimal + "replication: {mode: async}\n", func(p *Plan) { p.Replication.Mode = ReplicationAsync }},
		{
			"quorum replication",
			minimal + "replication:\n  mode: quorum\n  sync_count: 2\n",
			func(p *Plan) { p.Replication = Replication{Mode: ReplicationQuorum, SyncCount: 2} },
		},
		{
			"schedules, with the first repository by default",
			minimal + "  - name: offsite\n    url: s3://bucket/payments\n" + `schedules:
  - name: nightly
    cron: "@daily"
    job: backup
    type: incr
  - name: copy
    cron: 0 3 * * *
    job: sync
    repository: local
    to: offsite
  - {name: expire-offsite, cron: "*/15 0-6 1,15 jan-jun mon-fri", job: expire, repository: offsite}
`,
			func(p *Plan) {
				p.Repositories = append(p.Repositories, Repository{Name: "offsite", URL: "s3://bucket/payments"})
				p.Schedules = []Schedule{
					{Name: "nightly", Cron: mustCron(t, "@daily"), Job: JobBackup, Type: "incr", Repository: "local"},
					{Name: "copy", Cron: mustCron(t, "0 3 * * *"), Job: JobSync, Repository: "local", To: "offsite"},
					{Name: "expire-offsite", Cron: mustCron(t, "*/15 0-6 1,15 jan-jun mon-fri"), Job: JobExpire, Repository: "offsite"},
				}
			},
		},
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
				Archiving:    Archiving{Mode: ArchiveNone},
				Replication:  Replication{Mode: ReplicationNone},
				Drills:       Drills{History: "drills"},
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

		// Regions and retention.
		{"bad service region", edit("  rpo: 30s", "  rpo: 30s\n  region: EU West"), []want{{7, 11, "service.region", "lowercase letters"}}},
		{"number as region", edit("  rpo: 30s", "  rpo: 30s\n  region: 1"), []want{{7, 11, "service.region", "must be a string, not an integer"}}},
		{"bad repository region", minimal + "    region: \"\"\n", []want{{12, 13, "repositories[0].region", "must not be empty"}}},
		{"offsite not a boolean", minimal + "    offsite: yes\n", []want{{12, 14, "repositories[0].offsite", "must be true or false, not a string"}}},
		{"retention not a mapping", minimal + "    retention: 7d\n", []want{{12, 16, "repositories[0].retention", "must be a mapping, not a string"}}},
		{"bad retention values", minimal + "    retention:\n      full: 0\n      diff: -1\n      within: 30 days\n      daily: -2\n      weekly: x\n      monthly: 1.5\n      hourly: 3\n", []want{
			{13, 13, "repositories[0].retention.full", "must be 1 or more"},
			{14, 13, "repositories[0].retention.diff", "must not be negative, not -1"},
			{15, 15, "repositories[0].retention.within", `invalid duration "30 days": want a number with a unit (d for days, w for weeks`},
			{16, 14, "repositories[0].retention.daily", "must not be negative, not -2"},
			{17, 15, "repositories[0].retention.weekly", "must be an integer, not a string"},
			{18, 16, "repositories[0].retention.monthly", "must be an integer, not a number"},
			{19, 7, "repositories[0].retention.hourly", "unknown field (known: full, diff, within, daily, weekly, monthly)"},
		}},
		{"diff without full", minimal + "    retention: {diff: 2, within: 30d}\n", []want{{12, 23, "repositories[0].retention.diff", "only narrows what full keeps: set full too"}}},
		{"zero retention age", minimal + "    retention: {within: 0d}\n", []want{{12, 25, "repositories[0].retention.within", "must be more than 0"}}},
		{"negative retention age", minimal + "    retention: {within: -24h}\n", []want{{12, 25, "repositories[0].retention.within", "must be more than 0"}}},
		{"huge retention age", minimal + "    retention: {within: 99999999999999d}\n", []want{{12, 25, "repositories[0].retention.within", "invalid duration"}}},
		{"retention age without a unit", minimal + "    retention: {within: 30}\n", []want{{12, 25, "repositories[0].retention.within", "needs a unit"}}},

		// Archiving and replication.
		{"archiving not a mapping", minimal + "archiving: receiver\n", []want{{12, 12, "archiving", "must be a mapping, not a string"}}},
		{"unknown archiving mode", minimal + "archiving:\n  mode: wal-g\n", []want{
			{13, 9, "archiving.mode", `must be one of none, archive_command, receiver, sync_receiver, not "wal-g"`},
		}},
		{"archiving mode typo", minimal + "archiving:\n  mode: reciever\n", []want{{13, 9, "archiving.mode", "(did you mean receiver?)"}}},
		{"archive_timeout without archive_command", minimal + "archiving:\n  archive_timeout: 60s\n", []want{
			{13, 20, "archiving.archive_timeout", "only archiving.mode archive_command uses archive_timeout, not none"},
		}},
		{"archive_timeout with a receiver", minimal + "archiving: {mode: receiver, archive_timeout: 60s}\n", []want{
			{12, 46, "archiving.archive_timeout", "not receiver"},
		}},
		{"archive_timeout under a second", minimal + "archiving: {mode: archive_command, archive_timeout: 500ms}\n", []want{
			{12, 53, "archiving.archive_timeout", "must be 1s or more"},
		}},
		{"archive_timeout with a bad mode", minimal + "archiving: {mode: command, archive_timeout: 1m}\n", []want{
			{12, 19, "archiving.mode", "must be one of"},
		}},
		{"unknown replication mode", minimal + "replication:\n  mode: synchronous\n", []want{
			{13, 9, "replication.mode", `must be one of none, async, sync, quorum, not "synchronous"`},
		}},
		{"quorum without sync_count", minimal + "replication:\n  mode: quorum\n", []want{{12, 1, "replication.sync_count", "required"}}},
		{"quorum of zero", minimal + "replication: {mode: quorum, sync_count: 0}\n", []want{{12, 41, "replication.sync_count", "must be 1 or more"}}},
		{"sync_count without quorum", minimal + "replication: {mode: sync, sync_count: 2}\n", []want{
			{12, 39, "replication.sync_count", "only replication.mode quorum uses sync_count, not sync"},
		}},

		// Schedules.
		{"relative drills history", minimal + "drills: {history: rel}\n", []want{{12, 19, "drills.history", "absolute path"}}},
		{"schedules not a list", minimal + "schedules: {}\n", []want{{12, 12, "schedules", "must be a list of schedules, not a mapping"}}},
		{"empty schedule", minimal + "schedules:\n  -\n", []want{{13, 3, "schedules[0]", "empty entry; a schedule needs a name, a cron and a job"}}},
		{"schedule without name, cron and job", minimal + "schedules:\n  - type: full\n", []want{
			{13, 3, "schedules[0].name", "required"},
			{13, 3, "schedules[0].cron", "required"},
			{13, 3, "schedules[0].job", "required"},
		}},
		{"bad schedule names", minimal + "schedules:\n" + sched("Nightly", "@daily", "expire") + sched("x", "@daily", "expire") + sched("x", "@daily", "expire"), []want{
			{13, 11, "schedules[0].name", "lowercase letters"},
			{19, 11, "schedules[2].name", "duplicate schedule name; schedules[1] has it too (line 16)"},
		}},
		{"bad cron", minimal + "schedules:\n" + sched("x", "61 * * * *", "expire"), []want{
			{14, 11, "schedules[0].cron", `invalid cron expression "61 * * * *": minute field: 61 is out of range 0-59`},
		}},
		{"cron that never runs", minimal + "schedules:\n" + sched("x", "0 0 30 2 *", "expire"), []want{{14, 11, "schedules[0].cron", "never runs"}}},
		{"unquoted cron starting with */", minimal + "schedules:\n  - name: x\n    cron: */5 * * * *\n    job: expire\n", []want{
			{14, 11, "", `a value that starts with * must be quoted, as in cron: "*/5 * * * *"`},
		}},
		{"unquoted cron starting with *", minimal + "schedules:\n  - name: x\n    cron: * * * * *\n    job: expire\n", []want{
			{14, 11, "", `a value that starts with * must be quoted`},
		}},
		{"unknown job", minimal + "schedules:\n" + sched("x", "@daily", "vacuum"), []want{{15, 10, "schedules[0].job", "must be one of backup, expire, sync"}}},
		{"backup without type", minimal + "schedules:\n" + sched("x", "@daily", "backup"), []want{{13, 3, "schedules[0].type", "required"}}},
		{"unknown backup type", minimal + "schedules:\n" + sched("x", "@daily", "backup") + "    type: incremental\n", []want{
			{16, 11, "schedules[0].type", "must be one of full, incr, diff, logical"},
		}},
		{"type of an expire job", minimal + "schedules:\n" + sched("x", "@daily", "expire") + "    type: full\n", []want{
			{16, 11, "schedules[0].type", "only a backup job has a type; this is a expire job"},
		}},
		{"target of a backup job", minimal + "schedules:\n" + sched("x", "@daily", "backup") + "    type: full\n    to: local\n", []want{
			{17, 9, "schedules[0].to", "only a sync job has a target repository"},
		}},
		{"sync without target", minimal + "schedules:\n" + sched("x", "@daily", "sync"), []want{{13, 3, "schedules[0].to", "required"}}},
		{"sync into its source", minimal + "schedules:\n" + sched("x", "@daily", "sync") + "    to: local\n", []want{
			{16, 9, "schedules[0].to", "must differ from the repository the job copies from, local (the first repository, as repository is not set)"},
		}},
		{"unknown repository", minimal + "schedules:\n" + sched("x", "@daily", "expire") + "    repository: remote\n", []want{
			{16, 17, "schedules[0].repository", `no repository named "remote" in the plan (it has local)`},
		}},
		{"repository typo", minimal + "schedules:\n" + sched("x", "@daily", "sync") + "    repository: locl\n    to: lcoal\n", []want{
			{16, 17, "schedules[0].repository", "(did you mean local?)"},
			{17, 9, "schedules[0].to", "(did you mean local?)"},
		}},
		{"repository given as a URL", minimal + "schedules:\n" + sched("x", "@daily", "expire") + "    repository: file:///var/lib/bulwark/repo\n", []want{
			{16, 17, "schedules[0].repository", "no repository named"},
		}},

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

// sched is a schedule entry for a plan's schedules list.
func sched(name, cron, job string) string {
	return fmt.Sprintf("  - name: %s\n    cron: %q\n    job: %s\n", name, cron, job)
}

func ptr[T any](v T) *T { return &v }

func mustCron(t *testing.T, s string) Cron {
	t.Helper()
	c, err := ParseCron(s)
	if err != nil {
		t.Fatalf("ParseCron(%q): %v", s, err)
	}
	return c
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

// TestExampleInDocs keeps the plan in docs/plan.md valid and sound.
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
	p, err := Parse("docs/plan.md", []byte(example))
	if err != nil {
		t.Fatalf("the example in docs/plan.md is not a valid plan:\n%v", err)
	}
	// The docs say it passes plan check with only this warning.
	fs := p.Check(Facts{})
	if len(fs) != 1 || fs[0].Rule != "rto-untested" {
		t.Errorf("plan check of the example in docs/plan.md: got %v, want only rto-untested", fs)
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
