package plan

import (
	"os"
	"strings"
	"testing"
	"time"
)

// sound is a plan that meets its targets (testdata/sound.yaml, which the
// end-to-end tests read too); cases below edit it.
var sound = func() string {
	b, err := os.ReadFile("testdata/sound.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// finding is an expected Finding: its severity, rule and field, and part of
// its message.
type finding struct {
	severity Severity
	rule     string
	field    string
	msg      string
}

func TestCheck(t *testing.T) {
	edit := func(pairs ...string) string {
		s := sound
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				panic("test edits text not in sound: " + pairs[i])
			}
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	const (
		localRepo   = "  - name: local\n    url: file:///var/lib/bulwark/repo\n    region: eu-west-1\n    retention: {full: 2}\n"
		offsiteRepo = "  - name: offsite\n    url: s3://bulwark-backups/payments\n    region: eu-central-1\n    retention: {within: 30d}\n"
		schedules   = "schedules:\n  - {name: full, cron: \"0 1 * * 0\", job: backup, type: full}\n  - {name: incr, cron: \"0 1 * * 1-6\", job: backup, type: incr}\n  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}\n"
		daily       = "schedules:\n  - {name: nightly, cron: \"0 2 * * *\", job: backup, type: full}\n  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}\n"
	)
	tested := Facts{LastRestore: 3*time.Minute + 20*time.Second}
	tests := []struct {
		name  string
		yaml  string
		facts Facts
		want  []finding
	}{
		{"sound", sound, tested, nil},
		{"sound, but never tested", sound, Facts{}, []finding{
			{SeverityWarning, "rto-untested", "service.rto", "no measured restore time: run a restore test to show that a restore fits in the rto of 5m"},
		}},

		// 3-2-1.
		{"one repository", edit(offsiteRepo, "", "  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}\n", ""), tested, []finding{
			{SeverityError, "3-2-1-copies", "repositories", "2 copies of the data (the database and local); the 3-2-1 rule needs 3: add 1 repository"},
			{SeverityError, "3-2-1-media", "repositories", "every copy is on disk (the database, local); the 3-2-1 rule needs 2 kinds of media: add a repository on object storage (s3://)"},
			{SeverityError, "3-2-1-offsite", "repositories", "no repository is offsite (local is in eu-west-1, the service's region); the 3-2-1 rule needs a copy away from the service"},
		}},
		{"one repository, offsite on object storage", edit(localRepo, "", "\n  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}", ""), tested, []finding{
			{SeverityError, "3-2-1-copies", "repositories", "2 copies of the data (the database and offsite)"},
		}},
		{"every copy on disk", edit("s3://bulwark-backups/payments", "file:///mnt/nfs/bulwark"), tested, []finding{
			{SeverityError, "3-2-1-media", "repositories", "every copy is on disk (the database, local, offsite)"},
		}},
		{"s3 without a region is not offsite", edit("    region: eu-central-1\n", ""), tested, []finding{
			{SeverityError, "3-2-1-offsite", "repositories", "no repository is offsite (local is in eu-west-1, the service's region; offsite has no region)"},
		}},
		{"region of the service unknown", edit("  region: eu-west-1\npostgres", "postgres"), tested, []finding{
			{SeverityError, "3-2-1-offsite", "repositories", "local is in eu-west-1 but service.region is not set; offsite is in eu-central-1 but service.region is not set"},
		}},
		{"same region", edit("region: eu-central-1", "region: eu-west-1"), tested, []finding{
			{SeverityError, "3-2-1-offsite", "repositories", "offsite is in eu-west-1, the service's region); the 3-2-1 rule needs a copy away from the service: set service.region and give a repository in another region its region, or mark one offsite: true"},
		}},
		{"offsite: true overrides the region", edit("region: eu-central-1", "region: eu-west-1\n    offsite: true"), tested, nil},
		{"offsite: false overrides the region", edit("region: eu-central-1", "region: eu-central-1\n    offsite: false"), tested, []finding{
			{SeverityError, "3-2-1-offsite", "repositories", "offsite is marked offsite: false"},
		}},
		{"a repository nothing writes to", edit("  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}\n", ""), tested, []finding{
			{SeverityWarning, "repository-unused", "repositories[1]", "no backup or sync schedule writes to repository offsite, so it holds no copy: add a schedule with job: sync and to: offsite"},
		}},
		{"backups straight into each repository", edit("job: sync, to: offsite", "job: backup, type: full, repository: offsite"), tested, nil},

		// RPO.
		{"rpo of minutes, daily backups, no archiving", edit("rpo: 30s", "rpo: 5m", "archiving:\n  mode: receiver\n", "", schedules, daily), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "rpo 5m, but without WAL archiving data since the last backup is lost: backups every 24h (schedule nightly); set archiving.mode to receiver or archive_command, or take backups at least every 5m"},
		}},
		{"backups of every day together, no archiving", edit("rpo: 30s", "rpo: 12h", "archiving:\n  mode: receiver\n", ""), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "rpo 12h, but without WAL archiving data since the last backup is lost: backups every 24h (schedules full and incr)"},
		}},
		{"weekday backups, no archiving", edit("rpo: 30s", "rpo: 36h", "archiving:\n  mode: receiver\n", "", "0 1 * * 1-6", "0 1 * * 1-5"), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "backups every 2d (schedules full and incr)"},
		}},
		{"backups often enough, no archiving", edit("rpo: 30s", "rpo: 24h", "archiving:\n  mode: receiver\n", ""), tested, nil},
		{"hourly backups meet an rpo of an hour", edit("rpo: 30s", "rpo: 1h", "archiving:\n  mode: receiver\n", "", `"0 1 * * 1-6"`, `"@hourly"`), tested, nil},
		{"no archiving, no backups", edit("rpo: 30s", "rpo: 1h", "archiving:\n  mode: receiver\n", "", schedules, ""), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "rpo 1h, but nothing bounds the data lost: no WAL archiving and no schedule takes backups; set archiving.mode to receiver (about 1s lost at most) and schedule backups"},
			{SeverityWarning, "backup-schedule", "schedules", "no schedule takes backups: add one with job: backup"},
		}},
		{"rpo 0 without sync", edit("rpo: 30s", "rpo: 0"), tested, []finding{
			{SeverityError, "rpo-zero", "service.rpo", "rpo 0 (no data loss), but a commit returns before its WAL is anywhere else (replication none, archiving receiver): set replication.mode to sync or quorum, or archiving.mode to sync_receiver"},
		}},
		{"rpo 0 with async replication", edit("rpo: 30s", "rpo: 0", "archiving:", "replication: {mode: async}\narchiving:"), tested, []finding{
			{SeverityError, "rpo-zero", "service.rpo", "(replication async, archiving receiver)"},
		}},
		{"rpo 0 with a sync receiver", edit("rpo: 30s", "rpo: 0", "mode: receiver", "mode: sync_receiver"), tested, nil},
		{"rpo 0 with sync replication", edit("rpo: 30s", "rpo: 0", "archiving:", "replication: {mode: sync}\narchiving:"), tested, nil},
		{"rpo 0 with quorum replication", edit("rpo: 30s", "rpo: 0", "archiving:", "replication: {mode: quorum, sync_count: 2}\narchiving:"), tested, nil},
		{"rpo under the receiver's flush interval", edit("rpo: 30s", "rpo: 500ms"), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "rpo 500ms, but the WAL receiver makes WAL durable only every 1s: set archiving.mode to sync_receiver, or service.rpo to 1s or more"},
		}},
		{"archive_command within the rpo", edit("mode: receiver", "{mode: archive_command, archive_timeout: 30s}"), tested, nil},
		{"archive_command beyond the rpo", edit("mode: receiver", "{mode: archive_command, archive_timeout: 1m}"), tested, []finding{
			{SeverityError, "rpo-reach", "service.rpo", "rpo 30s, but archive_command may get a partly filled WAL segment only after archive_timeout 1m: lower archiving.archive_timeout to 30s or less, or set archiving.mode to receiver"},
		}},
		{"archive_command without archive_timeout", edit("mode: receiver", "mode: archive_command"), tested, []finding{
			{SeverityWarning, "rpo-archive-timeout", "archiving.archive_timeout", "rpo 30s, but archive_timeout is not set: archive_command gets a WAL segment only once it is full, so on a quiet server the last writes can wait until the next backup, up to 24h (schedules full and incr); set archiving.archive_timeout to 30s or less"},
		}},
		{"archive_command without archive_timeout or backups", edit("mode: receiver", "mode: archive_command", schedules, ""), tested, []finding{
			{SeverityWarning, "rpo-archive-timeout", "archiving.archive_timeout", "can wait indefinitely (no schedule takes backups)"},
			{SeverityWarning, "backup-schedule", "schedules", "no schedule takes backups"},
		}},
		{"archive_command without archive_timeout, backups within the rpo", edit("rpo: 30s", "rpo: 2h", "mode: receiver", "mode: archive_command", `"0 1 * * 1-6"`, `"@hourly"`), tested, nil},

		// RTO.
		{"restore slower than the rto", sound, Facts{LastRestore: 7*time.Minute + 12*time.Second + 300*time.Millisecond}, []finding{
			{SeverityError, "rto-restore", "service.rto", "the last restore test took 7m12s, longer than the rto of 5m: make restores faster"},
		}},
		{"restore slower than the rto, dated", sound, Facts{LastRestore: 2 * time.Hour, LastRestoreAt: time.Date(2025, 3, 1, 4, 5, 0, 0, time.FixedZone("CET", 3600))}, []finding{
			{SeverityError, "rto-restore", "service.rto", "the last restore test on 2025-03-01 03:05 UTC took 2h, longer than the rto of 5m"},
		}},
		{"restore exactly at the rto", sound, Facts{LastRestore: 5 * time.Minute}, nil},

		// Jobs and retention.
		{"no retention", edit("    retention: {full: 2}\n", ""), tested, []finding{
			{SeverityWarning, "retention", "repositories[0].retention", "repository local has no retention: nothing expires its backups and it grows until its storage is full; set retention.full (such as 2) or retention.within (such as 30d)"},
		}},
		{"empty retention", edit("retention: {within: 30d}", "retention: {}"), tested, []finding{
			{SeverityWarning, "retention", "repositories[1].retention", "repository offsite has no retention"},
		}},
		{"grandfather-father-son retention", edit("retention: {within: 30d}", "retention: {daily: 7, weekly: 4, monthly: 12}"), tested, nil},

		// Everything at once: errors come first.
		{"minimal", minimal, Facts{}, []finding{
			{SeverityError, "3-2-1-copies", "repositories", ""},
			{SeverityError, "3-2-1-media", "repositories", ""},
			{SeverityError, "3-2-1-offsite", "repositories", "local has no region"},
			{SeverityError, "rpo-reach", "service.rpo", "nothing bounds the data lost"},
			{SeverityWarning, "rto-untested", "service.rto", ""},
			{SeverityWarning, "backup-schedule", "schedules", ""},
			{SeverityWarning, "retention", "repositories[0].retention", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := p.Check(tt.facts)
			for i := range max(len(got), len(tt.want)) {
				switch {
				case i >= len(got):
					t.Errorf("missing finding %d: %s %s %s: ...%s...", i, tt.want[i].severity, tt.want[i].rule, tt.want[i].field, tt.want[i].msg)
				case i >= len(tt.want):
					t.Errorf("unexpected finding %d: %s", i, got[i])
				default:
					g, w := got[i], tt.want[i]
					if g.Severity != w.severity || g.Rule != w.rule || g.Field != w.field || !strings.Contains(g.Message, w.msg) {
						t.Errorf("finding %d:\ngot  %s\nwant %s %s %s: ...%s...", i, g, strings.ToUpper(string(w.severity)), w.rule, w.field, w.msg)
					}
				}
			}
		})
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{SeverityError, "3-2-1-copies", "repositories", "2 copies"}
	if got, want := f.String(), "ERROR 3-2-1-copies repositories: 2 copies"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{30 * time.Second, "30s"},
		{5 * time.Minute, "5m"},
		{7*time.Minute + 12*time.Second, "7m12s"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{24 * time.Hour, "24h"},
		{36 * time.Hour, "36h"},
		{48 * time.Hour, "2d"},
		{7 * 24 * time.Hour, "7d"},
		{49 * time.Hour, "49h"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
