package ha_test

import (
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/deptest"
)

// TestImports enforces STYLE.md's rule that ha decides purely: no files,
// processes, network, SQL or etcd, (through cluster it sees only types).
func TestImports(t *testing.T) {
	deptest.ForbidImports(t, func(dep string) bool {
		switch dep {
		case "os", "os/exec", "net", "net/http", "database/sql":
			return true
		}
		return strings.HasPrefix(dep, "go.etcd.io/") || strings.HasPrefix(dep, "github.com/jackc/")
	})
}
