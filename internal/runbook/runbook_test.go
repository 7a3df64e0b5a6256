package runbook

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/deptest"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/goldentest"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// TestGolden renders the runbook of each plan in testdata/NAME/bulwark.yaml,
// with the drill results in testdata/NAME/drills, and compares it with
// testdata/NAME/runbook.md and runbook.json. Regenerate them with
// go test ./internal/runbook -update and review the diff.
func TestGolden(t *testing.T) {
	for _, name := range []string{"full", "minimal"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			rb := Build(loadPlan(t, dir), loadFacts(t, dir))
			var md, js bytes.Buffer
			if err := rb.Markdown(&md); err != nil {
				t.Fatal(err)
			}
			if err := rb.JSON(&js); err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, filepath.Join(dir, "runbook.md"), md.Bytes())
			goldentest.Check(t, filepath.Join(dir, "runbook.json"), js.Bytes())
		})
	}
}

// loadPlan parses dir/bulwark.yaml as if it were /etc/bulwark/bulwark.yaml,
// so that the commands in the runbook look as they would in production.
func loadPlan(t *testing.T, dir string) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("/etc/bulwark/bulwark.yaml", readFile(t, filepath.Join(dir, "bulwark.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func loadFacts(t *testing.T, dir string) Facts {
	t.Helper()
	latest, err := drill.History{Dir: filepath.Join(dir, "drills")}.Latest()
	if err != nil {
		t.Fatal(err)
	}
	return Facts{Drills: latest, Restore: RestoreFromDrills(latest)}
}

func TestHistoryErrorIsShown(t *testing.T) {
	p := loadPlan(t, filepath.Join("testdata", "minimal"))
	var md bytes.Buffer
	if err := Build(p, Facts{DrillsError: "drill history: x/result.json: unexpected end of JSON input"}).Markdown(&md); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md.Bytes(), []byte("could not be read in full: drill history: x/result.json")) {
		t.Errorf("the history error is not in the runbook:\n%s", md.String())
	}
}

// TestPure: the runbook is a function of the plan and the facts; it does
// no I/O of its own.
func TestPure(t *testing.T) {
	deptest.ForbidImports(t, func(dep string) bool {
		switch dep {
		case "os", "os/exec", "net", "net/http", "database/sql":
			return true
		}
		return false
	})
}

func TestCommandQuotesThePlanPath(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/etc/bulwark/bulwark.yaml", "bulwark status --plan /etc/bulwark/bulwark.yaml"},
		{"/srv/my plans/bulwark.yaml", "bulwark status --plan '/srv/my plans/bulwark.yaml'"},
		{"/srv/it's/bulwark.yaml", `bulwark status --plan '/srv/it'\''s/bulwark.yaml'`},
	}
	for _, tt := range tests {
		if got := command(tt.path, "status"); got != tt.want {
			t.Errorf("command(%q): got %q, want %q", tt.path, got, tt.want)
		}
	}
}
