package cli

import "github.com/spf13/cobra"

func (a *app) newDrillCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "drill", Short: "Run DR drills against a cluster and keep their results"}
	cmd.AddCommand(a.newDrillHistoryCmd())
	cmd.AddCommand(a.newDrillRunCmd())
	return cmd
}
