package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	// dialTimeout bounds one attempt to connect to a backend (TLS
	// included), so that a black-holed node does not stall a client past
	// the next topology change.
	dialTimeout = 2 * time.Second
	// backoffMax bounds the wait between attempts to connect to a backend
	// that refused.
	backoffMax = 200 * time.Millisecond
)

// backendKeepAlive notices a backend that vanished without a word (a
// partition, a lost machine) within about 8 s on an idle session.
var backendKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: time.Second, Count: 3}

// permanentError is a backend connection failure that retrying will not
// fix: a certificate that does not verify, a server without TLS.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// dialBackend connects to the PostgreSQL server at addr: plain TCP, or
// SSLRequest and TLS when o.BackendTLS is set. It returns the connection
// to talk on and the raw TCP connection under it (the same without TLS).
func (p *Proxy) dialBackend(ctx context.Context, addr string) (conn, raw net.Conn, err error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAliveConfig: backendKeepAlive}
	raw, err = d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if p.o.BackendTLS == nil {
		return raw, raw, nil
	}
	conn, err = backendTLS(ctx, raw, addr, p.o.BackendTLS)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return conn, raw, nil
}

// backendTLS asks the server at addr for TLS on raw and completes the
// handshake, verifying the server as cfg says.
func backendTLS(ctx context.Context, raw net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	raw.SetDeadline(time.Now().Add(dialTimeout))
	defer raw.SetDeadline(time.Time{})
	req, err := (&pgproto3.SSLRequest{}).Encode(nil)
	if err != nil {
		return nil, err
	}
	if _, err := raw.Write(req); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(raw, answer[:]); err != nil {
		return nil, err
	}
	if answer[0] != 'S' {
		return nil, permanentError{fmt.Errorf("%s does not accept TLS (answered %q)", addr, answer[0])}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ve := new(tls.CertificateVerificationError); errors.As(err, &ve) {
			return nil, permanentError{err}
		}
		return nil, err
	}
	return tc, nil
}
