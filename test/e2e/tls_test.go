package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/localtls"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// writeCerts writes a CA and a certificate it signed for 127.0.0.1, usable
// by servers and clients, into dir, readable by the agents' OS user (the
// key is rewritten with pgtest.WriteFile, which gives it to that user).
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	f, err := localtls.Write(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.WriteFile(t, f.Key, data)
	return f.CA, f.Cert, f.Key
}

// httpsClient is an HTTP client that verifies servers with files' CA and,
// when files name one, presents a client certificate.
func httpsClient(t *testing.T, files plan.TLS) *http.Client {
	t.Helper()
	tc, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// TestHAAPIOverTLS: with api_tls the agents serve HTTPS, talk to each
// other over it (a switchover asks the target's position), and a client
// certificate the CA signed authorizes a mutating call without the token.
func TestHAAPIOverTLS(t *testing.T) {
	c := startCluster(t)
	before := c.waitHealthy(30 * time.Second)
	ca, cert, key := writeCerts(t, c.dir)
	data, err := os.ReadFile(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	tlsLine := "  api_tls: {cert_file: " + cert + ", key_file: " + key + ", ca_file: " + ca + "}\n"
	pgtest.WriteFile(t, c.plan, []byte(strings.Replace(string(data), "  loop_wait: 1s\n", "  loop_wait: 1s\n"+tlsLine, 1)))
	c.restartAgents()
	// The restarted leader's agent adopts its lease: a TTL later there
	// was still no election.
	time.Sleep(11 * time.Second)
	st := c.waitHealthy(30 * time.Second)
	leader := st.member(st.Leader)
	if st.Leader != before.Leader || st.Term != before.Term {
		t.Errorf("restarting the agents changed the leader: %s term %d, was %s term %d", st.Leader, st.Term, before.Leader, before.Term)
	}
	if !strings.HasPrefix(leader.APIURL, "https://") {
		t.Fatalf("api_url %s, want https", leader.APIURL)
	}

	anon := httpsClient(t, plan.TLS{CAFile: ca})
	withCert := httpsClient(t, plan.TLS{CAFile: ca, CertFile: cert, KeyFile: key})
	var resp *http.Response
	pgtest.Eventually(t, 20*time.Second, func() error {
		r, err := anon.Get(leader.APIURL + "/primary")
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return errString("GET /primary over TLS: " + r.Status)
		}
		return nil
	})
	if resp, err := http.Get(strings.Replace(leader.APIURL, "https://", "http://", 1) + "/primary"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200 on a TLS API")
		}
	}
	body := `{"leader": "` + leader.Name + `"}`
	if resp, err = anon.Post(leader.APIURL+"/switchover", "application/json", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("switchover without a token or certificate: %s, want 401", resp.Status)
	}
	if resp, err = withCert.Post(leader.APIURL+"/switchover", "application/json", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("switchover with a client certificate: %s", resp.Status)
	}
	next := c.waitNewLeader(leader.Name, st.Term, 30*time.Second)
	if next.Term != before.Term+1 {
		t.Errorf("term %d after one switchover from term %d: the agents' restart cost an election", next.Term, before.Term)
	}
	c.waitHealthy(30 * time.Second)
}

// restartAgents stops every agent and starts them again with bulwark up,
// so that they read the plan afresh; PostgreSQL runs on.
func (c *haCluster) restartAgents() {
	c.t.Helper()
	c.stopAgents("n1", "n2", "n3")
	c.e.ok("up", "--dir", c.dir, "--timeout", "60s")
}

// TestHATLSEverywhere: a cluster made with bulwark up --tls runs etcd, the
// agents' API and PostgreSQL over TLS, certificates verified both ways.
// etcd refuses plain clients and clients without a certificate;
// replication streams over TLS, before and after a failover whose old
// primary rejoins with pg_rewind over TLS; the client library follows the
// cluster through TLS etcd.
func TestHATLSEverywhere(t *testing.T) {
	c := startCluster(t, "--tls", "--crash-restarts", "0")
	st := c.waitHealthy(60 * time.Second)
	p, err := plan.Load(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	files := p.Cluster.Etcd.TLS
	endpoint := p.Cluster.Etcd.Endpoints[0]
	if !strings.HasPrefix(endpoint, "https://") || !strings.Contains(p.Cluster.ConnOptions, "sslmode=verify-full") {
		t.Fatalf("plan of bulwark up --tls: etcd %s, conn_options %q", endpoint, p.Cluster.ConnOptions)
	}
	for name, hc := range map[string]*http.Client{
		"plain HTTP":                {Timeout: 3 * time.Second},
		"TLS without a certificate": httpsClient(t, plan.TLS{CAFile: files.CAFile}),
	} {
		url := endpoint + "/version"
		if name == "plain HTTP" {
			url = strings.Replace(url, "https://", "http://", 1)
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("etcd answered a client with %s: %s", name, resp.Status)
			}
		}
	}
	checkReplicationTLS(t, c, st)

	clientTLS, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	pool, err := failover.Open(ctx, failover.Config{
		ConnString: "user=postgres dbname=postgres " + p.Cluster.ConnOptions,
		Source: &failover.EtcdSource{Endpoints: p.Cluster.Etcd.Endpoints, TLS: clientTLS, Cluster: p.Cluster.Name,
			HTTP: httpsClient(t, files)},
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := startPoolWriter(t, pool)
	w.waitAcks(t, 20, 30*time.Second)

	c.signal(c.postmaster(st.Leader), syscall.SIGKILL)
	c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
	w.waitAcks(t, 20, 30*time.Second)
	old := st.Leader
	st = c.waitHealthy(90 * time.Second)
	if m := st.member(old); m.Role != "replica" || m.State != "streaming" {
		t.Errorf("old primary %s after the failover: %+v", old, m)
	}
	checkReplicationTLS(t, c, st)
	acks, lost := c.lost(w)
	t.Logf("async over TLS: %d of %d writes through the library lost in the failover", len(lost), len(acks))
}

// checkReplicationTLS waits until every replica streams from the leader
// over TLS.
func checkReplicationTLS(t *testing.T, c *haCluster, st haStatus) {
	t.Helper()
	leader := st.member(st.Leader)
	conn, err := pgx.Connect(t.Context(), leader.Conn)
	if err != nil {
		t.Fatalf("connect to the leader with its conn string: %v", err)
	}
	defer conn.Close(context.Background())
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Error("the connection with the leader's conn string is not TLS")
	}
	pgtest.Eventually(t, 30*time.Second, func() error {
		var n int
		err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl").Scan(&n)
		if err == nil && n != len(st.Members)-1 {
			err = fmt.Errorf("%d replicas stream over TLS, want %d", n, len(st.Members)-1)
		}
		return err
	})
}
