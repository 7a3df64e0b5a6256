package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/drill"
)

// drillPlan writes a plan whose drill history (the default, "drills"
// beside it) holds a failed node-loss drill and, later, a passed
// primary-crash drill, saved out of order.
func drillPlan(t *testing.T) string {
	t.Helper()
	plan, err := os.ReadFile("../plan/testdata/sound.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bulwark.yaml")
	if err := os.WriteFile(path, plan, 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	crash := drill.Result{ID: "20261124T110000Z-primary-crash", Scenario: drill.PrimaryCrash, Started: t0.Add(time.Hour),
		Runs: []drill.Run{{Passed: true, ClientRTOS: 4.2}, {Passed: true, ClientRTOS: 6.1}}}
	loss := drill.Result{ID: "20261124T100000Z-node-loss", Scenario: drill.NodeLoss, Started: t0,
		Runs: []drill.Run{{ClientRTOS: 7.5, AckedLost: 12, RPOS: 0.8}}}
	h := drill.History{Dir: filepath.Join(dir, "drills")}
	for _, r := range []drill.Result{crash, loss} {
		drill.Summarize(&r, 30*time.Second, 0)
		d, err := h.Save(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := drill.Render(d, &r); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Execute(context.Background(), args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func TestDrillHistory(t *testing.T) {
	plan := drillPlan(t)
	drills := filepath.Join(filepath.Dir(plan), "drills")

	t.Run("text, newest last", func(t *testing.T) {
		code, out, errOut := runCLI(t, "drill", "history", "--plan", plan)
		if code != 0 {
			t.Fatalf("exit %d, want 0: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := []string{
			"ID  SCENARIO  RUNS  RESULT  RTO  MEDIAN  RTO  MAX  ACKED  LOST  REPORT", // fields, as compared
			"20261124T100000Z-node-loss  node-loss  1  FAIL  7.500s  7.500s  12  " + filepath.Join(drills, "20261124T100000Z-node-loss", "report.html"),
			"20261124T110000Z-primary-crash  primary-crash  2  PASS  4.200s  6.100s  0  " + filepath.Join(drills, "20261124T110000Z-primary-crash", "report.html"),
		}
		if len(lines) != len(want) {
			t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
		}
		for i, l := range lines {
			if got := strings.Join(strings.Fields(l), "  "); got != want[i] {
				t.Errorf("line %d: got %q, want %q", i, got, want[i])
			}
		}
	})
	t.Run("json, one scenario", func(t *testing.T) {
		code, out, errOut := runCLI(t, "drill", "history", "--plan", plan, "--scenario", drill.NodeLoss, "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d, want 0: %s", code, errOut)
		}
		var got []drill.Result
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(got) != 1 || got[0].ID != "20261124T100000Z-node-loss" || got[0].Passed || got[0].Runs[0].AckedLost != 12 {
			t.Errorf("got %+v, want the node-loss drill alone, failed with 12 writes lost", got)
		}
	})
	t.Run("json, nothing kept", func(t *testing.T) {
		code, out, _ := runCLI(t, "drill", "history", "--plan", plan, "--scenario", drill.Switchover, "-o", "json")
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("got exit %d and %q, want 0 and []", code, out)
		}
	})
	t.Run("without a plan", func(t *testing.T) {
		if code, _, errOut := runCLI(t, "drill", "history"); code != 2 || !strings.Contains(errOut, "--plan") {
			t.Errorf("got exit %d, %q; want 2 and a word about --plan", code, errOut)
		}
	})
	t.Run("an unreadable result fails after listing the others", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(drills, "broken"), 0o755); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "drill", "history", "--plan", plan)
		if code != 1 || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "broken") {
			t.Errorf("got exit %d, stdout %q, stderr %q; want 1, the two drills and the broken one named", code, out, errOut)
		}
	})
}
