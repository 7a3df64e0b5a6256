package runbook

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func TestGrade(t *testing.T) {
	tests := []struct {
		name       string
		age, limit time.Duration
		want       Verdict
	}{
		{"fresh", time.Minute, time.Hour, OK},
		{"at three quarters", 45 * time.Minute, time.Hour, OK},
		{"past three quarters", 46 * time.Minute, time.Hour, AtRisk},
		{"at the limit", time.Hour, time.Hour, AtRisk},
		{"past the limit", time.Hour + time.Second, time.Hour, Breached},
		{"zero limit, zero age", 0, 0, OK},
		{"zero limit", time.Millisecond, 0, Breached},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Grade(tt.age, tt.limit); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// planWith parses the minimal plan of testdata with its lines replaced.
func planWith(t *testing.T, replace ...string) *plan.Plan {
	t.Helper()
	data := readFile(t, "testdata/minimal/bulwark.yaml")
	s := strings.NewReplacer(replace...).Replace(string(data))
	p, err := plan.Parse("/etc/bulwark/bulwark.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dur(d time.Duration) *time.Duration { return &d }

func TestJudgeBackup(t *testing.T) {
	noArchive := planWith(t, "rpo: 24h", "rpo: 1h")
	scheduled := planWith(t, "rpo: 24h", "rpo: 1h\narchiving: {mode: receiver}\nschedules:\n  - {name: nightly, cron: \"0 1 * * *\", job: backup, type: full}")
	tests := []struct {
		name   string
		p      *plan.Plan
		newest *time.Duration
		want   Verdict
		detail string
	}{
		{"no backups", noArchive, nil, Breached, "no backup: there is nothing to restore"},
		{"rpo rests on backups", noArchive, dur(30 * time.Minute), OK, "against an RPO of 1h"},
		{"backup older than the rpo", noArchive, dur(2 * time.Hour), Breached, "newest backup 2h0m old"},
		{"on schedule", scheduled, dur(20 * time.Hour), OK, "at least every 24h"},
		{"overdue", scheduled, dur(31 * time.Hour), AtRisk, "overdue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := JudgeBackup(tt.p, Exposure{NewestBackup: tt.newest})
			if c.Verdict != tt.want || !strings.Contains(c.Detail, tt.detail) {
				t.Errorf("got %s %q, want %s containing %q", c.Verdict, c.Detail, tt.want, tt.detail)
			}
		})
	}
}

func TestJudgeWAL(t *testing.T) {
	receiver := planWith(t, "rpo: 24h", "rpo: 1m\narchiving: {mode: receiver}")
	syncRecv := planWith(t, "rpo: 24h", "rpo: 0\narchiving: {mode: sync_receiver}")
	syncRepl := planWith(t, "rpo: 24h", "rpo: 0\narchiving: {mode: receiver}\nreplication: {mode: sync}")
	tests := []struct {
		name string
		p    *plan.Plan
		e    Exposure
		want Verdict
	}{
		{"nothing archived", receiver, Exposure{}, Breached},
		{"streaming", receiver, Exposure{Streaming: true, StreamAge: time.Second}, OK},
		{"archived long ago", receiver, Exposure{NewestWAL: dur(5 * time.Minute)}, Breached},
		{"archived recently", receiver, Exposure{NewestWAL: dur(50 * time.Second)}, AtRisk},
		{"rpo 0, synchronous receiver streams", syncRecv, Exposure{Streaming: true, Synchronous: true}, OK},
		{"rpo 0, receiver not synchronous", syncRecv, Exposure{Streaming: true}, Breached},
		{"rpo 0 held by replication, archive current", syncRepl, Exposure{Streaming: true, StreamAge: time.Second}, OK},
		{"rpo 0 held by replication, archive behind", syncRepl, Exposure{NewestWAL: dur(time.Hour)}, AtRisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := JudgeWAL(tt.p, tt.e)
			if !ok || c.Verdict != tt.want {
				t.Errorf("got %s (%v) %q, want %s", c.Verdict, ok, c.Detail, tt.want)
			}
		})
	}
	if _, ok := JudgeWAL(planWith(t), Exposure{}); ok {
		t.Error("a plan without archiving got a WAL check")
	}
}

func TestJudgeRestore(t *testing.T) {
	p := planWith(t) // tier 3, rto 4h: tested yearly
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    plan.Facts
		want Verdict
	}{
		{"never", plan.Facts{}, AtRisk},
		{"within the rto", plan.Facts{LastRestore: time.Hour, LastRestoreAt: now.AddDate(0, -1, 0)}, OK},
		{"longer than the rto", plan.Facts{LastRestore: 5 * time.Hour, LastRestoreAt: now.AddDate(0, -1, 0)}, Breached},
		{"too long ago", plan.Facts{LastRestore: time.Hour, LastRestoreAt: now.AddDate(-2, 0, 0)}, AtRisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := JudgeRestore(p, tt.f, now); c.Verdict != tt.want {
				t.Errorf("got %s %q, want %s", c.Verdict, c.Detail, tt.want)
			}
		})
	}
}

func TestJudgeDrills(t *testing.T) {
	p := loadPlan(t, "testdata/full") // tier 1: monthly
	latest := loadFacts(t, "testdata/full").Drills
	now := time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)
	got := map[string]DrillStatus{}
	for _, d := range JudgeDrills(p, latest, now) {
		got[d.Scenario] = d
	}
	for _, s := range drill.Scenarios {
		if _, ok := got[s]; !ok {
			t.Errorf("scenario %s is missing", s)
		}
	}
	if d := got[drill.NodeLoss]; !d.Ran || d.Passed || d.Overdue {
		t.Errorf("node-loss: got %+v, want the failed run of 2026-11-25, not overdue", d)
	}
	if d := got[drill.RestoreTest]; !d.Ran || !d.Overdue {
		t.Errorf("restore-test: got %+v, want a run of 2026-11-20, overdue", d)
	}
	if d := got[drill.PrimaryHang]; d.Ran || !d.Overdue {
		t.Errorf("primary-hang: got %+v, want never run, overdue", d)
	}
}

func TestJudgeReplication(t *testing.T) {
	p := loadPlan(t, "testdata/full") // db1, db2, db3; sync
	member := func(name string, role cluster.Role, state string, lsn wal.LSN) cluster.Member {
		return cluster.Member{Name: name, Role: role, State: state, LSN: lsn}
	}
	healthy := func() cluster.Snapshot {
		return cluster.Snapshot{
			Leader: &cluster.Leader{Name: "db1", Term: 3},
			Members: map[string]cluster.Member{
				"db1": member("db1", cluster.RolePrimary, "running", 0x5000000),
				"db2": member("db2", cluster.RoleReplica, "streaming", 0x5000000),
				"db3": member("db3", cluster.RoleReplica, "streaming", 0x4FFF000),
			},
			Sync:   &cluster.Sync{Leader: "db1", Standbys: []string{"db2"}, Quorum: 1},
			Config: &cluster.Config{},
		}
	}
	tests := []struct {
		name   string
		change func(*cluster.Snapshot)
		want   Verdict
		detail string
	}{
		{"healthy", func(*cluster.Snapshot) {}, OK, "leader db1 (term 3), synchronous standbys db2 (1 needed)"},
		{"no leader", func(s *cluster.Snapshot) { s.Leader = nil }, Breached, "no leader"},
		{"agent down", func(s *cluster.Snapshot) { delete(s.Members, "db3") }, AtRisk, "db3's agent is down"},
		{"paused", func(s *cluster.Snapshot) { s.Config.Paused = true }, AtRisk, "paused"},
		{"lagging", func(s *cluster.Snapshot) {
			s.Members["db3"] = member("db3", cluster.RoleReplica, "streaming", 0x4000000)
		}, AtRisk, "db3 is 16.0 MiB behind"},
		{"not synchronous", func(s *cluster.Snapshot) { s.Sync = nil }, AtRisk, "no standby is synchronous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := healthy()
			tt.change(&snap)
			c := JudgeReplication(p, snap)
			if c.Verdict != tt.want || !strings.Contains(c.Detail, tt.detail) {
				t.Errorf("got %s %q, want %s containing %q", c.Verdict, c.Detail, tt.want, tt.detail)
			}
		})
	}
}
