package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/receive"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/runbook"
)

// statusReport is what `bulwark status` prints.
type statusReport struct {
	// Plan is the plan against reality, with --plan only.
	Plan       *planStatus       `json:"plan,omitempty"`
	Repository string            `json:"repository"`
	Now        time.Time         `json:"now"`
	Archive    *archive.Contents `json:"archive"`
	// ArchiveAgeS is the age in seconds of the newest archived WAL: how
	// much a loss of the server now would lose, at most, if no receiver
	// streams.
	ArchiveAgeS *float64        `json:"archive_age_s,omitempty"`
	Receivers   []receiverState `json:"receivers,omitempty"`
	Backups     int             `json:"backups"`
	Newest      *backupSummary  `json:"newest_backup,omitempty"`
	// Problems names every gap and missing history file.
	Problems []string `json:"problems"`
}

type receiverState struct {
	receive.State
	LagBytes int64   `json:"lag_bytes"`
	AgeS     float64 `json:"age_s"`
}

type backupSummary struct {
	ID   string    `json:"id"`
	Stop time.Time `json:"stop_time"`
	AgeS float64   `json:"age_s"`
}

func (a *app) newStatusCmd() *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "What the repository holds (archived WAL, gaps, receivers, backups); with --plan, the plan against reality",
		Long: `What the repository holds: per timeline the archived WAL range and any gaps
(each missing segment named), the newest archived position and its age (how
much WAL a loss of the server now would lose if nothing else holds it), the
WAL receivers' lag, and the newest backup. Exits 4 when the archive has gaps.

With a plan (--plan or BULWARK_PLAN) a "plan" section comes first: the age of
the newest backup and of the newest archived WAL against the RPO, the last
restore test against the RTO, the last drill of each scenario, and, with a
cluster section, the replication state read from etcd. Each is OK, AT RISK or
BREACHED (docs/runbook.md). A source that cannot be read (the repository,
etcd, the drill history) is named on a line of its own and the rest is still
printed; the exit status is then 1.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.plan != nil {
				return a.planStatus(cmd.Context(), f, time.Now())
			}
			rep, err := a.repoStatus(cmd.Context(), f, time.Now())
			if err != nil {
				return err
			}
			return a.printStatusReport(rep)
		},
	}
	f.register(cmd)
	return cmd
}

// repoStatus opens the repository and reports what it holds.
func (a *app) repoStatus(ctx context.Context, f repoFlags, now time.Time) (*statusReport, error) {
	r, err := a.openRepoWith(ctx, f, repo.Options{SkipIndex: true})
	if err != nil {
		return nil, err
	}
	return buildStatus(ctx, r, now)
}

// printStatusReport prints rep, and returns errDamaged if the archive has
// gaps.
func (a *app) printStatusReport(rep *statusReport) error {
	var err error
	if a.json() {
		err = a.printJSON(rep)
	} else {
		if rep.Plan != nil {
			a.printPlanStatus(rep.Plan)
		}
		a.printStatus(rep)
	}
	if err == nil && len(rep.Problems) > 0 {
		return errDamaged
	}
	return err
}

func buildStatus(ctx context.Context, r *repo.Repo, now time.Time) (*statusReport, error) {
	ar := archive.New(r)
	c, err := ar.Contents(ctx)
	if err != nil {
		return nil, err
	}
	rep := &statusReport{Repository: r.Location(), Now: now.UTC(), Archive: c, Problems: []string{}}
	if c.Newest != nil {
		age := now.Sub(c.Newest.Archived).Seconds()
		rep.ArchiveAgeS = &age
	}
	for _, tl := range c.Timelines {
		for _, g := range tl.Gaps {
			rep.Problems = append(rep.Problems, fmt.Sprintf("timeline %d: missing WAL %s", tl.TLI, g))
		}
		if tl.HistoryMissing {
			rep.Problems = append(rep.Problems, fmt.Sprintf("timeline %d: history file missing", tl.TLI))
		}
	}
	states, err := receive.LoadStates(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, s := range states {
		rs := receiverState{State: s, AgeS: now.Sub(s.Updated).Seconds()}
		if s.ServerLSN > s.FlushedLSN {
			rs.LagBytes = int64(s.ServerLSN - s.FlushedLSN)
		}
		rep.Receivers = append(rep.Receivers, rs)
		for _, g := range s.Gaps {
			rep.Problems = append(rep.Problems, fmt.Sprintf("receiver %s: %s", s.Slot, g))
		}
	}
	infos, err := backup.List(ctx, r)
	if err != nil {
		return nil, err
	}
	rep.Backups = len(infos)
	if len(infos) > 0 {
		n := infos[len(infos)-1]
		rep.Newest = &backupSummary{ID: n.ID, Stop: n.StopTime, AgeS: now.Sub(n.StopTime).Seconds()}
	}
	return rep, nil
}

func (a *app) printStatus(rep *statusReport) {
	w := a.stdout
	fmt.Fprintf(w, "repository %s\n", rep.Repository)
	c := rep.Archive
	if len(c.Timelines) == 0 {
		fmt.Fprintln(w, "archive: empty")
	}
	for _, tl := range c.Timelines {
		fmt.Fprintf(w, "timeline %d", tl.TLI)
		if tl.Parent != 0 {
			fmt.Fprintf(w, " (from timeline %d at %s)", tl.Parent, tl.SwitchLSN)
		}
		fmt.Fprintln(w)
		if tl.Segments > 0 {
			fmt.Fprintf(w, "  segments  %s .. %s (%d)\n", tl.First, tl.Last, tl.Segments)
		}
		if tl.Streamed != nil {
			fmt.Fprintf(w, "  streaming %s, %s of it\n", tl.Streamed.Segment, humanBytes(int64(tl.Streamed.Bytes)))
		}
		for _, g := range tl.Gaps {
			fmt.Fprintf(w, "  MISSING   %s\n", g)
		}
		if tl.End.LSN != 0 {
			fmt.Fprintf(w, "  end       %s, archived %s\n", tl.End.LSN, tl.End.Archived.Local().Format(time.DateTime))
		}
	}
	if rep.ArchiveAgeS != nil {
		fmt.Fprintf(w, "newest archived WAL: %s on timeline %d, %s old\n", c.Newest.LSN, c.Newest.TLI, fmtAge(*rep.ArchiveAgeS))
	}
	for _, s := range rep.Receivers {
		state := "disconnected"
		if s.Connected {
			state = "streaming"
		}
		mode := "async"
		if s.Synchronous {
			mode = "sync"
		}
		fmt.Fprintf(w, "receiver %s (%s, %s): flushed %s, lag %s, updated %s ago\n", s.Slot, mode, state, s.FlushedLSN, humanBytes(s.LagBytes), fmtAge(s.AgeS))
		if s.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", s.LastError)
		}
	}
	if rep.Newest != nil {
		fmt.Fprintf(w, "backups: %d, newest %s, %s old\n", rep.Backups, rep.Newest.ID, fmtAge(rep.Newest.AgeS))
	} else {
		fmt.Fprintln(w, "backups: none")
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
}

func fmtAge(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second / 10).String()
}

// planStatus is the plan section of status --plan: the plan against the
// state of the service now.
type planStatus struct {
	Plan       string  `json:"plan"`
	Service    string  `json:"service"`
	Tier       int     `json:"tier"`
	RTOS       float64 `json:"rto_s"`
	RPOS       float64 `json:"rpo_s"`
	Repository string  `json:"repository"` // the repository judged: --repo, else the plan's first
	// Checks are backup, wal (when the plan archives WAL), restore and
	// replication (when it has a cluster), in that order.
	Checks []runbook.Check       `json:"checks"`
	Drills []runbook.DrillStatus `json:"drills"`
	// Cluster is what cluster status -o json shows; absent without a
	// cluster section or when etcd could not be read.
	Cluster *clusterStatus `json:"cluster,omitempty"`
	// Errors name each source that could not be read; the checks that
	// depend on it are UNKNOWN.
	Errors []string `json:"errors"`
}

// errStatusIncomplete is returned by status --plan, after printing all it
// could, when a source could not be read.
var errStatusIncomplete = errors.New("status is incomplete: a source could not be read")

// statusEtcdTimeout bounds reading the cluster's state for status --plan.
const statusEtcdTimeout = 3 * time.Second

// planStatus prints the plan against reality, then what the repository
// holds when it could be read.
func (a *app) planStatus(ctx context.Context, f repoFlags, now time.Time) error {
	p := a.plan
	ps := &planStatus{Plan: p.Path, Service: p.Service.Name, Tier: p.Service.Tier, RTOS: p.Service.RTO.Seconds(),
		RPOS: p.Service.RPO.Seconds(), Repository: a.repoName(f), Errors: []string{}}
	rep, err := a.repoStatus(ctx, f, now)
	if err != nil {
		ps.Errors = append(ps.Errors, fmt.Sprintf("repository %s: %v", ps.Repository, err))
	}
	ps.Checks = repoChecks(p, rep)
	facts := a.runbookFacts(p)
	if facts.DrillsError != "" {
		ps.Errors = append(ps.Errors, facts.DrillsError)
	}
	ps.Checks = append(ps.Checks, runbook.JudgeRestore(p, facts.Restore, now))
	ps.Drills = runbook.JudgeDrills(p, facts.Drills, now)
	if p.Cluster != nil {
		ps.Checks = append(ps.Checks, a.replicationCheck(ctx, ps))
	}
	return a.printPlanReport(ps, rep)
}

// repoName names the repository status judges, for messages.
func (a *app) repoName(f repoFlags) string {
	r, err := a.resolveRepo(f)
	if err != nil {
		return cmp.Or(f.repo, "(none)")
	}
	return cmp.Or(r.Name, redactURL(r.URL))
}

// repoChecks judges the newest backup and archived WAL of rep; UNKNOWN
// when rep is nil (the repository could not be read).
func repoChecks(p *plan.Plan, rep *statusReport) []runbook.Check {
	if rep == nil {
		cs := []runbook.Check{{Name: "backup", Verdict: runbook.Unknown, Detail: "the repository could not be read"}}
		if p.Archiving.Mode != plan.ArchiveNone {
			cs = append(cs, runbook.Check{Name: "wal", Verdict: runbook.Unknown, Detail: "the repository could not be read"})
		}
		return cs
	}
	e := exposure(rep)
	cs := []runbook.Check{runbook.JudgeBackup(p, e)}
	if c, ok := runbook.JudgeWAL(p, e); ok {
		cs = append(cs, c)
	}
	return cs
}

// exposure is what rep shows of the data a loss of the server now would
// lose: the newest backup and archived WAL, and a receiver that streams.
func exposure(rep *statusReport) runbook.Exposure {
	secs := func(s float64) *time.Duration { d := time.Duration(s * float64(time.Second)); return &d }
	var e runbook.Exposure
	if rep.Newest != nil {
		e.NewestBackup = secs(rep.Newest.AgeS)
	}
	if rep.ArchiveAgeS != nil {
		e.NewestWAL = secs(*rep.ArchiveAgeS)
	}
	for _, r := range rep.Receivers {
		age := *secs(r.AgeS)
		if r.Connected && r.LagBytes == 0 && age <= runbook.StreamFresh && (!e.Streaming || age < e.StreamAge) {
			e.Streaming, e.StreamAge = true, age
			e.Synchronous = e.Synchronous || r.Synchronous
		}
	}
	return e
}

// replicationCheck reads the cluster's state from etcd with the code of
// cluster status, and judges it. etcd that cannot be read makes the check
// UNKNOWN and adds an error to ps.
func (a *app) replicationCheck(ctx context.Context, ps *planStatus) runbook.Check {
	p := a.plan
	var snap cluster.Snapshot
	err := a.withStore(ctx, statusEtcdTimeout, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) (err error) {
		snap, err = s.Read(ctx)
		return err
	})
	if err != nil {
		ps.Errors = append(ps.Errors, fmt.Sprintf("etcd %s (cluster %s): %v", strings.Join(p.Cluster.Etcd.Endpoints, ","), p.Cluster.Name, err))
		return runbook.Check{Name: "replication", Verdict: runbook.Unknown, Detail: "etcd could not be read: the cluster's state is unknown"}
	}
	st := buildClusterStatus(p.Cluster, snap)
	ps.Cluster = &st
	return runbook.JudgeReplication(p, snap)
}

// printPlanReport prints ps and, when the repository could be read, rep.
// It returns errStatusIncomplete when a source could not be read, and
// errDamaged when the archive has gaps.
func (a *app) printPlanReport(ps *planStatus, rep *statusReport) error {
	var err error
	switch {
	case rep != nil:
		rep.Plan = ps
		err = a.printStatusReport(rep)
	case a.json():
		err = a.printJSON(struct {
			Plan *planStatus `json:"plan"`
		}{ps})
	default:
		a.printPlanStatus(ps)
	}
	if len(ps.Errors) > 0 && (err == nil || errors.Is(err, errDamaged)) {
		err = errors.Join(errStatusIncomplete, err)
	}
	return err
}

func (a *app) printPlanStatus(ps *planStatus) {
	w := a.stdout
	p := a.plan.Service
	fmt.Fprintf(w, "plan %s: %s, tier %d, RTO %s, RPO %s\n", ps.Plan, p.Name, p.Tier, plan.FormatDuration(p.RTO), plan.FormatDuration(p.RPO))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range ps.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Verdict, c.Name, c.Detail)
	}
	tw.Flush()
	often, _ := runbook.Frequency(ps.Tier)
	fmt.Fprintf(w, "drills (tier %d: test %s):\n", ps.Tier, often)
	if len(ps.Drills) == 0 {
		fmt.Fprintln(w, "  none: no drill has run, and drills need a cluster section")
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range ps.Drills {
		line := "never run"
		if d.Ran {
			line = fmt.Sprintf("%s\t%s, %s ago", drill.Verdict(d.Passed), d.Started.UTC().Format("2006-01-02 15:04 UTC"), runbook.Ago(time.Duration(d.AgeS*float64(time.Second))))
		}
		if d.Overdue {
			line += "\toverdue"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", d.Scenario, line)
	}
	tw.Flush()
	if ps.Cluster != nil {
		a.printClusterStatus(*ps.Cluster)
	}
	for _, e := range ps.Errors {
		fmt.Fprintf(w, "UNREADABLE %s\n", e)
	}
	fmt.Fprintln(w)
}
