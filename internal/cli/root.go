// Package cli is the bulwark command tree: it turns flags, environment
// and the plan file into each domain package's options, runs them and
// prints results (text or --output json) on stdout. Logs go to stderr.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

// app holds what every command shares. main builds one per run.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	level          *slog.LevelVar
	log            *slog.Logger

	planPath string
	plan     *plan.Plan
	output   string
	logLevel string
}

// Execute runs the command line args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv, level: new(slog.LevelVar)}
	a.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: a.level}))
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "bulwark:", err)
	}
	return exitCode(err)
}

const exitCodesHelp = `Exit codes:
  0    success
  1    error
  2    usage error (bad flag, argument or plan file)
  3    refused for safety, retry later (the repository is locked)
  4    the repository is damaged (repo verify found problems)
  5    a drill failed (a checker failed or a target was missed)
  130  interrupted`

// usageError marks errors in how bulwark was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errDamaged is returned by repo verify when it finds problems.
var errDamaged = errors.New("the repository is damaged")

func exitCode(err error) int {
	var le *repo.LockedError
	var pe *plan.Error
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, new(usageError)), errors.As(err, &pe):
		return 2
	case errors.As(err, &le):
		return 3
	case errors.Is(err, errDamaged):
		return 4
	}
	return 1
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "bulwark",
		Short: "High availability and disaster recovery for PostgreSQL",
		Long: "Bulwark turns a service's DR plan (tier, RTO, RPO) into backups, replication and failover,\n" +
			"and proves the plan by measuring real recoveries.\n\n" + exitCodesHelp,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: a.setup,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.planPath, "plan", "", "DR plan file (bulwark.yaml); env BULWARK_PLAN")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(a.newFaultHelperCmd())
	root.AddCommand(a.newRepoCmd(), a.newBackupCmd(), a.newRestoreCmd(), a.newWalCmd(), a.newStatusCmd(), a.newExpireCmd(), a.newScheduleCmd(), a.newPlanCmd(),
		a.newAgentCmd(), a.newClusterCmd(), a.newUpCmd(), a.newDownCmd(), a.newEtcdCmd(), a.newLinkCmd(), a.newProxyCmd(), a.newDrillCmd())
	return root
}

// setup runs before every command: log level, output format, plan file.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	if err := a.level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)}
	}
	if a.output != "text" && a.output != "json" {
		return usageError{fmt.Errorf("--output %q: want text or json", a.output)}
	}
	if a.planPath == "" {
		a.planPath = a.getenv("BULWARK_PLAN")
	}
	if a.planPath != "" {
		p, err := plan.Load(a.planPath)
		if err != nil {
			return err
		}
		a.plan = p
	}
	return nil
}

// args wraps a cobra argument check so that its failures are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// progress returns a Progress callback that draws one line on a terminal,
// or nil when stderr is not a terminal or the output is JSON.
func (a *app) progress() func(backup.Progress) {
	f, ok := a.stderr.(*os.File)
	if !ok || a.output == "json" || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	pr := &progressLine{w: f}
	return pr.update
}

func (a *app) json() bool { return a.output == "json" }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func trimNL(s string) string { return strings.TrimRight(s, "\r\n") }
