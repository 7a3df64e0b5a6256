package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/plan"
)

// errPlanFallsShort is returned by plan check when the plan cannot meet its
// own targets. It is a usage error: the plan file needs changing.
var errPlanFallsShort = errors.New("the plan cannot meet its targets")

func (a *app) newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "Check the DR plan file"}
	cmd.AddCommand(a.newPlanCheckCmd(), a.newPlanRunbookCmd())
	return cmd
}

func (a *app) newPlanCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check that the plan is valid and can meet its own 3-2-1, RPO and RTO targets",
		Long: `Check the plan file (FILE, else --plan, else BULWARK_PLAN). A malformed plan
is refused with every problem, each with its file, line, column and field.
A valid plan is then checked against its own targets: the 3-2-1 rule (3
copies, 2 kinds of media, 1 offsite), whether its archiving, replication and
backup schedules can hold its RPO, and whether the last measured restore fits
in its RTO. docs/plan.md lists the rules.

Each finding is an ERROR (the plan cannot meet its targets) or a WARNING (it
may not, or nothing shows that it does). Exit status: 0 when there is no
error, warnings or not; 2 when the plan is malformed or has an error, as a
plan that cannot meet its targets is a mistake in the plan file.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := a.planToCheck(cmd, argv)
			if err != nil {
				return err
			}
			facts := a.runbookFacts(p)
			if facts.DrillsError != "" {
				a.log.Warn("drill history unreadable; plan check goes on without it", "err", facts.DrillsError)
			}
			return a.printFindings(p, p.Check(facts.Restore))
		},
	}
}

// planToCheck is the plan to check: the argument, else the plan setup
// loaded from --plan or BULWARK_PLAN. The argument is a flag's equal, so it
// wins over BULWARK_PLAN; --plan naming another file is a usage error.
func (a *app) planToCheck(cmd *cobra.Command, argv []string) (*plan.Plan, error) {
	if len(argv) == 0 {
		if a.plan == nil {
			return nil, usageError{errors.New("no plan: give the plan file as the argument, with --plan or in BULWARK_PLAN")}
		}
		return a.plan, nil
	}
	if f := cmd.Flag("plan"); f != nil && f.Changed && a.planPath != argv[0] {
		return nil, usageError{fmt.Errorf("two plans, %s and --plan %s: give one", argv[0], a.planPath)}
	}
	return plan.Load(argv[0])
}

// printFindings prints the findings of p and returns errPlanFallsShort if
// any is an error.
func (a *app) printFindings(p *plan.Plan, findings []plan.Finding) error {
	errs, warnings := 0, 0
	for _, f := range findings {
		if f.Severity == plan.SeverityError {
			errs++
		} else {
			warnings++
		}
	}
	if a.json() {
		if findings == nil {
			findings = []plan.Finding{}
		}
		err := a.printJSON(struct {
			Plan     string         `json:"plan"`
			Findings []plan.Finding `json:"findings"`
			OK       bool           `json:"ok"`
		}{p.Path, findings, errs == 0})
		if err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(a.stdout, f)
		}
		verdict := "ok"
		if errs > 0 {
			verdict = "cannot meet its targets"
		}
		fmt.Fprintf(a.stdout, "%s: %s (%s, %s)\n", p.Path, verdict, plan.Plural(errs, "error", "errors"), plan.Plural(warnings, "warning", "warnings"))
	}
	if errs > 0 {
		return usageError{fmt.Errorf("%s: %w", p.Path, errPlanFallsShort)}
	}
	return nil
}
