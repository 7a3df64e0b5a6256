package cli

import (
	"bufio"
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
// then heals what the wrapped Faults did.
func (f *commandFaults) Heal(ctx context.Context) error {
	f.mu.Lock()
	env := f.pending
	f.pending = nil
	f.mu.Unlock()
	var err error
	if env != nil {
		_, err = runFaultCommand(ctx, "--heal-command", f.heal, env)
	}
	return errors.Join(err, f.Faults.Heal(ctx))
}

// runFaultCommand runs command with sh -c, env added to bulwark's own,
// and returns what it printed. Its output, not the command (which may
// hold credentials), goes into the error.
func runFaultCommand(ctx context.Context, flag, command string, env []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("still running after %s", commandTimeout)
		}
		return nil, fmt.Errorf("%s (%s): %w%s", flag, env[0], err, lastLines(stderr.Bytes(), 5))
	}
	return stdout.Bytes(), nil
}

// lastLines formats the last n lines of out for an error message.
func lastLines(out []byte, n int) string {
	var lines []string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if l := strings.TrimSpace(sc.Text()); l != "" {
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
