package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/agent"
	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

func (a *app) newAgentCmd() *cobra.Command {
	var node string
	var endpoints []string
	var peerPG, peerAPI map[string]string
	var drillFaults bool
	var pidFile string
	cmd := &cobra.Command{
		Use:   "agent --plan bulwark.yaml --node NAME",
		Short: "Run the HA agent beside one PostgreSQL node",
		Long: "Run the HA agent of node NAME: it starts, promotes, demotes, clones and rewinds the node's\n" +
			"PostgreSQL as the cluster's leader election in etcd decides, and serves the node's REST API.\n" +
			"Stopping the agent leaves PostgreSQL running. Logs are JSON on stderr.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, c, err := a.clusterPlan()
			if err != nil {
				return err
			}
			if os.Geteuid() == 0 {
				return errors.New("the agent runs PostgreSQL, which refuses root: run it as the postgres OS user")
			}
			self, ok := c.Node(node)
			if !ok {
				return usageError{fmt.Errorf("--node %q: the plan's nodes are %s", node, strings.Join(c.NodeNames(), ", "))}
			}
			if len(endpoints) > 0 {
				own := *c // this agent's way to etcd: a local proxy, say
				own.Etcd.Endpoints = endpoints
				c = &own
			}
			store, err := a.openClusterStore(c)
			if err != nil {
				return err
			}
			defer store.Close()
			o, err := a.agentOptions(p, c, self)
			if err != nil {
				return err
			}
			if err := throughPeerLinks(o.Nodes, self.Name, peerPG, peerAPI); err != nil {
				return err
			}
			o.Store = store
			if drillFaults {
				o.InjectFault = injectFault(pidFile)
			}
			if pidFile != "" {
				if err := writePIDFile(pidFile, os.Getpid()); err != nil {
					return fmt.Errorf("--pid-file: %w", err)
				}
			}
			o.Logger = slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: a.level}))
			ag, err := agent.New(o)
			if err != nil {
				return err
			}
			return ag.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "this node's name in the plan's cluster.nodes")
	cmd.Flags().StringSliceVar(&endpoints, "etcd-endpoints", nil, "reach etcd at these URLs instead of the plan's (the same cluster, through a proxy)")
	cmd.Flags().StringToStringVar(&peerPG, "peer-pg", nil, "reach another node's PostgreSQL at NODE=HOST:PORT instead of the plan's address (through a proxy; replication, rewind, clone)")
	cmd.Flags().StringToStringVar(&peerAPI, "peer-api", nil, "reach another node's agent at NODE=HOST:PORT instead of the plan's api address")
	cmd.Flags().BoolVar(&drillFaults, "drill-faults", false, "let drills hang, crash or kill this node through POST /drill/fault (bulwark drill run --faults agents)")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "write the agent's PID to this file")
	cmd.MarkFlagRequired("node")
	return cmd
}

// clusterPlan returns the plan and its cluster section, or a usage error.
func (a *app) clusterPlan() (*plan.Plan, *plan.Cluster, error) {
	if a.plan == nil {
		return nil, nil, usageError{errors.New("this command needs --plan (or BULWARK_PLAN) naming a plan with a cluster section")}
	}
	if a.plan.Cluster == nil {
		return nil, nil, usageError{fmt.Errorf("plan %s has no cluster section", a.plan.Path)}
	}
	return a.plan, a.plan.Cluster, nil
}

func (a *app) openClusterStore(c *plan.Cluster) (*cluster.Store, error) {
	tc, err := etcdTLS(c)
	if err != nil {
		return nil, err
	}
	return cluster.Open(cluster.Options{Endpoints: c.Etcd.Endpoints, TLS: tc, Cluster: c.Name})
}

// etcdTLS is the TLS configuration towards the cluster's etcd; nil for
// plain http endpoints.
func etcdTLS(c *plan.Cluster) (*tls.Config, error) {
	if c.Etcd.TLS == (plan.TLS{}) {
		return nil, nil
	}
	tc, err := c.Etcd.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return tc, nil
}

func apiURL(c *plan.Cluster, n plan.Node) string {
	scheme := "http"
	if c.APITLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + n.API
}

// throughPeerLinks points the agent's view of other nodes at the addresses
// given (bulwark up --links: links a drill can cut). The node's own
// address, which it publishes for clients, stays the plan's.
func throughPeerLinks(nodes []agent.Node, self string, pgAddr, apiAddr map[string]string) error {
	known := map[string]bool{}
	for i := range nodes {
		n := &nodes[i]
		known[n.Name] = true
		if n.Name == self {
			continue
		}
		if addr, ok := pgAddr[n.Name]; ok {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return usageError{fmt.Errorf("--peer-pg %s=%s: %w", n.Name, addr, err)}
			}
			if n.Port, err = strconv.Atoi(port); err != nil {
				return usageError{fmt.Errorf("--peer-pg %s=%s: bad port", n.Name, addr)}
			}
			n.Host = host
		}
		if addr, ok := apiAddr[n.Name]; ok {
			scheme, _, _ := strings.Cut(n.APIURL, "://")
			n.APIURL = scheme + "://" + addr
		}
	}
	for _, m := range []map[string]string{pgAddr, apiAddr} {
		for name := range m {
			if !known[name] || name == self {
				return usageError{fmt.Errorf("--peer-pg/--peer-api: %q is not another node of the plan", name)}
			}
		}
	}
	return nil
}

func agentNodes(c *plan.Cluster) []agent.Node {
	nodes := make([]agent.Node, len(c.Nodes))
	for i, n := range c.Nodes {
		nodes[i] = agent.Node{Name: n.Name, Host: n.Host, Port: n.Port, APIURL: apiURL(c, n)}
	}
	return nodes
}

// initialConfig is the dynamic configuration an agent stores when etcd has
// none yet: the plan's.
func initialConfig(p *plan.Plan) cluster.Config {
	c := p.Cluster
	mode := cluster.ModeAsync
	switch p.Replication.Mode {
	case plan.ReplicationSync:
		mode = cluster.ModeSync
	case plan.ReplicationQuorum:
		mode = cluster.ModeQuorum
	}
	return cluster.Config{TTL: cluster.Duration(c.TTL), LoopWait: cluster.Duration(c.LoopWait), Mode: mode,
		SyncCount: p.Replication.SyncCount, Strict: p.Replication.Strict, MaximumLagOnFailover: c.MaximumLagOnFailover,
		Parameters: c.Parameters, CrashRestarts: c.CrashRestarts}
}

func (a *app) agentOptions(p *plan.Plan, c *plan.Cluster, self plan.Node) (agent.Options, error) {
	o := agent.Options{
		Self:        agent.Node{Name: self.Name, Host: self.Host, Port: self.Port, APIURL: apiURL(c, self)},
		Nodes:       agentNodes(c),
		PG:          pg.Instance{BinDir: p.Postgres.BinDir, DataDir: self.PGData},
		Config:      initialConfig(p),
		ConnOptions: c.ConnOptions,
		APIListen:   self.API,
	}
	o.Seed = a.seedReplica
	rc, err := replicaRestoreCommand(p)
	if err != nil {
		return o, err
	}
	o.RestoreCommand = rc
	if o.ArchiveCommand, err = archiveCommand(p); err != nil {
		return o, err
	}
	o.ArchiveTimeout = p.Archiving.Timeout
	o.Watchdog, o.WatchdogMode = c.Watchdog.Device, c.Watchdog.Mode
	token, err := readToken(c.APITokenFile)
	if err != nil {
		return o, err
	}
	o.APIToken = token
	if c.APITLS.CertFile != "" {
		if o.APITLS, err = c.APITLS.ServerConfig(); err != nil {
			return o, fmt.Errorf("API TLS: %w", err)
		}
		ct, err := c.APITLS.ClientConfig() // agents present their server certificate to each other
		if err != nil {
			return o, fmt.Errorf("API TLS: %w", err)
		}
		o.PeerClient = &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: ct,
			DialContext: (&net.Dialer{Timeout: time.Second, KeepAlive: 2 * time.Second}).DialContext}}
	}
	return o, nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return tok, nil
}
