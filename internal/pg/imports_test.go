package pg_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces STYLE.md's import rule: pg knows nothing of the
// repository format or of etcd, not even through another package.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/bulwarkdb/bulwark/internal/repo" ||
			strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/repo/") ||
			strings.HasPrefix(dep, "go.etcd.io/") {
			t.Errorf("pg depends on %s", dep)
		}
	}
}
