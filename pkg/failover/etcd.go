package failover

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// EtcdSource follows a cluster through the keys its agents keep in etcd,
// with a watch: a change of leader is seen as soon as etcd has it.
//
// A leader is reported as Primary only once it is confirmed running as
// the primary of its term: by its own published state, or else by its
// agent's GET /primary (200 with X-Bulwark-Term equal to the term), asked
// every 100 ms until it says so. Between the leader key changing and that
// confirmation, Primary is nil.
type EtcdSource struct {
	Endpoints []string
	TLS       *tls.Config // nil for plain http endpoints
	// Cluster is the cluster's name (the plan's cluster.name).
	Cluster string
	// HTTP asks agents' REST APIs; nil: a client with a 1 s timeout.
	HTTP   *http.Client
	Logger *slog.Logger // nil: no logs
}

// Follow implements Source.
func (s *EtcdSource) Follow(ctx context.Context, update func(Topology)) error {
	if len(s.Endpoints) == 0 || s.Cluster == "" {
		return errors.New("failover: EtcdSource needs Endpoints and Cluster")
	}
	store, err := cluster.Open(cluster.Options{Endpoints: s.Endpoints, TLS: s.TLS, Cluster: s.Cluster})
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	defer store.Close()
	log := logger(s.Logger)
	check := newLeaderCheck(s.HTTP)
	changes := store.WatchAll(ctx)
	var last *Topology
	for {
		// Without a change, read again now and then anyway: a watch
		// re-established after an etcd outage may have missed events.
		wait := time.Second
		snap, err := store.Read(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			log.Warn("cannot read the cluster from etcd; keeping the last topology", "err", err)
			wait = 500 * time.Millisecond
		default:
			t, settled := membersTopology(ctx, snap.Leader, snap.Members, check.ok)
			if snap.Leader == nil {
				// No leader: the last term granted, so that followers drop
				// the old primary rather than take this for a stale view.
				t.Term = snap.Term
			}
			if !settled {
				wait = 100 * time.Millisecond
			}
			last = report(last, t, update)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changes:
		case <-time.After(wait):
		}
	}
}

// report calls update with t unless it routes like last.
func report(last *Topology, t Topology, update func(Topology)) *Topology {
	if last == nil || !t.Equal(*last) {
		update(t)
	}
	return &t
}

// membersTopology builds the topology from the leader key and the
// members' published states. isPrimary says whether the leader runs as
// the primary of its term. settled is false while it does not: the caller
// should look again soon.
func membersTopology(ctx context.Context, leader *cluster.Leader, members map[string]cluster.Member, isPrimary func(context.Context, cluster.Member, uint64) bool) (Topology, bool) {
	if leader == nil {
		return Topology{}, false
	}
	t := Topology{Term: leader.Term}
	lm, ok := members[leader.Name]
	if !ok || lm.Addr == "" || !isPrimary(ctx, lm, leader.Term) {
		return t, false
	}
	t.Primary = &Node{Name: lm.Name, Addr: lm.Addr, APIURL: lm.APIURL}
	for _, m := range members {
		if m.Name == leader.Name || m.Role != cluster.RoleReplica || m.State != "streaming" || m.Following != leader.Name || m.Addr == "" {
			continue
		}
		lag := int64(0)
		if lm.LSN > m.LSN {
			lag = int64(lm.LSN - m.LSN)
		}
		t.Replicas = append(t.Replicas, Node{Name: m.Name, Addr: m.Addr, LagBytes: lag, APIURL: m.APIURL})
	}
	sortReplicas(t.Replicas)
	return t, true
}

func sortReplicas(r []Node) {
	slices.SortFunc(r, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.LagBytes, b.LagBytes), strings.Compare(a.Name, b.Name))
	})
}

// leaderCheck confirms that a leader runs as the primary of its term: by
// its published state, or else by its agent's GET /primary. It does so
// once per leadership: from then on the leader key alone keeps the node
// the primary, so that a member record that lags or an API slow to answer
// under load never makes clients drop their sessions. A crashed primary
// is not kept by this: its agent restarts it in place or gives the key up,
// and the key expires with a lost node.
type leaderCheck struct {
	hc   *http.Client
	name string
	term uint64
}

// newLeaderCheck asks agents with hc; nil: with agentClient(nil).
func newLeaderCheck(hc *http.Client) *leaderCheck { return &leaderCheck{hc: agentClient(hc)} }

// agentClient is hc, or for nil a client with a 1 s timeout: agents
// answer from memory, and a slow one must not hold the source.
func agentClient(hc *http.Client) *http.Client {
	if hc == nil {
		return &http.Client{Timeout: time.Second}
	}
	return hc
}

func (c *leaderCheck) ok(ctx context.Context, m cluster.Member, term uint64) bool {
	if m.Name == c.name && term == c.term {
		return true
	}
	if (m.Term == term && m.Role == cluster.RolePrimary && m.State == "running") || c.askAPI(ctx, m, term) {
		c.name, c.term = m.Name, term
		return true
	}
	return false
}

// askAPI asks a member's agent whether its PostgreSQL is the running
// primary of term.
func (c *leaderCheck) askAPI(ctx context.Context, m cluster.Member, term uint64) bool {
	if m.APIURL == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, strings.TrimSuffix(m.APIURL, "/")+"/primary", nil)
	if err != nil {
		return false
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Bulwark-Term") == strconv.FormatUint(term, 10)
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
