// Package s3test runs a real S3-compatible server for tests: versitygw's
// gateway with its posix backend over a temporary directory, in a child
// process (./s3server) so that a test can kill it and restart it.
//
// It owns the processes and directories it creates and removes them with
// t.Cleanup. It must only be imported from _test.go files, never fakes S3,
// and never skips: a server that cannot start fails the test.
//
// The s3server binary is built once per test binary into a per-process
// directory under os.TempDir; the first Start of a later test binary
// removes the directories of processes that have exited.
package s3test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// Region is the region the server reports.
const Region = "us-east-1"

// startTimeout bounds the wait for "ready" from a server process.
const startTimeout = time.Minute

// Server is one S3 server process and its data directory. Its methods are
// safe for concurrent use.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint  string
	AccessKey string
	SecretKey string

	addr string
	dir  string
	out  io.Writer // the output of the test that started the server

	mu      sync.Mutex
	proc    *process // nil once killed
	buckets int
}

// process is one run of the s3server binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returns
}

// Start builds s3server (once per test binary), starts it on a free port
// of 127.0.0.1 over a new directory, and waits until it serves. t.Cleanup
// kills it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	addr, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s := &Server{
		Endpoint:  "http://" + addr,
		AccessKey: "bulwark-test",
		SecretKey: "bulwark-test-secret-" + strconv.Itoa(os.Getpid()),
		addr:      addr,
		dir:       t.TempDir(),
		out:       t.Output(),
	}
	t.Cleanup(s.Kill)
	s.start(t, bin)
	return s
}

// start runs the binary and waits for "ready"; it fails t with the
// server's output if the server exits first.
func (s *Server) start(t testing.TB, bin string) {
	t.Helper()
	cmd := exec.Command(bin, "-dir", s.dir, "-addr", s.addr, "-access", s.AccessKey, "-secret", s.SecretKey)
	var stderr strings.Builder
	var errMu sync.Mutex
	cmd.Stderr = lockedWriter{&errMu, io.MultiWriter(&stderr, prefixWriter{s.out, "s3server: "})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: start %s: %v", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if sc.Text() == "ready" && !signalled {
				close(ready)
				signalled = true
				continue
			}
			fmt.Fprintf(s.out, "s3server: %s\n", sc.Text())
		}
		cmd.Wait() // after stdout is drained, as StdoutPipe requires
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	select {
	case <-ready:
		return
	case <-p.done:
		errMu.Lock()
		defer errMu.Unlock()
		t.Fatalf("s3test: s3server exited before it was ready: %v\n%s", cmd.ProcessState, stderr.String())
	case <-time.After(startTimeout):
		s.Kill()
		t.Fatalf("s3test: s3server not ready after %v", startTimeout)
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for the
// process to exit. It does nothing if the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL) // an error means it has exited already
	<-p.done
}

// Restart kills the server if it runs and starts it again on the same port
// and data directory: what it stored survives.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	bin, err := binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.start(t, bin)
}

// Env returns the environment that points the AWS tools and bulwark at the
// server: endpoint, static credentials (overriding any session token or
// profile of the caller's environment) and region.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + Region,
	}
}

// Client returns a minio-go client of the server, for checks that go
// around the code under test. It does not retry.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1, // a local server: a failure is not transient
	})
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return c
}

// Bucket creates a new, empty bucket and returns its name.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.buckets++
	name := fmt.Sprintf("bulwark-test-%d", s.buckets)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return name
}

// build is the s3server binary of this test binary.
var build struct {
	once sync.Once
	bin  string
	err  error
}

// binary builds s3server on first use.
func binary() (string, error) {
	build.once.Do(func() {
		removeStale()
		dir, err := os.MkdirTemp("", fmt.Sprintf("bulwark-s3test-%d-", os.Getpid()))
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "s3server")
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/bulwarkdb/bulwark/internal/s3test/s3server")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("build s3server: %v\n%s", err, out)
		}
	})
	return build.bin, build.err
}

var staleName = regexp.MustCompile(`^bulwark-s3test-(\d+)-`)

// removeStale removes the build directories of exited test binaries.
func removeStale() { pgtest.RemoveStaleDirs(staleName) }

// Main runs the tests of a package and then removes the s3server binary.
// Call it from TestMain (or leave the removal to the next test binary):
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	build.once.Do(func() {}) // orders this read after a concurrent first use
	if build.bin != "" {
		_ = os.RemoveAll(filepath.Dir(build.bin)) // best effort
	}
	os.Exit(code)
}

// lockedWriter serialises writes, so that the builder can be read while
// the process may still write.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes each line of the server's output with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if l != "" {
			fmt.Fprint(p.w, p.prefix+l)
		}
	}
	return len(b), nil
}
