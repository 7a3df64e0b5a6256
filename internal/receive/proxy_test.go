package receive_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy forwards TCP connections to a server whose port changes when it
// restarts, so that the receiver keeps one connection string.
type proxy struct {
	ln     net.Listener
	target atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, port int) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, conns: map[net.Conn]bool{}}
	px.target.Store(int64(port))
	px.wg.Go(px.accept)
	t.Cleanup(func() {
		ln.Close()
		px.mu.Lock()
		for c := range px.conns {
			c.Close()
		}
		px.conns = nil // forward closes what it dials from now on
		px.mu.Unlock()
		px.wg.Wait()
	})
	return px
}

func (px *proxy) port() int         { return px.ln.Addr().(*net.TCPAddr).Port }
func (px *proxy) retarget(port int) { px.target.Store(int64(port)) }

func (px *proxy) track(c net.Conn) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.conns == nil {
		return false
	}
	px.conns[c] = true
	return true
}

func (px *proxy) accept() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return // closed by the test's cleanup
		}
		px.wg.Go(func() { px.forward(c) })
	}
}

func (px *proxy) forward(c net.Conn) {
	defer c.Close()
	b, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", px.target.Load()))
	if err != nil {
		return
	}
	defer b.Close()
	if !px.track(c) || !px.track(b) {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, c)
		b.Close()
	}()
	io.Copy(c, b)
	c.Close()
	<-done
}
