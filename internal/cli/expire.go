package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/backup"
)

func (a *app) newExpireCmd() *cobra.Command {
	var f repoFlags
	var ret backup.Retention
	var within string
	var apply bool
	cmd := &cobra.Command{
		Use:   "expire",
		Short: "Apply a retention policy: show what goes, and remove it with --apply",
		Long: `Apply a retention policy to a repository. Without --apply it only shows what it
would remove. With --apply it removes the backups out of policy, then the packs
no kept backup uses, then the archived WAL older than the oldest kept backup.

Without --keep-* flags the policy is the repository's retention in the plan.
A backup is kept when any rule keeps it, and the newest backup is always kept.
Every backup restores on its own, so removing a full never breaks the
incrementals taken after it. Expire takes the repository's exclusive lock: it
does not run beside a backup, restore or verify (exit 3: retry later).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if within != "" {
				d, err := backup.ParseRetentionDuration(within)
				if err != nil {
					return usageError{err}
				}
				ret.Within = d
			}
			if ret.IsZero() && a.plan != nil {
				// No rule on the command line: the plan's, for this repository.
				pr, err := a.resolveRepo(f)
				if err != nil {
					return err
				}
				pt := pr.Retention
				ret = backup.Retention{Full: pt.Full, Diff: pt.Diff, Within: pt.Within, Daily: pt.Daily, Weekly: pt.Weekly, Monthly: pt.Monthly}
			}
			if ret.IsZero() {
				return usageError{backup.ErrNoPolicy}
			}
			r, err := a.openRepo(cmd.Context(), f)
			if err != nil {
				return err
			}
			rep, err := backup.Expire(cmd.Context(), r, backup.ExpireOptions{Retention: ret, Apply: apply, Logger: a.log})
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(rep)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTOP\t\tREASON")
			for _, b := range rep.Backups {
				verdict := "keep"
				if !b.Keep {
					verdict = "REMOVE"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Type, b.StopTime.Local().Format(time.DateTime), verdict, b.Reason)
			}
			tw.Flush()
			verb := "would remove"
			if apply {
				verb = "removed"
			}
			fmt.Fprintf(a.stdout, "%s %d backups (%d kept), %s of unused blobs (%d packs deleted, %d rewritten), %d WAL objects (WAL kept from %s)\n",
				verb, rep.Removed, rep.Kept, humanBytes(rep.Packs.BytesDeleted), rep.Packs.PacksDeleted, rep.Packs.PacksRepacked, rep.WAL, rep.WALFrom)
			if !apply {
				fmt.Fprintln(a.stdout, "nothing removed: run again with --apply")
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.IntVar(&ret.Full, "keep-full", 0, "keep the N newest full backups and every backup since the oldest of them")
	fl.IntVar(&ret.Diff, "keep-diff", 0, "with --keep-full: keep only the N newest differentials (incrementals go with theirs)")
	fl.StringVar(&within, "keep-within", "", "keep every backup that finished within this window (30d, 4w, 36h) and the base of a PITR to its start")
	fl.IntVar(&ret.Daily, "keep-daily", 0, "keep the newest backup of each of the last N days")
	fl.IntVar(&ret.Weekly, "keep-weekly", 0, "keep the newest backup of each of the last N ISO weeks")
	fl.IntVar(&ret.Monthly, "keep-monthly", 0, "keep the newest backup of each of the last N months")
	fl.IntVar(&ret.LogicalCount, "keep-logical", 0, "keep the N newest logical backups")
	fl.BoolVar(&apply, "apply", false, "remove (without it, only show)")
	return cmd
}
