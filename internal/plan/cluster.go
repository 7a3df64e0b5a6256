package plan

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Cluster describes the nodes that run PostgreSQL under Bulwark's agents and
// the etcd cluster through which they agree on a leader. A plan without a
// cluster section protects a single server (backups and WAL only).
type Cluster struct {
	// Name identifies the cluster in etcd; several clusters may share one
	// etcd. Defaults to Service.Name.
	Name string
	// Region is where the cluster runs; defaults to Service.Region. A plan
	// names one cluster today; standby clusters in other regions come later.
	Region string
	Etcd   Etcd
	// TTL is the leader lease: a leader that cannot renew it for this long
	// loses leadership, and fences itself before that. >= 2s.
	TTL time.Duration
	// LoopWait is how often each agent observes and acts; < TTL/2.
	LoopWait time.Duration
	// CrashRestarts is how many times the leader's agent restarts a
	// crashed PostgreSQL in place before giving up leadership; 0 fails
	// over at once. DefaultCrashRestarts when not given.
	CrashRestarts int
	// MaximumLagOnFailover is how far behind (in bytes of WAL) a replica may
	// be and still be promoted by an automatic failover.
	MaximumLagOnFailover int64
	// APITokenFile holds the bearer token that mutating REST calls need; ""
	// lets only a client certificate (with APITLS.CAFile) authorize them.
	APITokenFile string
	APITLS       TLS // TLS of each agent's REST API; zero for plain HTTP
	// ConnOptions are libpq keyword=value settings added to every connection
	// an agent opens to another node's PostgreSQL (replication, pg_rewind,
	// cloning): user, sslmode, sslrootcert, passfile. Never a password.
	ConnOptions string
	// Parameters are PostgreSQL settings every node runs with, on top of
	// those the agent manages itself. Values are as in postgresql.conf.
	Parameters map[string]string
	Watchdog   Watchdog
	Nodes      []Node // at least one; names unique
}

// Watchdog is the Linux watchdog an agent arms while its node leads, so
// that a hung or frozen leader is reset before another is promoted.
type Watchdog struct {
	Mode   string // off (default), automatic or required
	Device string // default /dev/watchdog
}

// Etcd locates the etcd cluster and how to reach it.
type Etcd struct {
	Endpoints []string // http:// or https:// URLs; at least one
	TLS       TLS      // client certificate and CA; zero for none
}

// TLS names the files of a TLS configuration. Any may be "".
type TLS struct {
	CAFile   string // CA bundle that verifies the peer
	CertFile string // this side's certificate
	KeyFile  string // its private key
}

// Node is one member of the cluster: a PostgreSQL server and its agent.
type Node struct {
	Name   string // unique; also its replication slot and application_name
	Host   string // where the others reach its PostgreSQL and API
	Port   int    // PostgreSQL port
	API    string // host:port the agent's REST API listens on
	PGData string // data directory; defaults to Postgres.PGData
}

// Defaults of Cluster fields left out of a plan.
const (
	// DefaultTTL is short so that a lost node fails over in about 4 s.
	// The leader fences 3 s (ttl − loop_wait) after its last renewal
	// unless every member confirms etcd is down (docs/ha.md); raise it
	// where etcd's own elections can take longer than that.
	DefaultTTL                  = 4 * time.Second
	DefaultLoopWait             = time.Second
	DefaultMaximumLagOnFailover = 1 << 20
	DefaultCrashRestarts        = 1
)

// Node returns the node named name, or false.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// NodeNames lists the names of the nodes in plan order.
func (c *Cluster) NodeNames() []string {
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	return names
}

func (d *decoder) cluster(path string, v ast.Node, c **Cluster) {
	x := &Cluster{MaximumLagOnFailover: -1, CrashRestarts: -1} // -1 until given: 0 is valid for both
	*c = x
	d.mapping(path, v, []field{
		{"name", func(path string, v ast.Node) { d.str(path, v, &x.Name) }},
		{"region", func(path string, v ast.Node) { d.str(path, v, &x.Region) }},
		{"etcd", func(path string, v ast.Node) {
			d.mapping(path, v, []field{
				{"endpoints", func(path string, v ast.Node) { d.strings(path, v, &x.Etcd.Endpoints) }},
				{"tls", func(path string, v ast.Node) { d.tls(path, v, &x.Etcd.TLS) }},
			})
		}},
		{"ttl", func(path string, v ast.Node) { d.duration(path, v, &x.TTL) }},
		{"loop_wait", func(path string, v ast.Node) { d.duration(path, v, &x.LoopWait) }},
		{"crash_restarts", func(path string, v ast.Node) { d.int(path, v, &x.CrashRestarts) }},
		{"maximum_lag_on_failover", func(path string, v ast.Node) { d.size(path, v, &x.MaximumLagOnFailover) }},
		{"api_token_file", func(path string, v ast.Node) { d.str(path, v, &x.APITokenFile) }},
		{"api_tls", func(path string, v ast.Node) { d.tls(path, v, &x.APITLS) }},
		{"conn_options", func(path string, v ast.Node) { d.str(path, v, &x.ConnOptions) }},
		{"parameters", func(path string, v ast.Node) { d.parameters(path, v, &x.Parameters) }},
		{"watchdog", func(path string, v ast.Node) {
			d.mapping(path, v, []field{
				{"mode", func(path string, v ast.Node) { d.str(path, v, &x.Watchdog.Mode) }},
				{"device", func(path string, v ast.Node) { d.str(path, v, &x.Watchdog.Device) }},
			})
		}},
		{"nodes", func(path string, v ast.Node) { d.nodes(path, v, &x.Nodes) }},
	})
}

func (d *decoder) tls(path string, v ast.Node, t *TLS) {
	d.mapping(path, v, []field{
		{"ca_file", func(path string, v ast.Node) { d.str(path, v, &t.CAFile) }},
		{"cert_file", func(path string, v ast.Node) { d.str(path, v, &t.CertFile) }},
		{"key_file", func(path string, v ast.Node) { d.str(path, v, &t.KeyFile) }},
	})
}

func (d *decoder) nodes(path string, v ast.Node, ns *[]Node) {
	d.list(path, v, "nodes", "a node needs a name, host, port and api", func(path string, v ast.Node) {
		var n Node
		if v != nil {
			d.mapping(path, v, []field{
				{"name", func(path string, v ast.Node) { d.str(path, v, &n.Name) }},
				{"host", func(path string, v ast.Node) { d.str(path, v, &n.Host) }},
				{"port", func(path string, v ast.Node) { d.int(path, v, &n.Port) }},
				{"api", func(path string, v ast.Node) { d.str(path, v, &n.API) }},
				{"pgdata", func(path string, v ast.Node) { d.str(path, v, &n.PGData) }},
			})
		}
		*ns = append(*ns, n)
	})
}

// strings decodes a list of strings.
func (d *decoder) strings(path string, v ast.Node, dst *[]string) {
	d.list(path, v, "strings", "give a value", func(path string, v ast.Node) {
		var s string
		if v != nil {
			d.str(path, v, &s)
		}
		*dst = append(*dst, s)
	})
}

// parameters decodes a mapping of PostgreSQL settings. Values may be
// strings, numbers or booleans, written to postgresql.conf as given.
func (d *decoder) parameters(path string, v ast.Node, dst *map[string]string) {
	m, ok := v.(*ast.MappingNode)
	if !ok {
		d.wrongType(path, v, "a mapping of PostgreSQL settings")
		return
	}
	d.ok[path] = true
	*dst = map[string]string{}
	for _, kv := range m.Values {
		name := keyName(kv.Key)
		sub := join(path, name)
		d.keyAt[sub] = nodePos(kv.Key)
		d.pos[sub] = nodePos(kv.Value)
		switch val := kv.Value.(type) {
		case *ast.StringNode:
			(*dst)[name] = val.Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
			(*dst)[name] = val.String()
		default:
			d.wrongType(sub, kv.Value, "a setting's value")
			continue
		}
		d.ok[sub] = true
	}
}

// size decodes a number of bytes: an integer, or a string with a unit of
// PostgreSQL's (kB, MB, GB, TB; 1024-based).
func (d *decoder) size(path string, v ast.Node, dst *int64) {
	switch v := v.(type) {
	case *ast.IntegerNode:
		x, ok := intValue(v)
		if !ok || x < 0 {
			d.bad(path, "must be a number of bytes from 0 up")
			return
		}
		*dst = int64(x)
	case *ast.StringNode:
		x, ok := ParseSize(v.Value)
		if !ok {
			d.bad(path, fmt.Sprintf("invalid size %s: want bytes, or a number with kB, MB, GB or TB, such as 16MB", quote(v.Value)))
			return
		}
		*dst = x
	default:
		d.wrongType(path, v, "a size such as 16MB")
		return
	}
	d.ok[path] = true
}

// ParseSize parses a size in bytes as PostgreSQL writes one: 65536, 64kB,
// 16MB, 1GB, 1TB (a space before the unit is accepted). ok is false for
// anything else, and for a negative or overflowing size.
func ParseSize(s string) (n int64, ok bool) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			x, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || x < 0 || x > (1<<62)/u.mult {
				return 0, false
			}
			return x * u.mult, true
		}
	}
	x, err := strconv.ParseInt(s, 10, 64)
	return x, err == nil && x >= 0
}

// validateCluster checks the cluster section, if the plan has one.
func (d *decoder) validateCluster(p *Plan) {
	c := p.Cluster
	if c == nil || !d.ok["cluster"] {
		return
	}
	if d.ok["cluster.name"] {
		d.check("cluster.name", checkName(c.Name))
	}
	if d.ok["cluster.region"] {
		d.check("cluster.region", checkName(c.Region))
	}
	if d.require("cluster.etcd") && d.require("cluster.etcd.endpoints") {
		if len(c.Etcd.Endpoints) == 0 {
			d.report("cluster.etcd.endpoints", d.where("cluster.etcd.endpoints"), "at least one etcd endpoint is required")
		}
		for i, e := range c.Etcd.Endpoints {
			d.check(index("cluster.etcd.endpoints", i), checkEndpoint(e))
		}
	}
	d.validateTLS("cluster.etcd.tls", c.Etcd.TLS)
	d.validateTLS("cluster.api_tls", c.APITLS)
	ttl, loop := cmp.Or(c.TTL, DefaultTTL), cmp.Or(c.LoopWait, DefaultLoopWait)
	if d.ok["cluster.ttl"] && ttl < 2*time.Second {
		d.report("cluster.ttl", d.where("cluster.ttl"), "must be 2s or more (etcd leases are whole seconds)")
	}
	if d.ok["cluster.loop_wait"] && (loop < 10*time.Millisecond || loop*2 > ttl) {
		d.report("cluster.loop_wait", d.where("cluster.loop_wait"), "must be from 10ms to half the ttl (%s), so the leader renews its lease at least twice per ttl", ttl)
	}
	switch c.Watchdog.Mode {
	case "", "off", "automatic", "required":
	default:
		d.report("cluster.watchdog.mode", d.where("cluster.watchdog.mode"), "%q: want off, automatic or required", c.Watchdog.Mode)
	}
	if d.ok["cluster.crash_restarts"] && (c.CrashRestarts < 0 || c.CrashRestarts > 10) {
		d.report("cluster.crash_restarts", d.where("cluster.crash_restarts"), "must be from 0 (fail over at once) to 10, not %d", c.CrashRestarts)
	}
	if d.ok["cluster.api_token_file"] {
		d.check("cluster.api_token_file", checkPath(c.APITokenFile))
	}
	if d.ok["cluster.conn_options"] {
		d.check("cluster.conn_options", checkConnString(c.ConnOptions))
	}
	for name := range c.Parameters {
		if managedParameter(name) {
			sub := "cluster.parameters." + name
			d.report(sub, d.whereKey(sub), "is set by the agents (they manage replication, ports and fencing); leave it out")
		}
	}
	d.validateNodes(c.Nodes, p.Postgres)
}

// managedParameter says whether the agents own a PostgreSQL setting.
func managedParameter(name string) bool {
	switch strings.ToLower(name) {
	case "port", "listen_addresses", "synchronous_standby_names", "primary_conninfo", "primary_slot_name",
		"hot_standby", "wal_level", "cluster_name", "restore_command", "recovery_target_timeline":
		return true
	}
	return false
}

func (d *decoder) validateNodes(ns []Node, pg Postgres) {
	if !d.require("cluster.nodes") {
		return
	}
	if len(ns) == 0 {
		d.report("cluster.nodes", d.where("cluster.nodes"), "at least one node is required")
	}
	names, addrs, apis := map[string]string{}, map[string]string{}, map[string]string{}
	for i, n := range ns {
		path := index("cluster.nodes", i)
		if d.require(path + ".name") {
			if msg := checkName(n.Name); msg != "" {
				d.check(path+".name", msg)
			} else {
				d.checkUnique(names, path+".name", n.Name, "node name")
			}
		}
		if d.require(path+".host") && n.Host == "" {
			d.check(path+".host", "must not be empty")
		}
		if d.require(path+".port") && (n.Port < 1 || n.Port > 65535) {
			d.report(path+".port", d.where(path+".port"), "must be a TCP port from 1 to 65535, not %d", n.Port)
		} else if d.ok[path+".host"] {
			d.checkUnique(addrs, path+".port", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), "PostgreSQL address")
		}
		if d.require(path + ".api") {
			if _, port, err := net.SplitHostPort(n.API); err != nil || port == "" {
				d.check(path+".api", "must be host:port, such as 10.0.0.1:8008")
			} else {
				d.checkUnique(apis, path+".api", n.API, "API address")
			}
		}
		if d.ok[path+".pgdata"] {
			d.check(path+".pgdata", checkPath(n.PGData))
		}
	}
}

func (d *decoder) validateTLS(path string, t TLS) {
	for _, f := range []struct{ key, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if sub := path + "." + f.key; d.ok[sub] {
			d.check(sub, checkPath(f.v))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		d.report(path, d.where(path), "cert_file and key_file go together")
	}
}

func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http:// or https:// URL, such as https://10.0.0.1:2379"
	}
	if u.User != nil {
		return "must not hold a user name or password"
	}
	return ""
}

// fillClusterDefaults fills in what a plan's cluster section leaves out.
func (p *Plan) fillClusterDefaults() {
	c := p.Cluster
	if c == nil {
		return
	}
	c.Name = cmp.Or(c.Name, p.Service.Name)
	c.Region = cmp.Or(c.Region, p.Service.Region)
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.LoopWait = cmp.Or(c.LoopWait, DefaultLoopWait)
	if c.CrashRestarts < 0 {
		c.CrashRestarts = DefaultCrashRestarts
	}
	if c.MaximumLagOnFailover < 0 {
		c.MaximumLagOnFailover = DefaultMaximumLagOnFailover
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		n.PGData = cmp.Or(n.PGData, p.Postgres.PGData)
	}
}
