package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// writeCerts writes a CA and a certificate it signed for 127.0.0.1, usable
// by servers and clients, into dir, readable by the agents' OS user.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bulwark agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(k)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent.key")
	pgtest.WriteFile(t, ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	pgtest.WriteFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	pgtest.WriteFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return ca, cert, key
}

// TestHAAPIOverTLS: with api_tls the agents serve HTTPS, talk to each
// other over it (a switchover asks the target's position), and a client
// certificate the CA signed authorizes a mutating call without the token.
func TestHAAPIOverTLS(t *testing.T) {
	c := startCluster(t)
	before := c.waitHealthy(30 * time.Second)
	ca, cert, key := writeCerts(t, c.dir)
	plan, err := os.ReadFile(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	tlsLine := "  api_tls: {cert_file: " + cert + ", key_file: " + key + ", ca_file: " + ca + "}\n"
	pgtest.WriteFile(t, c.plan, []byte(strings.Replace(string(plan), "  loop_wait: 1s\n", "  loop_wait: 1s\n"+tlsLine, 1)))
	for _, n := range []string{"n1", "n2", "n3"} { // agents restart with the new plan; PostgreSQL runs on
		c.signal(c.agent(n), syscall.SIGTERM)
	}
	pgtest.Eventually(t, 10*time.Second, func() error {
		for _, n := range []string{"n1", "n2", "n3"} {
			if syscall.Kill(c.agent(n), 0) == nil {
				return errString(n + "'s agent still runs")
			}
		}
		return nil
	})
	c.e.ok("up", "--dir", c.dir, "--timeout", "60s")
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

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	anon := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	withCert := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
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
