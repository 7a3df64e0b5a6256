package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/agent"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

type drillFlags struct {
	scenario string
	runs     int
	via      string
	timeout  time.Duration
	repo     repoFlags // restore-test: the repository to restore from
	scratch  string    // restore-test: where the restored copies go
	faults   string    // local, agents, or "" for local when the cluster is bulwark up's
	hold     time.Duration
	// network-partition and etcd-member-loss on a cluster the drill
	// cannot reach itself: the user's commands inject and heal them.
	faultCmd, healCmd string
}

// errDrillFailed is returned when a drill ran but missed a target or a
// run's checker failed.
var errDrillFailed = errors.New("the drill failed")

func (a *app) newDrillRunCmd() *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "run --plan P --scenario S [--runs N]",
		Short: "Inject a fault under a write workload and judge the recovery against the plan's RTO and RPO",
		Long: "Run a write workload of numbered writes (through the client library, or --via a proxy's\n" +
			"read-write address), inject the scenario's fault, wait for the cluster to recover and heal,\n" +
			"then check what survived. Scenarios: " + strings.Join(drill.Scenarios, ", ") + ".\n" +
			"Faults are injected into processes on this machine (--faults local, a cluster made by\n" +
			"bulwark up), or by the nodes' agents (--faults agents: agents started with --drill-faults,\n" +
			"on any host; primary-crash, node-loss, primary-hang, replica-loss, switchover). For\n" +
			"network-partition and etcd-member-loss on other hosts, --fault-command and --heal-command\n" +
			"inject and heal the fault.\n" +
			"restore-test runs no workload: it restores the newest backup, then a point in time,\n" +
			"into --scratch, starts and checks each copy (amcheck, row counts) and times it.\n" +
			"Results and reports go to the plan's drills.history directory.\n" +
			"Exit status 5 when a run's checker failed or a target was missed.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.drillRun(cmd.Context(), f) },
	}
	cmd.Flags().StringVar(&f.scenario, "scenario", "", "the fault: "+strings.Join(drill.Scenarios, ", "))
	cmd.Flags().IntVar(&f.runs, "runs", 1, "how many times; figures are then reported as distributions")
	cmd.Flags().StringVar(&f.via, "via", "", "write through this host:port (a proxy's read-write port) instead of the client library")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "longest wait for the cluster to recover or heal, per run")
	f.repo.register(cmd)
	cmd.Flags().StringVar(&f.scratch, "scratch", "", "restore-test: directory for the restored copies, removed after each check (default: the system's temporary directory)")
	cmd.Flags().StringVar(&f.faults, "faults", "", "who injects the faults: local (signals to bulwark up's processes on this machine) or agents (POST /drill/fault to each node's agent); default local when the plan's directory is bulwark up's, else agents")
	cmd.Flags().DurationVar(&f.hold, "fault-hold", 0, "--faults agents: how long a hung or lost node stays so before its agent's helper brings it back (default 2 × TTL + 4s)")
	cmd.Flags().StringVar(&f.faultCmd, "fault-command", "", "network-partition, etcd-member-loss: a shell command that injects the fault (firewall rules on the primary's host, an etcd member killed), told what to hit by BULWARK_* variables (docs/drills.md); with --heal-command")
	cmd.Flags().StringVar(&f.healCmd, "heal-command", "", "the shell command that undoes --fault-command's fault, with the same variables")
	cmd.MarkFlagRequired("scenario")
	return cmd
}

// drillFaults picks who injects the drill's faults.
func (a *app) drillFaults(ctx context.Context, p *plan.Plan, f drillFlags) (drill.Faults, error) {
	byCommand := f.scenario == drill.NetworkPartition || f.scenario == drill.EtcdMemberLoss
	switch {
	case (f.faultCmd == "") != (f.healCmd == ""):
		return nil, usageError{errors.New("--fault-command and --heal-command go together: a fault the drill injects, it heals")}
	case f.faultCmd != "" && !byCommand:
		return nil, usageError{fmt.Errorf("--fault-command injects network-partition or etcd-member-loss, not %s", f.scenario)}
	}
	mode := f.faults
	if mode == "" {
		mode = "agents"
		if isLocalLayout(p) {
			mode = "local"
		}
	}
	var faults drill.Faults
	switch mode {
	case "local":
		local, err := newLocalFaults(a, p)
		if err != nil {
			return nil, err
		}
		if f.scenario == drill.NetworkPartition && f.faultCmd == "" && !local.linked() {
			return nil, usageError{errors.New("network-partition cuts a node's links to etcd and to its peers, and this cluster has none: create it with bulwark up --links, or give --fault-command and --heal-command")}
		}
		faults = local
	case "agents":
		if byCommand {
			if f.faultCmd == "" {
				return nil, usageError{fmt.Errorf("%s: the agents cannot inject it; give --fault-command and --heal-command (docs/drills.md), or use --faults local on a cluster made by bulwark up", f.scenario)}
			}
			faults = noFaults{} // the commands do it all
			break
		}
		hold := f.hold
		if hold == 0 {
			hold = 2*p.Cluster.TTL + 4*time.Second
		}
		// A node back before another is elected takes its leadership
		// back, and the drill waits in vain for a new primary.
		if hold <= p.Cluster.TTL || hold > agent.MaxFaultHold {
			return nil, usageError{fmt.Errorf("--fault-hold %s: the hung or lost node must stay so longer than the TTL (%s), and at most %s", hold, p.Cluster.TTL, agent.MaxFaultHold)}
		}
		var err error
		if faults, err = newAgentFaults(ctx, p.Cluster, hold); err != nil {
			return nil, err
		}
	default:
		return nil, usageError{fmt.Errorf("--faults %q: want local or agents", f.faults)}
	}
	if f.faultCmd != "" {
		faults = &commandFaults{Faults: faults, ctx: ctx, c: p.Cluster, fault: f.faultCmd, heal: f.healCmd}
	}
	return faults, nil
}

func (a *app) drillRun(ctx context.Context, f drillFlags) error {
	p, c, err := a.clusterPlan()
	if err != nil {
		return err
	}
	if !slices.Contains(drill.Scenarios, f.scenario) {
		return usageError{fmt.Errorf("--scenario %q: want one of %s", f.scenario, strings.Join(drill.Scenarios, ", "))}
	}
	if f.runs < 1 || f.runs > 100 {
		return usageError{errors.New("--runs must be from 1 to 100")}
	}
	if f.scenario == drill.EtcdMemberLoss && len(c.Etcd.Endpoints) < 3 {
		return usageError{fmt.Errorf("etcd-member-loss needs an etcd cluster of 3 or more members, and the plan names %d endpoint(s) (bulwark up --etcd-members 3)", len(c.Etcd.Endpoints))}
	}
	faults, err := a.drillFaults(ctx, p, f)
	if err != nil {
		return err
	}
	store, err := a.openClusterStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	o := drill.Options{Store: store, Nodes: c.NodeNames(), Faults: faults, RTO: p.Service.RTO, RPO: p.Service.RPO,
		Timeout: f.timeout, Logger: a.log, NewWriter: a.drillWriter(c, f.via)}
	if f.scenario == drill.RestoreTest {
		if o.Restorer, err = a.newLocalRestorer(ctx, p, f.repo, f.scratch, f.timeout); err != nil {
			return err
		}
		o.PITR = p.Archiving.Mode != plan.ArchiveNone
	}
	res, err := drill.Perform(ctx, o, f.scenario, f.runs)
	if err != nil && len(res.Runs) == 0 {
		return err
	}
	if err != nil {
		// Keep the runs that were done: they measured something.
		res.Incomplete = err.Error()
	}
	res.Cluster, res.Service, res.Tier = c.Name, p.Service.Name, p.Service.Tier
	if kerr := a.keepDrill(p, &res); kerr != nil {
		return errors.Join(err, kerr)
	}
	if err != nil {
		a.printDrill(res)
		return fmt.Errorf("%w (the %d run(s) before it are kept in the drill history as %s)", err, len(res.Runs), res.ID)
	}
	if err := a.printDrill(res); err != nil {
		return err
	}
	if !res.Passed {
		return &exitError{code: 5, err: errDrillFailed}
	}
	return nil
}

// printDrill writes the result as JSON or as the terminal summary.
func (a *app) printDrill(res drill.Result) error {
	if a.json() {
		return json.NewEncoder(a.stdout).Encode(res)
	}
	return drill.WriteText(a.stdout, res)
}

// keepDrill summarises the result, renders its reports and saves it in
// the plan's drill history.
func (a *app) keepDrill(p *plan.Plan, res *drill.Result) error {
	drill.Summarize(res, p.Service.RTO, p.Service.RPO)
	h := drill.History{Dir: p.Drills.History}
	dir, err := h.Save(*res)
	if err != nil {
		return err
	}
	if err := drill.Render(dir, res); err != nil {
		return err
	}
	_, err = h.Save(*res) // with the reports' paths
	return err
}

// clusterConn is the connection options of the cluster's nodes, to
// database postgres (as user postgres unless they name another).
func clusterConn(c *plan.Cluster) string {
	conn := "dbname=postgres " + c.ConnOptions
	if !strings.Contains(c.ConnOptions, "user=") {
		conn += " user=postgres"
	}
	return conn
}

// drillWriter makes the workload's writer: the client library following
// the cluster through etcd, or one connection at a time to via.
func (a *app) drillWriter(c *plan.Cluster, via string) func(context.Context) (drill.Writer, func(), error) {
	conn := clusterConn(c)
	return func(ctx context.Context) (drill.Writer, func(), error) {
		if via != "" {
			host, port, ok := strings.Cut(via, ":")
			if !ok {
				return nil, nil, usageError{fmt.Errorf("--via %q: want host:port", via)}
			}
			w := &drill.ConnWriter{ConnString: fmt.Sprintf("host=%s port=%s connect_timeout=2 %s", host, port, conn)}
			return w, w.Close, nil
		}
		src, err := etcdSource(c, a.log)
		if err != nil {
			return nil, nil, err
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		pool, err := failover.Open(octx, failover.Config{ConnString: conn + " connect_timeout=2", Source: src, Logger: a.log})
		if err != nil {
			return nil, nil, err
		}
		return drill.PoolWriter{Pool: pool}, pool.Close, nil
	}
}
