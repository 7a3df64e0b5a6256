package pg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ...: comm may hold spaces and ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i <= 0 || i+2 >= len(stat) {
		return 0, false
	}
	return stat[i+2], true
}

// SignalServer sends sig to a postmaster and to its children (backends
// and auxiliary processes). The postmaster is stopped (SIGSTOP) while its
// children are listed and signalled, so it forks none the list would
// miss, and none is handed to another parent by its death; then it gets
// sig, and a SIGCONT unless sig was SIGSTOP. A process gone meanwhile is
// no error.
func SignalServer(pm int, sig syscall.Signal) error {
	if err := Signal(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	var errs []error
	for _, pid := range ChildPIDs(pm) {
		errs = append(errs, Signal(pid, sig))
	}
	errs = append(errs, Signal(pm, sig))
	if sig != syscall.SIGSTOP {
		errs = append(errs, Signal(pm, syscall.SIGCONT))
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
func ChildPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ")".
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
