package plan

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// validate checks the values of a decoded plan: required fields, ranges,
// names, paths and URLs. It skips fields whose values did not decode (already
// reported) and finds the position of each problem in d.pos.
func (d *decoder) validate(p *Plan) {
	d.require("version") // its value was checked by checkVersion
	if d.require("service") {
		d.validateService(p.Service)
	}
	if d.require("postgres") {
		d.validatePostgres(p.Postgres)
	}
	if d.require("repositories") {
		d.validateRepositories(p.Repositories)
	}
	d.validateArchiving(p.Archiving)
	d.validateReplication(p.Replication)
	d.validateSchedules(p.Schedules, p.Repositories)
	d.validateCluster(p)
	if d.ok["drills.history"] {
		d.check("drills.history", checkPath(p.Drills.History))
	}
}

// require reports path if it is absent or empty, and says whether its value
// decoded and can be checked further.
func (d *decoder) require(path string) bool {
	ok, given := d.ok[path]
	if !given {
		d.report(path, d.whereKey(path), "required")
	}
	return ok
}

// failed says whether path was given a value that did not decode (and was
// reported), so that checks depending on it can stay quiet.
func (d *decoder) failed(path string) bool {
	ok, given := d.ok[path]
	return given && !ok
}

// given says whether path was given a value, good or bad.
func (d *decoder) given(path string) bool {
	_, given := d.ok[path]
	return given
}

// check reports msg, if any, against path.
func (d *decoder) check(path, msg string) {
	if msg != "" {
		d.report(path, d.where(path), "%s", msg)
	}
}

func (d *decoder) validateService(s Service) {
	if d.require("service.name") {
		d.check("service.name", checkName(s.Name))
	}
	if d.require("service.tier") && (s.Tier < 0 || s.Tier > 4) {
		d.report("service.tier", d.where("service.tier"), "must be from 0 (mission critical) to 4 (non-critical), not %d", s.Tier)
	}
	if d.require("service.rto") && s.RTO <= 0 {
		d.report("service.rto", d.where("service.rto"), "must be more than 0")
	}
	if d.require("service.rpo") && s.RPO < 0 {
		d.report("service.rpo", d.where("service.rpo"), "must not be negative (0 means no data loss)")
	}
	if d.ok["service.region"] {
		d.check("service.region", checkName(s.Region))
	}
}

func (d *decoder) validatePostgres(pg Postgres) {
	if d.require("postgres.pgdata") {
		d.check("postgres.pgdata", checkPath(pg.PGData))
	}
	if d.ok["postgres.bin_dir"] {
		d.check("postgres.bin_dir", checkPath(pg.BinDir))
	}
	if d.ok["postgres.db"] {
		d.check("postgres.db", checkConnString(pg.DB))
	}
}

func (d *decoder) validateRepositories(rs []Repository) {
	if len(rs) == 0 {
		d.report("repositories", d.where("repositories"), "at least one repository is required")
	}
	names := map[string]string{} // name → path of the first repository with it
	urls := map[string]string{}  // URL → path of the first repository with it
	for i, r := range rs {
		path := index("repositories", i)
		if !d.ok[path] {
			continue
		}
		if d.require(path + ".name") {
			d.check(path+".name", checkName(r.Name))
			d.checkUnique(names, path+".name", r.Name, "repository name")
		}
		if d.require(path + ".url") {
			msg := checkRepositoryURL(r.URL)
			d.check(path+".url", msg)
			if msg == "" {
				d.checkUnique(urls, path+".url", r.URL, "URL")
			}
		}
		if d.ok[path+".password_file"] {
			d.check(path+".password_file", checkPath(r.PasswordFile))
		}
		if d.ok[path+".region"] {
			d.check(path+".region", checkName(r.Region))
		}
		if d.ok[path+".retention"] {
			d.validateRetention(path+".retention", r.Retention)
		}
	}
}

func (d *decoder) validateRetention(path string, r Retention) {
	if d.ok[path+".full"] && r.Full < 1 {
		d.report(path+".full", d.where(path+".full"), "must be 1 or more (leave it out to keep full backups by other rules)")
	}
	if d.ok[path+".diff"] && !d.given(path+".full") {
		d.report(path+".diff", d.where(path+".diff"), "only narrows what full keeps: set full too (diff alone would keep nothing but the newest backup)")
	}
	if d.ok[path+".within"] && r.Within <= 0 {
		d.report(path+".within", d.where(path+".within"), "must be more than 0 (leave it out to keep no backups by age)")
	}
	for _, f := range []struct {
		key string
		n   int
	}{{"diff", r.Diff}, {"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}} {
		if sub := path + "." + f.key; d.ok[sub] && f.n < 0 {
			d.report(sub, d.where(sub), "must not be negative, not %d", f.n)
		}
	}
}

func (d *decoder) validateArchiving(a Archiving) {
	const path = "archiving.archive_timeout"
	if !d.ok[path] {
		return
	}
	switch {
	case cmp.Or(a.Mode, DefaultArchiveMode) != ArchiveCommand:
		if !d.failed("archiving.mode") {
			d.report(path, d.where(path), "only archiving.mode archive_command uses archive_timeout, not %s (a receiver streams WAL as it is written)", cmp.Or(a.Mode, DefaultArchiveMode))
		}
	case a.Timeout < time.Second:
		d.report(path, d.where(path), "must be 1s or more (PostgreSQL counts archive_timeout in seconds; leave it out to disable it)")
	}
}

func (d *decoder) validateReplication(r Replication) {
	const path = "replication.sync_count"
	if d.ok["replication.strict"] && r.Strict && r.Mode != ReplicationSync && r.Mode != ReplicationQuorum {
		d.report("replication.strict", d.where("replication.strict"), "only replication.mode sync or quorum can be strict, not %s", cmp.Or(r.Mode, DefaultReplicationMode))
	}
	if r.Mode == ReplicationQuorum {
		if d.require(path) && r.SyncCount < 1 {
			d.report(path, d.where(path), "must be 1 or more: how many standbys confirm each commit")
		}
		return
	}
	if d.given(path) {
		if !d.failed("replication.mode") {
			d.report(path, d.where(path), "only replication.mode quorum uses sync_count, not %s", cmp.Or(r.Mode, DefaultReplicationMode))
		}
	}
}

// checkUnique reports path when seen already holds value, and records it
// otherwise.
func (d *decoder) checkUnique(seen map[string]string, path, value, what string) {
	first, dup := seen[value]
	if !dup {
		seen[value] = path
		return
	}
	d.report(path, d.where(path), "duplicate %s; %s has it too (line %d)", what, parent(first), d.where(first).line)
}

// checkName says what is wrong with a service or repository name, or "" if
// nothing is. Names cannot contain ":", so no name is mistaken for a URL.
func checkName(s string) string {
	const msg = "must be lowercase letters, digits, _ and -, starting with a letter or digit"
	if s == "" {
		return "must not be empty"
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return msg
		}
	}
	return ""
}

// checkPath says what is wrong with a local path in the plan, or "" if
// nothing is. Paths must be absolute: the plan is read from many working
// directories (agent, archive_command, an operator's shell).
func checkPath(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters"
	case !filepath.IsAbs(s):
		return "must be an absolute path"
	}
	return ""
}

// checkRepositoryURL says what is wrong with a repository URL, or "" if
// nothing is. Messages never repeat the URL: it may hold a password.
func checkRepositoryURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL
		}
		return fmt.Sprintf("not a URL: %v", err)
	}
	if _, set := u.User.Password(); set {
		return "must not hold a password: " + secretAdvice
	}
	if u.User != nil {
		return "must not hold a user name"
	}
	switch u.Scheme {
	case "file":
		if u.Opaque != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "a file URL needs an absolute path after file://, as in file:///var/lib/bulwark/repo"
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "a file URL takes no query or fragment"
		}
	case "s3":
		if u.Opaque != "" || u.Host == "" {
			return "an s3 URL needs a bucket, as in s3://bucket/prefix"
		}
	case "":
		return "must have a scheme, as in file:///var/lib/bulwark/repo"
	default:
		return fmt.Sprintf("unsupported scheme %s; use file:// (or s3://)", quote(u.Scheme))
	}
	return ""
}
