package repo_test

import (
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/deptest"
)

// TestImports enforces STYLE.md's import rule: the repository format knows
// nothing of PostgreSQL, not even through another package.
func TestImports(t *testing.T) {
	deptest.Forbid(t, func(dep string) bool {
		return strings.HasPrefix(dep, "github.com/jackc/") ||
			strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/") && !strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/repo")
	})
}
