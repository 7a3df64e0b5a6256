package plan

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Facts are what a plan alone cannot tell: measurements of the service,
// made elsewhere and handed to Check. The zero value knows nothing.
type Facts struct {
	// LastRestore is how long the last restore test took, from its start
	// to a server accepting connections; 0 if unknown.
	LastRestore time.Duration
	// LastRestoreAt is when that test ran; the zero time if unknown.
	LastRestoreAt time.Time
}

// Severity says how bad a Finding is.
type Severity string

const (
	SeverityError   Severity = "error"   // the plan cannot meet its targets
	SeverityWarning Severity = "warning" // it may not, or nothing shows that it does
)

// Finding is one way a plan falls short of its own targets.
type Finding struct {
	Severity Severity `json:"severity"`
	Rule     string   `json:"rule"`    // stable short id, such as "3-2-1-copies"; docs/plan.md lists them
	Field    string   `json:"field"`   // path of the field to change, such as "service.rpo"
	Message  string   `json:"message"` // the reason and the fix, for a person
}

// String formats f as "ERROR rule field: message".
func (f Finding) String() string {
	return fmt.Sprintf("%s %s %s: %s", strings.ToUpper(string(f.Severity)), f.Rule, f.Field, f.Message)
}

// Check says whether p can meet its own targets: the 3-2-1 rule, its RPO
// and its RTO. It returns the findings, errors before warnings, each group
// in the order of docs/plan.md; none if the plan is sound. Check is pure:
// it looks at nothing but p and facts.
func (p *Plan) Check(facts Facts) []Finding {
	var fs []Finding
	fs = append(fs, p.check321()...)
	fs = append(fs, p.checkRPO()...)
	fs = append(fs, p.checkRTO(facts)...)
	fs = append(fs, p.checkJobs()...)
	rank := func(f Finding) int {
		if f.Severity == SeverityError {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(fs, func(a, b Finding) int { return cmp.Compare(rank(a), rank(b)) })
	return fs
}

func errorf(rule, field, format string, args ...any) Finding {
	return Finding{SeverityError, rule, field, fmt.Sprintf(format, args...)}
}

func warningf(rule, field, format string, args ...any) Finding {
	return Finding{SeverityWarning, rule, field, fmt.Sprintf(format, args...)}
}

// Media of the copies, for the 3-2-1 rule's "2 kinds of media".
const (
	mediumDisk   = "disk"
	mediumObject = "object storage"
)

// medium is the kind of storage a repository URL is on.
func medium(repoURL string) string {
	if u, err := url.Parse(repoURL); err == nil && u.Scheme == "s3" {
		return mediumObject
	}
	return mediumDisk
}

// offsite says whether r is away from the service, and if not, why not.
func (p *Plan) offsite(r Repository) (bool, string) {
	switch {
	case r.Offsite != nil && *r.Offsite:
		return true, ""
	case r.Offsite != nil:
		return false, r.Name + " is marked offsite: false"
	case r.Region == "":
		return false, r.Name + " has no region"
	case p.Service.Region == "":
		return false, fmt.Sprintf("%s is in %s but service.region is not set", r.Name, r.Region)
	case r.Region == p.Service.Region:
		return false, fmt.Sprintf("%s is in %s, the service's region", r.Name, r.Region)
	}
	return true, ""
}

// check321 checks the 3-2-1 rule: 3 copies of the data, on 2 kinds of
// media, 1 of them offsite. The database is a copy, on disk, onsite.
func (p *Plan) check321() []Finding {
	var fs []Finding
	names := []string{"the database"}
	media := []string{mediumDisk}
	var notOffsite []string
	offsite := false
	for _, r := range p.Repositories {
		names = append(names, r.Name)
		if m := medium(r.URL); !slices.Contains(media, m) {
			media = append(media, m)
		}
		ok, why := p.offsite(r)
		offsite = offsite || ok
		notOffsite = append(notOffsite, why)
	}
	if copies := len(names); copies < 3 {
		fs = append(fs, errorf("3-2-1-copies", "repositories",
			"%d copies of the data (%s); the 3-2-1 rule needs 3: add %s",
			copies, strings.Join(names, " and "), Plural(3-copies, "repository", "repositories")))
	}
	if len(media) < 2 {
		fs = append(fs, errorf("3-2-1-media", "repositories",
			"every copy is on %s (%s); the 3-2-1 rule needs 2 kinds of media: add a repository on object storage (s3://)",
			media[0], strings.Join(names, ", ")))
	}
	if !offsite {
		fs = append(fs, errorf("3-2-1-offsite", "repositories",
			"no repository is offsite (%s); the 3-2-1 rule needs a copy away from the service: set service.region and give a repository in another region its region, or mark one offsite: true",
			strings.Join(notOffsite, "; ")))
	}
	return fs
}

// Plural is "1 repository" or "2 repositories".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// BackupGap is the longest the newest backup can get old with the plan's
// backup schedules, all taken together, and the names of those schedules;
// 0 and none if no schedule takes backups.
func (p *Plan) BackupGap() (time.Duration, []string) {
	var crons []Cron
	var names []string
	for _, s := range p.Schedules {
		if s.Job == JobBackup {
			crons, names = append(crons, s.Cron), append(names, s.Name)
		}
	}
	return MaxGap(crons...), names
}

// scheduleNames is "schedule a" or "schedules a, b and c".
func scheduleNames(names []string) string {
	if len(names) == 1 {
		return "schedule " + names[0]
	}
	return "schedules " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// checkRPO checks that the plan can lose no more data than service.rpo.
// What bounds the loss is, from best to worst: synchronous replication or
// a synchronous receiver (nothing committed is lost), a receiver (its
// flush interval), archive_command (archive_timeout) and the backups.
func (p *Plan) checkRPO() []Finding {
	rpo := p.Service.RPO
	if p.Archiving.Mode == ArchiveSyncReceiver || p.Replication.Mode == ReplicationSync || p.Replication.Mode == ReplicationQuorum {
		return nil
	}
	if rpo == 0 {
		return []Finding{errorf("rpo-zero", "service.rpo",
			"rpo 0 (no data loss), but a commit returns before its WAL is anywhere else (replication %s, archiving %s): set replication.mode to sync or quorum, or archiving.mode to sync_receiver",
			p.Replication.Mode, p.Archiving.Mode)}
	}
	gap, scheds := p.BackupGap()
	switch p.Archiving.Mode {
	case ArchiveReceiver:
		if rpo < ReceiverFlushInterval {
			return []Finding{errorf("rpo-reach", "service.rpo",
				"rpo %s, but the WAL receiver makes WAL durable only every %s: set archiving.mode to sync_receiver, or service.rpo to %s or more",
				formatDuration(rpo), formatDuration(ReceiverFlushInterval), formatDuration(ReceiverFlushInterval))}
		}
	case ArchiveCommand:
		t := p.Archiving.Timeout
		switch {
		case t == 0 && (scheds == nil || gap > rpo):
			wait := "indefinitely (no schedule takes backups)"
			if scheds != nil {
				wait = fmt.Sprintf("until the next backup, up to %s (%s)", formatDuration(gap), scheduleNames(scheds))
			}
			return []Finding{warningf("rpo-archive-timeout", "archiving.archive_timeout",
				"rpo %s, but archive_timeout is not set: archive_command gets a WAL segment only once it is full, so on a quiet server the last writes can wait %s; set archiving.archive_timeout to %s or less (and the server's archive_timeout to match), or set archiving.mode to receiver",
				formatDuration(rpo), wait, formatDuration(rpo))}
		case t > rpo && (scheds == nil || gap > rpo):
			return []Finding{errorf("rpo-reach", "service.rpo",
				"rpo %s, but archive_command may get a partly filled WAL segment only after archive_timeout %s: lower archiving.archive_timeout to %s or less, or set archiving.mode to receiver",
				formatDuration(rpo), formatDuration(t), formatDuration(rpo))}
		}
	case ArchiveNone:
		if scheds == nil {
			return []Finding{errorf("rpo-reach", "service.rpo",
				"rpo %s, but nothing bounds the data lost: no WAL archiving and no schedule takes backups; set archiving.mode to receiver (about %s lost at most) and schedule backups",
				formatDuration(rpo), formatDuration(ReceiverFlushInterval))}
		}
		if gap > rpo {
			return []Finding{errorf("rpo-reach", "service.rpo",
				"rpo %s, but without WAL archiving data since the last backup is lost: backups every %s (%s); set archiving.mode to receiver or archive_command, or take backups at least every %s",
				formatDuration(rpo), formatDuration(gap), scheduleNames(scheds), formatDuration(rpo))}
		}
	}
	return nil
}

// checkRTO checks the RTO against the last measured restore.
func (p *Plan) checkRTO(facts Facts) []Finding {
	rto := p.Service.RTO
	if facts.LastRestore <= 0 {
		return []Finding{warningf("rto-untested", "service.rto",
			"no measured restore time: run a restore test to show that a restore fits in the rto of %s", formatDuration(rto))}
	}
	if facts.LastRestore > rto {
		when := ""
		if !facts.LastRestoreAt.IsZero() {
			when = " on " + facts.LastRestoreAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		return []Finding{errorf("rto-restore", "service.rto",
			"the last restore test%s took %s, longer than the rto of %s: make restores faster (more --jobs, a closer repository, more frequent full backups) or raise service.rto",
			when, formatDuration(facts.LastRestore.Round(time.Second)), formatDuration(rto))}
	}
	return nil
}

// checkJobs checks that backups are taken, land in every repository and
// expire.
func (p *Plan) checkJobs() []Finding {
	var fs []Finding
	if !slices.ContainsFunc(p.Schedules, func(s Schedule) bool { return s.Job == JobBackup }) {
		fs = append(fs, warningf("backup-schedule", "schedules",
			"no schedule takes backups: add one with job: backup (or run bulwark backup create from another scheduler)"))
	}
	for i, r := range p.Repositories {
		written := slices.ContainsFunc(p.Schedules, func(s Schedule) bool {
			return s.Job == JobBackup && s.Repository == r.Name || s.Job == JobSync && s.To == r.Name
		})
		if len(p.Schedules) > 0 && !written {
			fs = append(fs, warningf("repository-unused", index("repositories", i),
				"no backup or sync schedule writes to repository %s, so it holds no copy: add a schedule with job: sync and to: %s, or a backup job with repository: %s",
				r.Name, r.Name, r.Name))
		}
		if !r.Retention.expires() {
			fs = append(fs, warningf("retention", index("repositories", i)+".retention",
				"repository %s has no retention: nothing expires its backups and it grows until its storage is full; set retention.full (such as 2) or retention.within (such as 30d)",
				r.Name))
		}
	}
	return fs
}

// formatDuration writes d as the plan would: 5m rather than 5m0s, and whole
// days past two as 7d.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= 2*day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
