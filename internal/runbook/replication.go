package runbook

import (
	"cmp"
	"fmt"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// JudgeReplication judges the cluster's replication now, from what its
// agents publish in etcd: BREACHED without a leader (nothing takes
// writes); AT RISK when a member is not healthy (cluster.Snapshot's
// Unhealthy), automatic failover is paused, a replica is too far behind
// to be promoted, or the plan wants synchronous commits and none is; OK
// otherwise.
func JudgeReplication(p *plan.Plan, snap cluster.Snapshot) Check {
	c := Check{Name: "replication", Verdict: OK}
	nodes := p.Cluster.NodeNames()
	if snap.Leader == nil {
		c.Verdict, c.Detail = Breached, "no leader: no node takes writes"
		return c
	}
	var risks []string
	if why := snap.Unhealthy(nodes); why != "" {
		risks = append(risks, why)
	}
	if snap.Config != nil && snap.Config.Paused {
		risks = append(risks, "paused: no automatic failover")
	}
	risks = append(risks, lagging(p, snap, nodes)...)
	wantSync := p.Replication.Mode == plan.ReplicationSync || p.Replication.Mode == plan.ReplicationQuorum
	if wantSync && (snap.Sync == nil || snap.Sync.Quorum == 0) {
		risks = append(risks, fmt.Sprintf("replication is %s in the plan, but no standby is synchronous: commits are not protected", p.Replication.Mode))
	}
	c.Detail = fmt.Sprintf("leader %s (term %d)%s", snap.Leader.Name, snap.Leader.Term, syncStandbys(snap.Sync))
	if len(risks) > 0 {
		c.Verdict, c.Detail = AtRisk, c.Detail+"; "+joinAnd(risks)
	}
	return c
}

// lagging names the replicas further behind the leader than an automatic
// failover may promote.
func lagging(p *plan.Plan, snap cluster.Snapshot, nodes []string) []string {
	maxLag := p.Cluster.MaximumLagOnFailover
	if snap.Config != nil {
		maxLag = cmp.Or(snap.Config.MaximumLagOnFailover, maxLag)
	}
	lead := snap.Members[snap.Leader.Name].LSN
	var out []string
	for _, n := range nodes {
		m, ok := snap.Members[n]
		if !ok || n == snap.Leader.Name || m.Role != cluster.RoleReplica || m.LSN >= lead {
			continue
		}
		if lag := int64(lead - m.LSN); lag > maxLag {
			out = append(out, fmt.Sprintf("%s is %.1f MiB behind, more than maximum_lag_on_failover %s", n, float64(lag)/(1<<20), plan.FormatSize(maxLag)))
		}
	}
	return out
}

func syncStandbys(s *cluster.Sync) string {
	if s == nil || s.Quorum == 0 {
		return ", asynchronous"
	}
	return fmt.Sprintf(", synchronous standbys %s (%d needed)", joinAnd(s.Standbys), s.Quorum)
}
