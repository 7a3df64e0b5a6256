package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/localetcd"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
	"github.com/bulwarkdb/bulwark/internal/runbook"
)

var fastKDF = repo.KDFParams{N: 1 << 10, R: 8, P: 1}

// statusEnv is an empty repository and a plan naming it, in a temporary
// directory.
type statusEnv struct {
	dir, repoURL, pwFile, plan string
}

func newStatusEnv(t *testing.T) *statusEnv {
	t.Helper()
	dir := t.TempDir()
	e := &statusEnv{dir: dir, repoURL: "file://" + filepath.Join(dir, "repo"), pwFile: filepath.Join(dir, "pass")}
	if err := os.WriteFile(e.pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(t.Context(), fsstore.New(filepath.Join(dir, "repo")), []byte("pw"), repo.Options{KDF: fastKDF}); err != nil {
		t.Fatal(err)
	}
	return e
}

// writePlan writes a tier 2 plan with one repository at url and extra
// sections, and returns its path.
func (e *statusEnv) writePlan(t *testing.T, url, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`version: 1
service: {name: shop, tier: 2, rto: 30m, rpo: 5m}
postgres: {pgdata: /var/lib/postgresql/15/main}
repositories:
  - {name: local, url: "%s", password_file: %s}
drills: {history: %s}
%s`, url, e.pwFile, filepath.Join(e.dir, "drills"), extra)
	path := filepath.Join(e.dir, "bulwark.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// planJSON is the plan section of status --plan -o json.
type planJSON struct {
	Plan struct {
		Checks  []runbook.Check       `json:"checks"`
		Drills  []runbook.DrillStatus `json:"drills"`
		Errors  []string              `json:"errors"`
		Cluster *json.RawMessage      `json:"cluster"`
	} `json:"plan"`
	Repository string `json:"repository"`
	Backups    int    `json:"backups"`
}

func (pj planJSON) verdict(name string) runbook.Verdict {
	for _, c := range pj.Plan.Checks {
		if c.Name == name {
			return c.Verdict
		}
	}
	return "(missing)"
}

// cmdResult is a run of bulwark with runCLI (drillhistory_test.go).
type cmdResult struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) cmdResult {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	t.Logf("bulwark %s -> %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	return cmdResult{code, out, errOut}
}

func TestStatusWithoutPlanIsUnchanged(t *testing.T) {
	e := newStatusEnv(t)
	r := run(t, "status", "--repo", e.repoURL, "--password-file", e.pwFile)
	want := fmt.Sprintf("repository %s\narchive: empty\nbackups: none\n", e.repoURL)
	if r.code != 0 || r.stdout != want {
		t.Errorf("got exit %d, stdout %q; want 0, %q", r.code, r.stdout, want)
	}
}

func TestStatusPlanNoBackups(t *testing.T) {
	e := newStatusEnv(t)
	planFile := e.writePlan(t, e.repoURL, "archiving: {mode: receiver}\n")
	r := run(t, "status", "--plan", planFile, "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0: %s", r.code, r.stderr)
	}
	var pj planJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]runbook.Verdict{"backup": runbook.Breached, "wal": runbook.Breached, "restore": runbook.AtRisk} {
		if got := pj.verdict(name); got != want {
			t.Errorf("check %s: got %s, want %s", name, got, want)
		}
	}
	if pj.Repository != e.repoURL || len(pj.Plan.Errors) != 0 || len(pj.Plan.Drills) != 0 {
		t.Errorf("got repository %q, errors %q, drills %v; want %s, none, none", pj.Repository, pj.Plan.Errors, pj.Plan.Drills, e.repoURL)
	}

	r = run(t, "status", "--plan", planFile)
	for _, want := range []string{"plan " + planFile + ": shop, tier 2, RTO 30m, RPO 5m\n", "BREACHED  backup   no backup: there is nothing to restore\n",
		"drills (tier 2: test quarterly):\n  none: no drill has run, and drills need a cluster section\n", "\nrepository " + e.repoURL + "\n", "backups: none\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q", want)
		}
	}
}

func TestStatusPlanEtcdUnreachable(t *testing.T) {
	e := newStatusEnv(t)
	planFile := e.writePlan(t, e.repoURL, `replication: {mode: async}
cluster:
  etcd: {endpoints: ["http://127.0.0.1:1"]}
  nodes:
    - {name: db1, host: 127.0.0.1, port: 5432, api: "127.0.0.1:8008"}
    - {name: db2, host: 127.0.0.1, port: 5433, api: "127.0.0.1:8009"}
`)
	r := run(t, "status", "--plan", planFile)
	if r.code != 1 || !strings.Contains(r.stderr, "status is incomplete") {
		t.Errorf("exit %d, stderr %q; want 1 and status is incomplete", r.code, r.stderr)
	}
	for _, want := range []string{"UNKNOWN   replication  etcd could not be read", "UNREADABLE etcd http://127.0.0.1:1 (cluster shop): ",
		"  primary-crash      never run  overdue\n", "backups: none\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q", want)
		}
	}

	r = run(t, "status", "--plan", planFile, "-o", "json")
	var pj planJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil {
		t.Fatal(err)
	}
	if got := pj.verdict("replication"); got != runbook.Unknown || len(pj.Plan.Errors) != 1 || pj.Plan.Cluster != nil {
		t.Errorf("replication %s, errors %q, cluster %v; want UNKNOWN, one error, no cluster", got, pj.Plan.Errors, pj.Plan.Cluster)
	}
}

func TestStatusPlanRepositoryUnreadable(t *testing.T) {
	e := newStatusEnv(t)
	planFile := e.writePlan(t, "file://"+filepath.Join(e.dir, "nothing-here"), "")
	r := run(t, "status", "--plan", planFile, "-o", "json")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	var pj planJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil {
		t.Fatal(err)
	}
	if got := pj.verdict("backup"); got != runbook.Unknown || len(pj.Plan.Errors) != 1 || !strings.Contains(pj.Plan.Errors[0], "repository local: ") {
		t.Errorf("backup %s, errors %q; want UNKNOWN and one error naming repository local", got, pj.Plan.Errors)
	}
	if pj.Repository != "" {
		t.Errorf("repository %q in the JSON, want only the plan section", pj.Repository)
	}
}

// TestStatusPlanNoLeader reads a real etcd that no agent has written to:
// the cluster has no leader, which is BREACHED, and every member's agent
// is down.
func TestStatusPlanNoLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded etcd")
	}
	clientPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	srv, err := localetcd.Start(t.Context(), localetcd.Options{Dir: t.TempDir(), ClientURL: client, PeerURL: fmt.Sprintf("http://127.0.0.1:%d", peerPort)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e := newStatusEnv(t)
	planFile := e.writePlan(t, e.repoURL, fmt.Sprintf(`cluster:
  etcd: {endpoints: [%q]}
  nodes:
    - {name: db1, host: 127.0.0.1, port: 5432, api: "127.0.0.1:8008"}
`, client))
	r := run(t, "status", "--plan", planFile)
	if r.code != 0 {
		t.Errorf("exit %d, want 0", r.code)
	}
	for _, want := range []string{"BREACHED  replication  no leader: no node takes writes", "cluster shop  leader (none)", "db1   unknown  agent down"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q", want)
		}
	}
}
