package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/receive"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// statusReport is what `bulwark status` prints.
type statusReport struct {
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
		Short: "What the repository holds: archived WAL per timeline, gaps, RPO exposure, receivers, backups",
		Long: `What the repository holds: per timeline the archived WAL range and any gaps
(each missing segment named), the newest archived position and its age (how
much WAL a loss of the server now would lose if nothing else holds it), the
WAL receivers' lag, and the newest backup. Exits 4 when the archive has gaps.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := a.openRepoWith(ctx, f, repo.Options{SkipIndex: true})
			if err != nil {
				return err
			}
			rep, err := buildStatus(ctx, r, time.Now())
			if err != nil {
				return err
			}
			if a.json() {
				err = a.printJSON(rep)
			} else {
				a.printStatus(rep)
			}
			if err == nil && len(rep.Problems) > 0 {
				return errDamaged
			}
			return err
		},
	}
	f.register(cmd)
	return cmd
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
