package pg_test

import (
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/deptest"
)

// TestImports enforces STYLE.md's import rule: pg knows nothing of the
// repository format or of etcd, not even through another package.
func TestImports(t *testing.T) {
	deptest.Forbid(t, func(dep string) bool {
		return dep == "github.com/bulwarkdb/bulwark/internal/repo" ||
			strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/repo/") ||
			strings.HasPrefix(dep, "go.etcd.io/")
	})
}
