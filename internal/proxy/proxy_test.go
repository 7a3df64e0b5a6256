package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bulwarkdb/bulwark/internal/localtls"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/proxy"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// source is a failover.Source the test feeds.
type source struct {
	ch      chan failover.Topology
	applied chan struct{}
}

func newSource() *source {
	return &source{ch: make(chan failover.Topology), applied: make(chan struct{})}
}

func (s *source) Follow(ctx context.Context, update func(failover.Topology)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case t := <-s.ch:
			update(t)
			s.applied <- struct{}{}
		}
	}
}

// set reports t and returns once the proxy has applied it.
func (s *source) set(t failover.Topology) {
	s.ch <- t
	<-s.applied
}

func node(i *pgtest.Instance) *failover.Node {
	return &failover.Node{Name: i.Name, Addr: "127.0.0.1:" + strconv.Itoa(i.Port)}
}

// testProxy is a running Proxy and its addresses.
type testProxy struct {
	t      testing.TB
	rw, ro string
	http   string // base URL of its Handler
}

// startProxy runs a proxy with o (listening on free loopback ports) until
// the test ends, and checks that Run then returns nil. A port found free
// can be taken by another process before the proxy binds it: then it
// tries other ports.
func startProxy(t testing.TB, o proxy.Options) *testProxy {
	t.Helper()
	for attempt := 1; ; attempt++ {
		tp, err := tryProxy(t, o)
		if err == nil {
			return tp
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
		t.Logf("ports taken meanwhile, trying others: %v", err)
	}
}

// tryProxy starts a proxy with o on ports found free, or returns why Run
// failed at once.
func tryProxy(t testing.TB, o proxy.Options) (*testProxy, error) {
	tp := &testProxy{t: t, rw: freeAddr(t), ro: freeAddr(t)}
	o.ListenRW, o.ListenRO = tp.rw, tp.ro
	o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := proxy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// Run binds first: a port taken meanwhile fails it at once. (Only
	// then does a connection that succeeds mean the proxy listens, not
	// whoever took the port.)
	select {
	case err := <-done:
		cancel()
		return nil, err
	case <-time.After(50 * time.Millisecond):
	}
	pgtest.Eventually(t, 10*time.Second, func() error {
		if !listening(tp.rw) || !listening(tp.ro) {
			return errors.New("the proxy does not listen yet")
		}
		return nil
	})
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	tp.http = srv.URL
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return tp, nil
}

// listening says whether addr accepts connections.
func listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func freeAddr(t testing.TB) string {
	addr, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// connString connects through addr without TLS.
func connString(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable connect_timeout=30", host, port)
}

func connect(t *testing.T, conn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), conn)
	if err != nil {
		t.Fatalf("connect %q: %v", conn, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// serverPort returns the port of the server c is connected to.
func serverPort(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var port int
	if err := c.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	return port
}

// alive reports whether a query on c works.
func alive(c *pgx.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Exec(ctx, "SELECT 1")
	return err == nil
}

// metric returns the value of the series named exactly line (name and
// labels) on /metrics, or "" when absent.
func (tp *testProxy) metric(line string) string {
	tp.t.Helper()
	body, _ := tp.get("/metrics")
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, line+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (tp *testProxy) get(path string) (string, int) {
	tp.t.Helper()
	resp, err := http.Get(tp.http + path)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tp.t.Fatal(err)
	}
	return string(body), resp.StatusCode
}

func (tp *testProxy) waitMetric(line, want string) {
	tp.t.Helper()
	pgtest.Eventually(tp.t, 30*time.Second, func() error {
		if got := tp.metric(line); got != want {
			return fmt.Errorf("%s = %q, want %s", line, got, want)
		}
		return nil
	})
}

// TestRouting: the read-write port leads to the primary, the read-only
// port to the replica; /health says which; SSLRequest is answered 'N'
// without TLS.
func TestRouting(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	r := pgtest.StartStandby(t, p, pgtest.Options{Name: "replica"})
	src := newSource()
	tp := startProxy(t, proxy.Options{Source: src})
	if _, code := tp.get("/health"); code != http.StatusServiceUnavailable {
		t.Errorf("/health before any topology: %d, want 503", code)
	}
	src.set(failover.Topology{Term: 1, Primary: node(p), Replicas: []failover.Node{*node(r)}})

	if got := serverPort(t, connect(t, connString(tp.rw))); got != p.Port {
		t.Errorf("rw port led to port %d, want the primary's %d", got, p.Port)
	}
	if got := serverPort(t, connect(t, connString(tp.ro))); got != r.Port {
		t.Errorf("ro port led to port %d, want the replica's %d", got, r.Port)
	}
	body, code := tp.get("/health")
	var h proxy.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || h.Primary == nil || h.Primary.Name != "primary" ||
		len(h.Replicas) != 1 || h.Sessions["rw"] != 1 || h.Sessions["ro"] != 1 {
		t.Errorf("/health: %d %s (%v)", code, body, err)
	}
	if got := tp.metric(`bulwark_proxy_connections_routed_total{node="replica",port="ro"}`); got != "1" {
		t.Errorf("routed to the replica: %q, want 1", got)
	}

	noTLS := strings.Replace(connString(tp.rw), "sslmode=disable", "sslmode=require", 1)
	if _, err := pgx.Connect(context.Background(), noTLS); err == nil || !strings.Contains(err.Error(), "refused TLS") {
		t.Errorf("sslmode=require without TLS at the proxy: %v, want the server refusing TLS", err)
	}
	prefer := strings.Replace(connString(tp.rw), "sslmode=disable", "sslmode=prefer", 1)
	if got := serverPort(t, connect(t, prefer)); got != p.Port {
		t.Errorf("sslmode=prefer led to %d", got)
	}
}

// TestSessionsClosedOnTopologyChange: a new primary or a new term closes
// the read-write sessions of the old one at once; a read-only session
// stays while its node is a replica or the primary.
func TestSessionsClosedOnTopologyChange(t *testing.T) {
	a := pgtest.Start(t, pgtest.Options{Name: "a"})
	b := pgtest.Start(t, pgtest.Options{Name: "b"})
	src := newSource()
	tp := startProxy(t, proxy.Options{Source: src})
	src.set(failover.Topology{Term: 1, Primary: node(a), Replicas: []failover.Node{*node(b)}})
	rw1, ro := connect(t, connString(tp.rw)), connect(t, connString(tp.ro))

	src.set(failover.Topology{Term: 2, Primary: node(b)})
	if alive(rw1) {
		t.Error("the read-write session on the old primary survived the new primary")
	}
	if !alive(ro) {
		t.Error("the read-only session on b was closed although b is the primary now")
	}
	rw2 := connect(t, connString(tp.rw))
	if got := serverPort(t, rw2); got != b.Port {
		t.Errorf("new read-write session on port %d, want the new primary's %d", got, b.Port)
	}

	src.set(failover.Topology{Term: 3, Primary: node(b)})
	if alive(rw2) {
		t.Error("a read-write session of term 2 survived term 3 on the same node")
	}
	src.set(failover.Topology{Term: 4})
	if alive(ro) {
		t.Error("the read-only session survived a topology without its node")
	}
	if got := tp.metric(`bulwark_proxy_sessions_closed_total{port="rw"}`); got != "2" {
		t.Errorf("rw sessions closed: %q, want 2", got)
	}
	src.set(failover.Topology{Term: 1, Primary: node(a)}) // out of date: ignored
	if body, code := tp.get("/health"); code != http.StatusServiceUnavailable {
		t.Errorf("/health after an older term's topology: %d %s, want 503 (term 4 has no primary)", code, body)
	}
}

// eachRelay runs body against a proxy whose primary is p, once with
// relay loops (the default) and once with a goroutine per direction.
func eachRelay(t *testing.T, p *pgtest.Instance, body func(*testing.T, *testProxy)) {
	for _, loops := range []int{0, -1} {
		t.Run(fmt.Sprintf("RelayLoops %d", loops), func(t *testing.T) {
			src := newSource()
			tp := startProxy(t, proxy.Options{Source: src, RelayLoops: loops})
			src.set(failover.Topology{Term: 1, Primary: node(p)})
			body(t, tp)
		})
	}
}

// TestLargeTransfers: 16 MB each way through the proxy, COPY FROM STDIN
// and COPY TO STDOUT, arrive whole with a relay loop and with a goroutine
// per direction; the bytes are counted when the session ends.
func TestLargeTransfers(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	p.Exec(t, "CREATE TABLE blob (n int PRIMARY KEY, t text NOT NULL)")
	var in bytes.Buffer
	for i := range 1 << 16 {
		fmt.Fprintf(&in, "%d\t%s\n", i, strings.Repeat(strconv.FormatInt(int64(i%36), 36), 250))
	}
	ctx := context.Background()
	direct := connect(t, p.ConnString())
	eachRelay(t, p, func(t *testing.T, tp *testProxy) {
		c := connect(t, connString(tp.rw))
		if _, err := c.Exec(ctx, "TRUNCATE blob"); err != nil {
			t.Fatal(err)
		}
		tag, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(in.Bytes()), "COPY blob FROM STDIN")
		if err != nil || tag.RowsAffected() != 1<<16 {
			t.Fatalf("COPY FROM through the proxy: %v, %d rows", err, tag.RowsAffected())
		}
		var out, want bytes.Buffer
		if _, err := c.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM blob ORDER BY n) TO STDOUT"); err != nil {
			t.Fatalf("COPY TO through the proxy: %v", err)
		}
		if _, err := direct.PgConn().CopyTo(ctx, &want, "COPY (SELECT * FROM blob ORDER BY n) TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want.Bytes(), in.Bytes()) || !bytes.Equal(out.Bytes(), want.Bytes()) {
			t.Fatalf("COPY: the table has %d bytes and the proxy gave %d, want the %d sent", want.Len(), out.Len(), in.Len())
		}
		c.Close(ctx)
		sent := float64(in.Len())
		pgtest.Eventually(t, 10*time.Second, func() error {
			for _, dir := range []string{"to_server", "to_client"} {
				v, _ := strconv.ParseFloat(tp.metric(fmt.Sprintf(`bulwark_proxy_bytes_total{direction="%s",port="rw"}`, dir)), 64)
				if v < sent {
					return fmt.Errorf("%s: %.0f bytes counted, want at least %.0f", dir, v, sent)
				}
			}
			return nil
		})
	})
}

// TestHandOffWithClientBytesInFlight: a client that sends its queries
// with the startup packet, before reading anything, and a server busy
// writing a result nobody reads yet: the bytes the proxy holds for the
// server when the session changes hands are neither lost nor stuck.
func TestHandOffWithClientBytesInFlight(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	const copied, sent = 40000 * 1001, 32 << 20 // bytes of COPY data; length of the big literal
	eachRelay(t, p, func(t *testing.T, tp *testProxy) {
		conn, err := net.Dial("tcp", tp.rw)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": "postgres", "database": "postgres"}})
		fe.Send(&pgproto3.Query{String: "COPY (SELECT repeat('y', 1000) FROM generate_series(1, 40000)) TO STDOUT"})
		fe.Send(&pgproto3.Query{String: "SELECT length('" + strings.Repeat("x", sent) + "')"})
		flushed := make(chan error, 1)
		go func() { flushed <- fe.Flush() }()
		var got, length, ready int
		for ready < 3 { // after the startup, the COPY and the SELECT
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("after %d bytes of COPY data: %v", got, err)
			}
			switch m := msg.(type) {
			case *pgproto3.ReadyForQuery:
				ready++
			case *pgproto3.CopyData:
				got += len(m.Data)
			case *pgproto3.DataRow:
				length, _ = strconv.Atoi(string(m.Values[0]))
			case *pgproto3.ErrorResponse:
				t.Fatalf("server error: %s", m.Message)
			}
		}
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		if got != copied || length != sent {
			t.Errorf("got %d bytes of COPY data and length %d, want %d and %d", got, length, copied, sent)
		}
	})
}

// TestHeldUntilPrimary: a connection that arrives during a failover is
// held and completes on the primary that appears; one whose backend
// refuses is retried on the backend the topology names next; without a
// primary within WaitPrimary the client gets an ErrorResponse.
func TestHeldUntilPrimary(t *testing.T) {
	a := pgtest.Start(t, pgtest.Options{Name: "a"})
	for _, tc := range []struct {
		name  string
		first failover.Topology
	}{
		{"no primary", failover.Topology{Term: 1}},
		{"primary refuses", failover.Topology{Term: 1, Primary: &failover.Node{Name: "dead", Addr: freeAddr(t)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource()
			tp := startProxy(t, proxy.Options{Source: src})
			src.set(tc.first)
			done := make(chan error, 1)
			var conn *pgx.Conn
			go func() {
				var err error
				conn, err = pgx.Connect(context.Background(), connString(tp.rw))
				done <- err
			}()
			tp.waitMetric(`bulwark_proxy_waiting_connections{port="rw"}`, "1")
			src.set(failover.Topology{Term: 2, Primary: node(a)})
			if err := <-done; err != nil {
				t.Fatalf("held connection: %v", err)
			}
			defer conn.Close(context.Background())
			if got := serverPort(t, conn); got != a.Port {
				t.Errorf("held connection completed on %d, want %d", got, a.Port)
			}
		})
	}
	t.Run("refused after WaitPrimary", func(t *testing.T) {
		src := newSource()
		tp := startProxy(t, proxy.Options{Source: src, WaitPrimary: 200 * time.Millisecond})
		src.set(failover.Topology{Term: 1})
		_, err := pgx.Connect(context.Background(), connString(tp.rw))
		if pe := new(pgconn.PgError); !errors.As(err, &pe) || pe.Code != "57P03" {
			t.Errorf("got %v, want an ErrorResponse 57P03", err)
		}
	})
}

// TestCancel: a cancel request through the proxy cancels the query of its
// own session and not the other's; one that reaches an instance that does
// not know the session is sent to every node, and still cancels the right
// query.
func TestCancel(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	other := pgtest.Start(t, pgtest.Options{Name: "other"})
	src1, src2 := newSource(), newSource()
	tp1, tp2 := startProxy(t, proxy.Options{Source: src1}), startProxy(t, proxy.Options{Source: src2})
	src1.set(failover.Topology{Term: 1, Primary: node(p)})
	// The second instance sees p as a replica: a cancel sent only to the
	// primary would not reach the query.
	src2.set(failover.Topology{Term: 1, Primary: node(other), Replicas: []failover.Node{*node(p)}})
	c1, c2 := connect(t, connString(tp1.rw)), connect(t, connString(tp1.rw))
	r1, r2 := sleep(c1), sleep(c2)
	waitSleeping(t, p, 2)

	if err := c1.PgConn().CancelRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkCancelled(t, <-r1)
	if n := p.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", c2.PgConn().PID()); n != 1 {
		t.Fatalf("the other session's query is not running any more")
	}
	// Through the second instance, which never saw c2's key.
	sendCancel(t, tp2.rw, c2.PgConn().PID(), c2.PgConn().SecretKey())
	checkCancelled(t, <-r2)
	if got := tp1.metric(`bulwark_proxy_cancel_requests_total{route="direct"}`); got != "1" {
		t.Errorf("direct cancels at the first instance: %q, want 1", got)
	}
	if got := tp2.metric(`bulwark_proxy_cancel_requests_total{route="broadcast"}`); got != "1" {
		t.Errorf("broadcast cancels at the second instance: %q, want 1", got)
	}
}

// sleep runs pg_sleep(30) on c and reports its error.
func sleep(c *pgx.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(30)")
		done <- err
	}()
	return done
}

func waitSleeping(t *testing.T, p *pgtest.Instance, n int64) {
	t.Helper()
	pgtest.Eventually(t, 10*time.Second, func() error {
		if got := p.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"); got != n {
			return fmt.Errorf("%d sessions sleeping, want %d", got, n)
		}
		return nil
	})
}

func checkCancelled(t *testing.T, err error) {
	t.Helper()
	if pe := new(pgconn.PgError); !errors.As(err, &pe) || pe.Code != "57014" {
		t.Errorf("got %v, want query_canceled (57014)", err)
	}
}

// sendCancel sends a CancelRequest for (pid, secret) to addr as libpq
// does, and waits until the other side closes the connection.
func sendCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := []byte{0, 0, 0, byte(12 + len(secret)), 0x04, 0xd2, 0x16, 0x2e}
	pkt = append(pkt, byte(pid>>24), byte(pid>>16), byte(pid>>8), byte(pid))
	if _, err := c.Write(append(pkt, secret...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, c)
}

// TestTLS: the proxy terminates clients' TLS with its own certificate
// (cancel requests over TLS included) and, with BackendTLS, encrypts to
// PostgreSQL again, verifying the server's certificate.
func TestTLS(t *testing.T) {
	files, pair, ca := certs(t)
	p := pgtest.Start(t, pgtest.Options{Name: "primary", Conf: map[string]string{"ssl": "on", "ssl_cert_file": files.Cert, "ssl_key_file": files.Key}})
	src := newSource()
	tp := startProxy(t, proxy.Options{Source: src, TLS: &tls.Config{Certificates: []tls.Certificate{pair}},
		BackendTLS: &tls.Config{RootCAs: ca}})
	src.set(failover.Topology{Term: 1, Primary: node(p)})

	cfg, err := pgx.ParseConfig(strings.Replace(connString(tp.rw), "sslmode=disable", "sslmode=verify-full", 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = &tls.Config{RootCAs: ca, ServerName: "127.0.0.1"}
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("verify-full through the proxy: %v", err)
	}
	defer c.Close(context.Background())
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("client connection is %T, want TLS", c.PgConn().Conn())
	}
	var backendTLS bool
	if err := c.QueryRow(context.Background(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&backendTLS); err != nil || !backendTLS {
		t.Errorf("proxy to PostgreSQL encrypted: %v (%v), want true", backendTLS, err)
	}
	done := sleep(c)
	waitSleeping(t, p, 1)
	if err := c.PgConn().CancelRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkCancelled(t, <-done)
}

// certs writes a CA and a certificate for 127.0.0.1 that PostgreSQL can
// use, and returns the files, the certificate and a pool of the CA.
func certs(t *testing.T) (localtls.Files, tls.Certificate, *x509.CertPool) {
	t.Helper()
	files, err := localtls.Write(pgtest.Dir(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(files.Key)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.WriteFile(t, files.Key, key) // the postgres OS user must own it
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	ca := x509.NewCertPool()
	if pem, err := os.ReadFile(files.CA); err != nil || !ca.AppendCertsFromPEM(pem) {
		t.Fatalf("CA %s: %v", files.CA, err)
	}
	return files, pair, ca
}

// BenchmarkRoundTrip: one SELECT 1 round trip, directly and through the
// proxy, on parallel connections (one per GOMAXPROCS goroutine).
func BenchmarkRoundTrip(b *testing.B) {
	p := pgtest.Start(b, pgtest.Options{Name: "primary"})
	src := newSource()
	tp := startProxy(b, proxy.Options{Source: src})
	src.set(failover.Topology{Term: 1, Primary: node(p)})
	for _, target := range []struct{ name, conn string }{{"direct", p.ConnString()}, {"proxy", connString(tp.rw)}} {
		b.Run(target.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				c, err := pgx.Connect(context.Background(), target.conn)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close(context.Background())
				for pb.Next() {
					if _, err := c.Exec(context.Background(), "SELECT 1"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
