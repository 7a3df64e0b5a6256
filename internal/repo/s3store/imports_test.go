package s3store_test

import (
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/deptest"
)

// TestImports: a Store knows nothing of PostgreSQL, and the S3 server of
// the tests (versitygw) stays out of the binary.
func TestImports(t *testing.T) {
	deptest.Forbid(t, func(dep string) bool {
		return strings.HasPrefix(dep, "github.com/jackc/") || strings.HasPrefix(dep, "github.com/versity/") ||
			strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/") && !strings.HasPrefix(dep, "github.com/bulwarkdb/bulwark/internal/repo")
	})
}
