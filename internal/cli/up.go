package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/localetcd"
	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// A local cluster (bulwark up) lives in one directory:
//
//	DIR/bulwark.yaml          the plan describing it
//	DIR/api-token             the REST API's bearer token (0600)
//	DIR/etcd/                 embedded etcd's data; DIR/etcd.pid, DIR/etcd.log
//	DIR/NODE/pgdata           each node's PostgreSQL
//	DIR/NODE/agent.pid        its agent's PID; DIR/NODE/agent.log its log
const localPlan = "bulwark.yaml"

type upFlags struct {
	dir           string
	nodes         int
	replication   string
	ttl           time.Duration
	crashRestarts int
	timeout       time.Duration
	tls           bool
	archive       bool
	etcdMembers   int
	links         bool
}

func (a *app) newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up --dir DIR [--nodes 3] [--replication async|sync|quorum]",
		Short: "Start a local HA cluster on loopback (embedded etcd, agents, PostgreSQL)",
		Long: "Start a whole cluster on this machine under DIR: an embedded etcd, and for each node an agent\n" +
			"and its PostgreSQL, with the plan DIR/bulwark.yaml describing it. Returns once the cluster is\n" +
			"healthy and prints each node's connection string and API URL. Run again to restart whatever\n" +
			"is not running. For development, drills and the demo; production uses external etcd.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.up(cmd.Context(), f) },
	}
	cmd.Flags().StringVar(&f.dir, "dir", "", "directory for the cluster (created)")
	cmd.Flags().IntVar(&f.nodes, "nodes", 3, "number of nodes")
	cmd.Flags().StringVar(&f.replication, "replication", "async", "async, sync or quorum (quorum: ANY 1)")
	cmd.Flags().DurationVar(&f.ttl, "ttl", plan.DefaultTTL, "leader lease TTL")
	cmd.Flags().IntVar(&f.crashRestarts, "crash-restarts", plan.DefaultCrashRestarts, "restarts of a crashed primary in place before failing over (0: fail over at once)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up if the cluster is not healthy by then")
	cmd.Flags().BoolVar(&f.archive, "archive", false, "archive WAL into the local repository with archive_command (archive_timeout 10s), for point-in-time recovery (only when the cluster is created)")
	cmd.Flags().IntVar(&f.etcdMembers, "etcd-members", 1, "embedded etcd members: 1, 3 or 5 (only when the cluster is created)")
	cmd.Flags().BoolVar(&f.links, "links", false, "each agent reaches etcd, and the other nodes reach each node's PostgreSQL and agent, through links a drill can cut (network-partition; only when the cluster is created)")
	cmd.Flags().BoolVar(&f.tls, "tls", false, "run etcd, the agents' API and PostgreSQL (clients and replication) over TLS with a CA made in DIR/tls (only when the cluster is created)")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func (a *app) up(ctx context.Context, f upFlags) error {
	if f.nodes < 1 || f.nodes > 9 {
		return usageError{errors.New("--nodes must be from 1 to 9")}
	}
	if f.etcdMembers != 1 && f.etcdMembers != 3 && f.etcdMembers != 5 {
		return usageError{errors.New("--etcd-members must be 1, 3 or 5")}
	}
	switch f.replication {
	case "async", "sync", "quorum":
	default:
		return usageError{fmt.Errorf("--replication %q: want async, sync or quorum", f.replication)}
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := plan.Load(filepath.Join(dir, localPlan))
	if errors.Is(err, fs.ErrNotExist) {
		if p, err = writeLocalPlan(dir, f); err == nil {
			err = a.initLocalRepo(ctx, dir)
		}
	}
	if err != nil {
		return err
	}
	c := p.Cluster
	if err := a.startLocalEtcd(dir, c); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := a.startLocalAgent(dir, p, n); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	st, err := a.waitHealthy(ctx, c)
	if err != nil {
		return fmt.Errorf("cluster in %s not healthy: %w (logs: %s/*/agent.log)", dir, err, dir)
	}
	if a.json() {
		return json.NewEncoder(a.stdout).Encode(st)
	}
	fmt.Fprintf(a.stdout, "cluster %s is up: leader %s, replication %s\nplan: %s\n", c.Name, st.Leader, st.Mode, p.Path)
	for _, m := range st.Members {
		fmt.Fprintf(a.stdout, "  %-4s %-8s api %s  conn %q\n", m.Name, m.Role, m.APIURL, m.Conn)
	}
	return nil
}

// freePort returns a loopback TCP port that is free now and lies below the
// kernel's range for outgoing connections' local ports: a port from that
// range (what listening on :0 gives) can be taken by any client's
// connection before the server that was meant to bind it starts.
func freePort() (int, error) {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				low = n
			}
		}
	}
	for range 100 {
		port := 1024 + mrand.IntN(low-1024)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free TCP port on 127.0.0.1 below the ephemeral range")
}

func writeLocalPlan(dir string, f upFlags) (*plan.Plan, error) {
	// Two ports per etcd member (client, peer), two per node, then with
	// --links, per node, one per etcd member and two for its peers.
	perNode := f.etcdMembers + 2
	ports := make([]int, 2*f.etcdMembers+2*f.nodes+map[bool]int{true: f.nodes * perNode}[f.links])
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if slices.Contains(ports[:i], p) {
			p, err = freePort() // a repeat: one more draw makes another vanishingly rare
			if err != nil || slices.Contains(ports[:i], p) {
				return nil, errors.Join(err, errors.New("could not pick distinct free ports"))
			}
		}
		ports[i] = p
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return nil, err
	}
	rand.Read(tok)
	if err := os.WriteFile(filepath.Join(dir, "repo-pass"), []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return nil, err
	}
	sec, err := localSecurity(dir, f.tls)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# A local cluster started by bulwark up.
version: 1
service: {name: local, tier: 2, rto: 1m, rpo: %s}
postgres: {pgdata: %s}
repositories:
  - {name: local, url: "file://%s", password_file: %s}
replication: {mode: %s%s}
%scluster:
  etcd: {endpoints: [%s]%s}
  ttl: %s
  loop_wait: 1s
  crash_restarts: %d
  api_token_file: %s
%s  parameters: {unix_socket_directories: %s, max_connections: 100, shared_buffers: 32MB%s}
  nodes:
`, map[bool]string{true: "0s", false: "30s"}[f.replication != "async"], filepath.Join(dir, "n1", "pgdata"),
		filepath.Join(dir, "repo"), filepath.Join(dir, "repo-pass"), f.replication, map[bool]string{true: ", sync_count: 1", false: ""}[f.replication == "quorum"],
		map[bool]string{true: "archiving: {mode: archive_command, archive_timeout: 10s}\n", false: ""}[f.archive], etcdEndpoints(sec.scheme, ports[:f.etcdMembers]), sec.etcdTLS, f.ttl, f.crashRestarts, tokenFile, sec.clusterLines, socketDir(dir), sec.parameters)
	nodePorts := ports[2*f.etcdMembers:]
	linkPorts := ports[2*f.etcdMembers+2*f.nodes:]
	for i := range f.nodes {
		name := fmt.Sprintf("n%d", i+1)
		if f.links {
			own := linkPorts[i*perNode : (i+1)*perNode]
			var ls []link
			for j, p := range ports[:f.etcdMembers] {
				ls = append(ls, link{linkEtcd, loopback(own[j]), loopback(p)})
			}
			ls = append(ls, link{linkPG, loopback(own[f.etcdMembers]), loopback(nodePorts[2*i])},
				link{linkAPI, loopback(own[f.etcdMembers+1]), loopback(nodePorts[2*i+1])})
			if err := writeLinks(filepath.Join(dir, name), ls); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&b, "    - {name: %s, host: 127.0.0.1, port: %d, api: \"127.0.0.1:%d\", pgdata: %s}\n",
			name, nodePorts[2*i], nodePorts[2*i+1], filepath.Join(dir, name, "pgdata"))
	}
	// etcd's peer ports are no client's business: a comment keeps them,
	// one per endpoint, in order.
	peers := make([]string, f.etcdMembers)
	for i, p := range ports[f.etcdMembers : 2*f.etcdMembers] {
		peers[i] = strconv.Itoa(p)
	}
	fmt.Fprintf(&b, "%s%s\n", etcdPeersLine, strings.Join(peers, ","))
	path := filepath.Join(dir, localPlan)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return plan.Load(path)
}

// initLocalRepo creates the local cluster's repository, owned by the
// user the agents run as (they read it to seed replicas and fetch WAL).
func (a *app) initLocalRepo(ctx context.Context, dir string) error {
	owner, err := postgresOwner()
	if err != nil {
		return err
	}
	if sock := socketDir(dir); sock != "/tmp" {
		if err := os.MkdirAll(sock, 0o755); err != nil {
			return err
		}
		if owner != nil {
			if err := os.Chown(sock, int(owner.Uid), int(owner.Gid)); err != nil {
				return err
			}
		}
	}
	if owner != nil {
		if err := os.Chown(filepath.Join(dir, "repo-pass"), int(owner.Uid), int(owner.Gid)); err != nil {
			return err
		}
		if err := os.Chown(dir, int(owner.Uid), int(owner.Gid)); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, "repo", "init", "--plan", filepath.Join(dir, localPlan))
	cmd.Env = localEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initialize the local repository: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// localEnv is the environment of the processes bulwark up starts: this
// one's without BULWARK_* settings, so that the cluster's own plan (its
// repository and passphrase file) is what they use.
func localEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BULWARK_") {
			env = append(env, kv)
		}
	}
	return env
}

// socketDir is where the local cluster's servers put their Unix sockets:
// DIR/sock, so that nothing another server left in /tmp under the same
// port can stop them, unless that path is too long for a socket (about 107
// bytes), in which case /tmp.
func socketDir(dir string) string {
	sock := filepath.Join(dir, "sock")
	if len(sock+"/.s.PGSQL.65535.lock") > 100 {
		return "/tmp"
	}
	return sock
}

// pidAlive reads a PID file and says whether that process runs.
func pidAlive(path string) (int, bool) {
	pid, err := readPID(path)
	if err != nil {
		return 0, false
	}
	return pid, pg.Alive(pid) // a killed agent not yet reaped is a zombie
}

// readPID reads the PID a PID file names.
func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s names no PID", path)
	}
	return pid, nil
}

// writePIDFile writes pid to path, atomically: a reader sees the old PID
// or the new one, never a torn file. The temporary file's name is unique:
// bulwark up (as root) and the agent it starts (as postgres) both write
// the agent's PID file.
func writePIDFile(path string, pid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(pid) + "\n")
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// spawn starts this binary with argv in its own session, logging to
// logPath, records its PID in pidPath, and leaves it running. As root it
// runs as owner when owner is not nil.
func spawn(argv []string, logPath, pidPath string, owner *syscall.Credential) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, argv...)
	cmd.Env = localEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: owner}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := writePIDFile(pidPath, cmd.Process.Pid); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// etcdPeersLine starts the plan's comment line that lists the local etcd
// members' peer ports ("# etcd peer port: P" before there could be
// several: the same line).
const etcdPeersLine = "# etcd peer port: "

func etcdEndpoints(scheme string, ports []int) string {
	urls := make([]string, len(ports))
	for i, p := range ports {
		urls[i] = fmt.Sprintf("%q", fmt.Sprintf("%s://127.0.0.1:%d", scheme, p))
	}
	return strings.Join(urls, ", ")
}

// localEtcdMember is one embedded etcd member of a local cluster and its
// files under DIR: etcd, etcd.pid and etcd.log for a single member,
// etcd-NAME... for each of several.
type localEtcdMember struct {
	name, clientURL, peerURL  string
	dataDir, pidFile, logFile string
}

// localEtcdMembers reads the members of the local cluster in dir from its
// plan: the endpoints, and the comment line of peer ports.
func localEtcdMembers(dir string, c *plan.Cluster) ([]localEtcdMember, error) {
	data, err := os.ReadFile(filepath.Join(dir, localPlan))
	if err != nil {
		return nil, err
	}
	_, line, _ := strings.Cut(string(data), etcdPeersLine)
	line, _, _ = strings.Cut(line, "\n")
	peers := strings.Split(strings.TrimSpace(line), ",")
	if line == "" || len(peers) != len(c.Etcd.Endpoints) {
		return nil, fmt.Errorf("the plan in %s has no etcd peer port line with one port per endpoint", dir)
	}
	if len(peers) == 1 {
		return []localEtcdMember{{name: "local", clientURL: c.Etcd.Endpoints[0], peerURL: "http://127.0.0.1:" + peers[0],
			dataDir: filepath.Join(dir, "etcd"), pidFile: filepath.Join(dir, "etcd.pid"), logFile: filepath.Join(dir, "etcd.log")}}, nil
	}
	ms := make([]localEtcdMember, len(peers))
	for i, peer := range peers {
		name := fmt.Sprintf("e%d", i+1)
		base := filepath.Join(dir, "etcd-"+name)
		ms[i] = localEtcdMember{name: name, clientURL: c.Etcd.Endpoints[i], peerURL: "http://127.0.0.1:" + peer,
			dataDir: base, pidFile: base + ".pid", logFile: base + ".log"}
	}
	return ms, nil
}

// startLocalEtcd starts the local cluster's etcd members that are not
// running.
func (a *app) startLocalEtcd(dir string, c *plan.Cluster) error {
	ms, err := localEtcdMembers(dir, c)
	if err != nil {
		return err
	}
	var initial []string
	for _, m := range ms {
		initial = append(initial, m.name+"="+m.peerURL)
	}
	for _, m := range ms {
		if _, ok := pidAlive(m.pidFile); ok {
			continue
		}
		argv := []string{"etcd", "--dir", m.dataDir, "--name", m.name, "--client-url", m.clientURL, "--peer-url", m.peerURL}
		if len(ms) > 1 {
			argv = append(argv, "--initial-cluster", strings.Join(initial, ","))
		}
		if t := c.Etcd.TLS; t.CertFile != "" {
			argv = append(argv, "--cert-file", t.CertFile, "--key-file", t.KeyFile, "--client-ca-file", t.CAFile)
		}
		if err := spawn(argv, m.logFile, m.pidFile, nil); err != nil {
			return err
		}
	}
	return nil
}

// linksFile, in a node's directory, lists the links a drill can cut
// (bulwark up --links), one per line: "KIND LISTEN TARGET". Kind etcd is
// the node's agent's way to one etcd member; pg and api are the other
// nodes' way to this node's PostgreSQL (replication, rewind, clone) and
// agent. One process per node relays them all (DIR/NODE/link.pid), so a
// signal cuts the node off from etcd and from its peers at once; clients
// still reach it at the plan's addresses.
const linksFile = "links"

const (
	linkEtcd = "etcd"
	linkPG   = "pg"
	linkAPI  = "api"
)

type link struct{ kind, listen, target string }

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func writeLinks(nodeDir string, links []link) error {
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range links {
		fmt.Fprintf(&b, "%s %s %s\n", l.kind, l.listen, l.target)
	}
	return os.WriteFile(filepath.Join(nodeDir, linksFile), []byte(b.String()), 0o644)
}

// readLinks reads a node's links; none, without error, if it has none.
func readLinks(nodeDir string) ([]link, error) {
	path := filepath.Join(nodeDir, linksFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ls []link
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) != 3 || !slices.Contains([]string{linkEtcd, linkPG, linkAPI}, f[0]) {
			return nil, fmt.Errorf("%s: bad line %q", path, strings.TrimSpace(line))
		}
		ls = append(ls, link{f[0], f[1], f[2]})
	}
	return ls, nil
}

// startLinks starts the links of every node that has some, unless they
// run, and returns the agent arguments that send node's traffic through
// them: its etcd endpoints and its peers' addresses.
func startLinks(dir string, c *plan.Cluster, node string) ([]string, error) {
	scheme, _, _ := strings.Cut(c.Etcd.Endpoints[0], "://")
	var etcd, peerPG, peerAPI []string
	for _, n := range c.Nodes {
		nodeDir := filepath.Join(dir, n.Name)
		ls, err := readLinks(nodeDir)
		if err != nil || ls == nil {
			return nil, err
		}
		argv := []string{"link"}
		for _, l := range ls {
			argv = append(argv, "--pair", l.listen+"="+l.target)
			switch {
			case l.kind == linkEtcd && n.Name == node:
				etcd = append(etcd, scheme+"://"+l.listen)
			case l.kind == linkPG && n.Name != node:
				peerPG = append(peerPG, n.Name+"="+l.listen)
			case l.kind == linkAPI && n.Name != node:
				peerAPI = append(peerAPI, n.Name+"="+l.listen)
			}
		}
		if _, ok := pidAlive(filepath.Join(nodeDir, "link.pid")); !ok {
			if err := spawn(argv, filepath.Join(nodeDir, "link.log"), filepath.Join(nodeDir, "link.pid"), nil); err != nil {
				return nil, err
			}
		}
	}
	var args []string
	if len(etcd) > 0 {
		args = append(args, "--etcd-endpoints", strings.Join(etcd, ","))
	}
	if len(peerPG) > 0 {
		args = append(args, "--peer-pg", strings.Join(peerPG, ","))
	}
	if len(peerAPI) > 0 {
		args = append(args, "--peer-api", strings.Join(peerAPI, ","))
	}
	return args, nil
}

// postgresOwner is the credential agents run with when up runs as root:
// PostgreSQL refuses root.
func postgresOwner() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user for the agents: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (a *app) startLocalAgent(dir string, p *plan.Plan, n plan.Node) error {
	nodeDir := filepath.Join(dir, n.Name)
	if _, ok := pidAlive(filepath.Join(nodeDir, "agent.pid")); ok {
		return nil
	}
	if err := os.MkdirAll(n.PGData, 0o700); err != nil {
		return err
	}
	owner, err := postgresOwner()
	if err != nil {
		return err
	}
	if owner != nil {
		for _, path := range []string{nodeDir, n.PGData, filepath.Join(dir, "api-token")} {
			if err := os.Chown(path, int(owner.Uid), int(owner.Gid)); err != nil {
				return err
			}
		}
	}
	// Drills on this cluster may also inject faults through the agents
	// (drill run --faults agents); the agent keeps its PID file, which
	// changes when a node-loss drill starts it again.
	argv := []string{"agent", "--plan", p.Path, "--node", n.Name, "--drill-faults", "--pid-file", filepath.Join(nodeDir, "agent.pid")}
	links, err := startLinks(dir, p.Cluster, n.Name)
	if err != nil {
		return err
	}
	argv = append(argv, links...)
	return spawn(argv, filepath.Join(nodeDir, "agent.log"), filepath.Join(nodeDir, "agent.pid"), owner)
}

// waitHealthy waits until the cluster has a running primary and every
// other member streams from it.
func (a *app) waitHealthy(ctx context.Context, c *plan.Cluster) (clusterStatus, error) {
	s, err := a.openClusterStore(c)
	if err != nil {
		return clusterStatus{}, err
	}
	defer s.Close()
	snap, err := s.WaitHealthy(ctx, c.NodeNames())
	if err != nil {
		return clusterStatus{}, err
	}
	return buildClusterStatus(c, snap), nil
}

func (a *app) newDownCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down --dir DIR",
		Short: "Stop a local cluster started by bulwark up (agents, PostgreSQL, etcd)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := plan.Load(filepath.Join(dir, localPlan))
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range p.Cluster.Nodes {
				stopPID(filepath.Join(dir, n.Name, "agent.pid"))
				// Gone, not stale: a drill's fault helper then does not
				// start the agent again after a node loss.
				os.Remove(filepath.Join(dir, n.Name, "agent.pid"))
				stopPID(filepath.Join(dir, n.Name, "link.pid"))
			}
			owner, _ := postgresOwner()
			for _, n := range p.Cluster.Nodes {
				errs = append(errs, stopPostgres(cmd.Context(), p.Postgres.BinDir, n.PGData, owner))
			}
			ms, err := localEtcdMembers(dir, p.Cluster)
			errs = append(errs, err)
			for _, m := range ms {
				stopPID(m.pidFile)
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "cluster in %s stopped (data kept)\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the directory given to bulwark up")
	cmd.MarkFlagRequired("dir")
	return cmd
}

// stopPID sends SIGTERM to the process in a PID file and waits up to 10 s,
// then SIGKILLs it. A SIGSTOPped process is continued first.
func stopPID(path string) {
	pid, ok := pidAlive(path)
	if !ok {
		return
	}
	syscall.Kill(pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		if !pg.Alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

func stopPostgres(ctx context.Context, binDir, dataDir string, owner *syscall.Credential) error {
	inst := pg.Instance{BinDir: binDir, DataDir: dataDir, RunAs: owner}
	pid, ok := inst.PID()
	if !ok {
		return nil
	}
	syscall.Kill(pid, syscall.SIGCONT) // a drill may have left it frozen
	if err := inst.Stop(ctx, "fast", time.Minute); err != nil {
		return fmt.Errorf("stop PostgreSQL in %s: %w", dataDir, err)
	}
	return nil
}

func (a *app) newEtcdCmd() *cobra.Command {
	var o localetcd.Options
	cmd := &cobra.Command{
		Use:    "etcd --dir DIR --client-url URL --peer-url URL",
		Short:  "Run an embedded etcd member (local clusters; production uses external etcd)",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM)
			defer stop()
			srv, err := localetcd.Start(ctx, o)
			if err != nil {
				return err
			}
			defer srv.Close()
			a.log.Info("etcd serving", "url", srv.ClientURL())
			select {
			case <-ctx.Done():
				return nil
			case err := <-srv.Err():
				return err
			}
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "data directory")
	cmd.Flags().StringVar(&o.ClientURL, "client-url", "", "client URL, such as http://127.0.0.1:2379")
	cmd.Flags().StringVar(&o.PeerURL, "peer-url", "", "peer URL")
	cmd.Flags().StringVar(&o.Name, "name", "", "member name (default local)")
	cmd.Flags().StringVar(&o.InitialCluster, "initial-cluster", "", "every member as NAME=PEERURL,... (several members)")
	cmd.Flags().StringVar(&o.CertFile, "cert-file", "", "server certificate: clients connect over TLS")
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "its private key")
	cmd.Flags().StringVar(&o.ClientCAFile, "client-ca-file", "", "CA that must have signed clients' certificates")
	return cmd
}
