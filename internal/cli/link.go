package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/netfault"
)

// newLinkCmd relays TCP links that a drill can cut: SIGUSR1 black-holes
// every link of the process, SIGUSR2 heals them, SIGTERM stops it.
func (a *app) newLinkCmd() *cobra.Command {
	var pairs []string
	cmd := &cobra.Command{
		Use:    "link --pair LISTEN=TARGET...",
		Short:  "Relay TCP links that drills cut (SIGUSR1) and heal (SIGUSR2)",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(pairs) == 0 {
				return usageError{errors.New("no --pair LISTEN=TARGET")}
			}
			var links []*netfault.Link
			defer func() {
				for _, l := range links {
					l.Close()
				}
			}()
			for _, p := range pairs {
				from, to, ok := strings.Cut(p, "=")
				if !ok || from == "" || to == "" {
					return usageError{fmt.Errorf("--pair %q: want LISTEN=TARGET, such as 127.0.0.1:7001=127.0.0.1:2379", p)}
				}
				l, err := netfault.Listen(from, to)
				if err != nil {
					return err
				}
				links = append(links, l)
				go l.Serve()
			}
			sig := make(chan os.Signal, 4)
			signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sig)
			a.log.Info("links relaying", "pairs", strings.Join(pairs, " "))
			for s := range sig {
				switch s {
				case syscall.SIGUSR1:
					for _, l := range links {
						l.Cut()
					}
					a.log.Info("links cut")
				case syscall.SIGUSR2:
					for _, l := range links {
						l.Heal()
					}
					a.log.Info("links healed")
				default:
					return nil
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&pairs, "pair", nil, "LISTEN=TARGET: relay connections to LISTEN to TARGET (repeatable)")
	return cmd
}
