// Package deptest enforces STYLE.md's import rules from a package's own
// tests: which modules and packages it may not depend on, directly or not.
// It is imported from _test.go files only.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t for every dependency of the package in the current
// directory (transitive, as go list -deps reports them) that forbidden
// reports.
func Forbid(t *testing.T, forbidden func(dep string) bool) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if forbidden(dep) {
			t.Errorf("depends on %s", dep)
		}
	}
}

// ForbidImports is Forbid for the package's direct imports only (go list
// .Imports), for rules about what a package itself may use.
func ForbidImports(t *testing.T, forbidden func(dep string) bool) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if forbidden(dep) {
			t.Errorf("imports %s", dep)
		}
	}
}
