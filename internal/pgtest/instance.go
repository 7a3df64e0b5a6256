package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// startTimeout bounds the wait for a server to accept connections; a
	// restored backup may replay a lot of WAL first.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a fast shutdown before SIGKILL.
	stopTimeout = 60 * time.Second
	// childTimeout bounds the wait for a dead postmaster's children to exit.
	childTimeout = 30 * time.Second
	// startAttempts bounds the retries on a port clash.
	startAttempts = 5
)

// Options configures an instance; the zero value is a usable default.
type Options struct {
	// Name prefixes the server's log lines and names its directories
	// (default "pg", "standby" for StartStandby).
	Name string
	// Conf holds extra settings, as raw values ("on", "cp %p /x/%f"; a value
	// already in single quotes is accepted too). Start and StartStandby
	// append them to postgresql.conf, StartDataDir passes them as -c options.
	Conf map[string]string
}

func (o Options) withDefaults(name string) Options {
	if o.Name == "" {
		o.Name = name
	}
	return o
}

// Instance is one running PostgreSQL server listening on 127.0.0.1:Port and
// on a Unix socket in SocketDir. Exec, QueryInt, QueryString and TableHashes
// share one connection, serialised by a mutex. Like every method that takes a
// testing.TB, they fail the test with t.Fatal, which only the test's own
// goroutine may call: give other goroutines their own Conn.
type Instance struct {
	Name      string
	DataDir   string
	SocketDir string
	Port      int

	srv    *server
	connMu sync.Mutex
	conn   *pgx.Conn // shared by Exec and QueryInt
}

// Start copies the initdb template (made once per test binary, with data
// checksums, trust authentication and superuser postgres) into a new data
// directory, applies opts.Conf and starts a server on it. It skips the test
// like Require. At cleanup the server is shut down (SIGINT, then SIGKILL after
// a minute) and its directories are removed.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	Require(t)
	opts = opts.withDefaults("pg")
	src, err := template()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	data := newDataDir(t, opts.Name)
	if out, err := exec.Command("cp", "-a", src, data).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: copy template: %v\n%s", err, out)
	}
	if err := appendConf(data, opts.Conf); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return launch(t, data, opts.Name, nil)
}

// StartDataDir starts a server on an existing data directory, such as one
// restored from a backup or left by Stop or Kill, and waits up to a minute
// for it to accept connections (it may have to recover first). Port, socket
// and opts.Conf are passed as command-line options so that no configuration
// file is modified. As root, it gives dataDir to the postgres OS user; its
// mode is left alone, so a restore that gets it wrong is caught. The caller
// owns dataDir: the cleanup stops the server but does not remove it.
func StartDataDir(t testing.TB, dataDir string, opts Options) *Instance {
	t.Helper()
	Require(t)
	opts = opts.withDefaults("pg")
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := prepareDataDir(dataDir); err != nil {
		t.Fatalf("pgtest: data directory %s: %v", dataDir, err)
	}
	return launch(t, dataDir, opts.Name, opts.Conf)
}

func prepareDataDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return err
	}
	if err := chownTree(dir); err != nil {
		return err
	}
	return ensureTraversable(dir)
}

// newDataDir returns the path of a data directory to create inside a new
// directory that is removed at cleanup.
func newDataDir(t testing.TB, name string) string {
	t.Helper()
	base, err := mkdirTemp(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { removeAll(t, base) })
	return filepath.Join(base, "data")
}

// launch starts a server on dataDir, retrying on a port clash, and registers
// its shutdown with t.Cleanup.
func launch(t testing.TB, dataDir, name string, conf map[string]string) *Instance {
	t.Helper()
	sock, err := mkdirSocket()
	if err != nil {
		t.Fatalf("pgtest: socket directory: %v", err)
	}
	t.Cleanup(func() { removeAll(t, sock) })
	i := &Instance{Name: name, DataDir: dataDir, SocketDir: sock}
	t.Cleanup(func() { i.shutdown(t) })
	for attempt := 1; ; attempt++ {
		err := i.startOnce(t, conf)
		if err == nil {
			return i
		}
		if attempt == startAttempts || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("pgtest: start %s on %s: %v", name, dataDir, err)
		}
		t.Logf("pgtest: start %s: port %d taken, retrying", name, i.Port)
	}
}

// startOnce starts the server on a free port and waits until it accepts
// connections. On error the server is no longer running.
func (i *Instance) startOnce(t testing.TB, conf map[string]string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	i.Port = port
	args := []string{"-D", i.DataDir,
		"-c", "port=" + strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + i.SocketDir,
		"-c", "logging_collector=off"}
	i.srv, err = startServer(t.Output(), i.Name, append(args, confArgs(conf)...))
	if err != nil {
		return err
	}
	if err := i.waitReady(startTimeout); err != nil {
		i.srv.kill()
		i.srv.waitChildren(childTimeout)
		i.srv.detach()
		return fmt.Errorf("%w\n%s", err, i.srv.tailText())
	}
	return nil
}

func (i *Instance) waitReady(timeout time.Duration) error {
	return poll(timeout, func() error {
		if !i.srv.running() {
			i.srv.waitChildren(childTimeout) // read its last words
			return permanentError{fmt.Errorf("postgres exited: %v", i.srv.waitErr)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, i.ConnString())
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}

// FreeAddr returns a loopback address, "127.0.0.1:PORT", that nothing
// listens on (now: a port can be taken again before it is used).
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// shutdown is the cleanup of a launched instance.
func (i *Instance) shutdown(t testing.TB) {
	i.closeConn()
	if i.srv == nil {
		return
	}
	defer i.srv.detach()
	if err := i.srv.stop(stopTimeout); err != nil {
		t.Errorf("pgtest: stop %s: %v", i.Name, err)
	}
	if !i.srv.waitChildren(childTimeout) {
		t.Logf("pgtest: %s: server processes still running %v after the postmaster exited", i.Name, childTimeout)
	}
}

// Stop shuts the server down (fast shutdown) and waits for all its processes
// to exit. The data directory stays until cleanup, for StartDataDir. Stop
// fails the test if the server needed SIGKILL; it is a no-op once stopped.
func (i *Instance) Stop(t testing.TB) {
	t.Helper()
	i.closeConn()
	if err := i.srv.stop(stopTimeout); err != nil {
		t.Fatalf("pgtest: stop %s: %v", i.Name, err)
	}
	if !i.srv.waitChildren(childTimeout) {
		t.Fatalf("pgtest: %s: server processes still running %v after the postmaster exited", i.Name, childTimeout)
	}
}

// Kill sends SIGKILL to the postmaster, like a crash, and waits until it and
// its children (which exit when they notice) are gone, so that StartDataDir
// can then recover the data directory.
func (i *Instance) Kill(t testing.TB) {
	t.Helper()
	i.srv.kill()
	i.closeConn()
	if !i.srv.waitChildren(childTimeout) {
		t.Fatalf("pgtest: %s: server processes still running %v after SIGKILL", i.Name, childTimeout)
	}
}

// Signal sends sig to the postmaster only, for example SIGSTOP and SIGCONT.
func (i *Instance) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := i.srv.signal(sig); err != nil {
		t.Fatalf("pgtest: signal %s: %v", i.Name, err)
	}
}

// PID returns the process id of the postmaster.
func (i *Instance) PID() int { return i.srv.cmd.Process.Pid }
