package runbook

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwarkdb/bulwark/internal/plan"
)

// Backup is section 2: where copies of the data are, how WAL reaches them,
// on what timetable, and whether that meets the 3-2-1 rule.
type Backup struct {
	Repositories []Repository `json:"repositories"`
	Archiving    Mode         `json:"archiving"`
	Replication  Mode         `json:"replication"`
	Schedules    []Schedule   `json:"schedules"`
	Rule321      Rule321      `json:"rule_3_2_1"`
	// Findings are the other findings of `bulwark plan check` (RPO,
	// RTO, schedules, retention), errors first.
	Findings []plan.Finding `json:"findings"`
}

// Repository is one place backups and WAL are kept.
type Repository struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Kind       string `json:"kind"`   // local or S3
	Medium     string `json:"medium"` // disk or object storage
	Region     string `json:"region,omitempty"`
	Offsite    bool   `json:"offsite"`
	NotOffsite string `json:"not_offsite,omitempty"` // why not, when not
	Retention  string `json:"retention"`
}

// Mode is the archiving or replication mode and what it means for the RPO.
type Mode struct {
	Mode    string `json:"mode"`
	Meaning string `json:"meaning"`
}

// Schedule is a job of the plan, put into words.
type Schedule struct {
	Name string `json:"name"`
	Cron string `json:"cron"`
	Job  string `json:"job"`
	Does string `json:"does"` // such as "full backup into local every Sunday at 01:00"
}

// Rule321 is the verdict of `bulwark plan check` on the 3-2-1 rule.
type Rule321 struct {
	Met      bool           `json:"met"`
	Summary  string         `json:"summary"`
	Findings []plan.Finding `json:"findings,omitempty"` // what is missing, when not met
}

func backupStrategy(p *plan.Plan, facts Facts) Backup {
	b := Backup{Archiving: archiving(p), Replication: replication(p), Schedules: []Schedule{}, Findings: []plan.Finding{}}
	for _, r := range p.Repositories {
		b.Repositories = append(b.Repositories, repository(p, r))
	}
	for _, s := range p.Schedules {
		b.Schedules = append(b.Schedules, Schedule{Name: s.Name, Cron: s.Cron.String(), Job: string(s.Job), Does: does(s)})
	}
	var rule []plan.Finding
	for _, f := range p.Check(facts.Restore) {
		if strings.HasPrefix(f.Rule, "3-2-1-") {
			rule = append(rule, f)
		} else {
			b.Findings = append(b.Findings, f)
		}
	}
	b.Rule321 = rule321(b.Repositories, rule)
	return b
}

func repository(p *plan.Plan, r plan.Repository) Repository {
	kind := "local"
	if u, err := url.Parse(r.URL); err == nil && u.Scheme == "s3" {
		kind = "S3"
	}
	offsite, why := p.Offsite(r)
	return Repository{Name: r.Name, URL: r.URL, Kind: kind, Medium: r.Medium(), Region: r.Region,
		Offsite: offsite, NotOffsite: why, Retention: r.Retention.Describe()}
}

// rule321 sums up the copies when the rule is met, and keeps the findings
// when it is not.
func rule321(repos []Repository, findings []plan.Finding) Rule321 {
	if len(findings) > 0 {
		return Rule321{Summary: "not met", Findings: findings}
	}
	copies := []string{"the database"}
	media := []string{"disk"}
	var offsite []string
	for _, r := range repos {
		copies = append(copies, r.Name)
		if !slices.Contains(media, r.Medium) {
			media = append(media, r.Medium)
		}
		if r.Offsite {
			offsite = append(offsite, r.Name)
		}
	}
	return Rule321{Met: true, Summary: fmt.Sprintf("met: %d copies (%s), on %d kinds of media (%s), %d offsite (%s)",
		len(copies), joinAnd(copies), len(media), joinAnd(media), len(offsite), joinAnd(offsite))}
}

// does says what a schedule does, and when.
func does(s plan.Schedule) string {
	var what string
	switch s.Job {
	case plan.JobBackup:
		kind := map[string]string{"full": "full", "incr": "incremental", "diff": "differential", "logical": "logical"}[s.Type]
		what = fmt.Sprintf("%s backup into %s", kind, s.Repository)
	case plan.JobExpire:
		what = fmt.Sprintf("expire the backups of %s that its retention lets go", s.Repository)
	case plan.JobSync:
		what = fmt.Sprintf("copy the backups and WAL of %s into %s", s.Repository, s.To)
	default:
		what = fmt.Sprintf("%s job on %s", s.Job, s.Repository)
	}
	return what + " " + s.Cron.Describe()
}

func archiving(p *plan.Plan) Mode {
	a := p.Archiving
	m := Mode{Mode: string(a.Mode)}
	switch a.Mode {
	case plan.ArchiveNone:
		m.Meaning = "No WAL is archived between backups: a restore reaches only the end of a backup, everything since the last backup is lost with the server, and there is no point-in-time recovery."
	case plan.ArchiveCommand:
		m.Meaning = "The server's archive_command, bulwark wal push, archives each WAL segment once it is full"
		if a.Timeout > 0 {
			m.Meaning += fmt.Sprintf(", or after archive_timeout %s: a lost server loses up to %s of commits.", plan.FormatDuration(a.Timeout), plan.FormatDuration(a.Timeout))
		} else {
			m.Meaning += "; without archive_timeout a quiet server's last commits can wait for ever."
		}
	case plan.ArchiveReceiver:
		m.Meaning = fmt.Sprintf("WAL is streamed into the repository by bulwark wal receive, durable there at least every %s: a lost server loses about the last %s of commits.",
			plan.FormatDuration(plan.ReceiverFlushInterval), plan.FormatDuration(plan.ReceiverFlushInterval))
	case plan.ArchiveSyncReceiver:
		m.Meaning = "WAL is streamed by bulwark wal receive --synchronous as a synchronous standby: a commit returns only once its WAL is in the repository, so none is lost."
	}
	return m
}

func replication(p *plan.Plan) Mode {
	r := p.Replication
	m := Mode{Mode: string(r.Mode)}
	switch r.Mode {
	case plan.ReplicationNone:
		m.Meaning = "No standbys: nothing to fail over to"
	case plan.ReplicationAsync:
		m.Meaning = "A commit does not wait for standbys: a failover loses the commits the promoted standby had not received"
	case plan.ReplicationSync:
		m.Meaning = "Each commit waits for one synchronous standby: a failover loses no acknowledged commit"
	case plan.ReplicationQuorum:
		m.Meaning = fmt.Sprintf("Each commit waits for %s (ANY %d): a failover loses no acknowledged commit",
			plan.Plural(r.SyncCount, "standby", "standbys"), r.SyncCount)
	}
	if r.Strict && r.Mode != plan.ReplicationNone {
		m.Meaning += "; strict: writes stop rather than go on unprotected while too few standbys are synchronous"
	} else if r.Mode == plan.ReplicationSync || r.Mode == plan.ReplicationQuorum {
		m.Meaning += "; not strict: while too few standbys are synchronous, commits go on asynchronously"
	}
	m.Meaning += "."
	return m
}

// joinAnd is "a", "a and b" or "a, b and c"; "none" for nothing.
func joinAnd(parts []string) string {
	switch len(parts) {
	case 0:
		return "none"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
