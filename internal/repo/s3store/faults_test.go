package s3store_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/s3test"
)

// faultProxy is a TCP proxy in front of the real server that passes the
// first limit bytes of each response and then stalls, as a server that
// hangs mid-answer does (limit 0: it never answers).
type faultProxy struct {
	url string
	l   net.Listener

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFaultProxy(t *testing.T, srv *s3test.Server, limit int64) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{url: "http://" + l.Addr().String(), l: l}
	upstream := strings.TrimPrefix(srv.Endpoint, "http://")
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, u)
			p.wg.Go(func() { io.Copy(u, c) })
			p.wg.Go(func() { io.CopyN(c, u, limit) }) // then stall: c stays open until close

		}
	})
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, cs...)
}

func (p *faultProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
