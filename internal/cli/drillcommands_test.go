package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/plan"
)

// TestRunFaultCommand: a command's failure carries its output, not the
// command; a command cut short takes everything it started with it; one
// that leaves a process holding its output still succeeds.
func TestRunFaultCommand(t *testing.T) {
	ctx := t.Context()
	env := []string{"BULWARK_FAULT=network-partition"}
	out, err := runFaultCommand(ctx, "--fault-command", `printf 'n1\n'; echo "$BULWARK_FAULT" >&2`, env)
	if err != nil || string(out) != "n1\n" {
		t.Fatalf("ok command: %q, %v", out, err)
	}

	_, err = runFaultCommand(ctx, "--fault-command", `printf 'no such %s\n' firewall >&2; exit 3`, env)
	if err == nil || !strings.Contains(err.Error(), "no such firewall") || strings.Contains(err.Error(), "printf") {
		t.Errorf("failing command: %v", err)
	}

	late := filepath.Join(t.TempDir(), "late")
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = runFaultCommand(short, "--heal-command", "(sleep 1; touch "+late+") & sleep 30", env)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("cut short: %v after %s", err, time.Since(start))
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(late); err == nil {
		t.Error("a process the cut-short command started went on and did its work")
	}

	if _, err := runFaultCommand(ctx, "--heal-command", "sleep 3 & echo healed", env); err != nil {
		t.Errorf("a command that leaves a process holding its output: %v", err)
	}
}

// TestCommandFaultsHealAgain: a heal command that failed is run again at
// the next Heal, and not after it succeeded.
func TestCommandFaultsHealAgain(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "heals")
	c := &plan.Cluster{Name: "c", Nodes: []plan.Node{{Name: "n1", Host: "h1", Port: 5432}, {Name: "n2", Host: "h2", Port: 5432}}}
	f := &commandFaults{Faults: noFaults{}, ctx: t.Context(), c: c,
		fault: "true",
		heal:  "echo x >>" + count + "; test $(wc -l <" + count + ") -ge 2"}
	if err := f.Partition("n1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Heal(t.Context()); err == nil {
		t.Fatal("the first heal, made to fail, did not")
	}
	for range 2 {
		if err := f.Heal(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(count)
	if n := strings.Count(string(data), "x"); n != 2 {
		t.Errorf("the heal command ran %d times, want 2", n)
	}
	if err := f.Partition("n9"); err == nil || errors.Is(err, errNoFault) {
		t.Errorf("a node not in the plan: %v", err)
	}
}
