// Package pgtest runs real PostgreSQL 15 servers for tests: a primary from a
// per-binary initdb template, a server on an existing data directory (a
// restored backup, a crashed instance), and streaming standbys.
//
// It owns the processes and temporary directories it creates and removes them
// with t.Cleanup, also when the test fails. It must only be imported from
// _test.go files and never fakes PostgreSQL.
//
// The initdb template lives in a per-process directory under os.TempDir. Call
// [Main] from TestMain to remove it when the test binary ends; otherwise the
// next test binary that uses pgtest removes the leftovers of dead processes.
//
// When the tests run as root, PostgreSQL (which refuses root) runs as the
// postgres OS user: see [AsOwner].
package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// DefaultBinDir holds the PostgreSQL 15 binaries on Debian; the env var
// BULWARK_PG_BIN overrides it.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// BinDir returns the directory of the PostgreSQL binaries: $BULWARK_PG_BIN
// when set, else DefaultBinDir.
func BinDir() string {
	if d := os.Getenv("BULWARK_PG_BIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Require skips the test under -short, or when the PostgreSQL binaries (or,
// as root, the postgres OS user) are missing. When BULWARK_TEST_REQUIRE lists
// "pg" (comma-separated, e.g. "pg,etcd"), a missing dependency fails the test
// instead of skipping it.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("pgtest: real PostgreSQL is not run under -short")
	}
	if err := checkBinaries(); err != nil {
		if required() {
			t.Fatalf("pgtest: %v (BULWARK_TEST_REQUIRE forbids skipping; run scripts/install-deps.sh)", err)
		}
		t.Skipf("pgtest: %v; skipping (run scripts/install-deps.sh)", err)
	}
}

// required reports whether BULWARK_TEST_REQUIRE asks for PostgreSQL.
func required() bool {
	parts := strings.Split(os.Getenv("BULWARK_TEST_REQUIRE"), ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return slices.Contains(parts, "pg")
}

func checkBinaries() error {
	for _, name := range []string{"initdb", "postgres", "pg_basebackup", "pgbench"} {
		p := filepath.Join(BinDir(), name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("PostgreSQL binary %s not found (set BULWARK_PG_BIN)", p)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := ownerCred(); err != nil {
			return err
		}
	}
	return nil
}

// Eventually calls fn until it returns nil, waiting a little longer between
// calls each time (up to 500 ms), and fails the test with fn's last error once
// timeout has passed. Use it instead of sleeping to wait for a condition.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := poll(timeout, fn); err != nil {
		t.Fatalf("pgtest.Eventually: %v", err)
	}
}

// permanentError makes poll give up at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// poll calls fn until it returns nil, returns a permanentError, or timeout
// passes; it returns fn's last error in the last two cases.
func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if pe := (permanentError{}); errors.As(err, &pe) {
			return pe.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v: %w", timeout, err)
		}
		time.Sleep(wait) // a poll interval, not synchronisation: fn decides
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// Main runs the tests of a package and then removes the initdb template.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	removeTemplate()
	os.Exit(code)
}
