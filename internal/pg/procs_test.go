package pg

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// TestProcessStates: a sleeping process runs; stopped, it is Stopped and
// not Running; once it exits unreaped (a zombie) it neither runs nor is
// alive, though kill(pid, 0) still finds it.
func TestProcessStates(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !Running(pid) || Stopped(pid) || !Alive(pid) {
		t.Fatalf("sleeping: running %v, stopped %v, alive %v", Running(pid), Stopped(pid), Alive(pid))
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return Stopped(pid) })
	if Running(pid) || !Alive(pid) {
		t.Fatalf("stopped: running %v, alive %v", Running(pid), Alive(pid))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { s, ok := procState(pid); return ok && s == 'Z' })
	if Running(pid) || Stopped(pid) || Alive(pid) {
		t.Fatalf("zombie: running %v, stopped %v, alive %v", Running(pid), Stopped(pid), Alive(pid))
	}
}

// TestSignalServerReachesChildren: SIGKILL to a server kills every
// process under it, stopped ones and grandchildren included: none
// outlives it, handed to another parent (a stopped WAL sender would hold
// the shared memory; an archive_command would go on archiving).
func TestSignalServerReachesChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sh -c 'sleep 60 & wait' & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pm := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var under []int
	eventually(t, func() bool { under = descendants(pm); return len(under) == 3 })
	t.Cleanup(func() {
		for _, pid := range under {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if len(ChildPIDs(pm)) != 2 {
		t.Fatalf("children %v, want 2 of %v", ChildPIDs(pm), under)
	}
	if err := syscall.Kill(under[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := SignalServer(pm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append(under, pm) {
		eventually(t, func() bool { return !Running(pid) && !Stopped(pid) })
	}
	if err := SignalServer(0, syscall.SIGKILL); err == nil {
		t.Error("SignalServer(0) did not refuse")
	}
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	pgtest.Eventually(t, 10*time.Second, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
