package pgtest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ownerCred returns the credentials of the postgres OS user, looked up once.
var ownerCred = sync.OnceValues(func() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
})

// asRoot reports whether PostgreSQL must run as another OS user.
func asRoot() bool { return os.Geteuid() == 0 }

// AsOwner makes cmd run as the postgres OS user when the tests run as root,
// because PostgreSQL refuses to run as root. It is a no-op otherwise, and
// also when the postgres user does not exist (Require reports that case).
func AsOwner(cmd *exec.Cmd) {
	if !asRoot() {
		return
	}
	cred, err := ownerCred()
	if err != nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Groups is empty: drop root's supplementary groups.
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid}
}

// chownOwner gives path (not recursively) to the postgres OS user when root.
func chownOwner(path string) error {
	if !asRoot() {
		return nil
	}
	cred, err := ownerCred()
	if err != nil {
		return err
	}
	return os.Lchown(path, int(cred.Uid), int(cred.Gid))
}

// chownTree gives dir and everything below it to the postgres OS user when
// root, so that a directory restored by root can be started.
func chownTree(dir string) error {
	if !asRoot() {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return chownOwner(p)
	})
}

// tempPrefix starts the names of every directory this process creates, so
// that a later process can remove them if this one dies without cleaning up.
func tempPrefix() string { return fmt.Sprintf("bulwark-pgtest-%d-", os.Getpid()) }

// mkdirTemp creates a directory under os.TempDir named after kind, world
// traversable (0755) so that the postgres OS user can reach what is inside.
func mkdirTemp(kind string) (string, error) {
	dir, err := os.MkdirTemp("", tempPrefix()+sanitize(kind)+"-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// mkdirSocket creates a short directory for the Unix socket: its path plus
// "/.s.PGSQL.NNNNN" must fit in about 107 bytes.
func mkdirSocket() (string, error) {
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, fmt.Sprintf("pgt%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	return dir, chownOwner(dir)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func sanitize(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// Dir returns a fresh empty directory that the postgres OS user can write,
// for restore targets, repositories and WAL archives. It is removed at cleanup.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := mkdirTemp("dir")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { removeAll(t, dir) })
	if err := chownOwner(dir); err != nil {
		t.Fatalf("pgtest: chown %s: %v", dir, err)
	}
	return dir
}

func removeAll(t testing.TB, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("pgtest: remove %s: %v", dir, err)
	}
}

// ensureTraversable lets the postgres OS user reach dir when root: it adds
// the execute bits to ancestors under os.TempDir (t.TempDir makes them 0700)
// and fails for any other ancestor it cannot traverse.
func ensureTraversable(dir string) error {
	if !asRoot() {
		return nil
	}
	tmp := filepath.Clean(os.TempDir())
	for p := filepath.Dir(dir); p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
			return fmt.Errorf("%s is not traversable by the postgres user; use pgtest.Dir", p)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
			return err
		}
	}
	return nil
}

// staleName matches the directories this package creates and captures the
// id of the process that created them.
var staleName = regexp.MustCompile(`^(?:bulwark-pgtest-|pgt)(\d+)-`)

// removeStale removes directories left by earlier test processes that died
// without cleaning up (a -timeout panic, a SIGKILL).
func removeStale() { RemoveStaleDirs(staleName) }

// RemoveStaleDirs removes the directories of os.TempDir whose names match
// name, whose first submatch is the id of the process that made them, when
// that process has exited: what a test binary killed by -timeout left.
func RemoveStaleDirs(staleName *regexp.Regexp) {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // ours, or its process may still be alive
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name())) // best effort
	}
}

// WriteFile writes a file (mode 0600) that the postgres OS user owns when
// the tests run as root: a passphrase file that archive_command reads.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := chownOwner(path); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}
