package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelTimeout bounds the delivery of one cancel request.
const cancelTimeout = 5 * time.Second

// cancelKey is a session's BackendKeyData: its server process and secret.
type cancelKey struct {
	pid    uint32
	secret string
}

// cancelMap maps the cancel keys of this instance's sessions to their
// backends' addresses. Its methods are safe for concurrent use.
type cancelMap struct {
	mu sync.Mutex
	m  map[cancelKey]string
}

func newCancelMap() *cancelMap { return &cancelMap{m: map[cancelKey]string{}} }

func (c *cancelMap) add(k cancelKey, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = addr
}

func (c *cancelMap) remove(k cancelKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

func (c *cancelMap) lookup(k cancelKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr, ok := c.m[k]
	return addr, ok
}

// cancel routes a client's CancelRequest: to the backend of the session
// whose key it carries or, when this instance does not know the key (the
// session went through another instance behind the same load balancer),
// to every node of the current topology. PostgreSQL ignores a cancel
// request whose process and secret do not match one of its sessions, so
// the others do nothing. It returns once every server it asked has closed
// the connection (it has then signalled its session), as libpq waits.
func (p *Proxy) cancel(ctx context.Context, pkt packet, log *slog.Logger) {
	var req pgproto3.CancelRequest
	if err := req.Decode(pkt[4:]); err != nil {
		log.Debug("malformed cancel request", "err", err)
		return
	}
	var addrs []string
	if addr, ok := p.cancels.lookup(cancelKey{req.ProcessID, string(req.SecretKey)}); ok {
		addrs = append(addrs, addr)
		p.metrics.cancels.WithLabelValues("direct").Inc()
	} else {
		for _, n := range p.router.nodes() {
			addrs = append(addrs, n.Addr)
		}
		p.metrics.cancels.WithLabelValues("broadcast").Inc()
	}
	ctx, stop := context.WithTimeout(ctx, cancelTimeout)
	defer stop()
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			if err := p.sendCancel(ctx, addr, pkt); err != nil {
				log.Debug("cancel request not delivered", "backend", addr, "err", err)
			}
		})
	}
	wg.Wait()
}

// sendCancel sends pkt to the server at addr and waits until it closes
// the connection.
func (p *Proxy) sendCancel(ctx context.Context, addr string, pkt packet) error {
	conn, raw, err := p.dialBackend(ctx, addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if deadline, ok := ctx.Deadline(); ok {
		raw.SetDeadline(deadline)
	}
	if _, err := conn.Write(pkt); err != nil {
		return err
	}
	var b [1]byte
	conn.Read(b[:]) // EOF: the server has acted on it
	return nil
}
