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

// injectFault is the agent's agent.Options.InjectFault (--drill-faults):
// it starts `bulwark fault-helper`, in a session of its own so that it
// outlives the agent it kills, with the agent's environment, working
// directory and output, and the agent's own command line to start it
// again after a node loss. The helper waits on a pipe (its descriptor 3)
// for the byte act writes once the agent has answered the drill.
// pidFile is the agent's --pid-file ("" for none).
func injectFault(pidFile string) func(agent.Fault) (func(), error) {
	return func(f agent.Fault) (func(), error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		argv := []string{"fault-helper", "--kind", f.Kind, "--agent", strconv.Itoa(f.Agent),
			"--postmaster", strconv.Itoa(f.Postmaster), "--hold", f.Hold.String(), "--agent-pid-file", pidFile}
		if f.Kind == agent.FaultNodeLoss {
			argv = append(append(argv, "--", exe), os.Args[1:]...)
		}
		cmd := exec.Command(exe, argv...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.ExtraFiles = []*os.File{r}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			w.Close()
			return nil, fmt.Errorf("start the fault helper: %w", err)
		}
		go cmd.Wait() // no zombie once a hang's helper exits
		return func() {
			w.Write([]byte{1})
			w.Close()
		}, nil
	}
}

// helperWait bounds the fault helper's wait for the agent's go-ahead.
const helperWait = 30 * time.Second

func (a *app) newFaultHelperCmd() *cobra.Command {
	var kind, pidFile string
	var agentPID, pmPID int
	var hold time.Duration
	cmd := &cobra.Command{
		Use:    "fault-helper --kind hang|node-loss --agent PID --postmaster PID --hold D [--agent-pid-file F] [-- AGENT COMMAND]",
		Short:  "Hang or kill this node for a drill (started by an agent with --drill-faults)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, restart []string) error {
			if kind != agent.FaultHang && kind != agent.FaultNodeLoss {
				return usageError{fmt.Errorf("--kind %q: want %s or %s", kind, agent.FaultHang, agent.FaultNodeLoss)}
			}
			if kind == agent.FaultNodeLoss && len(restart) == 0 {
				return usageError{errors.New("node-loss needs the agent's command line after --")}
			}
			if err := awaitGoAhead(os.NewFile(3, "go-ahead"), helperWait); err != nil {
				return err
			}
			if kind == agent.FaultHang {
				return hangNode(agentPID, pmPID, hold)
			}
			return loseNode(agentPID, pmPID, hold, pidFile, restart)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "hang or node-loss")
	cmd.Flags().IntVar(&agentPID, "agent", 0, "the agent's PID")
	cmd.Flags().IntVar(&pmPID, "postmaster", 0, "the postmaster's PID")
	cmd.Flags().DurationVar(&hold, "hold", 0, "how long the node stays hung or lost")
	cmd.Flags().StringVar(&pidFile, "agent-pid-file", "", "the agent's PID file: after a node loss, the agent is started again only if it still names the killed agent")
	return cmd
}

// awaitGoAhead waits for the byte the agent writes on f once it has
// answered the drill. End of file without it (the agent died first), or
// no byte within wait, calls the fault off.
func awaitGoAhead(f *os.File, wait time.Duration) error {
	if f == nil {
		return errors.New("no go-ahead pipe on descriptor 3")
	}
	got := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := f.Read(b[:])
		got <- n == 1
	}()
	select {
	case ok := <-got:
		if !ok {
			return errors.New("the agent ended before it gave the go-ahead: fault called off")
		}
		return nil
	case <-time.After(wait):
		return fmt.Errorf("no go-ahead from the agent within %s: fault called off", wait)
	}
}

// hangNode stops the agent, the postmaster and its children for hold, as
// a hung machine would, then lets them go on.
func hangNode(agentPID, pm int, hold time.Duration) error {
	err := errors.Join(syscall.Kill(agentPID, syscall.SIGSTOP), pg.SignalServer(pm, syscall.SIGSTOP))
	time.Sleep(hold)
	return errors.Join(err, syscall.Kill(agentPID, syscall.SIGCONT), pg.SignalServer(pm, syscall.SIGCONT))
}

// loseNode kill -9s the agent, the postmaster and its children, as a lost
// machine would lose them, and after hold starts the agent again with its
// command line (the machine is back); the agent then starts PostgreSQL.
// It does not if the agent's PID file no longer names the killed agent:
// another agent runs (systemd started it) or the cluster was stopped
// (bulwark down removes the file).
func loseNode(agentPID, pm int, hold time.Duration, pidFile string, restart []string) error {
	err := errors.Join(syscall.Kill(agentPID, syscall.SIGKILL), pg.SignalServer(pm, syscall.SIGKILL))
	time.Sleep(hold)
	if pidFile != "" {
		if pid, rerr := readPID(pidFile); rerr != nil || pid != agentPID {
			fmt.Fprintf(os.Stderr, "bulwark fault-helper: %s no longer names agent %d: not starting it again\n", pidFile, agentPID)
			return err
		}
	}
	cmd := exec.Command(restart[0], restart[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if serr := cmd.Start(); serr != nil {
		return errors.Join(err, fmt.Errorf("start the agent again: %w", serr))
	}
	return errors.Join(err, cmd.Process.Release())
}
