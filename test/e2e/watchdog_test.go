package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// deviceLog records what the agents write to a FIFO standing in for
// /dev/watchdog.
type deviceLog struct {
	mu   sync.Mutex
	data []byte
}

func (d *deviceLog) bytes() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.data...)
}

// waitPets waits until at least n keepalives follow offset from, and
// returns the bytes written since from.
func (d *deviceLog) waitPets(t *testing.T, from, n int) []byte {
	t.Helper()
	var since []byte
	pgtest.Eventually(t, 30*time.Second, func() error {
		since = d.bytes()[from:]
		if bytes.Count(since, []byte{0}) < n {
			return errString("too few keepalives on the watchdog")
		}
		return nil
	})
	return since
}

// TestHAWatchdog: with cluster.watchdog in automatic mode the leader's
// agent keeps the device alive while it leads, disarms it with the magic
// close when it hands leadership over, and an agent stopped (SIGTERM) while
// it leads leaves it armed (no magic close), so that a real device would
// reset the node. The device is a FIFO, as the test machine has no watchdog driver: the agent falls
// back to writes, which every driver also counts as keepalives, when the
// timeout ioctl fails.
func TestHAWatchdog(t *testing.T) {
	c := startCluster(t)
	c.waitHealthy(30 * time.Second)
	fifo := filepath.Join(c.dir, "watchdog")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0) // opened before any agent writes
	if err != nil {
		t.Fatal(err)
	}
	dev := &deviceLog{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		buf := make([]byte, 64)
		for ctx.Err() == nil {
			n, err := r.Read(buf)
			dev.mu.Lock()
			dev.data = append(dev.data, buf[:n]...)
			dev.mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond) // EOF: no writer has it open right now
			}
		}
	}()
	plan, err := os.ReadFile(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	line := "  watchdog: {mode: automatic, device: " + fifo + "}\n"
	pgtest.WriteFile(t, c.plan, []byte(strings.Replace(string(plan), "  loop_wait: 1s\n", "  loop_wait: 1s\n"+line, 1)))
	c.restartAgents()
	st := c.waitHealthy(30 * time.Second)
	if got := dev.waitPets(t, 0, 3); bytes.Contains(got, []byte("V")) {
		t.Errorf("watchdog disarmed while the leader leads: %q", got)
	}

	mark := len(dev.bytes())
	c.e.ok("cluster", "switchover", "--plan", c.plan)
	next := c.waitNewLeader(st.Leader, st.Term, 30*time.Second)
	pgtest.Eventually(t, 30*time.Second, func() error {
		since := dev.bytes()[mark:]
		v := bytes.IndexByte(since, 'V')
		if v < 0 || bytes.Count(since[v:], []byte{0}) < 3 {
			return errString("no magic close by the old leader followed by the new leader's keepalives")
		}
		return nil
	})

	c.waitHealthy(30 * time.Second)
	mark = len(dev.bytes())
	c.stopAgents(next.Leader) // SIGTERM: the agent could disarm, and must not
	c.waitNewLeader(next.Leader, next.Term, 30*time.Second)
	if got := dev.waitPets(t, mark, 3); bytes.Contains(got, []byte("V")) {
		t.Errorf("a stopped leader's agent disarmed the watchdog: %q", got)
	}
}
