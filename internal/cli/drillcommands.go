package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// commandTimeout bounds one fault or heal command.
const commandTimeout = time.Minute

// commandFaults injects the faults that neither this machine nor the
// agents can (network-partition: firewall rules on the primary's host;
// etcd-member-loss: an etcd member the cluster does not run) by running
// the user's --fault-command, and heals them with --heal-command. The
// other faults go to the Faults it wraps.
type commandFaults struct {
	drill.Faults
	ctx         context.Context // the drill's
	c           *plan.Cluster
	fault, heal string

	mu      sync.Mutex
	pending []string // the environment of a fault not healed yet
}

var _ drill.Faults = (*commandFaults)(nil)

// commandEnv describes a fault to its commands: BULWARK_FAULT names the
// scenario, BULWARK_CLUSTER the cluster, BULWARK_ETCD_ENDPOINTS all of
// etcd; for network-partition, BULWARK_NODE, BULWARK_NODE_HOST,
// BULWARK_NODE_PORT and BULWARK_NODE_API the primary, BULWARK_PEER_HOSTS
// the other nodes' hosts; for etcd-member-loss, BULWARK_ETCD_ENDPOINT the
// member to kill (etcd's leader).
func (f *commandFaults) commandEnv(scenario string, extra ...string) []string {
	return append([]string{
		"BULWARK_FAULT=" + scenario,
		"BULWARK_CLUSTER=" + f.c.Name,
		"BULWARK_ETCD_ENDPOINTS=" + strings.Join(f.c.Etcd.Endpoints, ","),
	}, extra...)
}

func (f *commandFaults) Partition(node string) error {
	n, ok := f.c.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in the plan", node)
	}
	var peers []string
	for _, p := range f.c.Nodes {
		if p.Name != node && !slices.Contains(peers, p.Host) {
			peers = append(peers, p.Host)
		}
	}
	env := f.commandEnv(drill.NetworkPartition, "BULWARK_NODE="+node, "BULWARK_NODE_HOST="+n.Host,
		"BULWARK_NODE_PORT="+strconv.Itoa(n.Port), "BULWARK_NODE_API="+n.API, "BULWARK_PEER_HOSTS="+strings.Join(peers, ","))
	_, err := f.inject(env)
	return err
}

// KillEtcd runs the fault command for the member at endpoint; the first
// line it prints, if any, names the member.
func (f *commandFaults) KillEtcd(endpoint string) (string, error) {
	out, err := f.inject(f.commandEnv(drill.EtcdMemberLoss, "BULWARK_ETCD_ENDPOINT="+endpoint))
	if err != nil {
		return "", err
	}
	if line, _, _ := bytes.Cut(out, []byte("\n")); len(bytes.TrimSpace(line)) > 0 {
		return string(bytes.TrimSpace(line)), nil
	}
	return endpoint, nil
}

// inject runs the fault command. Its fault is healed even if the command
// failed: it may have done part of its work.
func (f *commandFaults) inject(env []string) ([]byte, error) {
	f.mu.Lock()
	f.pending = env
	f.mu.Unlock()
	return runFaultCommand(f.ctx, "--fault-command", f.fault, env)
}

// Heal runs the heal command for a fault injected since the last heal,
// then heals what the wrapped Faults did. A heal command that failed runs
// again at the next Heal (the drill heals once more when a run ends).
func (f *commandFaults) Heal(ctx context.Context) error {
	f.mu.Lock()
	env := f.pending
	f.mu.Unlock()
	var err error
	if env != nil {
		if _, err = runFaultCommand(ctx, "--heal-command", f.heal, env); err == nil {
			f.mu.Lock()
			f.pending = nil
			f.mu.Unlock()
		}
	}
	return errors.Join(err, f.Faults.Heal(ctx))
}

// runFaultCommand runs command with sh -c, env added to bulwark's own,
// and returns what it printed. Its output, not the command, goes into
// the error. It runs in a process group of its own, all killed if ctx
// ends or after commandTimeout, so that no ssh it started injects a
// fault after the drill gave up on it. Output of processes it leaves
// running is not waited for.
func runFaultCommand(ctx context.Context, flag, command string, env []string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil && cmd.ProcessState.Success() {
		err = nil // it succeeded and left something running that holds its output
	}
	if err != nil {
		if ctx.Err() == nil && cctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("still running after %s", commandTimeout)
		}
		return nil, fmt.Errorf("%s (%s): %w%s", flag, env[0], err, lastLines(stderr.String(), 5))
	}
	return stdout.Bytes(), nil
}

// lastLines formats the last n non-empty lines of out for an error
// message.
func lastLines(out string, n int) string {
	var lines []string
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines[max(0, len(lines)-n):], "; ")
}

// noFaults injects nothing: under commandFaults, for the scenarios whose
// commands do it all.
type noFaults struct{}

var errNoFault = errors.New("this fault needs --faults local or agents")

func (noFaults) Crash(string) error              { return errNoFault }
func (noFaults) KillNode(string) error           { return errNoFault }
func (noFaults) Freeze(string) error             { return errNoFault }
func (noFaults) Thaw(string) error               { return nil }
func (noFaults) KillEtcd(string) (string, error) { return "", errNoFault }
func (noFaults) Partition(string) error          { return errNoFault }
func (noFaults) Heal(context.Context) error      { return nil }
