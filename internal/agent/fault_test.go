package agent

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pg"
)

// TestFaultEndpoint: POST /drill/fault is off without InjectFault, needs
// the token, refuses bad requests, and hands a hang to InjectFault with
// this node's PIDs. (The faults themselves run in test/e2e's drills.)
func TestFaultEndpoint(t *testing.T) {
	data := t.TempDir()
	sleeper := exec.Command("sleep", "60") // stands in for the postmaster
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	if err := os.WriteFile(filepath.Join(data, "postmaster.pid"), []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []Fault
	a := &Agent{log: slog.New(slog.DiscardHandler), o: Options{APIToken: "secret", PG: pg.Instance{DataDir: data}, Self: Node{Name: "n1"}}}
	post := func(token, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/drill/fault", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		a.auth(a.handleFault)(w, req)
		return w.Code, w.Body.String()
	}
	if code, body := post("secret", `{"fault":"hang","seconds":5}`); code != http.StatusForbidden || !strings.Contains(body, "--drill-faults") {
		t.Errorf("without InjectFault: %d %s", code, body)
	}
	acted := 0
	a.o.InjectFault = func(f Fault) (func(), error) { got = append(got, f); return func() { acted++ }, nil }
	for _, c := range []struct {
		token, body string
		code        int
		say         string
	}{
		{"", `{"fault":"hang","seconds":5}`, http.StatusUnauthorized, "bearer token"},
		{"wrong", `{"fault":"hang","seconds":5}`, http.StatusUnauthorized, "bearer token"},
		{"secret", `{"fault":`, http.StatusBadRequest, ""},
		{"secret", `{"fault":"melt"}`, http.StatusBadRequest, "unknown fault"},
		{"secret", `{"fault":"hang"}`, http.StatusBadRequest, "needs seconds"},
		{"secret", `{"fault":"node-loss","seconds":100000}`, http.StatusBadRequest, "needs seconds"},
		{"secret", `{"fault":"hang","seconds":5}`, http.StatusAccepted, `"node":"n1"`},
	} {
		if code, body := post(c.token, c.body); code != c.code || !strings.Contains(body, c.say) {
			t.Errorf("%q with token %q: %d %s, want %d and %q", c.body, c.token, code, body, c.code, c.say)
		}
	}
	want := Fault{Kind: FaultHang, Hold: 5 * time.Second, Agent: os.Getpid(), Postmaster: sleeper.Process.Pid}
	if len(got) != 1 || got[0] != want || acted != 1 {
		t.Errorf("InjectFault got %+v and acted %d times, want one %+v, acted once", got, acted, want)
	}
	os.Remove(filepath.Join(data, "postmaster.pid"))
	if code, body := post("secret", `{"fault":"crash"}`); code != http.StatusConflict || !strings.Contains(body, "not running") {
		t.Errorf("crash with PostgreSQL down: %d %s", code, body)
	}
}
