// Package netfault cuts network links on purpose, for drills: a Link
// relays TCP connections to a target and can black-hole them, as a
// network partition does, without touching the kernel's network setup.
package netfault

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Link relays each TCP connection it accepts to a target address. Cut
// black-holes it: connections stay open but nothing crosses, and new
// ones are accepted and held, so peers see silence, not a refusal, and
// only their timeouts tell them. Heal closes every connection the cut
// held and relays again.
type Link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// Listen starts a link from addr (host:port; port 0 picks one) to target.
// Serve relays its connections.
func Listen(addr, target string) (*Link, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}, nil
}

// Addr is the address the link listens on.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Serve accepts and relays connections until Close.
func (l *Link) Serve() error {
	for {
		c, err := l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		go l.handle(c)
	}
}

// Cut black-holes the link.
func (l *Link) Cut() {
	l.mu.Lock()
	l.cut = true
	l.mu.Unlock()
}

// Heal ends a cut: the connections it held are closed (their bytes were
// dropped: they cannot go on), and new ones are relayed.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		return
	}
	l.cut = false
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// Close stops listening and closes every connection.
func (l *Link) Close() error {
	err := l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
	return err
}

func (l *Link) isCut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

// track records connections so that Heal and Close can close them.
func (l *Link) track(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		l.conns[c] = struct{}{}
	}
}

func (l *Link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
		c.Close()
	}
}

func (l *Link) handle(c net.Conn) {
	l.track(c)
	if l.isCut() {
		io.Copy(io.Discard, c) // held, silent, until Heal or Close closes it
		l.untrack(c)
		return
	}
	b, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		l.untrack(c)
		return
	}
	l.track(b)
	done := make(chan struct{})
	go func() {
		l.relay(b, c)
		close(done)
	}()
	l.relay(c, b)
	<-done
	l.untrack(c, b)
}

// relay copies src to dst, dropping what it reads while the link is cut,
// until either side fails; then it closes both.
func (l *Link) relay(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
