package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// TestSchedule runs the plan's jobs with schedule --run-now (as a CronJob
// or a systemd timer would), checks the history, and runs the long-lived
// scheduler with its metrics endpoint until SIGTERM.
func TestSchedule(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	p.Exec(t, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
	dir := t.TempDir()
	planFile := filepath.Join(dir, "bulwark.yaml")
	err := os.WriteFile(planFile, []byte(`version: 1
service: {name: payments, tier: 2, rto: 1h, rpo: 1h}
postgres:
  pgdata: `+p.DataDir+`
  db: "`+p.ConnString()+`"
repositories:
  - {name: local, url: "file://`+filepath.Join(dir, "local")+`", retention: {full: 1}}
  - {name: offsite, url: "file://`+filepath.Join(dir, "offsite")+`"}
schedules:
  - {name: full, cron: "0 1 * * 0", job: backup, type: full}
  - {name: copy, cron: "0 3 * * *", job: sync, to: offsite}
  - {name: expire, cron: "0 4 * * *", job: expire}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.vars = append(e.vars, "BULWARK_REPO=", "BULWARK_PLAN="+planFile)
	e.ok("repo", "init")
	history := filepath.Join(dir, "history.jsonl")
	for _, job := range []string{"full", "full", "copy", "expire"} {
		e.ok("schedule", "--run-now", job, "--history", history)
	}
	if r := e.run("schedule", "--run-now", "nonesuch", "--history", history); r.code != 2 {
		t.Errorf("--run-now of an unknown job: exit %d, want 2", r.code)
	}
	b, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var o struct {
			Job string `json:"job"`
			OK  bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil || !o.OK {
			t.Fatalf("history line %q: %v", line, err)
		}
		jobs = append(jobs, o.Job)
	}
	if fmt.Sprint(jobs) != "[full full copy expire]" {
		t.Fatalf("history jobs %v", jobs)
	}
	// expire (full: 1) left one backup in local; the copy got both.
	var list []any
	json.Unmarshal([]byte(e.ok("backup", "list", "-o", "json")), &list)
	if len(list) != 1 {
		t.Errorf("local holds %d backups after expire, want 1", len(list))
	}
	json.Unmarshal([]byte(e.ok("backup", "list", "--repo", "offsite", "-o", "json")), &list)
	if len(list) != 2 {
		t.Errorf("offsite holds %d backups, want 2", len(list))
	}

	// The long-lived scheduler: metrics and health, then SIGTERM.
	addr, err := pgtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.command("schedule", "--history", history, "--metrics-addr", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("healthz: %q", body)
		}
		return nil
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scheduler after SIGTERM: %v", err)
	}
}
