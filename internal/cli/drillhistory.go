package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/drill"
)

func (a *app) newDrillHistoryCmd() *cobra.Command {
	var scenario string
	cmd := &cobra.Command{
		Use:   "history --plan P [--scenario S]",
		Short: "List the drills kept in the plan's drills.history directory, newest last",
		Args:  args(cobra.NoArgs),
		RunE:  func(*cobra.Command, []string) error { return a.drillHistory(scenario) },
	}
	cmd.Flags().StringVar(&scenario, "scenario", "", "only the drills of this scenario")
	return cmd
}

// drillHistory prints the kept results. A result that cannot be read
// fails the command, after the readable ones are printed.
func (a *app) drillHistory(scenario string) error {
	if a.plan == nil {
		return usageError{errors.New("drill history needs --plan (or BULWARK_PLAN): the plan's drills.history is where results are kept")}
	}
	all, listErr := drill.History{Dir: a.plan.Drills.History}.List()
	results := []drill.Result{} // [] rather than null in JSON
	for _, r := range all {
		if scenario == "" || r.Scenario == scenario {
			results = append(results, r)
		}
	}
	var err error
	if a.json() {
		err = json.NewEncoder(a.stdout).Encode(results)
	} else {
		err = writeDrillHistory(a.stdout, results)
	}
	return errors.Join(err, listErr)
}

func writeDrillHistory(w io.Writer, results []drill.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCENARIO\tRUNS\tRESULT\tRTO MEDIAN\tRTO MAX\tACKED LOST\tREPORT")
	for _, r := range results {
		rto := r.Stats[drill.RTOFigure(r.Scenario)]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.3fs\t%.3fs\t%d\t%s\n", r.ID, r.Scenario, len(r.Runs), drill.Verdict(r.Passed),
			rto.Median, rto.Max, r.AckedLost(), dash(r.Reports["html"]))
	}
	return tw.Flush()
}
