package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PgBin returns the path of the PostgreSQL program name (psql, pgbench,
// pg_controldata...) in BinDir.
func (i *Instance) PgBin(name string) string { return filepath.Join(BinDir(), name) }

// Env returns the environment of the current process plus PGHOST, PGPORT,
// PGUSER, PGDATABASE and PGSSLMODE pointing at the instance.
func (i *Instance) Env() []string {
	return append(os.Environ(),
		"PGHOST=127.0.0.1",
		"PGPORT="+strconv.Itoa(i.Port),
		"PGUSER=postgres",
		"PGDATABASE=postgres",
		"PGSSLMODE=disable")
}

// Command returns a command running the client program name from BinDir
// against the instance (see Env). It runs as the current OS user: call
// AsOwner for programs that write files the server will own.
func (i *Instance) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(i.PgBin(name), args...)
	cmd.Env = i.Env()
	return cmd
}

// Pgbench runs pgbench with args against the instance, for example
// ("-i", "-s", "5") or ("-t", "1000", "-c", "4"), logs its output and fails
// the test if it exits non-zero.
func (i *Instance) Pgbench(t testing.TB, args ...string) {
	t.Helper()
	cmd := i.Command("pgbench", args...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s: pgbench %s\n%s", i.Name, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("pgtest: %s: pgbench %s: %v", i.Name, strings.Join(args, " "), err)
	}
}
