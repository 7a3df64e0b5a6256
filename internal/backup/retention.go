package backup

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention says which backups a repository keeps. A backup is kept when
// any rule keeps it; the newest backup is always kept. Logical backups
// are kept by Within and the calendar rules only, and by LogicalCount.
//
// Every backup restores on its own (it reads one manifest, and blobs are
// shared by reference), so removing a full never breaks the incrementals
// taken after it: "keep N fulls" means keep the N newest fulls and every
// backup taken since the oldest of them, as pgBackRest's repo-retention-full.
type Retention struct {
	Full int // keep the Full newest full backups and everything since the oldest of them
	Diff int // of the backups Full keeps, keep only the Diff newest differentials (0: all); an incremental goes with the full or differential it follows
	// Within keeps every backup that finished within this long, and the
	// newest one that finished before (the base of a PITR to the start of
	// the window).
	Within time.Duration
	// Daily, Weekly and Monthly keep the newest backup of each of the last
	// N days, ISO weeks and months that have one (grandfather-father-son).
	Daily, Weekly, Monthly int
	LogicalCount           int // keep the LogicalCount newest logical backups
}

// IsZero reports a policy that keeps nothing by rule.
func (r Retention) IsZero() bool { return r == Retention{} }

// Verdict is what a policy decides for one backup.
type Verdict struct {
	Info   *Info
	Keep   bool
	Reason string // why it is kept (the first rule that keeps it), or why it goes
}

// ErrNoPolicy refuses to expire without a retention policy, which would
// remove every backup but the newest.
var ErrNoPolicy = errors.New("no retention policy: give at least one of --keep-full, --keep-within, --keep-daily, --keep-weekly, --keep-monthly (or retention in the plan)")

// Apply decides, for each backup of infos (oldest first, as List returns
// them), whether the policy keeps it. It is pure: now is the clock.
func (r Retention) Apply(infos []*Info, now time.Time) ([]Verdict, error) {
	if r.IsZero() {
		return nil, ErrNoPolicy
	}
	out := make([]Verdict, len(infos))
	keep := func(i int, why string) {
		if !out[i].Keep {
			out[i].Keep, out[i].Reason = true, why
		}
	}
	for i, b := range infos {
		out[i] = Verdict{Info: b, Reason: "out of policy"}
	}
	var physical, logical []int
	for i, b := range infos {
		if b.Type == Logical {
			logical = append(logical, i)
		} else {
			physical = append(physical, i)
		}
	}
	if len(physical) > 0 {
		keep(physical[len(physical)-1], "newest backup")
	}
	if len(logical) > 0 {
		keep(logical[len(logical)-1], "newest logical backup")
	}
	// Full: the N newest fulls and everything since the oldest of them.
	if r.Full > 0 {
		var fulls []int
		for _, i := range slices.Backward(physical) {
			if infos[i].Type == Full {
				fulls = append(fulls, i)
			}
		}
		if len(fulls) > 0 {
			oldest := fulls[min(r.Full, len(fulls))-1]
			keptDiffs := map[int]bool{}
			for _, i := range slices.Backward(physical) {
				if i >= oldest && infos[i].Type == Differential && (r.Diff == 0 || len(keptDiffs) < r.Diff) {
					keptDiffs[i] = true
				}
			}
			// An incremental belongs to the newest full or differential
			// before it, and goes with it.
			parentKept := false
			for _, i := range physical {
				if i < oldest {
					continue
				}
				switch infos[i].Type {
				case Full:
					keep(i, fmt.Sprintf("one of the %d newest full backups", r.Full))
					parentKept = true
				case Differential:
					parentKept = keptDiffs[i]
					if parentKept && r.Diff > 0 {
						keep(i, fmt.Sprintf("one of the %d newest differential backups", r.Diff))
					} else if parentKept {
						keep(i, "differential on a kept full")
					}
				default:
					if parentKept {
						keep(i, "incremental on a kept full or differential")
					}
				}
			}
		}
	}
	if r.Within > 0 {
		start := now.Add(-r.Within)
		base := -1
		for _, i := range physical {
			if !infos[i].StopTime.Before(start) {
				keep(i, "within "+FormatRetentionDuration(r.Within))
			} else {
				base = i
			}
		}
		if base >= 0 {
			keep(base, "base of a PITR to the start of the "+FormatRetentionDuration(r.Within)+" window")
		}
		for _, i := range logical {
			if !infos[i].StopTime.Before(start) {
				keep(i, "within "+FormatRetentionDuration(r.Within))
			}
		}
	}
	calendar := []struct {
		n    int
		name string
		key  func(time.Time) string
	}{
		{r.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{r.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{r.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, c := range calendar {
		if c.n <= 0 {
			continue
		}
		seen := map[string]bool{}
		for _, i := range slices.Backward(physical) {
			k := c.key(infos[i].StopTime.UTC())
			if seen[k] {
				continue
			}
			if len(seen) == c.n {
				break
			}
			seen[k] = true
			keep(i, fmt.Sprintf("%s: newest of %s", c.name, k))
		}
	}
	if r.LogicalCount > 0 {
		for n, i := range slices.Backward(logical) {
			if n < r.LogicalCount {
				keep(i, fmt.Sprintf("one of the %d newest logical backups", r.LogicalCount))
			}
		}
	}
	return out, nil
}

// ParseRetentionDuration parses a Go duration, or a whole number of days
// ("30d") or weeks ("4w"): retention windows are counted in days.
func ParseRetentionDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("retention window %q: want a whole number of days (30d) or weeks (4w), or a duration (36h)", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("retention window %q: want a whole number of days (30d) or weeks (4w), or a duration (36h)", s)
	}
	return d, nil
}

// FormatRetentionDuration writes whole days as "30d".
func FormatRetentionDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
