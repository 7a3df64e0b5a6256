package cli

// Stub until the receiver lands (internal/receive).

import "github.com/spf13/cobra"

func (a *app) newWalReceiveCmd() *cobra.Command {
	return &cobra.Command{Use: "receive", Short: "Stream WAL into the repository (not yet)", Hidden: true}
}
