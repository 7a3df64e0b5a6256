package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/repotest"
	"github.com/bulwarkdb/bulwark/internal/repo/s3store"
	"github.com/bulwarkdb/bulwark/internal/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// config returns the configuration of a store on srv, as the environment
// that s3test gives bulwark would.
func config(t *testing.T, srv *s3test.Server, bucket, prefix string) s3store.Config {
	t.Helper()
	env := map[string]string{}
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	c, err := s3store.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.Bucket, c.Prefix = bucket, prefix
	return c
}

func open(t *testing.T, c s3store.Config) *s3store.Store {
	t.Helper()
	s, err := s3store.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	srv := s3test.Start(t)
	t.Run("Prefix", func(t *testing.T) {
		repotest.RunStoreTests(t, func(t *testing.T) repo.Store {
			return open(t, config(t, srv, srv.Bucket(t), "pg/payments"))
		})
	})
	t.Run("NoPrefix", func(t *testing.T) {
		repotest.RunStoreTests(t, func(t *testing.T) repo.Store {
			return open(t, config(t, srv, srv.Bucket(t), ""))
		})
	})
}

func TestPrefixesDoNotOverlap(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	a, ab, root := open(t, config(t, srv, bucket, "a")), open(t, config(t, srv, bucket, "ab")), open(t, config(t, srv, bucket, ""))
	repotest.Put(t, a, "x", "1")
	repotest.Put(t, ab, "y", "2")
	if got, want := repotest.List(t, a, ""), []string{"x"}; !slices.Equal(got, want) {
		t.Errorf("list of s3://%s/a: got %v, want %v", bucket, got, want)
	}
	if got, want := repotest.List(t, root, ""), []string{"a/x", "ab/y"}; !slices.Equal(got, want) {
		t.Errorf("list of s3://%s: got %v, want %v", bucket, got, want)
	}
	if got := a.Location(); got != "s3://"+bucket+"/a" {
		t.Errorf("location: got %s", got)
	}
	if _, err := ab.Get(ctx, "x"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("get x through prefix ab: got %v, want ErrNotFound", err)
	}
}

func TestListPages(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(t, srv, srv.Bucket(t), "p"))
	s3store.SetPageSize(s, 3)
	var want []string
	for _, k := range []string{"d/1", "d/2", "d/3", "d/4", "d/5", "d/6", "d/7", "e/1"} {
		repotest.Put(t, s, k, k)
		if strings.HasPrefix(k, "d/") {
			want = append(want, k)
		}
	}
	if got := repotest.List(t, s, "d/"); !slices.Equal(got, want) {
		t.Fatalf("list over pages of 3: got %v, want %v", got, want)
	}
	n := 0
	for range s.List(context.Background(), "d/") {
		if n++; n == 4 {
			break // stopping mid-listing must not leak a request slot
		}
	}
	repotest.Put(t, s, "after-break", "x")
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	s := open(t, config(t, srv, srv.Bucket(t), "p"))
	_, err := s.Get(ctx, "index/nope")
	if !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "index/nope") {
		t.Errorf("get missing: got %v, want ErrNotFound naming the key", err)
	}
	if _, err := s.GetRange(ctx, "index/nope", 0, 0); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("empty range of missing: got %v, want ErrNotFound", err)
	}
	repotest.Put(t, s, "short", "0123")
	for _, r := range [][2]int64{{4, 10}, {10, 1}, {2, 0}} {
		rc, err := s.GetRange(ctx, "short", r[0], r[1])
		if err != nil {
			t.Fatalf("range %v past the end: %v", r, err)
		}
		if b, _ := io.ReadAll(rc); len(b) != 0 {
			t.Errorf("range %v past the end: got %q, want nothing", r, b)
		}
		rc.Close()
	}

	nb := open(t, config(t, srv, "no-such-bucket", ""))
	_, err = nb.Get(ctx, "config")
	if err == nil || errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "bucket no-such-bucket does not exist") {
		t.Errorf("get in a missing bucket: got %v, want a clear error that is not ErrNotFound", err)
	}
	created, err := nb.EnsureBucket(ctx)
	if err != nil || !created {
		t.Fatalf("EnsureBucket: got %v, %v; want true, nil", created, err)
	}
	if created, err := nb.EnsureBucket(ctx); err != nil || created {
		t.Fatalf("EnsureBucket again: got %v, %v; want false, nil", created, err)
	}
	repotest.Put(t, nb, "config", "x")
}

// TestLargeObjects goes through the multipart upload, with readers that
// cannot seek.
func TestLargeObjects(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	c := config(t, srv, srv.Bucket(t), "p")
	c.PartSize = 5 << 20
	s := open(t, c)
	data := make([]byte, 11<<20+7)
	rand.Read(data)
	if err := s.Put(ctx, "big", onlyReader{bytes.NewReader(data)}, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := repotest.Get(t, s, "big"); !bytes.Equal([]byte(got), data) {
		t.Fatalf("big object: got %d bytes back, want the %d put", len(got), len(data))
	}
	rc, err := s.GetRange(ctx, "big", 5<<20-3, 6)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, data[5<<20-3:5<<20+3]) {
		t.Fatalf("range across parts: got %x, want %x", b, data[5<<20-3:5<<20+3])
	}
	if err := s.Put(ctx, "long", onlyReader{bytes.NewReader(data)}, int64(len(data)-1)); err == nil {
		t.Error("put of a reader longer than its size succeeded")
	}
	if err := s.Put(ctx, "short", onlyReader{bytes.NewReader(data)}, int64(len(data)+1)); err == nil {
		t.Error("put of a reader shorter than its size succeeded")
	}
	for _, k := range []string{"long", "short"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("a failed put left %s: %v", k, err)
		}
	}
	if err := s.Put(ctx, "unknown", onlyReader{strings.NewReader("abc")}, -1); err != nil {
		t.Fatalf("put of unknown size: %v", err)
	}
	if got := repotest.Get(t, s, "unknown"); got != "abc" {
		t.Fatalf("unknown size: got %q, want %q", got, "abc")
	}
	if err := s.Put(ctx, "small", onlyReader{strings.NewReader("abcd")}, 3); err == nil {
		t.Error("put of a small reader longer than its size succeeded")
	}
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestKilledServer(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	s := open(t, config(t, srv, srv.Bucket(t), "p"))
	repotest.Put(t, s, "k", "before")
	srv.Kill()
	for name, call := range map[string]func() error{
		"put": func() error { return s.Put(ctx, "k2", strings.NewReader("x"), 1) },
		"get": func() error { _, err := s.Get(ctx, "k"); return err },
	} {
		start := time.Now()
		err := call()
		took := time.Since(start)
		t.Logf("%s on a killed server: %v after %v", name, err, took.Round(time.Millisecond))
		if err == nil || !strings.Contains(err.Error(), srv.Endpoint) || !strings.Contains(err.Error(), "did not answer") {
			t.Errorf("%s on a killed server: got %v, want an error naming %s", name, err, srv.Endpoint)
		}
		if took > 10*time.Second {
			t.Errorf("%s on a killed server took %v, want < 10s", name, took)
		}
		if strings.Contains(err.Error(), srv.SecretKey) {
			t.Errorf("%s error shows the secret key: %v", name, err)
		}
	}
	srv.Restart(t)
	if got := repotest.Get(t, s, "k"); got != "before" {
		t.Fatalf("after restart: got %q, want %q", got, "before")
	}
	repotest.Put(t, s, "k2", "after")
}

// TestHungServer: an endpoint that accepts connections and never answers
// fails within the attempts' timeouts.
func TestHungServer(t *testing.T) {
	srv := s3test.Start(t)
	p := newFaultProxy(t, srv, 0)
	c := config(t, srv, srv.Bucket(t), "")
	c.Endpoint = p.url
	c.ResponseTimeout = 300 * time.Millisecond
	c.MaxAttempts = 2
	s := open(t, c)
	start := time.Now()
	_, err := s.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), p.url) || time.Since(start) > 5*time.Second {
		t.Fatalf("get from a hung server: got %v after %v; want an error naming %s within 5s", err, time.Since(start), p.url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	c.ResponseTimeout = time.Hour
	s = open(t, c)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("get cancelled while waiting: got %v, want context.Canceled", err)
	}
}

// TestStalledRead: a reader that gets no data for StallTimeout fails.
func TestStalledRead(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	repotest.Put(t, open(t, config(t, srv, bucket, "")), "big", strings.Repeat("x", 4<<20))
	p := newFaultProxy(t, srv, 64<<10) // the headers and some of the body
	c := config(t, srv, bucket, "")
	c.Endpoint = p.url
	c.StallTimeout = 300 * time.Millisecond
	s := open(t, c)
	rc, err := s.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err == nil || !strings.Contains(err.Error(), "no data from") {
		t.Fatalf("read of a stalled object: got %d bytes, %v; want a stall error", n, err)
	}
}

func TestInFlightBound(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	c := config(t, srv, srv.Bucket(t), "")
	c.MaxInFlight = 2
	s := open(t, c)
	repotest.Put(t, s, "k", "v")
	r1, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Get(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third get with two readers open: got %v, want to wait for a slot", err)
	}
	r1.Close()
	if _, err := io.ReadAll(r2); err != nil { // EOF gives the slot back too
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { repotest.Put(t, s, "k", "w") })
	}
	wg.Wait()
	r2.Close()
}

func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	c := config(t, srv, srv.Bucket(t), "")
	c.SecretKey = "not-the-secret-hunter2"
	err := open(t, c).Put(context.Background(), "k", strings.NewReader("v"), 1)
	if err == nil || !strings.Contains(err.Error(), "check the credentials") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("put with a wrong secret: got %v; want a credentials error without the secret", err)
	}
}

// TestServerSideEncryption checks the requests ask for SSE. versitygw
// accepts the header but does not implement SSE (its posix backend
// ignores it), so what the server does with it is not checked.
func TestServerSideEncryption(t *testing.T) {
	srv := s3test.Start(t)
	for _, tc := range []struct{ sse, key string }{{s3store.SSES3, ""}, {s3store.SSEKMS, "arn:aws:kms:us-east-1:1:key/k"}} {
		t.Run(tc.sse, func(t *testing.T) {
			p := newRecordingProxy(t, srv)
			c := config(t, srv, srv.Bucket(t), "")
			c.Endpoint = p.url
			c.SSE, c.SSEKMSKeyID = tc.sse, tc.key
			s := open(t, c)
			repotest.Put(t, s, "k", "v")
			if got := repotest.Get(t, s, "k"); got != "v" {
				t.Fatalf("get: got %q, want %q", got, "v")
			}
			h := p.put()
			if h == nil {
				t.Fatal("no PUT went through the proxy")
			}
			if got := h.Get("X-Amz-Server-Side-Encryption"); got != tc.sse {
				t.Errorf("x-amz-server-side-encryption: got %q, want %q", got, tc.sse)
			}
			if got := h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != tc.key {
				t.Errorf("KMS key id header: got %q, want %q", got, tc.key)
			}
			t.Logf("versitygw accepted x-amz-server-side-encryption: %s (it does not implement SSE; the header was checked)", tc.sse)
		})
	}
}

// recordingProxy forwards to the real server and keeps the headers of the
// last PUT.
type recordingProxy struct {
	url  string
	mu   sync.Mutex
	last http.Header
}

func newRecordingProxy(t *testing.T, srv *s3test.Server) *recordingProxy {
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			p.mu.Lock()
			p.last = r.Header.Clone()
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.url = hs.URL
	return p
}

func (p *recordingProxy) put() http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}
