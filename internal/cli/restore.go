package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/backup"
)

func (a *app) newRestoreCmd() *cobra.Command {
	var rf repoFlags
	var pf pgFlags
	var id, typ string
	var delta, clean bool
	var jobs int
	var spcMap map[string]string
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into a data directory (or, --type logical, into a database)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openRepo(cmd.Context(), rf)
			if err != nil {
				return err
			}
			var info *backup.Info
			switch typ {
			case "logical":
				pf := a.fillPG(pf)
				if pf.db == "" {
					return usageError{errors.New("a logical restore needs --db CONNSTRING")}
				}
				info, err = backup.RestoreLogical(cmd.Context(), r, backup.LogicalOptions{Backup: id, DB: pf.db, BinDir: pf.binDir, Clean: clean, Logger: a.log})
			case "physical":
				if pf.pgdata == "" {
					return usageError{errors.New("no target: pass --pgdata DIR")}
				}
				pr := a.progress()
				info, err = backup.Restore(cmd.Context(), r, backup.RestoreOptions{Backup: id, PGData: pf.pgdata, Delta: delta, Jobs: jobs, Logger: a.log, Progress: pr, TablespaceMap: spcMap})
				a.endProgress(pr)
			default:
				return usageError{fmt.Errorf("--type %q: want physical or logical", typ)}
			}
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"backup": info.ID, "type": info.Type, "target": target(pf, typ), "stop_lsn": info.StopLSN})
			}
			fmt.Fprintf(a.stdout, "restored backup %s (%s) into %s\n", info.ID, info.Type, target(pf, typ))
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&pf.pgdata, "pgdata", "", "target data directory (empty or absent, or any with --delta)")
	cmd.Flags().StringVar(&pf.db, "db", "", "logical: connection string of the database to restore into")
	cmd.Flags().StringVar(&pf.binDir, "pg-bin", "", "logical: directory of pg_restore")
	cmd.Flags().StringVar(&id, "backup", "latest", "backup ID, or latest")
	cmd.Flags().StringVar(&typ, "type", "physical", "physical or logical")
	cmd.Flags().BoolVar(&delta, "delta", false, "rewrite only the files of a non-empty target that differ")
	cmd.Flags().BoolVar(&clean, "clean", false, "logical: drop objects before recreating them")
	cmd.Flags().IntVar(&jobs, "jobs", 0, "parallel writers (default: number of CPUs)")
	cmd.Flags().StringToStringVar(&spcMap, "tablespace-map", nil, "restore tablespace OID into DIR instead of its original directory (OID=DIR, repeatable)")
	return cmd
}

func target(pf pgFlags, typ string) string {
	if typ == "logical" {
		return "the database"
	}
	return pf.pgdata
}
