package pgtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many of the last output lines a server keeps for errors.
const tailLines = 40

// server is one postmaster process and the forwarding of its output (and its
// children's, which inherit the same pipe) to a test log.
type server struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the postmaster has exited
	waitErr error         // set before exited is closed
	logDone chan struct{} // closed once every holder of the output pipe closed it

	mu     sync.Mutex
	out    io.Writer // nil once forwarding has stopped
	prefix string
	tail   []string
}

// startServer starts postgres with args, forwarding its output to out with
// prefix on every line until detach.
func startServer(out io.Writer, prefix string, args []string) (*server, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(BinDir(), "postgres"), args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = "/"
	AsOwner(cmd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// If the test binary dies without cleanup (a -timeout panic), shut the
	// server down instead of leaving it running.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	err = cmd.Start()
	_ = w.Close() // the children hold their own copies
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("start %s: %w", cmd, err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), logDone: make(chan struct{}), out: out, prefix: prefix}
	go s.forward(r)
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

func (s *server) forward(r *os.File) {
	defer close(s.logDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		s.line(sc.Text())
	}
}

func (s *server) line(l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tail) == tailLines {
		s.tail = s.tail[1:]
	}
	s.tail = append(s.tail, l)
	if s.out != nil {
		fmt.Fprintf(s.out, "%s: %s\n", s.prefix, l)
	}
}

// detach stops forwarding output; after it returns nothing writes to out.
func (s *server) detach() {
	s.mu.Lock()
	s.out = nil
	s.mu.Unlock()
}

// tailText returns the last lines of output.
func (s *server) tailText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *server) signal(sig os.Signal) error {
	if !s.running() {
		return fmt.Errorf("postmaster %d has exited", s.cmd.Process.Pid)
	}
	return s.cmd.Process.Signal(sig)
}

// stop asks for a fast shutdown (SIGINT) and kills the postmaster if it has
// not exited after timeout. It is a no-op once the postmaster has exited.
func (s *server) stop(timeout time.Duration) error {
	if !s.running() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT) // it may exit meanwhile
	select {
	case <-s.exited:
		return nil
	case <-time.After(timeout):
	}
	s.kill()
	return fmt.Errorf("no fast shutdown within %v: killed", timeout)
}

// kill sends SIGKILL to the postmaster only (like a crash: its children exit
// when they notice) and waits for it to exit.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL) // it may have exited already
	<-s.exited
}

// waitChildren waits until every process writing to the output pipe (the
// postmaster's children too) has exited, at most timeout.
func (s *server) waitChildren(timeout time.Duration) bool {
	select {
	case <-s.logDone:
		return true
	case <-time.After(timeout):
		return false
	}
}
