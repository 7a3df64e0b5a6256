package runbook

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// This file judges the state of a service now against its plan, for
// `bulwark status --plan`. The cli package observes; these functions only
// compare, so they take the time as an argument.

// Verdict is how a figure measured now stands against the plan.
type Verdict string

const (
	OK       Verdict = "OK"
	AtRisk   Verdict = "AT RISK"  // within the target, but close to it or not proven
	Breached Verdict = "BREACHED" // a loss now would miss the target
	Unknown  Verdict = "UNKNOWN"  // the source could not be read
)

// atRisk is the share of a limit past which an age is AT RISK.
const atRisk = 0.75

// Grade judges age against limit: BREACHED past it, AT RISK past three
// quarters of it, OK otherwise. A limit of 0 allows nothing older than 0.
func Grade(age, limit time.Duration) Verdict {
	switch {
	case age > limit:
		return Breached
	case float64(age) > atRisk*float64(limit):
		return AtRisk
	}
	return OK
}

// Check is one line of the plan view: a figure now, its verdict and why.
type Check struct {
	Name    string   `json:"name"` // backup, wal or restore
	Verdict Verdict  `json:"verdict"`
	AgeS    *float64 `json:"age_s,omitempty"` // the age judged; absent when there is none
	Detail  string   `json:"detail"`
}

func (c Check) withAge(d time.Duration) Check {
	s := d.Seconds()
	c.AgeS = &s
	return c
}

// Exposure is what a repository shows now of the data a loss of the
// server would lose.
type Exposure struct {
	NewestBackup *time.Duration // age of the newest backup; nil when there is none
	NewestWAL    *time.Duration // age of the newest archived WAL; nil when none is archived
	// Streaming is set when a WAL receiver streams, caught up with the
	// server, and published that less than StreamFresh ago; StreamAge is
	// how long ago.
	Streaming   bool
	Synchronous bool // that receiver is a synchronous standby
	StreamAge   time.Duration
}

// StreamFresh is how recent a receiver's published state must be for it to
// count as streaming: it publishes about once a second.
const StreamFresh = 10 * time.Second

// rpoHeldElsewhere says whether the plan's RPO rests on synchronous
// replication rather than on the repository, as plan check counts it.
func rpoHeldElsewhere(p *plan.Plan) bool {
	m := p.Replication.Mode
	return p.Service.RPO == 0 && p.Archiving.Mode != plan.ArchiveSyncReceiver && (m == plan.ReplicationSync || m == plan.ReplicationQuorum)
}

// JudgeBackup judges the newest backup of a repository. When the RPO
// rests on backups alone (no WAL archiving, no synchronous replication),
// its age is judged against the RPO; otherwise against the plan's backup
// schedules, which it is overdue on past their longest gap and a quarter.
func JudgeBackup(p *plan.Plan, e Exposure) Check {
	c := Check{Name: "backup"}
	if e.NewestBackup == nil {
		c.Verdict, c.Detail = Breached, "no backup: there is nothing to restore"
		return c
	}
	age := *e.NewestBackup
	c = c.withAge(age)
	if p.Archiving.Mode == plan.ArchiveNone && !rpoHeldElsewhere(p) {
		c.Verdict = Grade(age, p.Service.RPO)
		c.Detail = fmt.Sprintf("newest backup %s old; without WAL archiving a loss now loses everything since, against an RPO of %s", Ago(age), duration(p.Service.RPO))
		return c
	}
	gap, _ := p.BackupGap()
	if gap == 0 {
		c.Verdict, c.Detail = OK, fmt.Sprintf("newest backup %s old; no schedule takes backups, so none is overdue", Ago(age))
		return c
	}
	c.Verdict, c.Detail = OK, fmt.Sprintf("newest backup %s old; the schedules take one at least every %s", Ago(age), duration(gap))
	if age > gap+gap/4 {
		c.Verdict, c.Detail = AtRisk, fmt.Sprintf("newest backup %s old: overdue, the schedules take one at least every %s", Ago(age), duration(gap))
	}
	return c
}

// JudgeWAL judges the archived WAL: what a loss of the server now would
// lose, against the RPO. It is false when the plan archives no WAL. With
// an RPO of 0 and a synchronous receiver, that receiver must stream. When
// synchronous replication holds an RPO of 0 instead, the archive is
// judged against the bound of its own mode, and is at worst AT RISK.
func JudgeWAL(p *plan.Plan, e Exposure) (Check, bool) {
	if p.Archiving.Mode == plan.ArchiveNone {
		return Check{}, false
	}
	c, age, ok := walExposure(e)
	if !ok {
		return c, true
	}
	rpo := p.Service.RPO
	switch {
	case rpo == 0 && p.Archiving.Mode == plan.ArchiveSyncReceiver:
		c.Verdict, c.Detail = OK, c.Detail+"; it is synchronous: every acknowledged commit is in the repository"
		if !e.Streaming || !e.Synchronous {
			c.Verdict, c.Detail = Breached, c.Detail+"; no synchronous receiver streams, against an RPO of 0"
		}
	case rpoHeldElsewhere(p):
		bound := archiveBound(p.Archiving)
		c.Verdict = OK
		if bound > 0 && age > bound {
			c.Verdict = AtRisk
		}
		c.Detail += fmt.Sprintf("; synchronous replication holds the RPO of 0, and %s archiving keeps up within %s", p.Archiving.Mode, duration(bound))
	default:
		c.Verdict = Grade(age, rpo)
		c.Detail += ", against an RPO of " + duration(rpo)
	}
	return c, true
}

// walExposure is the check of the archived WAL before its verdict: its
// age and how it is known. It is false, with the check BREACHED, when no
// WAL is archived.
func walExposure(e Exposure) (Check, time.Duration, bool) {
	c := Check{Name: "wal"}
	switch {
	case e.Streaming:
		c.Detail = fmt.Sprintf("a receiver streams, caught up %s ago", Ago(e.StreamAge))
		return c.withAge(e.StreamAge), e.StreamAge, true
	case e.NewestWAL != nil:
		c.Detail = fmt.Sprintf("newest archived WAL %s old (at most that much is lost; less on a quiet server)", Ago(*e.NewestWAL))
		return c.withAge(*e.NewestWAL), *e.NewestWAL, true
	}
	c.Verdict, c.Detail = Breached, "no WAL archived"
	return c, 0, false
}

// archiveBound is how old the newest archived WAL gets with a working
// archive of mode a: a receiver publishes every second, archive_command
// waits for archive_timeout at most. 0 when nothing bounds it.
func archiveBound(a plan.Archiving) time.Duration {
	if a.Mode == plan.ArchiveCommand {
		return a.Timeout
	}
	return StreamFresh
}

// JudgeRestore judges the last restore test against the RTO: BREACHED
// when it took longer, AT RISK when there is none or it is older than the
// testing interval of the plan's tier, OK otherwise.
func JudgeRestore(p *plan.Plan, f plan.Facts, now time.Time) Check {
	c := Check{Name: "restore"}
	if f.LastRestore <= 0 {
		c.Verdict, c.Detail = AtRisk, "no restore test measured: the RTO of "+duration(p.Service.RTO)+" is untested"
		return c
	}
	took := seconds(f.LastRestore.Seconds())
	if f.LastRestoreAt.IsZero() {
		c.Detail = "the last restore test took " + took
	} else {
		age := now.Sub(f.LastRestoreAt)
		c = c.withAge(age)
		c.Detail = fmt.Sprintf("the last restore test, %s ago, took %s", Ago(age), took)
	}
	name, every := Frequency(p.Service.Tier)
	switch {
	case f.LastRestore > p.Service.RTO:
		c.Verdict, c.Detail = Breached, c.Detail+", longer than the RTO of "+duration(p.Service.RTO)
	case c.AgeS != nil && *c.AgeS > every.Seconds():
		c.Verdict, c.Detail = AtRisk, c.Detail+fmt.Sprintf(", within the RTO of %s, but tier %d should test %s", duration(p.Service.RTO), p.Service.Tier, name)
	default:
		c.Verdict, c.Detail = OK, c.Detail+", within the RTO of "+duration(p.Service.RTO)
	}
	return c
}

// DrillStatus is the newest drill of one scenario, now.
type DrillStatus struct {
	Scenario string    `json:"scenario"`
	Ran      bool      `json:"ran"`
	Started  time.Time `json:"started,omitzero"`
	AgeS     float64   `json:"age_s,omitempty"`
	Passed   bool      `json:"passed"`
	// Overdue is set when it never ran or ran longer ago than the testing
	// interval of the plan's tier.
	Overdue bool `json:"overdue"`
}

// JudgeDrills lists the newest drill of each scenario that can run on the
// plan, and of any other in latest (drill.History.Latest).
func JudgeDrills(p *plan.Plan, latest map[string]drill.Result, now time.Time) []DrillStatus {
	var names []string
	if p.Cluster != nil {
		names = slices.Clone(drill.Scenarios)
	}
	for _, s := range slices.Sorted(maps.Keys(latest)) {
		if !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	_, every := Frequency(p.Service.Tier)
	out := []DrillStatus{}
	for _, s := range names {
		r, ok := latest[s]
		d := DrillStatus{Scenario: s, Ran: ok, Overdue: true}
		if ok {
			age := now.Sub(r.Started)
			d.Started, d.AgeS, d.Passed, d.Overdue = r.Started, age.Seconds(), r.Passed, age > every
		}
		out = append(out, d)
	}
	return out
}

// Ago writes an age for a person: 0.4s, 5m2s, 3h20m, 2d4h.
func Ago(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < time.Minute:
		return d.Round(time.Second / 10).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 2*day:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%dd%dh", d/day, (d%day)/time.Hour)
}
