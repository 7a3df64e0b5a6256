// Package cluster owns what the agents of an HA cluster share through etcd:
// the leader key with its term, each member's published state, the
// synchronous-standby record, the dynamic configuration, requests
// (switchover, failover, reinit, restart) and the history of failovers. It
// defines these documents and the Store that reads and writes them.
//
// It decides nothing: package ha does, from what Store reads. Every write a
// leader makes is guarded by its leader key's creation revision, so a node
// that lost leadership cannot overwrite what the new leader wrote.
package cluster

import (
	"time"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Role is what a member's PostgreSQL is.
type Role string

const (
	RolePrimary Role = "primary" // accepts writes
	RoleReplica Role = "replica" // in recovery, streaming or catching up
	RoleNone    Role = "stopped" // PostgreSQL is not running
)

// Member is the state a member's agent publishes every loop under its own
// lease, so a member whose agent died disappears after the TTL.
type Member struct {
	Name      string         `json:"name"`
	Role      Role           `json:"role"`
	State     string         `json:"state"` // running, starting, stopped, crashed, cloning, rewinding, fenced, ...
	Timeline  wal.TimelineID `json:"timeline"`
	LSN       wal.LSN        `json:"lsn"`        // primary: its write position; replica: WAL received and flushed
	ReplayLSN wal.LSN        `json:"replay_lsn"` // replica: WAL replayed
	Streaming bool           `json:"streaming"`  // replica: its WAL receiver is streaming
	Following string         `json:"following,omitempty"`
	Term      uint64         `json:"term"` // the leader term the member acts in
	SystemID  uint64         `json:"system_id,string"`
	APIURL    string         `json:"api_url"`
	Conn      string         `json:"conn"` // libpq connection string of its PostgreSQL
	Addr      string         `json:"addr"` // host:port of its PostgreSQL, for proxies and clients
	// PendingRestart lists settings that only take effect after a restart.
	PendingRestart []string `json:"pending_restart,omitempty"`
	Error          string   `json:"error,omitempty"` // the agent's last error, "" when fine
	// RestartGeneration is the last rolling restart (Config.RestartGeneration)
	// this member has done.
	RestartGeneration uint64    `json:"restart_generation"`
	Updated           time.Time `json:"updated"`
}

// Leader is the value of the leader key. Term increases by one with each
// election or handover: REST answers, the proxy and clients trust only the
// highest term they have seen.
type Leader struct {
	Name  string    `json:"name"`
	Term  uint64    `json:"term"`
	Since time.Time `json:"since"`
}

// Beat is the leader's heartbeat, rewritten with every renewal of its
// lease. A leader fences FenceAfter after sending a renewal unless a later
// one succeeds, so a replica that saw a heartbeat at local time H knows the
// leader has fenced by H + FenceAfter: a heartbeat is written after its
// renewal was sent. Replicas use it to end a silent leadership sooner than
// the lease's expiry (docs/ha.md, "Timers").
type Beat struct {
	Term       uint64        `json:"term"` // the leadership it belongs to
	FenceAfter time.Duration `json:"fence_after_ns"`
}

// Sync records who may hold acknowledged commits the others lack. Each
// acknowledged commit is on the leader and on at least Quorum of Standbys.
// The leader widens it before it names a new synchronous standby to
// PostgreSQL and narrows it after, so it never under-states who is
// synchronous; a failover in sync or quorum mode promotes only from it.
type Sync struct {
	Term     uint64   `json:"term"`
	Leader   string   `json:"leader"`
	Standbys []string `json:"standbys"`
	Quorum   int      `json:"quorum"` // 0: asynchronous, no promotion guarantee
}

// Mode is the replication mode, changeable at runtime.
type Mode string

const (
	ModeAsync  Mode = "async"
	ModeSync   Mode = "sync"   // one synchronous standby (FIRST 1)
	ModeQuorum Mode = "quorum" // ANY SyncCount
)

// Config is the dynamic configuration every agent applies.
type Config struct {
	TTL                  Duration          `json:"ttl"`
	LoopWait             Duration          `json:"loop_wait"`
	Mode                 Mode              `json:"mode"`
	SyncCount            int               `json:"sync_count"` // quorum: standbys per commit
	Strict               bool              `json:"strict"`     // refuse writes rather than fall back to async
	MaximumLagOnFailover int64             `json:"maximum_lag_on_failover"`
	Parameters           map[string]string `json:"parameters,omitempty"`
	Paused               bool              `json:"paused"` // maintenance: agents take no automatic action
	// CrashRestarts is how many times the leader's agent restarts a
	// crashed PostgreSQL in place before it gives up leadership; 0 fails
	// over at once.
	CrashRestarts int `json:"crash_restarts"`
	// RestartGeneration increases with each rolling restart requested.
	RestartGeneration uint64 `json:"restart_generation"`
}

// Required is how many standbys must confirm each commit in c's mode.
func (c Config) Required() int {
	switch c.Mode {
	case ModeSync:
		return 1
	case ModeQuorum:
		return max(1, c.SyncCount)
	}
	return 0
}

// Duration is a time.Duration written as "10s" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	x, err := time.ParseDuration(string(b))
	*d = Duration(x)
	return err
}

// Request asks the leader for a planned change of leadership.
type Request struct {
	Kind string    `json:"kind"`         // "switchover" or "failover"
	From string    `json:"from"`         // the current leader (switchover); "" for any
	To   string    `json:"to,omitempty"` // the node to promote; "" lets the leader pick
	At   time.Time `json:"at,omitzero"`  // not before this time
}

// Event is one change of leadership, kept in etcd under history/.
type Event struct {
	Term     uint64         `json:"term"`
	Kind     string         `json:"kind"` // failover, switchover, manual-failover, bootstrap
	Detected time.Time      `json:"detected"`
	Promoted time.Time      `json:"promoted"`
	Old      string         `json:"old,omitempty"` // the previous leader
	New      string         `json:"new"`
	Timeline wal.TimelineID `json:"timeline"`
	NewLSN   wal.LSN        `json:"new_lsn"`  // promoted node's WAL position at promotion
	OldLSN   wal.LSN        `json:"old_lsn"`  // the old primary's last known position
	Downtime Duration       `json:"downtime"` // detection to promotion
	Reason   string         `json:"reason,omitempty"`
	Rewound  *Rewound       `json:"rewound,omitempty"` // set when the old primary rejoined with pg_rewind
}

// Rewound records what pg_rewind discarded when a node rejoined: WAL from
// From to To on Timeline that only that node had.
type Rewound struct {
	Node     string         `json:"node"`
	Timeline wal.TimelineID `json:"timeline"`
	From     wal.LSN        `json:"from"`
	To       wal.LSN        `json:"to"`
	At       time.Time      `json:"at"`
	Recloned bool           `json:"recloned,omitempty"` // rewind failed; the node was cloned afresh
}

// Unhealthy says why the cluster of nodes is not healthy, or "" when it
// is: a leader whose PostgreSQL runs as primary, every other node
// streaming, and the synchronous standbys the mode needs named.
func (s Snapshot) Unhealthy(nodes []string) string {
	if s.Leader == nil {
		return "no leader"
	}
	for _, n := range nodes {
		m, ok := s.Members[n]
		switch {
		case !ok:
			return n + "'s agent is down"
		case n == s.Leader.Name && (m.Role != RolePrimary || m.State != "running"):
			return n + " leads but is " + m.State
		case n != s.Leader.Name && m.State != "streaming":
			return n + " is " + m.State
		}
	}
	if s.Sync != nil && s.Sync.Quorum > 0 && len(s.Sync.Standbys) < s.Sync.Quorum {
		return "synchronous standbys not named yet"
	}
	return ""
}
