package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// soundPlan meets its own targets: 3 copies, disk and object storage, one
// offsite, a WAL receiver for its 30s RPO, and daily backups.
var soundPlan = func() string {
	b, err := os.ReadFile("../../internal/plan/testdata/sound.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func TestPlanCheck(t *testing.T) {
	e := newEnv(t)
	e.vars = append(e.vars, "BULWARK_REPO=", "BULWARK_PLAN=")
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sound := write("sound.yaml", soundPlan)
	// One repository, daily backups, no archiving: breaks 3-2-1 and the RPO.
	weak := write("weak.yaml", strings.NewReplacer(
		"  - name: offsite\n    url: s3://bulwark-backups/payments\n    region: eu-central-1\n    retention: {within: 30d}\n", "",
		"rpo: 30s", "rpo: 5m",
		"archiving:\n  mode: receiver\n", "",
		"  - {name: copy, cron: \"0 3 * * *\", job: sync, to: offsite}\n", "",
		"0 1 * * 1-6", "0 1 * * 1-5",
	).Replace(soundPlan))
	malformed := write("malformed.yaml", strings.Replace(soundPlan, "job: sync, to: offsite", "job: sync, to: local", 1)+"  - {name: bad, cron: \"0 0 * * 8\", job: backup, type: full}\n")

	t.Run("sound", func(t *testing.T) {
		r := e.run("plan", "check", "--plan", sound)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
		}
		want := "WARNING rto-untested service.rto: no measured restore time"
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, sound+": ok (0 errors, 1 warning)") {
			t.Errorf("stdout lacks %q and the summary:\n%s", want, r.stdout)
		}
	})
	t.Run("cannot meet its targets", func(t *testing.T) {
		r := e.run("plan", "check", weak) // the file as the argument
		if r.code != 2 {
			t.Fatalf("exit %d, want 2:\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{
			"ERROR 3-2-1-copies repositories: 2 copies of the data (the database and local); the 3-2-1 rule needs 3",
			"ERROR 3-2-1-media repositories: every copy is on disk",
			"ERROR 3-2-1-offsite repositories: no repository is offsite",
			"ERROR rpo-reach service.rpo: rpo 5m, but without WAL archiving data since the last backup is lost: backups every 2d (schedules full and incr)",
			weak + ": cannot meet its targets (4 errors, 1 warning)",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "the plan cannot meet its targets") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := e.run("plan", "check", "--plan", weak, "-o", "json")
		if r.code != 2 {
			t.Fatalf("exit %d, want 2", r.code)
		}
		var out struct {
			Plan     string
			OK       bool
			Findings []struct{ Severity, Rule, Field, Message string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("plan check -o json: %v\n%s", err, r.stdout)
		}
		if out.Plan != weak || out.OK || len(out.Findings) != 5 || out.Findings[0].Rule != "3-2-1-copies" || out.Findings[0].Severity != "error" {
			t.Errorf("got %+v", out)
		}
		r = e.run("plan", "check", "--plan", sound, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
			t.Errorf("sound plan: exit %d\n%s", r.code, r.stdout)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		r := e.run("plan", "check", "--plan", malformed)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2", r.code)
		}
		for _, want := range []string{
			malformed + ":24:52: schedules[2].to: must differ from the repository the job copies from, local",
			malformed + ":25:23: schedules[3].cron: invalid cron expression \"0 0 * * 8\": day of week field: 8 is out of range 0-7",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	})
	t.Run("no plan", func(t *testing.T) {
		if r := e.run("plan", "check"); r.code != 2 || !strings.Contains(r.stderr, "no plan") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}
