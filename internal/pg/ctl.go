package pg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Instance is one local PostgreSQL data directory and the binaries that run
// it. Its methods run PostgreSQL's own tools (initdb, pg_ctl, pg_basebackup,
// pg_rewind, pg_controldata) as the current OS user, which must own DataDir.
// An Instance holds no state between calls: every method looks at the data
// directory afresh, so one crashed or restarted behind its back is seen.
type Instance struct {
	BinDir  string // directory of pg_ctl and friends
	DataDir string
	// LogFile is the server log pg_ctl start writes to. "" means
	// DataDir + ".log", beside the data directory rather than in it:
	// pg_rewind and pg_basebackup overwrite a log inside it with the
	// source's.
	LogFile string
	// RunAs runs the tools as another OS user (root starting a server
	// for postgres); nil: as the current user.
	RunAs *syscall.Credential
	// Settings are passed to the server by Start with -c, over whatever
	// its configuration files say.
	Settings map[string]string
}

// ErrNoDataDir means DataDir does not hold an initialized cluster.
var ErrNoDataDir = errors.New("no PostgreSQL data directory")

// Initialized says whether DataDir holds a cluster (its PG_VERSION).
func (i *Instance) Initialized() bool {
	_, err := os.Stat(filepath.Join(i.DataDir, "PG_VERSION"))
	return err == nil
}

// run runs a tool from BinDir and returns its combined output; a failure
// carries the last lines of it.
func (i *Instance) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(i.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGAPPNAME=bulwark")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server a tool starts must not die with the agent: pg_ctl
	// daemonizes postgres, and a new session keeps signals aimed at the
	// agent's process group (a terminal's ^C) away from it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: i.RunAs}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, tail(out.String(), 5))
	}
	return out.String(), nil
}

// tail returns the last n lines of s, joined with " | ".
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Initdb creates the cluster with data checksums (pg_rewind needs them or
// wal_log_hints).
func (i *Instance) Initdb(ctx context.Context, extra ...string) error {
	args := append([]string{"-D", i.DataDir, "--data-checksums", "-U", "postgres", "-E", "UTF8", "--locale=C"}, extra...)
	_, err := i.run(ctx, "initdb", args...)
	return err
}

func (i *Instance) logFile() string {
	if i.LogFile != "" {
		return i.LogFile
	}
	return filepath.Clean(i.DataDir) + ".log"
}

// Start starts the server and waits until it accepts connections or, for a
// standby, until it has reached a consistent state (pg_ctl -w), at most
// timeout.
func (i *Instance) Start(ctx context.Context, timeout time.Duration) error {
	if err := i.removeStaleLocks(); err != nil {
		return err
	}
	args := []string{"start", "-D", i.DataDir, "-w", "-t", seconds(timeout), "-l", i.logFile()}
	if len(i.Settings) > 0 {
		var opts []string
		for _, k := range slices.Sorted(maps.Keys(i.Settings)) {
			// pg_ctl hands -o to a shell: quote for sh; postgres
			// takes the value of -c as it is.
			opts = append(opts, "-c '"+strings.ReplaceAll(k+"="+i.Settings[k], "'", `'\''`)+"'")
		}
		args = append(args, "-o", strings.Join(opts, " "))
	}
	_, err := i.run(ctx, "pg_ctl", args...)
	return err
}

// removeStaleLocks removes the lock files of a postmaster that is not
// running: postmaster.pid and its Unix socket's lock. PostgreSQL removes
// them itself when their PID is dead, but a postmaster killed a moment ago
// may still be a zombie its parent has not reaped (a container's PID 1
// may reap slowly), which PostgreSQL counts as running. The shared-memory
// check still refuses a start while orphaned backends live.
func (i *Instance) removeStaleLocks() error {
	if _, ok := i.PID(); ok {
		return nil
	}
	pidFile := filepath.Join(i.DataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// postmaster.pid: PID, data directory, start time, port, first
	// socket directory, ...
	lines := strings.Split(string(data), "\n")
	if len(lines) > 4 && lines[4] != "" {
		sock := filepath.Join(lines[4], ".s.PGSQL."+strings.TrimSpace(lines[3])+".lock")
		if lock, err := os.ReadFile(sock); err == nil {
			if first, _, _ := strings.Cut(string(lock), "\n"); strings.TrimSpace(first) == strings.TrimSpace(lines[0]) {
				os.Remove(sock)
			}
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale postmaster.pid: %w", err)
	}
	return nil
}

// Stop stops the server with mode ("fast" or "immediate") and waits. A
// server that is not running is not an error.
func (i *Instance) Stop(ctx context.Context, mode string, timeout time.Duration) error {
	if _, ok := i.PID(); !ok {
		return nil
	}
	_, err := i.run(ctx, "pg_ctl", "stop", "-D", i.DataDir, "-m", mode, "-w", "-t", seconds(timeout))
	if _, ok := i.PID(); !ok {
		return nil // stopped meanwhile (or by someone else)
	}
	return err
}

// Promote ends recovery of a standby (pg_ctl promote) and waits until it
// accepts writes.
func (i *Instance) Promote(ctx context.Context, timeout time.Duration) error {
	_, err := i.run(ctx, "pg_ctl", "promote", "-D", i.DataDir, "-w", "-t", seconds(timeout))
	return err
}

// Reload sends SIGHUP to the postmaster so that it rereads its configuration.
func (i *Instance) Reload() error {
	pid, ok := i.PID()
	if !ok {
		return errors.New("reload: server not running")
	}
	return syscall.Kill(pid, syscall.SIGHUP)
}

func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// PID returns the postmaster's PID if the server is running: postmaster.pid
// names a live process. A PID reused by another program after a crash
// counts as running until PostgreSQL's own start notices; pg_ctl does the
// same.
func (i *Instance) PID() (int, bool) {
	data, err := os.ReadFile(filepath.Join(i.DataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// EPERM: a process of another user, so not this data directory's
	// postmaster (a PID reused after a reboot); PostgreSQL judges alike.
	if !Alive(pid) {
		return 0, false
	}
	return pid, true
}

// Control is what pg_controldata says about a stopped (or running) cluster.
type Control struct {
	SystemID    uint64
	State       string // "in production", "shut down", "shut down in recovery", "in archive recovery", ...
	Checkpoint  wal.LSN
	Timeline    wal.TimelineID // of the latest checkpoint
	MinRecovery wal.LSN        // minimum recovery ending location; 0 if none
	// MinRecoveryTimeline is MinRecovery's timeline: after a pg_rewind or
	// a replay across a promotion, a newer one than the checkpoint's.
	MinRecoveryTimeline wal.TimelineID
}

// Controldata reads pg_control with pg_controldata.
func (i *Instance) Controldata(ctx context.Context) (Control, error) {
	if !i.Initialized() {
		return Control{}, ErrNoDataDir
	}
	out, err := i.run(ctx, "pg_controldata", "-D", i.DataDir)
	if err != nil {
		return Control{}, err
	}
	return parseControldata(out)
}

func parseControldata(out string) (Control, error) {
	var c Control
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var err error
	if c.SystemID, err = strconv.ParseUint(fields["Database system identifier"], 10, 64); err != nil {
		return Control{}, fmt.Errorf("pg_controldata: system identifier: %w", err)
	}
	c.State = fields["Database cluster state"]
	if c.Checkpoint, err = wal.ParseLSN(fields["Latest checkpoint location"]); err != nil {
		return Control{}, fmt.Errorf("pg_controldata: checkpoint: %w", err)
	}
	tli, err := strconv.ParseUint(fields["Latest checkpoint's TimeLineID"], 10, 32)
	if err != nil {
		return Control{}, fmt.Errorf("pg_controldata: timeline: %w", err)
	}
	c.Timeline = wal.TimelineID(tli)
	c.MinRecovery, _ = wal.ParseLSN(fields["Minimum recovery ending location"])
	if n, err := strconv.ParseUint(fields["Min recovery ending loc's timeline"], 10, 32); err == nil {
		c.MinRecoveryTimeline = wal.TimelineID(n)
	}
	return c, nil
}

// Clone copies a running server into DataDir with pg_basebackup, streaming
// the WAL it needs, using a replication connection described by conn. DataDir
// must be absent or empty; a failed clone removes what it wrote.
func (i *Instance) Clone(ctx context.Context, conn string) error {
	if err := os.MkdirAll(i.DataDir, 0o700); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if entries, err := os.ReadDir(i.DataDir); err != nil || len(entries) > 0 {
		return fmt.Errorf("clone into %s: directory is not empty", i.DataDir)
	}
	_, err := i.run(ctx, "pg_basebackup", "-D", i.DataDir, "-d", conn, "-X", "stream", "-c", "fast", "--no-password")
	if err != nil {
		return errors.Join(err, i.Wipe())
	}
	return nil
}

// Wipe removes everything in DataDir but the directory itself. The server
// must be stopped.
func (i *Instance) Wipe() error {
	if _, ok := i.PID(); ok {
		return errors.New("wipe: server is running")
	}
	entries, err := os.ReadDir(i.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(i.DataDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Rewind is what pg_rewind did.
type Rewind struct {
	Needed   bool           // false: "no rewind required"
	Diverged wal.LSN        // where the timelines diverged
	Timeline wal.TimelineID // on which timeline
	OldEnd   wal.LSN        // the end of the target's WAL before the rewind (its last checkpoint)
}

var divergedRE = regexp.MustCompile(`servers diverged at WAL location ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)`)

// RewindFrom makes the stopped server in DataDir a copy of the source
// server as of their common history (pg_rewind). pg_rewind first completes
// crash recovery in single-user mode if the server did not shut down
// cleanly. OldEnd is the server's last checkpoint before the rewind: the
// caller may know a later LSN.
func (i *Instance) RewindFrom(ctx context.Context, conn string) (Rewind, error) {
	before, err := i.Controldata(ctx)
	if err != nil {
		return Rewind{}, err
	}
	out, err := i.run(ctx, "pg_rewind", "-D", i.DataDir, "--source-server", conn)
	if err != nil {
		return Rewind{}, err
	}
	r := Rewind{OldEnd: before.Checkpoint}
	if m := divergedRE.FindStringSubmatch(out); m != nil {
		r.Needed = !strings.Contains(out, "no rewind required")
		r.Diverged, _ = wal.ParseLSN(m[1])
		tli, _ := strconv.ParseUint(m[2], 10, 32)
		r.Timeline = wal.TimelineID(tli)
	}
	return r, nil
}
