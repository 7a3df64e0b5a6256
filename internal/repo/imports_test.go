package repo_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces STYLE.md's import rule: the repository format knows
// nothing of PostgreSQL, not even through another package.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/jackc/"),
			strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/") && !strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/repo"):
			t.Errorf("repo depends on %s", dep)
		}
	}
}
