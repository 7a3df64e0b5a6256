package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
)

// drill runs bulwark drill run with args and decodes its JSON.
func (c *haCluster) drill(wantCode int, args ...string) drill.Result {
	c.t.Helper()
	return c.drillResult(c.e.run(c.drillArgs(args...)...), wantCode, args)
}

// drillArgs is the command line of a drill run with args.
func (c *haCluster) drillArgs(args ...string) []string {
	return append([]string{"drill", "run", "--plan", c.plan, "-o", "json"}, args...)
}

// drillResult decodes r, the output of drill run with args, and fails the
// test unless it exited with wantCode.
func (c *haCluster) drillResult(r result, wantCode int, args []string) drill.Result {
	c.t.Helper()
	var res drill.Result
	err := json.Unmarshal([]byte(r.stdout), &res)
	if r.code != wantCode {
		var failures []string
		for _, run := range res.Runs {
			failures = append(failures, run.Failures...)
		}
		c.t.Fatalf("drill run %v: exit %d, want %d; failures %q\nstderr: %s", args, r.code, wantCode, failures, tailLines(r.stderr, 30))
	}
	if err != nil {
		c.t.Fatalf("drill run %v: %v\n%s", args, err, r.stdout)
	}
	return res
}

// TestDrillScenarios runs every scenario once against a sync cluster:
// each passes, loses no acknowledged write, sees no split brain, leaves
// the replicas consistent and the old primary rejoined, and is kept in the
// history with its reports.
func TestDrillScenarios(t *testing.T) {
	c := startCluster(t, "--replication", "sync", "--crash-restarts", "0")
	c.waitSync(60 * time.Second)
	for _, s := range drill.Scenarios {
		switch s {
		case drill.RestoreTest:
			continue // TestDrillRestoreTest: it needs a backup and archived WAL
		case drill.EtcdMemberLoss, drill.NetworkPartition:
			// TestDrillEtcdMemberLoss and TestDrillNetworkPartition: this
			// cluster has one etcd member and no links to cut.
			flag := map[string]string{drill.EtcdMemberLoss: "--etcd-members 3", drill.NetworkPartition: "--links"}[s]
			if r := c.e.run(c.drillArgs("--scenario", s)...); r.code != 2 || !strings.Contains(r.stderr, flag) {
				t.Errorf("%s on a cluster made without %s: exit %d, want 2: %s", s, flag, r.code, r.stderr)
			}
			continue
		}
		res := c.drill(0, "--scenario", s)
		if len(res.Runs) != 1 {
			t.Fatalf("%s: %d runs", s, len(res.Runs))
		}
		r := res.Runs[0]
		t.Logf("%s: %s -> %s, detection %.3fs, failover %.3fs, client RTO %.3fs, %d acked, %d lost, reconnect %.3fs",
			s, r.OldPrimary, r.NewPrimary, r.DetectionS, r.FailoverS, r.ClientRTOS, r.AckedWrites, r.AckedLost, r.ReconnectS)
		if !res.Passed || !r.Passed || r.AckedLost != 0 || r.SplitBrain || !r.Consistent || !r.Rejoined || r.AckedWrites == 0 {
			t.Errorf("%s: %+v", s, r)
		}
		if s == drill.NodeLoss || s == drill.Switchover || s == drill.PrimaryHang || s == drill.PrimaryCrash {
			if r.NewPrimary == r.OldPrimary {
				t.Errorf("%s: the primary did not change (%s)", s, r.OldPrimary)
			}
		}
		if _, err := os.Stat(res.Reports["html"]); err != nil {
			t.Errorf("%s: HTML report: %v", s, err)
		}
	}
	out := c.e.ok("drill", "history", "--plan", c.plan)
	for _, s := range drill.Scenarios {
		if s != drill.RestoreTest && s != drill.EtcdMemberLoss && s != drill.NetworkPartition && !strings.Contains(out, s) {
			t.Errorf("drill history lacks %s:\n%s", s, out)
		}
	}
}

// TestDrillCatchesLostWrites: an async cluster whose replicas lag (the
// primary's WAL senders frozen) loses acknowledged writes when its primary's node
// is lost; with an RPO of 0 the drill fails (exit 5) and names them.
func TestDrillCatchesLostWrites(t *testing.T) {
	c := startCluster(t, "--crash-restarts", "0")
	st := c.waitHealthy(30 * time.Second)
	c.e.ok("cluster", "config", "set", "--plan", c.plan, "maximum_lag_on_failover=1073741824")
	plan, err := os.ReadFile(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.WriteFile(t, c.plan, []byte(strings.Replace(string(plan), "rpo: 30s", "rpo: 0s", 1)))

	// The drill runs beside the test goroutine: only that one may fail the
	// test, so the goroutine hands over what bulwark printed.
	args := []string{"--scenario", drill.NodeLoss}
	type ran struct {
		r   result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		r, err := c.e.exec(c.drillArgs(args...)...)
		done <- ran{r, err}
	}()
	// Once every replica has some of the drill's rows, freeze the
	// primary's WAL senders: what the workload commits from then on never
	// leaves the primary, which the drill kills 3 s after it started.
	// (Freezing the replicas' WAL receivers instead lets WAL through: the
	// primary goes on sending into the socket, and a receiver woken for
	// the promotion may read it before it exits.) A sender started later
	// (a receiver that gave up, wal_receiver_timeout) is frozen too.
	for _, m := range st.Members {
		if m.Name != st.Leader {
			c.waitRows(m.Conn, "bulwark_drill", 60*time.Second)
		}
	}
	senders := c.freezeWALSenders(st.Leader)
	if n := len(senders.frozen()); n != len(st.Members)-1 {
		t.Errorf("froze %d WAL senders on %s, want %d", n, st.Leader, len(st.Members)-1)
	}
	out := <-done
	if out.err != nil {
		t.Fatalf("run bulwark drill run: %v", out.err)
	}
	t.Logf("bulwark drill run -> %d\n%s%s", out.r.code, out.r.stdout, tailLines(out.r.stderr, 30))
	res := c.drillResult(out.r, 5, args)
	r := res.Runs[0]
	t.Logf("lagging replicas: %d of %d acknowledged writes lost, RPO %.3fs, failures %q", r.AckedLost, r.AckedWrites, r.RPOS, r.Failures)
	if res.Passed || r.Passed || r.AckedLost == 0 || len(r.LostSeqs) == 0 || !strings.Contains(strings.Join(r.Failures, "\n"), "acknowledged writes lost") {
		t.Errorf("the drill did not report the lost writes: passed %v, lost %d %v, failures %q", res.Passed, r.AckedLost, r.LostSeqs, r.Failures)
	}
}

// TestDrillNetworkPartition: the sync primary cut off from etcd and from
// its replicas under the workload: it fences itself, another node is
// elected, no acknowledged write is lost, no write is acknowledged by both,
// and once the links heal the old primary rejoins.
func TestDrillNetworkPartition(t *testing.T) {
	c := startCluster(t, "--links", "--replication", "sync", "--crash-restarts", "0")
	st := c.waitSync(60 * time.Second)
	// The replicas stream through the primary's pg link, which the
	// partition cuts.
	var pgLink string
	links, err := os.ReadFile(filepath.Join(c.dir, st.Leader, "links"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(links)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "pg" {
			pgLink = f[1]
		}
	}
	for _, m := range st.Members {
		if m.Leader {
			continue
		}
		conn, err := pgx.Connect(context.Background(), m.Conn)
		if err != nil {
			t.Fatal(err)
		}
		var host string
		var port int
		err = conn.QueryRow(context.Background(), "SELECT sender_host, sender_port FROM pg_stat_wal_receiver").Scan(&host, &port)
		conn.Close(context.Background())
		if err != nil || net.JoinHostPort(host, strconv.Itoa(port)) != pgLink {
			t.Errorf("%s streams from %s:%d (err %v), not through %s's link %s", m.Name, host, port, err, st.Leader, pgLink)
		}
	}
	res := c.drill(0, "--scenario", drill.NetworkPartition)
	r := res.Runs[0]
	t.Logf("%s -> %s: detection %.3fs, failover %.3fs, client RTO %.3fs, %d acked, %d lost, %d unknown",
		r.OldPrimary, r.NewPrimary, r.DetectionS, r.FailoverS, r.ClientRTOS, r.AckedWrites, r.AckedLost, r.Unknown)
	if !r.Passed || r.OldPrimary != st.Leader || r.NewPrimary == r.OldPrimary || r.SplitBrain || r.AckedLost != 0 || !r.Rejoined || !r.Consistent {
		t.Errorf("network-partition: %+v", r)
	}

	// The same through commands, as on hosts the drill cannot reach: the
	// fault command cuts the links of the node it is told, the heal
	// command heals them. A failed fault command fails the drill with its
	// output, and its fault is healed all the same.
	c.checkFaultCommands(drill.NetworkPartition, r.NewPrimary,
		"kill -USR1 $(cat "+filepath.Join(c.dir, "$BULWARK_NODE", "link.pid")+")",
		"kill -USR2 $(cat "+filepath.Join(c.dir, "$BULWARK_NODE", "link.pid")+")",
		func(r drill.Run) bool { return r.NewPrimary != r.OldPrimary && !r.SplitBrain && r.Rejoined })
}

// checkFaultCommands runs scenario through --fault-command and
// --heal-command (fault and heal), checks the run with ok, and checks
// that the commands were told what to hit (BULWARK_NODE: node, when
// given). Then a fault command that fails must fail the drill with its
// output, its fault healed all the same, and the flags misused must be
// refused.
func (c *haCluster) checkFaultCommands(scenario, node, fault, heal string, ok func(drill.Run) bool) {
	c.t.Helper()
	envFile, healed := filepath.Join(c.dir, "fault.env"), filepath.Join(c.dir, "healed")
	res := c.drill(0, "--scenario", scenario, "--faults", "agents",
		"--fault-command", "env | grep ^BULWARK_ >"+envFile+" && "+fault,
		"--heal-command", heal+" && touch "+healed)
	r := res.Runs[0]
	c.t.Logf("%s through commands: %s -> %s, failover %.3fs, client RTO %.3fs, %d acked, %d lost, events %v",
		scenario, r.OldPrimary, r.NewPrimary, r.FailoverS, r.ClientRTOS, r.AckedWrites, r.AckedLost, r.Events)
	if !r.Passed || r.AckedLost != 0 || !r.Consistent || !ok(r) {
		c.t.Errorf("%s through commands: %+v", scenario, r)
	}
	env, err := os.ReadFile(envFile)
	if err != nil {
		c.t.Fatal(err)
	}
	if !strings.Contains(string(env), "BULWARK_FAULT="+scenario+"\n") || (node != "" && !strings.Contains(string(env), "BULWARK_NODE="+node+"\n")) {
		c.t.Errorf("the fault command was told:\n%s", env)
	}
	if _, err := os.Stat(healed); err != nil {
		c.t.Errorf("the heal command did not run: %v", err)
	}
	os.Remove(healed)

	r2 := c.e.run(c.drillArgs("--scenario", scenario, "--faults", "agents",
		"--fault-command", "printf 'no such %s\\n' firewall >&2; exit 3", "--heal-command", "touch "+healed)...)
	if r2.code != 1 || !strings.Contains(r2.stderr, "no such firewall") || strings.Contains(r2.stderr, "printf") {
		c.t.Errorf("a failing fault command: exit %d, want 1 and its output, not the command: %s", r2.code, r2.stderr)
	}
	if _, err := os.Stat(healed); err != nil {
		c.t.Errorf("the heal command did not run after a failed fault command: %v", err)
	}
	for _, args := range [][]string{
		{"--scenario", scenario, "--faults", "agents"},
		{"--scenario", scenario, "--fault-command", "true"},
		{"--scenario", scenario, "--heal-command", "true"},
		{"--scenario", drill.NodeLoss, "--fault-command", "true", "--heal-command", "true"},
	} {
		if r := c.e.run(c.drillArgs(args...)...); r.code != 2 {
			c.t.Errorf("drill run %v: exit %d, want 2 (usage)", args, r.code)
		}
	}
}

// TestDrillThroughAgents: the agents inject the faults (--faults agents,
// POST /drill/fault), as on a cluster on other hosts: the drill knows
// nothing of the nodes' processes. Each fault passes with nothing lost;
// a lost node's agent comes back by itself (a new PID in its PID file),
// and bulwark down stops the agents so restarted. Faults the agents
// cannot inject, a hold not longer than the TTL, and local faults on a
// plan outside bulwark up's layout are refused.
func TestDrillThroughAgents(t *testing.T) {
	c := startCluster(t, "--replication", "sync", "--crash-restarts", "0")
	c.waitSync(60 * time.Second)
	agentPIDs := func() map[string]string {
		m := map[string]string{}
		for _, n := range []string{"n1", "n2", "n3"} {
			data, _ := os.ReadFile(filepath.Join(c.dir, n, "agent.pid"))
			m[n] = strings.TrimSpace(string(data))
		}
		return m
	}
	for _, s := range []string{drill.NodeLoss, drill.PrimaryHang, drill.PrimaryCrash, drill.ReplicaLoss} {
		pids := agentPIDs()
		res := c.drill(0, "--scenario", s, "--faults", "agents", "--fault-hold", "8s")
		r := res.Runs[0]
		t.Logf("%s: %s -> %s, detection %.3fs, failover %.3fs, client RTO %.3fs, %d acked, %d lost, %d unknown",
			s, r.OldPrimary, r.NewPrimary, r.DetectionS, r.FailoverS, r.ClientRTOS, r.AckedWrites, r.AckedLost, r.Unknown)
		if !r.Passed || r.AckedLost != 0 || r.SplitBrain || !r.Consistent || !r.Rejoined || r.AckedWrites == 0 {
			t.Errorf("%s: %+v", s, r)
		}
		if s != drill.ReplicaLoss && r.NewPrimary == r.OldPrimary {
			t.Errorf("%s: the primary did not change (%s)", s, r.OldPrimary)
		}
		if s == drill.NodeLoss || s == drill.ReplicaLoss {
			lost := r.OldPrimary
			for _, ev := range r.Events {
				if ev.Kind == "fault" {
					_, lost, _ = strings.Cut(ev.Detail, " on ")
				}
			}
			if now := agentPIDs(); now[lost] == pids[lost] || now[lost] == "" {
				t.Errorf("%s: %s's agent PID file says %q before and %q after", s, lost, pids[lost], now[lost])
			}
		}
	}
	if r := c.e.run(c.drillArgs("--scenario", drill.NetworkPartition, "--faults", "agents")...); r.code != 2 || !strings.Contains(r.stderr, "--faults local") {
		t.Errorf("network-partition through the agents: exit %d, want 2: %s", r.code, r.stderr)
	}
	if r := c.e.run(c.drillArgs("--scenario", drill.NodeLoss, "--faults", "agents", "--fault-hold", "3s")...); r.code != 2 || !strings.Contains(r.stderr, "longer than the TTL") {
		t.Errorf("a hold shorter than the TTL: exit %d, want 2: %s", r.code, r.stderr)
	}
	elsewhere := filepath.Join(t.TempDir(), "bulwark.yaml")
	data, err := os.ReadFile(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.WriteFile(t, elsewhere, data)
	if r := c.e.run("drill", "run", "--plan", elsewhere, "--scenario", drill.PrimaryCrash, "--faults", "local"); r.code != 2 || !strings.Contains(r.stderr, "laid out by bulwark up") {
		t.Errorf("local faults on a plan outside bulwark up's layout: exit %d, want 2: %s", r.code, r.stderr)
	}
	restarted := agentPIDs()
	c.e.ok("down", "--dir", c.dir)
	for n, pid := range restarted {
		if p, err := strconv.Atoi(pid); err != nil || pg.Alive(p) {
			t.Errorf("after bulwark down, %s's agent %q still runs (or its PID file was unreadable: %v)", n, pid, err)
		}
	}
}

// TestDrillEtcdMemberLoss: with three etcd members, kill -9 of etcd's
// leader under the workload moves no primary and loses no write; the
// member is restarted and rejoins, and bulwark down stops every member.
func TestDrillEtcdMemberLoss(t *testing.T) {
	c := startCluster(t, "--etcd-members", "3", "--replication", "sync")
	st := c.waitSync(60 * time.Second)
	res := c.drill(0, "--scenario", drill.EtcdMemberLoss, "--runs", "2")
	for i, r := range res.Runs {
		t.Logf("run %d: %s, client RTO %.3fs, %d acked, %d lost, events %v", i+1, r.NewPrimary, r.ClientRTOS, r.AckedWrites, r.AckedLost, r.Events)
		if !r.Passed || r.NewPrimary != st.Leader || r.AckedLost != 0 || r.AckedWrites == 0 || !r.Consistent {
			t.Errorf("run %d: %+v", i+1, r)
		}
		if !slices.ContainsFunc(r.Events, func(e drill.Event) bool { return e.Kind == "fault" && strings.Contains(e.Detail, "etcd member e") }) {
			t.Errorf("run %d: no fault event naming the etcd member: %v", i+1, r.Events)
		}
	}
	pids := globLogs(c.dir, "etcd-e*.pid")
	if len(pids) != 3 {
		t.Fatalf("etcd pid files: %v", pids)
	}
	// The same through commands, as with an etcd cluster bulwark does
	// not run: the fault command kills the member serving
	// BULWARK_ETCD_ENDPOINT and names it, bulwark up starts it again.
	c.checkFaultCommands(drill.EtcdMemberLoss, "",
		"for f in "+filepath.Join(c.dir, "etcd-e*.pid")+`; do p=$(cat $f); `+
			`if tr '\0' ' ' </proc/$p/cmdline | grep -q -- "--client-url $BULWARK_ETCD_ENDPOINT "; then kill -9 $p && basename $f .pid; fi; done`,
		binary+" up --dir "+c.dir+" >/dev/null",
		func(r drill.Run) bool {
			return r.NewPrimary == r.OldPrimary && slices.ContainsFunc(r.Events, func(e drill.Event) bool {
				return e.Kind == "fault" && strings.Contains(e.Detail, "etcd member etcd-e")
			})
		})
	for _, f := range pids {
		if pid := c.pidFile(f); !pg.Alive(pid) {
			t.Errorf("etcd member of %s (pid %d) is not running after the drill", f, pid)
		}
	}
	c.e.ok("down", "--dir", c.dir)
	for _, f := range pids {
		if pid := c.pidFile(f); pg.Alive(pid) {
			t.Errorf("etcd member of %s (pid %d) still runs after bulwark down", f, pid)
		}
	}
}

// TestDrillRestoreTest: restore-test restores the newest backup and a
// point in time after a switchover (so recovery follows the archived
// timeline history), starts and checks both copies and passes; with a
// corrupt object in the repository it fails (exit 5) and says so. Its
// scratch directories are gone afterwards.
func TestDrillRestoreTest(t *testing.T) {
	c := startCluster(t, "--archive", "--crash-restarts", "0")
	c.e.repo, c.e.vars = "", nil // the cluster's own repository and passphrase file, from its plan
	c.waitHealthy(30 * time.Second)
	c.drill(0, "--scenario", drill.PrimaryCrash) // rows in the drill table before the backup
	st := c.waitHealthy(30 * time.Second)
	leader := st.member(st.Leader)
	c.e.owner = true // the agents' OS user owns the cluster's repository
	c.e.ok("backup", "create", "--plan", c.plan, "--type", "full",
		"--pgdata", filepath.Join(c.dir, leader.Name, "pgdata"), "--db", leader.Conn)
	c.e.owner = false
	c.drill(0, "--scenario", drill.Switchover) // a new timeline after the backup

	scratch := pgtest.Dir(t)
	res := c.drill(0, "--scenario", drill.RestoreTest, "--scratch", scratch)
	r := res.Runs[0]
	t.Logf("restore-test: %.3fs; %q", r.RestoreS, r.Notes)
	if !res.Passed || r.RestoreS <= 0 || len(r.Notes) != 2 || strings.Contains(r.Notes[0], " 0 rows") ||
		!strings.Contains(r.Notes[1], "point-in-time recovery") {
		t.Errorf("restore-test: passed %v, %.3fs, notes %q, failures %q", res.Passed, r.RestoreS, r.Notes, r.Failures)
	}
	if got := res.Stats[drill.FigRestore].Max; got != r.RestoreS || res.Targets[0].Measured != r.RestoreS {
		t.Errorf("restore_s stat %v, RTO target %+v, want %v", got, res.Targets[0], r.RestoreS)
	}

	// Flip bytes in the newest pack: the backup cannot be read back.
	pack := newestFile(t, filepath.Join(c.dir, "repo", "data"))
	data, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(data)
	bad[len(bad)/2] ^= 0xff
	pgtest.WriteFile(t, pack, bad)
	res = c.drill(5, "--scenario", drill.RestoreTest, "--scratch", scratch)
	if r := res.Runs[0]; r.Passed || !strings.Contains(strings.Join(r.Failures, "\n"), "repository data is corrupt") {
		t.Errorf("restore-test of a corrupt repository: passed %v, failures %q", r.Passed, r.Failures)
	}
	pgtest.WriteFile(t, pack, data)
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("restore-test left %d entries in its scratch directory", len(left))
	}
}

// newestFile is the most recently written file under dir.
func newestFile(t *testing.T, dir string) string {
	t.Helper()
	var newest string
	var at time.Time
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil && info.ModTime().After(at) {
			newest, at = path, info.ModTime()
		}
		return err
	})
	if err != nil || newest == "" {
		t.Fatalf("no file under %s: %v", dir, err)
	}
	return newest
}

// waitRows waits until table, on the server conn names, holds a row.
func (c *haCluster) waitRows(conn, table string, timeout time.Duration) {
	c.t.Helper()
	pgtest.Eventually(c.t, timeout, func() error {
		db, err := pgx.Connect(context.Background(), conn)
		if err != nil {
			return err
		}
		defer db.Close(context.Background())
		var n int64
		if err := db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errString(table + " is empty")
		}
		return nil
	})
}

// walSenders are the WAL senders a test froze on one node.
type walSenders struct {
	mu   sync.Mutex
	pids []int
}

func (s *walSenders) frozen() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pids)
}

// freezeWALSenders stops (SIGSTOP) node's WAL senders, and goes on
// stopping any it starts until its postmaster is gone or the test ends;
// the test's cleanup continues them.
func (c *haCluster) freezeWALSenders(node string) *walSenders {
	pm := c.postmaster(node)
	s := &walSenders{}
	freeze := func() {
		for _, pid := range pg.ChildPIDs(pm) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			s.mu.Lock()
			if strings.Contains(string(cmd), "walsender") && !slices.Contains(s.pids, pid) {
				syscall.Kill(pid, syscall.SIGSTOP)
				s.pids = append(s.pids, pid)
			}
			s.mu.Unlock()
		}
	}
	freeze()
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil && pg.Alive(pm) {
			freeze()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	c.t.Cleanup(func() {
		cancel()
		<-watched
		for _, pid := range s.frozen() {
			syscall.Kill(pid, syscall.SIGCONT) // gone with its node, as a rule
		}
	})
	return s
}

// TestDrillCatchesSplitBrain: a fault that lets two nodes take writes must
// be reported as split brain. On an async cluster, a primary-hang that
// spares PostgreSQL: the agents inject it (--faults agents) for 8 s, and
// the test lets the postmaster and its backends go the moment they are
// stopped, so only the agent hangs and nothing fences the server. The
// client reaches every node (a relay that hands each new connection to a
// node picked at random and ends it after 50 ms, as a stale DNS name
// might). The old primary then keeps acknowledging writes after the new
// one took its first, until its agent wakes up and demotes it. The drill
// must fail and name those writes.
func TestDrillCatchesSplitBrain(t *testing.T) {
	c := startCluster(t, "--crash-restarts", "0")
	st := c.waitHealthy(30 * time.Second)
	var addrs []string
	for _, m := range st.Members {
		addrs = append(addrs, "127.0.0.1:"+m.port())
	}
	via := randomRelay(t, addrs, 50*time.Millisecond)

	agentPID, pm := c.agent(st.Leader), c.postmaster(st.Leader)
	spared := make(chan error, 1)
	go func() { spared <- spareServer(agentPID, pm, 2*time.Minute) }()
	args := []string{"--scenario", drill.PrimaryHang, "--faults", "agents", "--fault-hold", "8s", "--via", via}
	r := c.e.run(c.drillArgs(args...)...)
	if err := <-spared; err != nil {
		t.Fatal(err)
	}
	res := c.drillResult(r, 5, args)
	run := res.Runs[0]
	t.Logf("%s -> %s: %d acked, %d lost, split brain %v (%d writes, from seq %v), failures %q",
		run.OldPrimary, run.NewPrimary, run.AckedWrites, run.AckedLost, run.SplitBrain, len(run.SplitBrainWrites), run.SplitBrainWrites[:min(3, len(run.SplitBrainWrites))], run.Failures)
	if res.Passed || run.Passed || !run.SplitBrain || len(run.SplitBrainWrites) == 0 || run.OldPrimary != st.Leader || run.NewPrimary == st.Leader {
		t.Errorf("want a failed run with split brain between %s and a new primary: %+v", st.Leader, run)
	}
	if !slices.ContainsFunc(run.Failures, func(f string) bool { return strings.Contains(f, "split brain") }) {
		t.Errorf("the failures do not say split brain: %q", run.Failures)
	}
}

// spareServer waits until the agent, the postmaster and all its children
// are stopped (SIGSTOP), then continues the postmaster and its children:
// only the agent stays hung. A child that exited before the postmaster
// stopped stays a zombie, unreaped, and never stops: it counts as stopped.
func spareServer(agentPID, pm int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !pg.Stopped(agentPID) || !pg.Stopped(pm) || slices.ContainsFunc(pg.ChildPIDs(pm), pg.Running) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the drill did not stop agent %d and postmaster %d within %s", agentPID, pm, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return pg.SignalServer(pm, syscall.SIGCONT)
}

// randomRelay listens on loopback and relays each connection to one of
// addrs picked at random, ending it after life. (Not in turn: a client's
// cancel request, SSLRequest and startup take three connections, and in
// turn they would land on the same nodes every time.)
func randomRelay(t *testing.T, addrs []string, life time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go func(addr string) {
				defer client.Close()
				server, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return
				}
				defer server.Close()
				end := time.AfterFunc(life, func() { client.Close(); server.Close() })
				defer end.Stop()
				go func() { io.Copy(server, client); server.Close() }()
				io.Copy(client, server)
			}(addrs[rand.IntN(len(addrs))])
		}
	}()
	return ln.Addr().String()
}
