// Package e2e runs the built bulwark binary against real PostgreSQL
// servers, as a user would.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulwark-e2e")
	if err != nil {
		panic(err)
	}
	// archive_command and restore_command run it as the server's OS user.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bulwark")
	build := exec.Command("go", "build", "-o", binary, "github.com/bulwarkdb/bulwark/cmd/bulwark")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build bulwark:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	pgtest.Main(m)
}

// result is what one bulwark run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// env is a test's environment for bulwark: a repository and its passphrase.
type env struct {
	t    *testing.T
	repo string
	vars []string
	// owner runs bulwark as the server's OS user (postgres when the tests
	// run as root), as archive_command does, so that both can write the
	// repository.
	owner bool
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	return &env{t: t, repo: "file://" + filepath.Join(dir, "repo"), vars: []string{"BULWARK_REPO_PASSWORD=correct horse"}}
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "BULWARK_REPO="+e.repo), e.vars...)
	if e.owner {
		pgtest.AsOwner(cmd)
		cmd.Dir = "/"
	}
	return cmd
}

// run runs bulwark and returns what happened, whatever the exit code.
func (e *env) run(args ...string) result {
	e.t.Helper()
	r, err := e.exec(args...)
	if err != nil {
		e.t.Fatalf("run bulwark %s: %v", strings.Join(args, " "), err)
	}
	e.t.Logf("bulwark %s -> %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// exec runs bulwark and returns what it printed; it touches no test
// state, so other goroutines than the test's may call it.
func (e *env) exec(args ...string) (result, error) {
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code, err := exitCode(cmd.Run())
	return result{stdout: out.String(), stderr: errb.String(), code: code}, err
}

// ok runs bulwark and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("bulwark %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func (e *env) backupJSON(p *pgtest.Instance, typ string) map[string]any {
	e.t.Helper()
	out := e.ok("backup", "create", "--type", typ, "--pgdata", p.DataDir, "--db", p.ConnString(), "-o", "json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("backup create -o json: %v\n%s", err, out)
	}
	return m
}

// exitCode turns what exec.Cmd.Wait returned into an exit code; err is
// any failure other than a non-zero exit.
func exitCode(err error) (int, error) {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}
