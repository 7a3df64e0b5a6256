package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// localFaults injects a drill's faults into a cluster made by bulwark up,
// whose processes run on this machine: DIR/NODE/agent.pid and each node's
// postmaster.pid say which processes a node has.
type localFaults struct {
	a   *app
	dir string
	p   *plan.Plan
}

var _ drill.Faults = (*localFaults)(nil)

// isLocalLayout says whether the plan sits in a directory bulwark up laid
// out (localLayoutErr is nil).
func isLocalLayout(p *plan.Plan) bool { return localLayoutErr(p) == nil }

// localLayoutErr checks for DIR/NODE/agent.log, which bulwark up makes for
// every node and bulwark down keeps (it removes the PID files).
func localLayoutErr(p *plan.Plan) error {
	dir := filepath.Dir(p.Path)
	for _, n := range p.Cluster.Nodes {
		if _, err := os.Stat(filepath.Join(dir, n.Name, "agent.log")); err != nil {
			return usageError{fmt.Errorf("drills with --faults local inject faults into processes on this machine, laid out by bulwark up "+
				"(DIR/NODE/agent.log); %s has no %s/agent.log: %w", dir, n.Name, err)}
		}
	}
	return nil
}

// newLocalFaults checks that the plan's cluster was laid out by bulwark up.
func newLocalFaults(a *app, p *plan.Plan) (*localFaults, error) {
	if err := localLayoutErr(p); err != nil {
		return nil, err
	}
	return &localFaults{a: a, dir: filepath.Dir(p.Path), p: p}, nil
}

func (f *localFaults) postmaster(name string) (int, error) {
	n, ok := f.p.Cluster.Node(name)
	if !ok {
		return 0, fmt.Errorf("no node %q in the plan", name)
	}
	pid, ok := (&pg.Instance{BinDir: f.p.Postgres.BinDir, DataDir: n.PGData}).PID()
	if !ok {
		return 0, fmt.Errorf("%s's PostgreSQL is not running", name)
	}
	return pid, nil
}

func (f *localFaults) agent(name string) (int, error) {
	pid, ok := pidAlive(filepath.Join(f.dir, name, "agent.pid"))
	if !ok {
		return 0, fmt.Errorf("%s's agent is not running", name)
	}
	return pid, nil
}

func (f *localFaults) Crash(name string) error {
	pid, err := f.postmaster(name)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

func (f *localFaults) KillNode(name string) error {
	agent, err := f.agent(name)
	if err != nil {
		return err
	}
	pm, err := f.postmaster(name)
	if err != nil {
		return err
	}
	return errors.Join(syscall.Kill(agent, syscall.SIGKILL), pg.SignalServer(pm, syscall.SIGKILL))
}

// Freeze stops the node's agent, postmaster and the postmaster's children,
// as a hung machine would.
func (f *localFaults) Freeze(name string) error { return f.signalNode(name, syscall.SIGSTOP) }

func (f *localFaults) Thaw(name string) error { return f.signalNode(name, syscall.SIGCONT) }

func (f *localFaults) signalNode(name string, sig syscall.Signal) error {
	agent, aerr := f.agent(name)
	pm, perr := f.postmaster(name)
	if aerr != nil && perr != nil {
		return fmt.Errorf("%s has no running process", name)
	}
	var errs []error
	if aerr == nil {
		errs = append(errs, pg.Signal(agent, sig))
	}
	if perr == nil {
		errs = append(errs, pg.SignalServer(pm, sig))
	}
	return errors.Join(errs...)
}

// KillEtcd kill -9s the local etcd member serving endpoint.
func (f *localFaults) KillEtcd(endpoint string) (string, error) {
	ms, err := localEtcdMembers(f.dir, f.p.Cluster)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.clientURL != endpoint {
			continue
		}
		pid, ok := pidAlive(m.pidFile)
		if !ok {
			return "", fmt.Errorf("etcd member %s is not running", m.name)
		}
		return m.name, syscall.Kill(pid, syscall.SIGKILL)
	}
	return "", fmt.Errorf("no local etcd member serves %s", endpoint)
}

// Partition cuts the node's links (bulwark up --links): its agent's to
// etcd, and its peers' to its PostgreSQL and agent.
func (f *localFaults) Partition(name string) error {
	return f.signalLinks(name, syscall.SIGUSR1)
}

func (f *localFaults) signalLinks(name string, sig syscall.Signal) error {
	pid, ok := pidAlive(filepath.Join(f.dir, name, "link.pid"))
	if !ok {
		return fmt.Errorf("%s has no running link (bulwark up --links)", name)
	}
	return syscall.Kill(pid, sig)
}

// linked says whether every node has links a drill can cut.
func (f *localFaults) linked() bool {
	for _, n := range f.p.Cluster.Nodes {
		if _, err := os.Stat(filepath.Join(f.dir, n.Name, linksFile)); err != nil {
			return false
		}
	}
	return true
}

// Heal heals cut links and starts the etcd members and the agents the
// faults killed; the agents start their PostgreSQL.
func (f *localFaults) Heal(context.Context) error {
	if f.linked() {
		for _, n := range f.p.Cluster.Nodes {
			f.signalLinks(n.Name, syscall.SIGUSR2) // a killed link is started again below
		}
	}
	if err := f.a.startLocalEtcd(f.dir, f.p.Cluster); err != nil {
		return err
	}
	for _, n := range f.p.Cluster.Nodes {
		if err := f.a.startLocalAgent(f.dir, f.p, n); err != nil {
			return err
		}
	}
	return nil
}
