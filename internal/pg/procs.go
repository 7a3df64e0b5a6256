package pg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Alive reports whether process pid runs and may be signalled by this
// one. A killed process whose parent has not reaped it yet (a container's
// PID 1 may reap slowly) is a zombie: dead, though kill(pid, 0) succeeds.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	state, ok := procState(pid)
	return !ok || state != 'Z' // no /proc: trust kill
}

// Stopped reports whether process pid is stopped by a signal (SIGSTOP).
func Stopped(pid int) bool {
	state, ok := procState(pid)
	return ok && state == 'T'
}

// Running reports whether process pid runs: it exists, is not stopped
// by a signal, and has not exited (a zombie, which its parent has not
// reaped, has).
func Running(pid int) bool {
	state, ok := procState(pid)
	return ok && !strings.ContainsRune("TtZX", rune(state))
}

// procState is the state letter /proc/PID/stat gives.
func procState(pid int) (byte, bool) {
	f := statFields(pid)
	if len(f) < 1 || f[0] == "" {
		return 0, false
	}
	return f[0][0], true
}

// statFields are the fields of /proc/PID/stat after the command name:
// state, ppid, and so on; nil if the process is gone.
func statFields(pid int) []string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	// pid (comm) state ppid ...: comm may hold spaces and ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i <= 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// SignalServer sends sig to a postmaster and to every process under it
// (backends, auxiliary processes, and what they run, such as an
// archive_command). The postmaster is stopped (SIGSTOP) first, and the
// processes under it are listed once it is, so it forks none the list
// would miss, and none is handed to another parent by its death; then it
// gets sig, and a SIGCONT unless sig is SIGSTOP. A process gone
// meanwhile is no error.
func SignalServer(pm int, sig syscall.Signal) error {
	if pm <= 0 {
		return fmt.Errorf("no postmaster PID (%d)", pm)
	}
	if err := Signal(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	// kill returns before the signal takes effect.
	for deadline := time.Now().Add(time.Second); !Stopped(pm) && Alive(pm) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	var errs []error
	for _, pid := range descendants(pm) {
		errs = append(errs, Signal(pid, sig))
	}
	if sig != syscall.SIGSTOP {
		errs = append(errs, Signal(pm, sig), Signal(pm, syscall.SIGCONT))
	}
	return errors.Join(errs...)
}

// Signal sends sig to pid; a process already gone is no error.
func Signal(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// ChildPIDs lists the processes whose parent is pid (a postmaster's
// backends and auxiliary processes), from /proc. Those that exit while it
// reads are left out.
func ChildPIDs(pid int) []int { return parents()[pid] }

// descendants lists the processes under pid, children first.
func descendants(pid int) []int {
	tree := parents()
	var out []int
	for next := []int{pid}; len(next) > 0; {
		p := next[0]
		next = append(next[1:], tree[p]...)
		out = append(out, tree[p]...)
	}
	return out
}

// parents maps each process's parent to its children, from /proc.
func parents() map[int][]int {
	entries, _ := os.ReadDir("/proc")
	tree := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				tree[ppid] = append(tree[ppid], child)
			}
		}
	}
	return tree
}
