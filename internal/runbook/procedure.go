package runbook

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bulwarkdb/bulwark/internal/plan"
)

// Failover is section 3: what the agents do on their own, the commands
// that steer them, and how clients follow the primary.
type Failover struct {
	// HA is false when the plan has no cluster section: then only Note
	// is set, and there is no failover.
	HA        bool     `json:"ha"`
	Note      string   `json:"note,omitempty"`
	Cluster   string   `json:"cluster,omitempty"`
	Etcd      []string `json:"etcd,omitempty"`
	Nodes     []Node   `json:"nodes,omitempty"`
	Automatic []string `json:"automatic,omitempty"` // what the agents do, one fact each
	Steps     []Step   `json:"steps,omitempty"`
	Clients   []Step   `json:"clients,omitempty"`
}

// Node is one member of the cluster.
type Node struct {
	Name     string `json:"name"`
	Postgres string `json:"postgres"` // host:port
	API      string `json:"api"`
}

// Recovery is section 4: bringing the cluster back to full strength after
// a failover, and restoring from a backup.
type Recovery struct {
	Rejoin []Step `json:"rejoin,omitempty"` // none without a cluster
	// When says when to restore from a backup rather than fail over.
	When    string `json:"when"`
	Restore []Step `json:"restore"`
	After   []Step `json:"after"`
}

func failoverProcedure(p *plan.Plan) Failover {
	c := p.Cluster
	if c == nil {
		return Failover{Note: "The plan has no cluster section: no agents watch this server and there is no standby to fail over to. " +
			"A lost server is recovered from a backup (section 4), so the RTO must allow for a whole restore. " +
			"To fail over automatically, give the plan a cluster section (docs/ha.md)."}
	}
	f := Failover{HA: true, Cluster: c.Name, Etcd: c.Etcd.Endpoints, Automatic: automatic(p), Steps: failoverSteps(p.Path), Clients: clients(p)}
	for _, n := range c.Nodes {
		f.Nodes = append(f.Nodes, Node{Name: n.Name, Postgres: fmt.Sprintf("%s:%d", n.Host, n.Port), API: n.API})
	}
	return f
}

// automatic says what the agents do without anyone asking, with the
// cluster's own figures.
func automatic(p *plan.Plan) []string {
	c := p.Cluster
	ttl, loop := plan.FormatDuration(c.TTL), plan.FormatDuration(c.LoopWait)
	facts := []string{
		fmt.Sprintf("Each node runs `bulwark agent --plan %s --node NAME`. Every %s (loop_wait), and at once when etcd changes or the local postmaster dies, each agent observes its PostgreSQL and the cluster's keys in etcd, and acts.", shellQuote(p.Path), loop),
		fmt.Sprintf("The primary's agent holds the leader key under a lease of %s (ttl). When the primary's node is lost or hangs, the lease expires within %s and the replica with the most WAL, no more than %s behind (maximum_lag_on_failover), is promoted: expect a new primary about %s to %s after the fault.",
			ttl, ttl, plan.FormatSize(c.MaximumLagOnFailover), ttl, plan.FormatDuration(c.TTL+2*c.LoopWait)),
		crashFact(c.CrashRestarts),
		"A primary that cannot renew its lease fences itself (stops taking writes) before the lease can expire, unless every member confirms that etcd is down for it too: there is never a second primary (docs/ha.md, When etcd is unreachable).",
		"The old primary, when it comes back, is rewound with pg_rewind and follows the new one (section 4).",
	}
	switch p.Replication.Mode {
	case plan.ReplicationSync, plan.ReplicationQuorum:
		facts = append(facts, "Only a standby in the leader's sync record may be promoted, so no acknowledged commit is lost.")
	default:
		facts = append(facts, fmt.Sprintf("Replication is %s: commits the promoted replica had not received are lost (see the RPO).", p.Replication.Mode))
	}
	return facts
}

func crashFact(restarts int) string {
	if restarts == 0 {
		return "When PostgreSQL crashes on the primary, its agent gives up the leader key at once (crash_restarts 0) and a replica is promoted without waiting for the lease."
	}
	return fmt.Sprintf("When PostgreSQL crashes on the primary, its agent restarts it in place (up to %s within a ttl, crash_restarts), then gives up the leader key so that a replica is promoted without waiting for the lease.",
		plan.Plural(restarts, "time", "times"))
}

func failoverSteps(planPath string) []Step {
	return []Step{
		{Text: "See who leads, each member's role, timeline and lag, and the synchronous standbys.", Commands: []string{command(planPath, "cluster status")}},
		{Text: "If there is still no leader a few ttls after the fault (the cluster is paused, or every replica is too far behind), promote the replica with the highest LSN by hand.", Commands: []string{command(planPath, "cluster failover", "--to NODE")}},
		{Text: "For planned maintenance of the primary, hand over without losing a commit (the best replica, or --to NODE).", Commands: []string{command(planPath, "cluster switchover", "[--to NODE]")}},
		{Text: "To stop every automatic action during maintenance (no restarts, no elections), pause the cluster, and resume it afterwards.", Commands: []string{command(planPath, "cluster pause"), command(planPath, "cluster resume")}},
		{Text: "See what happened: each failover and switchover, its downtime, and what a rejoin discarded.", Commands: []string{command(planPath, "cluster history")}},
		{Text: "Tell the on-call engineer and the service's owners that the primary changed."},
	}
}

func clients(p *plan.Plan) []Step {
	return []Step{
		{Text: "Clients connect through bulwark proxy, which routes new connections to the confirmed primary (read-write port) or a replica (read-only port) and closes sessions on the old primary: pools reconnect to the new one (docs/proxy.md).",
			Commands: []string{command(p.Path, "proxy", "--listen-rw :5000 --listen-ro :5001")}},
		{Text: fmt.Sprintf("Go programs use pkg/failover, which follows the leader through etcd: failover.EtcdSource{Endpoints: %s, Cluster: %q} (docs/client.md).",
			goStrings(p.Cluster.Etcd.Endpoints), p.Cluster.Name)},
	}
}

func goStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[]string{" + strings.Join(q, ", ") + "}"
}

func recoveryProcedure(p *plan.Plan) Recovery {
	r := Recovery{Restore: restoreSteps(p), After: []Step{
		{Text: "Investigate the root cause of the original failure."},
		{Text: "Check that backups and WAL archiving are current again, against the RPO.", Commands: []string{command(p.Path, "status")}},
		{Text: "Hold a post-incident review within 48 hours, and update the plan and this runbook with what was learned (bulwark plan runbook renders it again)."},
	}}
	r.When = "the server is lost, its data is damaged, or a mistake is to be undone"
	if p.Cluster != nil {
		r.Rejoin = rejoinSteps(p.Path)
		r.When = "every node is lost, the data is damaged on all of them, or a mistake is to be undone"
	}
	return r
}

func rejoinSteps(planPath string) []Step {
	return []Step{
		{Text: "The old primary rejoins by itself once its node and agent run again: fenced, rewound with pg_rewind onto the new timeline, and started as a replica (cloned afresh if the rewind fails). The history records what the rewind discarded.", Commands: []string{command(planPath, "cluster history")}},
		{Text: "A node that cannot rejoin or keeps falling behind: wipe it and clone it again (from the repository's newest backup when there is one).", Commands: []string{command(planPath, "cluster reinit NODE")}},
		{Text: "Verify replication is current: every member streaming, lag 0 B, the synchronous standbys named.", Commands: []string{command(planPath, "cluster status")}},
		{Text: "Optionally move the primary back to its usual node.", Commands: []string{command(planPath, "cluster switchover", "--to NODE")}},
	}
}

// restoreSteps restores the service from a backup: what to do when every
// node, or the only server, is lost, or to undo a mistake.
func restoreSteps(p *plan.Plan) []Step {
	pgCtl := filepath.Join(p.Postgres.BinDir, "pg_ctl")
	steps := []Step{
		{Text: "See which backups the repository holds and how old the newest backup and archived WAL are.", Commands: []string{command(p.Path, "backup list"), command(p.Path, "status")}},
		{Text: "Restore the newest backup into an empty directory, then start PostgreSQL on it.", Commands: []string{command(p.Path, "restore", "--backup latest --pgdata DIR"), pgCtl + " -D DIR start"}},
	}
	if p.Archiving.Mode == plan.ArchiveNone {
		steps = append(steps, Step{Text: "Point-in-time recovery is not possible: the plan archives no WAL, so a restore reaches only the end of a backup."})
	} else {
		steps = append(steps, Step{Text: "To undo a mistake (a dropped table, a bad migration), restore to a point in time just before it: the newest backup before then, and the archived WAL replayed up to it.",
			Commands: []string{command(p.Path, "restore", "--pgdata DIR --target-time 'YYYY-MM-DD HH:MM:SS+00'")}})
	}
	if len(p.Repositories) > 1 {
		steps = append(steps, Step{Text: fmt.Sprintf("If repository %s is lost or damaged, restore from another copy with --repo (%s).", p.Repositories[0].Name, joinAnd(repositoryNames(p)[1:])),
			Commands: []string{command(p.Path, "restore", fmt.Sprintf("--repo %s --backup latest --pgdata DIR", p.Repositories[1].Name))}})
	}
	return append(steps, Step{Text: "Verify the repository a restore depends on: its structure, or with --read-data every blob.", Commands: []string{command(p.Path, "repo verify", "[--read-data]")}})
}

func repositoryNames(p *plan.Plan) []string {
	names := make([]string, len(p.Repositories))
	for i, r := range p.Repositories {
		names[i] = r.Name
	}
	return names
}
