package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func (a *app) newRestoreCmd() *cobra.Command {
	var rf repoFlags
	var pf pgFlags
	var id, typ string
	var delta, clean bool
	var jobs int
	var spcMap map[string]string
	var tf targetFlags
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into a data directory (or, --type logical, into a database)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, err := tf.target()
			if err != nil {
				return usageError{err}
			}
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
				var restoreCommand string
				if target.IsSet() {
					if restoreCommand, err = a.restoreCommand(rf); err != nil {
						return err
					}
				}
				pr := a.progress()
				info, err = backup.Restore(cmd.Context(), r, backup.RestoreOptions{Backup: id, PGData: pf.pgdata, Delta: delta, Jobs: jobs, Logger: a.log, Progress: pr, TablespaceMap: spcMap,
					Target: target, RestoreCommand: restoreCommand, Archive: archive.New(r), ReadAhead: readAheadFor(r.Location())})
				a.endProgress(pr)
			default:
				return usageError{fmt.Errorf("--type %q: want physical or logical", typ)}
			}
			if err != nil {
				return err
			}
			if a.json() {
				out := map[string]any{"backup": info.ID, "type": info.Type, "target": targetName(pf, typ), "stop_lsn": info.StopLSN}
				if target.IsSet() {
					out["recovery_target"] = target.String()
				}
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "restored backup %s (%s) into %s\n", info.ID, info.Type, targetName(pf, typ))
			if target.IsSet() {
				fmt.Fprintf(a.stdout, "recovery to %s is configured: start the server to replay the archived WAL\n", target)
			}
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
	tf.register(cmd)
	cmd.Flags().StringToStringVar(&spcMap, "tablespace-map", nil, "restore tablespace OID into DIR instead of its original directory (OID=DIR, repeatable)")
	return cmd
}

func targetName(pf pgFlags, typ string) string {
	if typ == "logical" {
		return "the database"
	}
	return pf.pgdata
}

// targetFlags are the point-in-time recovery flags of restore.
type targetFlags struct {
	time, lsn, xid, name, action, timeline string
	latest                                 bool
}

func (f *targetFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.time, "target-time", "", "recover to this time (RFC 3339 or '2006-01-02 15:04:05.999999+00'; no zone means local time)")
	fl.StringVar(&f.lsn, "target-lsn", "", "recover to this WAL position (e.g. 0/3000148)")
	fl.StringVar(&f.xid, "target-xid", "", "recover to the commit of this transaction ID")
	fl.StringVar(&f.name, "target-name", "", "recover to this restore point (pg_create_restore_point)")
	fl.BoolVar(&f.latest, "latest", false, "replay all archived WAL")
	fl.StringVar(&f.action, "target-action", "", "after the target: promote (default), pause or shutdown")
	fl.StringVar(&f.timeline, "target-timeline", "latest", "timeline to recover along: latest, current (the backup's) or a number")
}

var targetTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07",
}

func (f *targetFlags) target() (backup.Target, error) {
	t := backup.Target{XID: f.xid, Name: f.name, Latest: f.latest, Action: f.action, Timeline: f.timeline}
	if f.time != "" {
		var err error
		for _, l := range targetTimeLayouts {
			if t.Time, err = time.Parse(l, f.time); err == nil {
				break
			}
		}
		if err != nil {
			if t.Time, err = time.ParseInLocation("2006-01-02 15:04:05.999999999", f.time, time.Local); err != nil {
				return t, fmt.Errorf("--target-time %q: want a time like 2026-11-24T10:00:00Z or '2026-11-24 10:00:00.123456+01'", f.time)
			}
		}
	}
	if f.lsn != "" {
		lsn, err := wal.ParseLSN(f.lsn)
		if err != nil {
			return t, fmt.Errorf("--target-lsn: %w", err)
		}
		t.LSN = lsn
	}
	return t, t.Validate()
}

// restoreCommand is the restore_command a restored server runs: this
// binary, with the repository and the passphrase's file, never the
// passphrase itself.
func (a *app) restoreCommand(f repoFlags) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	pr, err := a.resolveRepo(f)
	if err != nil {
		return "", err
	}
	argv := []string{exe, "wal", "fetch", "--prefetch", "8", "--repo", pr.URL}
	pwFile := a.passwordFile(f, pr)
	switch {
	case pwFile != "":
		abs, err := filepath.Abs(pwFile)
		if err != nil {
			return "", err
		}
		argv = append(argv, "--password-file", abs)
	default:
		a.log.Warn("the passphrase came from BULWARK_REPO_PASSWORD: restore_command will need it in the server's environment; a --password-file readable by the server avoids that")
	}
	for i, s := range argv {
		argv[i] = shellQuote(s)
	}
	return strings.Join(argv, " ") + " %f %p", nil
}

// shellQuote quotes s for sh unless it is made of safe characters only.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=@%+,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readAheadFor is the pack read-ahead of a restore from location: object
// stores answer a 4 MiB request about as fast as a 100 KiB one; a local
// disk reads each blob as cheaply on its own.
func readAheadFor(location string) int64 {
	if strings.HasPrefix(location, "s3://") {
		return 4 << 20
	}
	return 0
}
