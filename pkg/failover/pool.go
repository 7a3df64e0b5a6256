package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Pool.
type Config struct {
	// ConnString carries what every connection shares: user, database,
	// password or passfile, sslmode, application_name, pool_max_conns.
	// The hosts come from Source; any host in it is ignored.
	ConnString string
	Source     Source
	// MaxReadLag bounds how far behind the primary a replica that Read
	// uses may be, in bytes of WAL; default 1 MiB. Negative: Read always
	// uses the primary.
	MaxReadLag int64
	// FailoverTimeout is how long one Write or Read waits for a usable
	// node, retries included; default 30 s.
	FailoverTimeout time.Duration
	// Backoff is the first wait between retries, doubled up to MaxBackoff;
	// each wait is drawn at random from its upper half, so that clients
	// do not reconnect in step. Defaults 50 ms and 1 s.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger // nil: no logs
}

// Pool routes transactions to a cluster's primary and replicas. It is safe
// for concurrent use.
type Pool struct {
	cfg  Config
	base *pgxpool.Config
	log  *slog.Logger

	mu       sync.Mutex
	topo     Topology
	changed  chan struct{} // closed and replaced at each topology change
	closed   bool
	primary  *nodePool
	replicas map[string]*nodePool
	// orphans are primary pools retired while the topology named no
	// primary: their calls are cut if another node is named next.
	orphans []*nodePool

	stop context.CancelFunc
	done chan struct{}
}

// nodePool is a pgx pool bound to one node in one term: when the topology
// moves on, it is closed, never repointed.
type nodePool struct {
	node Node
	term uint64
	pool *pgxpool.Pool
	// replaced ends when the topology names another node primary: calls
	// in flight on this one are cut off then (attempt, cutOnReplace).
	replaced context.Context
	replace  context.CancelFunc
}

// errReplaced is the cause of an attempt's context when the topology
// names another primary while it runs.
var errReplaced = errors.New("another node is the primary")

// attempt returns ctx, ended also when np's node is replaced as the
// primary: a Begin waiting on a primary that another node replaced, hung
// or cut off, returns at once instead of when its TCP connection times
// out.
func (np *nodePool) attempt(ctx context.Context) (context.Context, func()) {
	actx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(np.replaced, func() { cancel(errReplaced) })
	return actx, func() {
		stop()
		cancel(nil)
	}
}

// cutOnReplace closes conn's network connection if np's node is replaced
// as the primary before stop is called, as the proxy closes its clients'
// connections to a demoted primary: a call in flight on it fails at once,
// whatever context the caller's function passes to its queries.
func (np *nodePool) cutOnReplace(conn *pgx.Conn) (stop func() bool) {
	return context.AfterFunc(np.replaced, func() { conn.PgConn().Conn().Close() })
}

// Open starts following cfg.Source and returns once the first topology
// is known (which may have no primary yet). It fails on a malformed
// configuration, or when ctx ends first.
func Open(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Source == nil {
		return nil, errors.New("failover: Config.Source is required")
	}
	base, err := pgxpool.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	cfg.MaxReadLag = cmp.Or(cfg.MaxReadLag, 1<<20)
	cfg.FailoverTimeout = cmp.Or(cfg.FailoverTimeout, 30*time.Second)
	cfg.Backoff = cmp.Or(cfg.Backoff, 50*time.Millisecond)
	cfg.MaxBackoff = max(cmp.Or(cfg.MaxBackoff, time.Second), cfg.Backoff)
	p := &Pool{cfg: cfg, base: base, log: logger(cfg.Logger), changed: make(chan struct{}),
		replicas: map[string]*nodePool{}, done: make(chan struct{})}
	fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	first := make(chan struct{})
	var once sync.Once
	failed := make(chan error, 1)
	go func() {
		defer close(p.done)
		err := cfg.Source.Follow(fctx, func(t Topology) {
			p.apply(t)
			once.Do(func() { close(first) })
		})
		if fctx.Err() == nil {
			failed <- err
		}
	}()
	select {
	case <-first:
		return p, nil
	case err := <-failed:
		p.Close()
		return nil, fmt.Errorf("failover: following the cluster: %w", err)
	case <-ctx.Done():
		p.Close()
		return nil, ctx.Err()
	}
}

// Close stops following the cluster and closes every connection, waiting
// for those in use to be released. Closing twice is harmless.
func (p *Pool) Close() {
	p.stop()
	<-p.done
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var pools []*nodePool
	if p.primary != nil {
		pools = append(pools, p.primary)
	}
	for _, np := range p.replicas {
		pools = append(pools, np)
	}
	p.primary, p.replicas, p.closed = nil, map[string]*nodePool{}, true
	close(p.changed)
	p.mu.Unlock()
	for _, np := range pools {
		np.pool.Close()
	}
}

// Topology returns the topology the pool routes by.
func (p *Pool) Topology() Topology {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.topo
}

// apply installs a new topology: pools of nodes that lost their role are
// closed (in the background: Close waits for connections in use). Calls
// in flight on a primary's pool are cut off once the topology names
// another node primary; a topology without a primary (a failed probe, an
// election under way) cuts nothing, and if the same node is named again
// its calls go on.
func (p *Pool) apply(t Topology) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	var retired []*nodePool
	if p.primary != nil && (t.Primary == nil || t.Primary.Addr != p.primary.node.Addr || t.Term != p.primary.term) {
		retired = append(retired, p.primary)
		p.orphans = append(p.orphans, p.primary)
		p.primary = nil
	}
	if t.Primary != nil {
		for _, np := range p.orphans {
			if np.node.Addr != t.Primary.Addr {
				np.replace()
			}
		}
		p.orphans = nil
	}
	keep := map[string]bool{}
	for _, r := range t.Replicas {
		keep[r.Addr] = true
	}
	for addr, np := range p.replicas {
		if !keep[addr] {
			retired = append(retired, np)
			delete(p.replicas, addr)
		}
	}
	if p.topo.Primary != nil && (t.Primary == nil || t.Primary.Name != p.topo.Primary.Name) {
		p.log.Info("primary changed", "term", t.Term, "primary", nodeName(t.Primary))
	}
	p.topo = t
	close(p.changed)
	p.changed = make(chan struct{})
	for _, np := range retired {
		go np.pool.Close()
	}
}

func nodeName(n *Node) string {
	if n == nil {
		return "none"
	}
	return n.Name
}

// primaryPool returns the pool of the current primary, the channel that
// closes at the next topology change, or a nil pool when there is none.
func (p *Pool) primaryPool() (*nodePool, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, ErrClosed
	}
	if p.primary == nil && p.topo.Primary != nil {
		np, err := p.newNodePool(*p.topo.Primary, p.topo.Term, true)
		if err != nil {
			return nil, nil, err
		}
		p.primary = np
	}
	return p.primary, p.changed, nil
}

// readPool returns the pool Read uses now: the replica within MaxReadLag
// with the fewest connections in use, else the primary's (nil when there
// is neither), and the channel closed at the next topology change.
func (p *Pool) readPool() (*nodePool, <-chan struct{}, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	var best *nodePool
	if p.cfg.MaxReadLag >= 0 {
		for _, r := range p.topo.ReplicasWithin(p.cfg.MaxReadLag) {
			np := p.replicas[r.Addr]
			if np == nil {
				var err error
				if np, err = p.newNodePool(r, p.topo.Term, false); err != nil {
					p.mu.Unlock()
					return nil, nil, err
				}
				p.replicas[r.Addr] = np
			}
			if best == nil || np.pool.Stat().AcquiredConns() < best.pool.Stat().AcquiredConns() {
				best = np
			}
		}
	}
	changed := p.changed
	p.mu.Unlock()
	if best != nil {
		return best, changed, nil
	}
	return p.primaryPool()
}

// newNodePool makes a pool for one node. A primary's pool checks every
// new connection: a server in recovery or read-only is refused.
func (p *Pool) newNodePool(n Node, term uint64, primary bool) (*nodePool, error) {
	host, port, err := net.SplitHostPort(n.Addr)
	if err != nil {
		return nil, fmt.Errorf("failover: node %s: address %q: %w", n.Name, n.Addr, err)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("failover: node %s: port %q: %w", n.Name, port, err)
	}
	c := p.base.Copy()
	c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.Fallbacks = host, uint16(pn), nil
	if primary {
		c.AfterConnect = checkPrimary
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), c)
	if err != nil {
		return nil, fmt.Errorf("failover: node %s: %w", n.Name, err)
	}
	replaced, replace := context.WithCancel(context.Background())
	return &nodePool{node: n, term: term, pool: pool, replaced: replaced, replace: replace}, nil
}

// checkPrimary refuses a connection to a server that does not take writes.
func checkPrimary(ctx context.Context, conn *pgx.Conn) error {
	var recovery bool
	var readOnly string
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&recovery, &readOnly); err != nil {
		return err
	}
	if recovery || readOnly != "off" {
		return errNotPrimary
	}
	return nil
}

// current reports whether np is still the pool of the primary.
func (p *Pool) current(np *nodePool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.primary == np
}

// backoff waits before attempt n (from 0): a random time in the upper
// half of Backoff × 2^n (at most MaxBackoff), or less if the topology
// changes, then a little more, so that clients woken together spread out.
func (p *Pool) backoff(ctx context.Context, n int, changed <-chan struct{}) error {
	d := min(p.cfg.Backoff<<min(n, 20), p.cfg.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-changed:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(rand.N(p.cfg.Backoff + 1)):
		return nil
	}
}
