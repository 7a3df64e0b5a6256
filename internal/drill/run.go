package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// Faults injects faults into a cluster's nodes. The CLI implements it for
// a cluster whose processes run on this machine (bulwark up), with
// signals.
type Faults interface {
	Crash(node string) error    // kill -9 of the node's postmaster
	KillNode(node string) error // kill -9 of its agent, postmaster and the postmaster's children
	Freeze(node string) error   // SIGSTOP of its agent and PostgreSQL processes
	Thaw(node string) error     // SIGCONT of the same
	// KillEtcd kill -9s the etcd member that serves clients at endpoint
	// and names it.
	KillEtcd(endpoint string) (string, error)
	// Partition cuts the node off from etcd and from its peers: its
	// links black-hole.
	Partition(node string) error
	// Heal brings back what the faults took down (starts killed agents)
	// and returns once that is under way.
	Heal(ctx context.Context) error
}

// Options configure a drill.
type Options struct {
	Store  *cluster.Store
	Nodes  []string // the cluster's node names
	Faults Faults
	// NewWriter makes the workload's writer for one run.
	NewWriter func(ctx context.Context) (Writer, func(), error)
	RTO, RPO  time.Duration
	// Restorer restores backups for restore-test; PITR says whether the
	// plan archives WAL, so that a point in time can be recovered too.
	Restorer Restorer
	PITR     bool
	// Warmup is how long the workload runs before the fault (3 s), Settle
	// how long after recovery (2 s); Timeout bounds each wait (2 min).
	Warmup, Settle, Timeout time.Duration
	Logger                  *slog.Logger
}

// Scenarios lists the scenarios Perform knows.
var Scenarios = []string{PrimaryCrash, NodeLoss, PrimaryHang, NetworkPartition, ReplicaLoss, EtcdMemberLoss, Switchover, RestoreTest}

// Perform runs scenario n times and returns the result, summarised against
// the plan's objectives. An error means a run could not be carried out
// (the cluster never became healthy, a fault could not be injected), not
// that it failed: that is Result.Passed. The result then holds the runs
// done before it.
func Perform(ctx context.Context, o Options, scenario string, n int) (Result, error) {
	if !slices.Contains(Scenarios, scenario) {
		return Result{}, fmt.Errorf("unknown scenario %q (known: %v)", scenario, Scenarios)
	}
	o.Warmup = cmpDur(o.Warmup, 3*time.Second)
	o.Settle = cmpDur(o.Settle, 2*time.Second)
	o.Timeout = cmpDur(o.Timeout, 2*time.Minute)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now().UTC()
	res := Result{ID: start.Format("20060102T150405Z") + "-" + scenario, Scenario: scenario, Started: start}
	for i := range n {
		o.Logger.Info("drill run", "scenario", scenario, "run", i+1, "of", n)
		run, err := runOnce(ctx, o, scenario, fmt.Sprintf("%s-%d", res.ID, i+1))
		if err != nil {
			res.Finished = time.Now().UTC()
			return res, fmt.Errorf("run %d: %w", i+1, err)
		}
		res.Runs = append(res.Runs, run)
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

func cmpDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// runOnce: a healthy cluster, the workload, the fault, recovery, healing,
// then the checker.
func runOnce(ctx context.Context, o Options, scenario, id string) (_ Run, err error) {
	if scenario == RestoreTest {
		return restoreTest(ctx, o, id)
	}
	before, err := waitHealthy(ctx, o)
	if err != nil {
		return Run{}, fmt.Errorf("cluster not healthy before the fault: %w", err)
	}
	if err := createTable(ctx, before); err != nil {
		return Run{}, err
	}
	w, closeWriter, err := o.NewWriter(ctx)
	if err != nil {
		return Run{}, err
	}
	defer closeWriter()
	wl := startWorkload(w, id)
	defer wl.halt()
	if err := sleep(ctx, o.Warmup); err != nil {
		return Run{}, err
	}
	obs := Observation{Scenario: scenario, Start: wl.startedAt(), Old: before.Leader.Name, WantRejoin: scenario != ReplicaLoss && scenario != EtcdMemberLoss}
	obs.Fault = time.Now()
	obs.FaultNode, err = inject(ctx, o, scenario, before)
	// Whatever happens next (an error, an interrupt), no node is left
	// frozen or down: Thaw and Heal do nothing to a healthy node. A heal
	// that fails here fails the run: the fault may still be in place.
	defer func() {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Timeout)
		defer cancel()
		if scenario == PrimaryHang {
			o.Faults.Thaw(before.Leader.Name)
		}
		if herr := o.Faults.Heal(hctx); herr != nil {
			o.Logger.Error("healing the fault failed: it may still be in place", "scenario", scenario, "err", herr)
			err = errors.Join(err, fmt.Errorf("heal %s (the fault may still be in place): %w", scenario, herr))
		}
	}()
	if err != nil {
		return Run{}, fmt.Errorf("inject %s: %w", scenario, err)
	}
	after, err := waitRecovery(ctx, o, scenario, before, wl, obs.Fault)
	if err != nil {
		return Run{}, err
	}
	obs.New = after.Leader.Name
	if err := sleep(ctx, o.Settle); err != nil {
		return Run{}, err
	}
	wl.halt()
	obs.End = time.Now()
	obs.Acks, obs.Errors, obs.Unknown = wl.snapshot()
	if err := observeAfter(ctx, o, &obs, before, after, id); err != nil {
		return Run{}, err
	}
	return Judge(obs, o.RTO, o.RPO), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitHealthy waits up to o.Timeout until the cluster is healthy and
// returns its state.
func waitHealthy(ctx context.Context, o Options) (cluster.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	return o.Store.WaitHealthy(ctx, o.Nodes)
}

// inject applies the scenario's fault to the cluster as it was before,
// and returns the node it hit.
func inject(ctx context.Context, o Options, scenario string, before cluster.Snapshot) (string, error) {
	leader := before.Leader.Name
	switch scenario {
	case PrimaryCrash:
		return leader, o.Faults.Crash(leader)
	case NodeLoss:
		return leader, o.Faults.KillNode(leader)
	case PrimaryHang:
		return leader, o.Faults.Freeze(leader)
	case NetworkPartition:
		return leader, o.Faults.Partition(leader)
	case ReplicaLoss:
		r := replicaOf(before, o.Nodes)
		return r, o.Faults.KillNode(r)
	case EtcdMemberLoss:
		// etcd's leader: the loss that makes etcd elect anew.
		ep, err := o.Store.EtcdLeader(ctx)
		if err != nil {
			return "", err
		}
		member, err := o.Faults.KillEtcd(ep)
		return "etcd member " + member, err
	case Switchover:
		return leader, o.Store.PutRequest(ctx, cluster.Request{Kind: "switchover", From: leader})
	}
	return "", fmt.Errorf("no fault for %s", scenario)
}

func replicaOf(snap cluster.Snapshot, nodes []string) string {
	for _, n := range nodes {
		if n != snap.Leader.Name {
			return n
		}
	}
	return ""
}

// waitRecovery waits until a primary takes the workload's writes again after
// the fault, then heals what the fault took down and waits until the
// cluster is healthy, the old primary back as a replica.
func waitRecovery(ctx context.Context, o Options, scenario string, before cluster.Snapshot, wl *workload, fault time.Time) (cluster.Snapshot, error) {
	deadline := time.Now().Add(o.Timeout)
	thawed := scenario != PrimaryHang
	for {
		if time.Now().After(deadline) {
			break
		}
		snap, err := o.Store.Read(ctx)
		if err == nil && snap.Leader != nil {
			moved := snap.Leader.Term > before.Leader.Term
			if !thawed && moved {
				// The hung node comes back once another leads: it must
				// fence itself, not take writes.
				if err := sleep(ctx, time.Second); err != nil {
					return snap, err
				}
				if err := o.Faults.Thaw(before.Leader.Name); err != nil {
					return snap, err
				}
				thawed = true
			}
			// Commits can still slip through a killed postmaster's
			// backends for some milliseconds: count writes from 500 ms on.
			wantMove := scenario == NodeLoss || scenario == PrimaryHang || scenario == NetworkPartition || scenario == Switchover
			if thawed && (moved || !wantMove) && wl.acksOnSince(snap.Leader.Name, fault.Add(500*time.Millisecond)) >= 10 {
				break
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return cluster.Snapshot{}, err
		}
	}
	if !thawed {
		o.Faults.Thaw(before.Leader.Name)
	}
	if err := o.Faults.Heal(ctx); err != nil {
		return cluster.Snapshot{}, fmt.Errorf("heal: %w", err)
	}
	after, err := waitHealthy(ctx, o)
	if err != nil {
		return cluster.Snapshot{}, fmt.Errorf("cluster not healthy after the fault: %w", err)
	}
	return after, nil
}

// observeAfter completes the observation from the healed cluster: the
// history's times, whether the old primary rejoined, what the primary
// holds and whether every node holds the same.
func observeAfter(ctx context.Context, o Options, obs *Observation, before, after cluster.Snapshot, run string) error {
	if after.Leader.Term > before.Leader.Term {
		if ev, ok, err := o.Store.Event(ctx, after.Leader.Term); err == nil && ok {
			obs.Detected, obs.Promoted = ev.Detected, ev.Promoted
		}
	}
	old := after.Members[obs.Old]
	obs.Rejoined = obs.Old == obs.New || (old.Role == cluster.RoleReplica && old.State == "streaming" && old.Following == obs.New)
	present, err := readPresent(ctx, after.Members[obs.New].Conn, run)
	if err != nil {
		return fmt.Errorf("read the writes back from %s: %w", obs.New, err)
	}
	obs.Present = present
	obs.Hashes = hashesWhenEqual(ctx, after, run, 30*time.Second)
	return nil
}
