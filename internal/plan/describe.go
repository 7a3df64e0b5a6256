package plan

import (
	"fmt"
	"strings"
	"time"
)

// This file puts parts of a plan into words, for the runbook (package
// runbook) and bulwark status, with the same meaning Check gives them.

// FormatDuration writes d as a plan would: 5m rather than 5m0s, and whole
// days past two as 7d.
func FormatDuration(d time.Duration) string { return formatDuration(d) }

// FormatSize writes n bytes as a plan would, in the largest of
// PostgreSQL's units that divides it: 1MB, 512kB, 1000B.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// Offsite says whether r is away from the service (docs/plan.md,
// Regions), as the 3-2-1 check counts it, and if not, why not.
func (p *Plan) Offsite(r Repository) (bool, string) { return p.offsite(r) }

// Medium is the kind of storage r is on, as the 3-2-1 check counts it:
// "disk" for file:// or "object storage" for s3://.
func (r Repository) Medium() string { return medium(r.URL) }

// Describe says which backups r keeps, such as "the 2 newest full backups
// and every backup since the oldest of them; the newest backup of each of
// the last 7 days and 4 weeks", or "none: backups never expire".
func (r Retention) Describe() string {
	if !r.expires() {
		return "none: backups never expire"
	}
	var rules []string
	if r.Full > 0 {
		s := fmt.Sprintf("the %s and every backup since the oldest of them", newest(r.Full, "full backup", "full backups"))
		if r.Diff > 0 {
			s += fmt.Sprintf(", differential backups only the %s", newest(r.Diff, "one", "ones"))
		}
		rules = append(rules, s)
	}
	if r.Within > 0 {
		rules = append(rules, "every backup of the last "+formatDuration(r.Within))
	}
	var periods []string
	for _, p := range []struct {
		n         int
		one, many string
	}{{r.Daily, "day", "days"}, {r.Weekly, "week", "weeks"}, {r.Monthly, "month", "months"}} {
		if p.n > 0 {
			periods = append(periods, Plural(p.n, p.one, p.many))
		}
	}
	if periods != nil {
		rules = append(rules, "the newest backup of each of the last "+joinAnd(periods))
	}
	return strings.Join(rules, "; ")
}

// newest is "newest full backup" or "2 newest full backups".
func newest(n int, one, many string) string {
	if n == 1 {
		return "newest " + one
	}
	return fmt.Sprintf("%d newest %s", n, many)
}
