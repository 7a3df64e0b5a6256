package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Job is what a schedule runs.
type Job string

const (
	JobBackup Job = "backup" // take a backup of Schedule.Type into Schedule.Repository
	JobExpire Job = "expire" // delete the backups of Schedule.Repository its Retention lets go
	JobSync   Job = "sync"   // copy the backups of Schedule.Repository into Schedule.To
)

// Backup types a JobBackup schedule may take (backup.ParseType reads them).
var backupTypes = []string{"full", "incr", "diff", "logical"}

// Schedule is a job run on a timetable.
type Schedule struct {
	Name string // unique among schedules; same characters as Service.Name
	Cron Cron   // when the job runs
	Job  Job
	Type string // with JobBackup: full, incr, diff or logical; "" otherwise
	// Repository names the plan repository the job works on (for a sync,
	// the one it copies from); the plan's first repository when the plan
	// names none.
	Repository string
	To         string // with JobSync: the repository it copies into, not Repository; "" otherwise
}

func (d *decoder) schedules(path string, v ast.Node, ss *[]Schedule) {
	d.list(path, v, "schedules", "a schedule needs a name, a cron and a job", func(path string, v ast.Node) {
		var s Schedule
		if v != nil {
			d.mapping(path, v, []field{
				{"name", func(path string, v ast.Node) { d.str(path, v, &s.Name) }},
				{"cron", func(path string, v ast.Node) { d.cron(path, v, &s.Cron) }},
				{"job", func(path string, v ast.Node) { enum(d, path, v, &s.Job, JobBackup, JobExpire, JobSync) }},
				{"type", func(path string, v ast.Node) { enum(d, path, v, &s.Type, backupTypes...) }},
				{"repository", func(path string, v ast.Node) { d.str(path, v, &s.Repository) }},
				{"to", func(path string, v ast.Node) { d.str(path, v, &s.To) }},
			})
		}
		*ss = append(*ss, s)
	})
}

// validateSchedules checks names, what each job needs and the repositories
// the schedules name. repos are the plan's repositories, checked already.
func (d *decoder) validateSchedules(ss []Schedule, repos []Repository) {
	names := map[string]string{}
	for i, s := range ss {
		path := index("schedules", i)
		if !d.ok[path] {
			continue
		}
		if d.require(path + ".name") {
			d.check(path+".name", checkName(s.Name))
			d.checkUnique(names, path+".name", s.Name, "schedule name")
		}
		d.require(path + ".cron") // its value was checked when decoded
		if d.require(path + ".job") {
			d.validateJob(path, s, repos)
		}
	}
}

// validateJob checks the fields that depend on the job of the schedule s at
// path.
func (d *decoder) validateJob(path string, s Schedule, repos []Repository) {
	if s.Job == JobBackup {
		d.require(path + ".type")
	} else if d.given(path + ".type") {
		d.report(path+".type", d.where(path+".type"), "only a backup job has a type; this is a %s job", s.Job)
	}
	if s.Job == JobSync {
		d.require(path + ".to")
	} else if d.given(path + ".to") {
		d.report(path+".to", d.where(path+".to"), "only a sync job has a target repository; this is a %s job", s.Job)
	}
	if !d.ok["repositories"] || len(repos) == 0 {
		return // the names cannot be checked
	}
	from := cmp.Or(s.Repository, repos[0].Name)
	if d.ok[path+".repository"] {
		d.check(path+".repository", checkRepositoryName(s.Repository, repos))
	}
	if s.Job == JobSync && d.ok[path+".to"] {
		msg := checkRepositoryName(s.To, repos)
		if msg == "" && s.To == from {
			msg = fmt.Sprintf("must differ from the repository the job copies from, %s", from)
			if s.Repository == "" {
				msg += " (the first repository, as repository is not set)"
			}
		}
		d.check(path+".to", msg)
	}
}

// checkRepositoryName says what is wrong with a reference to a plan
// repository, or "" if nothing is.
func checkRepositoryName(name string, repos []Repository) string {
	if slices.ContainsFunc(repos, func(r Repository) bool { return r.Name == name }) {
		return ""
	}
	names := make([]string, 0, len(repos))
	for _, r := range repos {
		if r.Name != "" {
			names = append(names, r.Name)
		}
	}
	msg := fmt.Sprintf("no repository named %s in the plan (it has %s)", quote(name), strings.Join(names, ", "))
	if c := closest(name, names); c != "" {
		msg = fmt.Sprintf("no repository named %s in the plan (did you mean %s?)", quote(name), c)
	}
	return msg
}
