package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// pgFlags name the PostgreSQL server.
type pgFlags struct {
	pgdata, db, binDir string
}

func (f *pgFlags) register(cmd *cobra.Command, pgdata bool) {
	if pgdata {
		cmd.Flags().StringVar(&f.pgdata, "pgdata", "", "data directory of the server (default: the plan's postgres.pgdata)")
	}
	cmd.Flags().StringVar(&f.db, "db", "", "connection string of the server (default: the plan's postgres.db)")
	cmd.Flags().StringVar(&f.binDir, "pg-bin", "", "directory of the PostgreSQL programs (default: the plan's postgres.bin_dir, else PATH)")
}

// fill applies the plan under the flags.
func (a *app) fillPG(f pgFlags) pgFlags {
	if a.plan != nil {
		pp := a.plan.Postgres
		if f.pgdata == "" {
			f.pgdata = pp.PGData
		}
		if f.db == "" {
			f.db = pp.DB
		}
		if f.binDir == "" {
			f.binDir = pp.BinDir
		}
	}
	return f
}

func (a *app) newBackupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Take and inspect backups"}
	cmd.AddCommand(a.newBackupCreateCmd(), a.newBackupListCmd(), a.newBackupInfoCmd())
	return cmd
}

func (a *app) newBackupCreateCmd() *cobra.Command {
	var rf repoFlags
	var pf pgFlags
	var typ, walMode string
	var jobs, level int
	var archiveTimeout time.Duration
	var also []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Take a full, incremental, differential or logical backup",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := backup.ParseType(typ)
			if err != nil {
				return usageError{err}
			}
			pf := a.fillPG(pf)
			if pf.db == "" {
				return usageError{errors.New("no server: pass --db CONNSTRING or set postgres.db in the plan")}
			}
			if t != backup.Logical && pf.pgdata == "" {
				return usageError{errors.New("no data directory: pass --pgdata DIR or set postgres.pgdata in the plan")}
			}
			wm, err := backup.ParseWALMode(walMode)
			if err != nil {
				return usageError{err}
			}
			var ro repo.Options
			if level != 0 {
				if level < 1 || level > 22 {
					return usageError{fmt.Errorf("--compress-level %d: want 1 to 22", level)}
				}
				ro.CompressLevel = zstd.EncoderLevelFromZstd(level)
			}
			r, err := a.openRepoWith(cmd.Context(), rf, ro)
			if err != nil {
				return err
			}
			if len(also) > 0 {
				if r, err = a.teeCopies(cmd.Context(), r, also); err != nil {
					return err
				}
			}
			var info *backup.Info
			if t == backup.Logical {
				info, err = backup.CreateLogical(cmd.Context(), r, backup.LogicalOptions{DB: pf.db, BinDir: pf.binDir, Jobs: jobs, Logger: a.log})
			} else {
				pr := a.progress()
				info, err = backup.Create(cmd.Context(), r, backup.CreateOptions{
					Type: t, PGData: pf.pgdata, DB: pf.db, Jobs: jobs, Logger: a.log, Progress: pr,
					WAL: wm, Archive: archive.New(r), ArchiveTimeout: archiveTimeout,
				})
				a.endProgress(pr)
			}
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(info)
			}
			fmt.Fprintf(a.stdout, "backup %s (%s) done: %s read, %s new in the repository, %.1fs\n",
				info.ID, info.Type, humanBytes(info.Size), humanBytes(info.NewBytes), info.Duration)
			return nil
		},
	}
	rf.register(cmd)
	pf.register(cmd, true)
	cmd.Flags().StringVar(&typ, "type", "full", "full, incr, diff or logical")
	cmd.Flags().IntVar(&jobs, "jobs", 0, "parallel compression jobs (default: number of CPUs)")
	cmd.Flags().StringVar(&walMode, "wal", "auto", "where the backup's WAL lives: archive (the repository's WAL archive, waited for), copy (inside the backup), auto (archive when archive_command is bulwark wal push)")
	cmd.Flags().StringSliceVar(&also, "also", nil, "also write the backup to this copy of the repository (plan name or URL; repeatable): the database is read once")
	cmd.Flags().DurationVar(&archiveTimeout, "archive-timeout", backup.DefaultArchiveTimeout, "how long to wait for the backup's WAL to be archived")
	cmd.Flags().IntVar(&level, "compress-level", 0, "zstd level (1-22) for whole blocks (default: zstd's fastest; deltas of index pages always get the strongest)")
	return cmd
}

func (a *app) newBackupListCmd() *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backups of a repository",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openRepoWith(cmd.Context(), rf, repo.Options{SkipIndex: true}) // records and keys only
			if err != nil {
				return err
			}
			all, err := backup.List(cmd.Context(), r)
			if err != nil {
				return err
			}
			if a.json() {
				if all == nil {
					all = []*backup.Info{}
				}
				return a.printJSON(all)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tBASE\tTL\tSTART LSN\tSTOP LSN\tSTARTED\tDURATION\tSIZE\tSTORED\tNEW")
			for _, b := range all {
				tl, start, stop := b.Timeline.String(), b.StartLSN.String(), b.StopLSN.String()
				if b.Type == backup.Logical {
					tl, start, stop = "-", "-", "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\t%s\t%s\n", b.ID, b.Type, dash(b.Base), tl,
					start, stop, b.StartTime.Local().Format(time.DateTime), b.Duration,
					humanBytes(b.Size), humanBytes(b.StoredSize), humanBytes(b.NewBytes))
			}
			return tw.Flush()
		},
	}
	rf.register(cmd)
	return cmd
}

func (a *app) newBackupInfoCmd() *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "info ID|latest",
		Short: "Show one backup",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			r, err := a.openRepoWith(cmd.Context(), rf, repo.Options{SkipIndex: true}) // records and keys only
			if err != nil {
				return err
			}
			b, err := backup.Load(cmd.Context(), r, argv[0], false)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(b)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			rows := [][2]string{
				{"id", b.ID}, {"type", string(b.Type)}, {"base", dash(b.Base)}, {"timeline", b.Timeline.String()},
				{"start lsn", b.StartLSN.String()}, {"stop lsn", b.StopLSN.String()},
				{"wal", dash(b.StartWAL) + " .. " + dash(b.StopWAL)},
				{"start time", b.StartTime.Local().Format(time.RFC3339)}, {"stop time", b.StopTime.Local().Format(time.RFC3339)},
				{"duration", fmt.Sprintf("%.1fs", b.Duration)}, {"database size", humanBytes(b.Size)},
				{"stored size", humanBytes(b.StoredSize)}, {"new bytes", humanBytes(b.NewBytes)}, {"files", fmt.Sprint(b.Files)},
				{"postgresql", fmt.Sprint(b.PGVersion)}, {"system id", b.SystemID},
			}
			if b.Database != "" {
				rows = append(rows, [2]string{"database", b.Database})
			}
			for _, r := range rows {
				fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
			}
			return tw.Flush()
		},
	}
	rf.register(cmd)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
