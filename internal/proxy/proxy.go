// Package proxy is a PostgreSQL-aware TCP proxy with a read-write port,
// which leads to the cluster's current primary, and a read-only port, which
// leads to a replica within a lag bound. It follows the topology a
// failover.Source reports and, when the primary changes, closes at once
// every session it routed to the old one, so that clients reconnect to the
// new one.
//
// It reads only what it must of the protocol: the startup packet (to answer
// SSLRequest and GSSENCRequest and to route CancelRequest) and the server's
// messages up to the first ReadyForQuery (to learn each session's
// BackendKeyData, which routes its cancel requests). After that it copies
// bytes both ways without looking at them.
//
// It never routes a new connection when unsure: without a primary (a
// failover in progress) a read-write connection is held until one appears,
// and refused with an ErrorResponse after Options.WaitPrimary. It keeps no
// state that another instance would need: several can run side by side.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// Fallback says where read-only connections go when no replica is within
// Options.MaxLag.
type Fallback int

const (
	// FallbackNone holds them like a failover does, until a replica is
	// within the bound, and refuses them after Options.WaitPrimary. The
	// default: replicas usually fall behind because the primary is busy,
	// and sending it the reads too would make that worse.
	FallbackNone Fallback = iota
	// FallbackPrimary sends them to the primary, whose reads are never
	// stale.
	FallbackPrimary
)

// Defaults of Options fields left zero.
const (
	DefaultMaxLag      = 1 << 20
	DefaultWaitPrimary = 30 * time.Second
)

// Options configures a Proxy. Source and at least one of ListenRW and
// ListenRO are required; every other zero field means its default.
type Options struct {
	// ListenRW and ListenRO are the host:port addresses of the read-write
	// and read-only ports; either may be "" but not both.
	ListenRW, ListenRO string
	// Source reports the cluster's topology; Run follows it.
	Source failover.Source
	// MaxLag bounds, in bytes of WAL, how far behind a replica may be to
	// receive read-only connections; 0: DefaultMaxLag.
	MaxLag int64
	// ROFallback: where read-only connections go when no replica is
	// within MaxLag; the zero value is FallbackNone.
	ROFallback Fallback
	// WaitPrimary is how long a new connection is held waiting for its
	// backend (a primary, or a replica for the read-only port) before it
	// is refused; 0: DefaultWaitPrimary. Holding rather than refusing is
	// what lets clients reach a new primary as soon as it is promoted.
	WaitPrimary time.Duration
	// TLS, when set, terminates clients' TLS at the proxy (it answers 'S'
	// to SSLRequest); nil answers 'N'.
	TLS *tls.Config
	// BackendTLS, when set, encrypts the connections to PostgreSQL
	// (SSLRequest, then TLS); an empty ServerName is set to each backend's
	// host. nil: plain TCP.
	BackendTLS *tls.Config
	// RelayLoops is how many relay loops copy the bytes of sessions with
	// TLS on neither side (see loop.go); 0: DefaultRelayLoops(); negative:
	// none, every session is copied by two goroutines of its own, as TLS
	// sessions always are.
	RelayLoops int
	Logger     *slog.Logger // nil: no logs
	// Registry receives the proxy's metrics, which Handler serves at
	// /metrics; nil: a registry of its own.
	Registry *prometheus.Registry
}

func (o Options) withDefaults() Options {
	if o.MaxLag == 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.WaitPrimary == 0 {
		o.WaitPrimary = DefaultWaitPrimary
	}
	if o.RelayLoops == 0 {
		o.RelayLoops = DefaultRelayLoops()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.ListenRW == "" && o.ListenRO == "":
		return errors.New("proxy: no address to listen on: set ListenRW, ListenRO or both")
	case o.Source == nil:
		return errors.New("proxy: no Source")
	case o.MaxLag < 0:
		return fmt.Errorf("proxy: MaxLag %d is negative", o.MaxLag)
	case o.WaitPrimary < 0:
		return fmt.Errorf("proxy: WaitPrimary %s is negative", o.WaitPrimary)
	case o.ROFallback != FallbackNone && o.ROFallback != FallbackPrimary:
		return fmt.Errorf("proxy: unknown ROFallback %d", o.ROFallback)
	}
	return nil
}

// Proxy routes PostgreSQL connections to a cluster's nodes. Its methods
// are safe for concurrent use.
type Proxy struct {
	o       Options
	log     *slog.Logger
	router  *router
	cancels *cancelMap
	metrics *metrics
	loops   *loops // set by Run; nil: no relay loops
}

// New checks o and builds a Proxy; it opens nothing until Run. It fails
// when the metrics cannot be registered in o.Registry (a second Proxy on
// the same registry).
func New(o Options) (*Proxy, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "proxy")
	return &Proxy{o: o, log: log, router: newRouter(o, m, log), cancels: newCancelMap(), metrics: m}, nil
}

// Run listens on the configured ports, follows the Source and serves
// clients until ctx ends; then it closes the listeners and every session
// and returns nil once all its goroutines have ended. It returns an error
// at once if it cannot listen, and later if the Source gives up. Run may
// be called once.
func (p *Proxy) Run(ctx context.Context) error {
	lns, err := p.listen()
	if err != nil {
		return err
	}
	if p.o.RelayLoops > 0 {
		if p.loops, err = startLoops(p.o.RelayLoops, p.log); err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return err
		}
		defer p.loops.stop() // after every session has ended
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for acc, ln := range lns {
		p.log.Info("listening", "port", acc, "addr", ln.Addr().String())
		wg.Go(func() { p.serve(ctx, ln, acc) })
	}
	err = p.o.Source.Follow(ctx, p.router.update)
	stopped := ctx.Err() != nil
	// In this order: each session closes its client when ctx ends, and
	// serve returns once its listener is closed and its sessions ended.
	cancel()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	if stopped {
		p.log.Info("stopped")
		return nil
	}
	if err == nil {
		err = errors.New("the source stopped")
	}
	return fmt.Errorf("proxy: follow the topology: %w", err)
}

// listen opens the configured ports; on error it closes those it opened.
func (p *Proxy) listen() (map[access]net.Listener, error) {
	lns := map[access]net.Listener{}
	for acc, addr := range map[access]string{readWrite: p.o.ListenRW, readOnly: p.o.ListenRO} {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("proxy: listen on %s (%s): %w", addr, acc, err)
		}
		lns[acc] = ln
	}
	return lns, nil
}

// serve accepts clients on ln until it is closed, each in a goroutine it
// waits for.
func (p *Proxy) serve(ctx context.Context, ln net.Listener, acc access) {
	var wg sync.WaitGroup
	defer wg.Wait()
	delay := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors, say: wait, do not spin
			p.log.Warn("accept failed; retrying", "port", acc, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		wg.Go(func() { p.handle(ctx, conn, acc) })
	}
}
