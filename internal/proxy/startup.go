package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Request codes: the first 4 bytes after the length of a client's first
// packet. A StartupMessage carries the protocol version instead (3.0 is
// 196608), major version in the high 16 bits.
const (
	cancelRequestCode = 80877102
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
)

const (
	// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
	// maxStartupReply bounds one server message before ReadyForQuery.
	maxStartupReply = 1 << 20
	// startupTimeout bounds reading a client's startup packet and its TLS
	// handshake: a client that sends nothing does not hold a goroutine.
	startupTimeout = 10 * time.Second
)

// SQLSTATE codes the proxy answers with.
const (
	codeCannotConnectNow   = "57P03" // no backend now: retry later
	codeConnectionFailure  = "08006"
	codeProtocolViolation  = "08P01"
	codeFeatureUnsupported = "0A000"
)

// packet is a client's startup-phase packet, its length included.
type packet []byte

func (p packet) code() uint32 { return binary.BigEndian.Uint32(p[4:8]) }

// readPacket reads one startup-phase packet and not a byte more: a TLS
// handshake that follows an SSLRequest reads from the socket itself, so
// plaintext a client (or an attacker) sent after the SSLRequest cannot
// end up inside the encrypted session.
func readPacket(r io.Reader) (packet, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 8 || n > maxStartupPacket {
		return nil, clientError{codeProtocolViolation, fmt.Sprintf("invalid length of startup packet: %d", n)}
	}
	p := make(packet, n)
	copy(p, size[:])
	if _, err := io.ReadFull(r, p[4:]); err != nil {
		return nil, err
	}
	return p, nil
}

// clientError is a client's mistake, which it is told about in an
// ErrorResponse.
type clientError struct{ code, msg string }

func (e clientError) Error() string { return e.msg }

// negotiate answers SSLRequest and GSSENCRequest until the client sends a
// StartupMessage or a CancelRequest, which it returns with the connection
// to use from then on: TLS when the client asked for it and o.TLS is set.
// On error conn is still the connection to answer on.
func (p *Proxy) negotiate(conn net.Conn) (net.Conn, packet, error) {
	for range 3 { // an SSLRequest, a GSSENCRequest, then the real packet
		pkt, err := readPacket(conn)
		if err != nil {
			return conn, nil, err
		}
		switch code := pkt.code(); {
		case code == sslRequestCode:
			if _, isTLS := conn.(*tls.Conn); isTLS {
				return conn, nil, clientError{codeProtocolViolation, "SSLRequest inside TLS"}
			}
			if conn, err = p.startTLS(conn); err != nil {
				return conn, nil, err
			}
		case code == gssEncRequestCode: // not supported: the client goes on without
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return conn, nil, err
			}
		case code == cancelRequestCode:
			return conn, pkt, nil
		case code>>16 != 3:
			return conn, nil, clientError{codeFeatureUnsupported, fmt.Sprintf("unsupported frontend protocol %d.%d", code>>16, code&0xffff)}
		default:
			return conn, pkt, nil
		}
	}
	return conn, nil, clientError{codeProtocolViolation, "too many negotiation requests"}
}

// startTLS answers an SSLRequest: 'S' and a TLS handshake when o.TLS is
// set, 'N' otherwise.
func (p *Proxy) startTLS(conn net.Conn) (net.Conn, error) {
	if p.o.TLS == nil {
		_, err := conn.Write([]byte{'N'})
		return conn, err
	}
	if _, err := conn.Write([]byte{'S'}); err != nil {
		return conn, err
	}
	tc := tls.Server(conn, p.o.TLS)
	if err := tc.Handshake(); err != nil {
		return conn, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// refuse tells the client why it is turned away, as a FATAL
// ErrorResponse. Best effort: the client may be gone already.
func refuse(conn net.Conn, code, msg string) {
	buf, err := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	if err != nil {
		return // cannot happen for these fields
	}
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write(buf)
}

// relayStartup copies the server's messages to dst up to and including
// the first ReadyForQuery, then whatever src had buffered past it. It
// calls onKey with the BackendKeyData before the client can see the
// ReadyForQuery, hence before it can send a cancel request. It returns
// the bytes written; an error ends the session.
func relayStartup(dst io.Writer, src *bufio.Reader, onKey func(pgproto3.BackendKeyData)) (int64, error) {
	w := &countWriter{w: dst}
	bw := bufio.NewWriter(w)
	var hdr [5]byte
	for {
		if src.Buffered() == 0 {
			if err := bw.Flush(); err != nil { // before waiting on the server
				return w.n, err
			}
		}
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return w.n, err
		}
		n := int64(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > maxStartupReply {
			return w.n, fmt.Errorf("server message %q of %d bytes", hdr[0], n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			return w.n, err
		}
		bw.Write(hdr[:])
		bw.Write(body) // bufio keeps the first write error for Flush
		switch hdr[0] {
		case 'K':
			var key pgproto3.BackendKeyData
			if err := key.Decode(body); err != nil {
				return w.n, fmt.Errorf("server's BackendKeyData: %w", err)
			}
			onKey(key)
		case 'Z':
			rest, _ := src.Peek(src.Buffered())
			bw.Write(rest)
			err := bw.Flush()
			return w.n, err
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
