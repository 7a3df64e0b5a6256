package proxy

import (
	"cmp"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// access is what a port leads to: the primary (read-write) or a replica
// (read-only).
type access int

const (
	readWrite access = iota + 1
	readOnly
)

// String returns "rw" or "ro", the port label of the metrics.
func (a access) String() string {
	if a == readWrite {
		return "rw"
	}
	return "ro"
}

// LogValue logs "rw" or "ro".
func (a access) LogValue() slog.Value { return slog.StringValue(a.String()) }

// pick chooses the backend of a new connection on an acc port: the
// primary for read-write; for read-only the replica within maxLag with
// the fewest sessions in load (ties by name), else the primary if fb
// allows. false: none now.
func pick(acc access, t failover.Topology, maxLag int64, fb Fallback, load map[string]int) (failover.Node, bool) {
	if acc == readOnly {
		if within := t.ReplicasWithin(maxLag); len(within) > 0 {
			return slices.MinFunc(within, func(a, b failover.Node) int {
				return cmp.Or(cmp.Compare(load[a.Name], load[b.Name]), strings.Compare(a.Name, b.Name))
			}), true
		}
		if fb != FallbackPrimary {
			return failover.Node{}, false
		}
	}
	if t.Primary == nil {
		return failover.Node{}, false
	}
	return *t.Primary, true
}

// stale reports whether a session on an acc port, routed to node in term,
// must be closed under topology t. Read-write: unless node is still the
// primary and term is current, since a new term may follow a demotion
// and a promotion. Read-only: once node is neither a replica (at any
// lag) nor the primary.
func stale(acc access, node failover.Node, term uint64, t failover.Topology) bool {
	isPrimary := t.Primary != nil && sameNode(*t.Primary, node)
	if acc == readWrite {
		return !isPrimary || term < t.Term
	}
	return !isPrimary && !slices.ContainsFunc(t.Replicas, func(n failover.Node) bool { return sameNode(n, node) })
}

// sameNode compares what routing depends on, not the lag.
func sameNode(a, b failover.Node) bool { return a.Name == b.Name && a.Addr == b.Addr }

// session is one client routed to a backend. The router's mutex guards
// stale and pipe.
type session struct {
	acc   access
	node  failover.Node
	term  uint64
	stale bool  // the topology no longer allows it
	pipe  *pipe // client and backend; nil until attached
}

// router holds the topology and the sessions routed under it. It decides
// which sessions a topology update closes; it does no other I/O.
type router struct {
	maxLag   int64
	fallback Fallback
	m        *metrics
	log      *slog.Logger

	mu       sync.Mutex
	topo     failover.Topology
	known    bool          // topo was reported
	changed  chan struct{} // closed and replaced by every update
	sessions map[*session]struct{}
	load     map[string]int // sessions per node name
}

func newRouter(o Options, m *metrics, log *slog.Logger) *router {
	return &router{maxLag: o.MaxLag, fallback: o.ROFallback, m: m, log: log,
		changed: make(chan struct{}), sessions: map[*session]struct{}{}, load: map[string]int{}}
}

// update installs t and closes the sessions it makes stale. A topology of
// an older term than the current one is out of date: it is ignored.
func (r *router) update(t failover.Topology) {
	r.mu.Lock()
	if r.known && t.Term < r.topo.Term {
		r.mu.Unlock()
		r.log.Warn("ignoring a topology of an older term", "term", t.Term, "current_term", r.topo.Term)
		return
	}
	moved := !r.known || !sameRouting(r.topo, t)
	r.topo, r.known = t, true
	close(r.changed)
	r.changed = make(chan struct{})
	var pipes []*pipe
	closed := map[access]int{}
	for s := range r.sessions {
		if !moved {
			break // stale depends on nothing that changed: only lags did
		}
		if !s.stale && stale(s.acc, s.node, s.term, t) {
			s.stale = true
			if s.pipe != nil {
				pipes = append(pipes, s.pipe)
				closed[s.acc]++
			}
		}
	}
	r.mu.Unlock()
	for _, c := range pipes {
		c.close() // does not block
	}
	r.m.topology(t, closed)
	attrs := []any{"term", t.Term, "primary", primaryName(t), "replicas", len(t.Replicas),
		"closed_rw", closed[readWrite], "closed_ro", closed[readOnly]}
	if moved {
		r.log.Info("topology", attrs...)
	} else {
		r.log.Debug("topology", attrs...) // only the replicas' lag changed, as it does all the time
	}
}

func primaryName(t failover.Topology) string {
	if t.Primary == nil {
		return ""
	}
	return t.Primary.Name
}

// sameRouting reports whether t and u differ at most in the replicas'
// lag, and so in their order.
func sameRouting(t, u failover.Topology) bool {
	if t.Term != u.Term || (t.Primary == nil) != (u.Primary == nil) || (t.Primary != nil && !sameNode(*t.Primary, *u.Primary)) {
		return false
	}
	byName := func(a, b failover.Node) int { return strings.Compare(a.Name, b.Name) }
	return slices.EqualFunc(slices.SortedFunc(slices.Values(t.Replicas), byName), slices.SortedFunc(slices.Values(u.Replicas), byName), sameNode)
}

// acquire picks a backend for a new acc session and reserves it there, or
// returns nil when there is none now. changed is closed at the next
// topology update.
func (r *router) acquire(acc access) (s *session, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		return nil, r.changed
	}
	n, ok := pick(acc, r.topo, r.maxLag, r.fallback, r.load)
	if !ok {
		return nil, r.changed
	}
	s = &session{acc: acc, node: n, term: r.topo.Term}
	r.sessions[s] = struct{}{}
	r.load[n.Name]++
	return s, r.changed
}

// attach records the session's connections. false: an update made the
// session stale meanwhile; the caller closes them and picks again.
func (r *router) attach(s *session, c *pipe) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.stale {
		return false
	}
	s.pipe = c
	r.m.sessions.WithLabelValues(s.acc.String()).Inc()
	return true
}

// release forgets a session acquired before; the caller closes its
// connections.
func (r *router) release(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
	if r.load[s.node.Name]--; r.load[s.node.Name] == 0 {
		delete(r.load, s.node.Name)
	}
	if s.pipe != nil {
		r.m.sessions.WithLabelValues(s.acc.String()).Dec()
	}
}

// state returns the topology (false before the first report) and the
// number of attached sessions by port.
func (r *router) state() (failover.Topology, bool, map[access]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[access]int{readWrite: 0, readOnly: 0}
	for s := range r.sessions {
		if s.pipe != nil && !s.stale {
			n[s.acc]++
		}
	}
	return r.topo, r.known, n
}

// nodes returns every node of the current topology, for a cancel request
// nobody here knows.
func (r *router) nodes() []failover.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	nodes := slices.Clone(r.topo.Replicas)
	if r.topo.Primary != nil {
		nodes = append(nodes, *r.topo.Primary)
	}
	return nodes
}
