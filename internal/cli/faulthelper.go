package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/agent"
	"github.com/bulwarkdb/bulwark/internal/pg"
)

// faultDelay is how long the fault helper waits before it acts, so that
// the agent has answered the drill's request.
const faultDelay = 200 * time.Millisecond

// injectFault is the agent's agent.Options.InjectFault (--drill-faults):
// it starts `bulwark fault-helper`, in a session of its own so that it
// outlives the agent it kills, with the agent's environment, working
// directory and output, and the agent's own command line to start it
// again after a node loss.
func injectFault(f agent.Fault) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{"fault-helper", "--kind", f.Kind, "--agent", strconv.Itoa(f.Agent),
		"--postmaster", strconv.Itoa(f.Postmaster), "--hold", f.Hold.String(), "--delay", faultDelay.String()}
	if f.Kind == agent.FaultNodeLoss {
		argv = append(append(argv, "--", exe), os.Args[1:]...)
	}
	cmd := exec.Command(exe, argv...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the fault helper: %w", err)
	}
	go cmd.Wait() // no zombie once a hang's helper exits
	return nil
}

func (a *app) newFaultHelperCmd() *cobra.Command {
	var kind string
	var agentPID, pmPID int
	var hold, delay time.Duration
	cmd := &cobra.Command{
		Use:    "fault-helper --kind hang|node-loss --agent PID --postmaster PID --hold D [-- AGENT COMMAND]",
		Short:  "Hang or kill this node for a drill (started by an agent with --drill-faults)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, restart []string) error {
			time.Sleep(delay)
			switch kind {
			case agent.FaultHang:
				return hangNode(agentPID, pmPID, hold)
			case agent.FaultNodeLoss:
				if len(restart) == 0 {
					return usageError{errors.New("node-loss needs the agent's command line after --")}
				}
				return loseNode(agentPID, pmPID, hold, restart)
			}
			return usageError{fmt.Errorf("--kind %q: want %s or %s", kind, agent.FaultHang, agent.FaultNodeLoss)}
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "hang or node-loss")
	cmd.Flags().IntVar(&agentPID, "agent", 0, "the agent's PID")
	cmd.Flags().IntVar(&pmPID, "postmaster", 0, "the postmaster's PID")
	cmd.Flags().DurationVar(&hold, "hold", 0, "how long the node stays hung or lost")
	cmd.Flags().DurationVar(&delay, "delay", 0, "wait this long first")
	return cmd
}

// hangNode stops the agent, the postmaster and its children for hold, as
// a hung machine would, then lets them go on.
func hangNode(agentPID, pm int, hold time.Duration) error {
	err := errors.Join(syscall.Kill(agentPID, syscall.SIGSTOP), pg.SignalServer(pm, syscall.SIGSTOP))
	time.Sleep(hold)
	return errors.Join(err, syscall.Kill(agentPID, syscall.SIGCONT), pg.SignalServer(pm, syscall.SIGCONT))
}

// loseNode kill -9s the agent and the postmaster, as a lost machine would
// lose them, and after hold starts the agent again with its command line
// (the machine is back); the agent then starts PostgreSQL.
func loseNode(agentPID, pm int, hold time.Duration, restart []string) error {
	err := errors.Join(syscall.Kill(agentPID, syscall.SIGKILL), syscall.Kill(pm, syscall.SIGKILL))
	time.Sleep(hold)
	cmd := exec.Command(restart[0], restart[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if serr := cmd.Start(); serr != nil {
		return errors.Join(err, fmt.Errorf("start the agent again: %w", serr))
	}
	return errors.Join(err, cmd.Process.Release())
}
