package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// conn is the connection string of node n's PostgreSQL, as the agent and
// its clients connect to it.
func (a *Agent) conn(n Node, db string) string {
	s := fmt.Sprintf("host=%s port=%d dbname=%s connect_timeout=2", n.Host, n.Port, db)
	if a.o.ConnOptions != "" {
		s += " " + a.o.ConnOptions
	}
	if !strings.Contains(a.o.ConnOptions, "user=") {
		s += " user=postgres"
	}
	return s
}

// libpqConn is conn for libpq (PostgreSQL's WAL receiver, pg_basebackup,
// pg_rewind): keepalives and a TCP user timeout make a black-holed peer
// fail in seconds rather than minutes. The host and port come first,
// unchanged, so followedNode can recognise them.
func (a *Agent) libpqConn(n Node) string {
	return a.conn(n, "postgres") + " keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=5000 application_name=" + a.o.Self.Name
}

// connect opens a pgx connection with TCP keepalives every 2 s (pgx does
// not take libpq's keepalives settings).
func connect(ctx context.Context, conn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 2 * time.Second}
	cfg.DialFunc = d.DialContext
	return pgx.ConnectConfig(ctx, cfg)
}

// slotName is the physical replication slot of a member on the primary.
func slotName(member string) string {
	return "bulwark_" + strings.NewReplacer("-", "_").Replace(member)
}

// settings are the PostgreSQL settings the agent writes to bulwark.conf:
// the cluster's parameters, then what the agent manages. leader is the
// node to follow (nil for a primary). synchronous_standby_names is left
// empty; the leader sets it.
func (a *Agent) settings(leader *Node) map[string]string {
	cfg := a.cfg()
	s := maps.Clone(cfg.Parameters)
	if s == nil {
		s = map[string]string{}
	}
	set := func(k, v string) { s[k] = v }
	set("listen_addresses", a.o.Self.Host)
	set("port", fmt.Sprint(a.o.Self.Port))
	set("cluster_name", a.o.Self.Name)
	set("wal_level", "replica")
	set("hot_standby", "on")
	set("hot_standby_feedback", "on")
	set("wal_log_hints", "on")
	setDefault(s, "max_wal_senders", "10")
	setDefault(s, "max_replication_slots", "10")
	setDefault(s, "wal_keep_size", "128MB")
	// Replicas report positions every second, so lag and the sync
	// standby's position are current; a dead sender or receiver is
	// noticed within seconds, not the default minute.
	set("wal_receiver_status_interval", "1s")
	setDefault(s, "wal_sender_timeout", "5s")
	setDefault(s, "wal_receiver_timeout", "5s")
	set("wal_retrieve_retry_interval", "200ms")
	set("recovery_target_timeline", "latest")
	setDefault(s, "tcp_keepalives_idle", "2")
	setDefault(s, "tcp_keepalives_interval", "1")
	setDefault(s, "tcp_keepalives_count", "3")
	setDefault(s, "tcp_user_timeout", "5000")
	// Off the leader, synchronous_standby_names names no real standby:
	// it means nothing to a replica, and a former primary that still runs
	// keeps every commit waiting (fenced) until it is demoted. Only the
	// leader sets real names.
	set("synchronous_standby_names", fenceName)
	if a.o.RestoreCommand != "" {
		set("restore_command", a.o.RestoreCommand)
	}
	if a.o.ArchiveCommand != "" {
		set("archive_mode", "on")
		set("archive_command", a.o.ArchiveCommand)
		if a.o.ArchiveTimeout > 0 {
			setDefault(s, "archive_timeout", fmt.Sprintf("%dms", a.o.ArchiveTimeout.Milliseconds()))
		}
	}
	if leader != nil {
		set("primary_conninfo", a.libpqConn(*leader))
		set("primary_slot_name", slotName(a.o.Self.Name))
	} else {
		set("primary_conninfo", "")
		set("primary_slot_name", "")
	}
	return s
}

func setDefault(s map[string]string, k, v string) {
	if _, ok := s[k]; !ok {
		s[k] = v
	}
}

// applyConf writes settings and, if they changed and the server runs,
// reloads it. It holds confMu, which orders it with the fence.
func (a *Agent) applyConf(s map[string]string) error {
	a.confMu.Lock()
	defer a.confMu.Unlock()
	return a.writeConf(s)
}

// errFenced refuses a leader's configuration once the agent fenced or lost
// leadership: it would undo the fence.
var errFenced = errors.New("no longer leading (fenced): leader settings not applied")

// applyLeaderConf is applyConf for settings only a leader may run with
// (real synchronous standby names, or none): under confMu it checks that
// the agent still leads and that its fence deadline has not passed, so a
// step that began before a fence cannot release the commits the fence
// holds.
func (a *Agent) applyLeaderConf(s map[string]string) error {
	a.confMu.Lock()
	defer a.confMu.Unlock()
	a.mu.Lock()
	ok := a.st.leading && time.Now().Before(a.fenceDeadlineLocked())
	if ok {
		a.st.fenced = false
	}
	a.mu.Unlock()
	if !ok {
		return errFenced
	}
	return a.writeConf(s)
}

func (a *Agent) writeConf(s map[string]string) error {
	changed, err := a.o.PG.WriteConf(s)
	if err != nil {
		return err
	}
	if _, running := a.o.PG.PID(); changed && running {
		return a.o.PG.Reload()
	}
	return nil
}

// localConn opens a connection to the local server for a short task.
func (a *Agent) localConn(ctx context.Context) (*pgx.Conn, error) {
	return connect(ctx, a.conn(a.o.Self, "postgres"))
}

// withLocal runs fn on one connection to the local server, all within
// timeout.
func (a *Agent) withLocal(ctx context.Context, timeout time.Duration, fn func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := a.localConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return fn(ctx, conn)
}

// terminateClients ends every client session on the local server but the
// agent's own, and returns how many it ended.
func (a *Agent) terminateClients(ctx context.Context) (int, error) {
	conn, err := a.localConn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n)
	return n, err
}

// waitSetting waits until the server on conn runs with setting name =
// want, so a caller knows a reload is in force (the session rereads its
// configuration between queries). Backends and the checkpointer pick up a
// reload asynchronously.
func waitSetting(ctx context.Context, conn *pgx.Conn, name, want string) error {
	for {
		var got string
		if err := conn.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = $1", name).Scan(&got); err != nil {
			return err
		}
		if got == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is still %q, not %q", name, got, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
