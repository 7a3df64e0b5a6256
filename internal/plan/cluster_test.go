package plan

import (
	"testing"
	"time"
)

const withCluster = minimal + `replication: {mode: sync, strict: true}
cluster:
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
  nodes:
    - {name: n1, host: 127.0.0.1, port: 5432, api: "127.0.0.1:8008"}
    - {name: n2, host: 127.0.0.1, port: 5433, api: "127.0.0.1:8009", pgdata: /srv/n2}
`

func TestClusterDefaults(t *testing.T) {
	p, err := Parse("t.yaml", []byte(withCluster))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Cluster
	if c.Name != "payments" || c.TTL != DefaultTTL || c.LoopWait != DefaultLoopWait ||
		c.MaximumLagOnFailover != DefaultMaximumLagOnFailover || c.CrashRestarts != DefaultCrashRestarts {
		t.Errorf("defaults: got %+v", c)
	}
	if n, _ := c.Node("n1"); n.PGData != p.Postgres.PGData {
		t.Errorf("n1 pgdata %q, want postgres.pgdata", n.PGData)
	}
	if n, _ := c.Node("n2"); n.PGData != "/srv/n2" {
		t.Errorf("n2 pgdata %q", n.PGData)
	}
	if !p.Replication.Strict {
		t.Error("strict not read")
	}
	p, err = Parse("t.yaml", []byte(withCluster+"  ttl: 30s\n  maximum_lag_on_failover: 0\n  crash_restarts: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Cluster; c.TTL != 30*time.Second || c.MaximumLagOnFailover != 0 || c.CrashRestarts != 0 {
		t.Errorf("explicit zero values: got %+v", c)
	}
	if p, err := Parse("t.yaml", []byte(minimal)); err != nil || p.Cluster != nil {
		t.Errorf("a plan without cluster: %v, %v", p, err)
	}
}

func TestClusterProblems(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  []want
	}{
		{"ttl too short", "  ttl: 1s\n", []want{{18, 8, "cluster.ttl", "2s or more"}}},
		{"loop_wait over half the ttl", "  loop_wait: 6s\n", []want{{18, 14, "cluster.loop_wait", "half the ttl"}}},
		{"bad lag", "  maximum_lag_on_failover: 1XB\n", []want{{18, 28, "cluster.maximum_lag_on_failover", "invalid size"}}},
		{"managed parameter", "  parameters: {port: 5000}\n", []want{{18, 16, "cluster.parameters.port", "set by the agents"}}},
		{"password in conn_options", "  conn_options: \"password=x\"\n", []want{{18, 17, "cluster.conn_options", "~/.pgpass"}}},
		{"duplicate node", "    - {name: n1, host: 127.0.0.2, port: 5432, api: \"127.0.0.2:8008\"}\n", []want{{18, 14, "cluster.nodes[2].name", "duplicate node name"}}},
		{"bad api", "    - {name: n3, host: h, port: 5, api: \"nope\"}\n", []want{{18, 41, "cluster.nodes[2].api", "host:port"}}},
		{"crash_restarts out of range", "  crash_restarts: 11\n", []want{{18, 19, "cluster.crash_restarts", "from 0"}}},
		{"bad watchdog mode", "  watchdog: {mode: always}\n", []want{{18, 20, "cluster.watchdog.mode", "automatic or required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(withCluster+tt.extra))
			checkProblems(t, "t.yaml", err, tt.want)
		})
	}
	_, err := Parse("t.yaml", []byte(minimal+"replication: {mode: async, strict: true}\n"))
	checkProblems(t, "t.yaml", err, []want{{12, 36, "replication.strict", "only replication.mode sync or quorum"}})
	_, err = Parse("t.yaml", []byte(minimal+"cluster:\n  etcd: {endpoints: [\"ftp://x\"]}\n  nodes: []\n"))
	checkProblems(t, "t.yaml", err, []want{{13, 22, "cluster.etcd.endpoints[0]", "http"}, {14, 10, "cluster.nodes", "at least one node"}})
}
