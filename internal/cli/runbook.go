package cli

import (
	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/runbook"
)

func (a *app) newPlanRunbookCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "runbook [FILE]",
		Short: "Print the DR plan as a Markdown runbook, with the last measured RTO and RPO of each drill",
		Long: `Print the plan file (FILE, else --plan, else BULWARK_PLAN) as a runbook in
Markdown, in the six sections of a DR plan: classification (tier, RTO, RPO),
backup strategy (repositories, archiving, replication, schedules in words, the
3-2-1 verdict of plan check), the failover and recovery procedures with the
exact bulwark commands, the testing schedule with the DR test checklist, and
the newest drill result of each scenario from the plan's drills.history.

It reads the plan and the drill history, nothing else: it works without a
running cluster or a reachable repository. With -o json it prints the same
content as a JSON document. docs/runbook.md describes it.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := a.planToCheck(cmd, argv)
			if err != nil {
				return err
			}
			rb := runbook.Build(p, a.runbookFacts(p))
			if a.json() {
				return rb.JSON(a.stdout)
			}
			return rb.Markdown(a.stdout)
		},
	}
}

// runbookFacts gathers what plan check, the runbook and status --plan
// measure the plan against, from the drill history: the newest drill of
// each scenario and the last restore test. A history that cannot be read
// in full is reported in the facts, not as an error: the rest is still
// worth printing.
func (a *app) runbookFacts(p *plan.Plan) runbook.Facts {
	latest, err := drill.History{Dir: p.Drills.History}.Latest()
	f := runbook.Facts{Restore: runbook.RestoreFromDrills(latest), Drills: latest}
	if err != nil {
		f.DrillsError = err.Error()
	}
	return f
}
