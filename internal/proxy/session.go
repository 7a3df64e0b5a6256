package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// handle serves one client connection, from its first byte to its end.
func (p *Proxy) handle(ctx context.Context, raw net.Conn, acc access) {
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() }) // Run is ending
	defer stop()
	log := p.log.With("port", acc, "client", raw.RemoteAddr().String())
	raw.SetDeadline(time.Now().Add(startupTimeout))
	conn, pkt, err := p.negotiate(raw)
	if err != nil {
		log.Debug("client startup failed", "err", err)
		if ce := (clientError{}); errors.As(err, &ce) {
			refuse(conn, ce.code, ce.msg)
		}
		return
	}
	if pkt.code() == cancelRequestCode {
		p.cancel(ctx, pkt, log)
		return
	}
	raw.SetDeadline(time.Time{})
	s, c, ok := p.route(ctx, acc, conn, raw, log)
	if !ok {
		return
	}
	defer p.router.release(s)
	defer c.close()
	log = log.With("node", s.node.Name)
	log.Debug("routed")
	p.metrics.routed.WithLabelValues(acc.String(), s.node.Name).Inc()
	p.relay(ctx, c, s, pkt, log)
}

// route holds the client until its backend is connected and returns the
// session and its pipe. If none is, it tells the client why, and returns
// false.
func (p *Proxy) route(ctx context.Context, acc access, conn, raw net.Conn, log *slog.Logger) (*session, *pipe, bool) {
	gone, stopWatch := watchClient(raw)
	c := &pipe{client: conn, clientRaw: raw}
	s, err := p.connect(ctx, acc, c, gone)
	stopWatch()
	switch {
	case err == nil:
		return s, c, true
	case errors.Is(err, errClientGone):
		log.Debug("client left while held")
	default:
		log.Warn("client refused", "err", err)
		p.metrics.refused.WithLabelValues(acc.String()).Inc()
		code := codeCannotConnectNow
		if errors.As(err, new(permanentError)) {
			code = codeConnectionFailure
		}
		refuse(conn, code, "bulwark proxy: "+err.Error())
	}
	return nil, nil, false
}

// connect waits up to o.WaitPrimary for a backend for acc, connects c to
// it (again after a short backoff while it refuses, on the backend the
// topology names then) and attaches the session to the router. It gives
// up with errClientGone once gone is closed.
func (p *Proxy) connect(ctx context.Context, acc access, c *pipe, gone <-chan struct{}) (*session, error) {
	waiting := p.metrics.waiting.WithLabelValues(acc.String())
	waiting.Inc()
	defer waiting.Dec()
	ctx, cancel := context.WithTimeout(ctx, p.o.WaitPrimary)
	defer cancel()
	backoff := 10 * time.Millisecond
	var last error
	for {
		s, changed := p.router.acquire(acc)
		if s != nil {
			var err error
			c.backend, c.backendRaw, err = p.dialBackend(ctx, s.node.Addr)
			if err == nil && p.router.attach(s, c) {
				return s, nil
			}
			p.router.release(s)
			if err == nil { // the topology changed meanwhile: pick again
				c.backendRaw.Close()
				continue
			}
			if errors.As(err, new(permanentError)) {
				return nil, fmt.Errorf("connect to %s: %w", s.node.Name, err)
			}
			last = fmt.Errorf("connect to %s: %w", s.node.Name, err)
		}
		if err := wait(ctx, changed, gone, s != nil, backoff); errors.Is(err, errClientGone) {
			return nil, err
		} else if err != nil {
			return nil, p.noBackend(acc, last)
		}
		if s != nil {
			backoff = min(2*backoff, backoffMax)
		}
	}
}

// wait waits for changed, or for backoff after a backend refused. It
// returns errClientGone once gone is closed and ctx.Err() once ctx ends.
func wait(ctx context.Context, changed, gone <-chan struct{}, refused bool, backoff time.Duration) error {
	var timeout <-chan time.Time
	if refused {
		t := time.NewTimer(backoff)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-gone:
		return errClientGone
	case <-changed:
	case <-timeout:
	}
	return nil
}

// noBackend is the error a client held in vain is told.
func (p *Proxy) noBackend(acc access, last error) error {
	what := "no primary"
	if acc == readOnly {
		what = fmt.Sprintf("no replica within %d bytes of lag", p.o.MaxLag)
	}
	if last != nil {
		return fmt.Errorf("%s after %s: last attempt: %w", what, p.o.WaitPrimary, last)
	}
	return fmt.Errorf("%s after %s", what, p.o.WaitPrimary)
}

// pipe is a session's two connections and the raw TCP under each; once
// handed to a relay loop, the link that holds them. close is safe for
// concurrent use.
type pipe struct {
	client, clientRaw   net.Conn
	backend, backendRaw net.Conn

	mu     sync.Mutex
	closed bool
	link   *link // set by handOff
}

// close ends both directions; it does not block.
func (c *pipe) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.link != nil {
		c.link.shutdown()
		return
	}
	c.clientRaw.Close()
	c.backendRaw.Close()
}

// plain reports whether both connections are TCP without TLS, which is
// what a relay loop can copy.
func (c *pipe) plain() bool { return c.client == c.clientRaw && c.backend == c.backendRaw }

// handOff moves both connections into a link for a relay loop; the pipe
// keeps the link, which its close shuts down. It fails once the pipe is
// closed.
func (c *pipe) handOff() (*link, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	k, err := newLink(c.clientRaw, c.backendRaw)
	if err != nil {
		c.closed = true // newLink closed both
		return nil, fmt.Errorf("hand the session to a relay loop: %w", err)
	}
	c.link = k
	return k, nil
}

// relay forwards the client's startup packet, then copies bytes both ways
// until either side ends or the pipe is closed. From the server it first
// reads messages up to the first ReadyForQuery, to record the session's
// cancel key; meanwhile a goroutine copies what the client sends. After
// that a plain-TCP session moves to a relay loop; one with TLS on either
// side goes on with a goroutine per direction.
func (p *Proxy) relay(ctx context.Context, c *pipe, s *session, startup packet, log *slog.Logger) {
	defer c.close()
	stop := context.AfterFunc(ctx, c.close) // Run is ending
	defer stop()
	if _, err := c.backend.Write(startup); err != nil {
		log.Debug("backend gone before startup", "err", err)
		return
	}
	var loop *loop
	if c.plain() {
		loop = p.loops.pick()
	}
	var up int64
	var unsent []byte
	var upErr error
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		up, unsent, upErr = copyPlain(c.backend, c.client)
		if loop == nil || !errors.Is(upErr, os.ErrDeadlineExceeded) { // else: handed to the loop
			c.close()
		}
	}()
	var keys []cancelKey
	defer func() {
		for _, k := range keys {
			p.cancels.remove(k)
		}
	}()
	down, err := relayStartup(c.client, bufio.NewReader(c.backend), func(key pgproto3.BackendKeyData) {
		k := cancelKey{key.ProcessID, string(key.SecretKey)}
		p.cancels.add(k, s.node.Addr)
		keys = append(keys, k)
	})
	switch {
	case err != nil:
	case loop == nil:
		n, _, _ := copyPlain(c.client, c.backend) // ends with either side
		down += n
	default:
		// Stop the copy to the server at its next read, or within a write
		// the server does not take (it may be writing to the client, whom
		// nobody reads now). What it read and did not write goes to the
		// loop, which reads what comes after.
		c.clientRaw.SetReadDeadline(aLongTimeAgo)
		c.backendRaw.SetWriteDeadline(aLongTimeAgo)
		<-upDone
		if errors.Is(upErr, os.ErrDeadlineExceeded) {
			var k *link
			if k, err = c.relayIn(loop, unsent); err == nil {
				up += k.dirs[0].bytes
				down += k.dirs[1].bytes
				err = k.err
			}
		}
	}
	c.close()
	<-upDone
	p.metrics.bytes.WithLabelValues(s.acc.String(), "to_server").Add(float64(up))
	p.metrics.bytes.WithLabelValues(s.acc.String(), "to_client").Add(float64(down))
	log.Debug("session ended", "bytes_to_server", up, "bytes_to_client", down, "err", err)
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// relayIn hands c to loop, with bytes from the client not yet sent to
// the server, and returns the link once the session ended.
func (c *pipe) relayIn(loop *loop, unsent []byte) (*link, error) {
	k, err := c.handOff()
	if err != nil {
		return nil, err
	}
	k.dirs[0].pending = unsent
	if err := loop.add(k); err != nil {
		k.close()
		return nil, err
	}
	<-k.done
	return k, nil
}

// relayBuffer is the size of each direction's copy buffer, held for the
// session's life, when goroutines copy.
const relayBuffer = 16 << 10

// copyPlain copies src to dst until either fails, with read(2) and
// write(2) through a buffer, never splice(2): for PostgreSQL's small
// messages splice costs more (pgbench -S, 8 clients on 2 cores: 13-16k
// TPS with splice, 19-22k without; HAProxy 18k). It returns the bytes
// copied, those read but not written when a write failed, and the error
// that ended it (nil at the end of src).
func copyPlain(dst io.Writer, src io.Reader) (int64, []byte, error) {
	buf := make([]byte, relayBuffer)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, buf[nw:nr], werr
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil, nil
		case rerr != nil:
			return n, nil, rerr
		}
	}
}
