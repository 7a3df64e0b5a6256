package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// linked starts a loop relaying between a client and a backend and
// returns the peers' ends: what the client and the server hold.
func linked(t *testing.T, l *loop) (client, server net.Conn, k *link) {
	t.Helper()
	client, clientSide := tcpPair(t)
	backendSide, server := tcpPair(t)
	k, err := newLink(clientSide, backendSide)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.add(k); err != nil {
		t.Fatal(err)
	}
	return client, server, k
}

func startTestLoop(t *testing.T) *loop {
	t.Helper()
	ls, err := startLoops(1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.stop)
	return ls.all[0]
}

func waitDone(t *testing.T, k *link) {
	t.Helper()
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the link did not end")
	}
}

// TestLoopCopiesBothWays: 32 MB each way at once, read slowly on one side
// so that writes fill the socket buffers and bytes wait in the loop,
// arrive whole and in order; the peers see the end of the stream when
// one side closes, and the link counts every byte.
func TestLoopCopiesBothWays(t *testing.T) {
	l := startTestLoop(t)
	client, server, k := linked(t, l)
	const size = 32 << 20
	up, down := make([]byte, size), make([]byte, size)
	rand.Read(up)
	rand.Read(down)

	type got struct {
		b   []byte
		err error
	}
	atServer, atClient := make(chan got, 1), make(chan got, 1)
	go func() { // the server reads slowly at first
		var buf bytes.Buffer
		chunk := make([]byte, 4096)
		for i := 0; buf.Len() < size; i++ {
			if i < 200 {
				time.Sleep(time.Millisecond)
			}
			n, err := server.Read(chunk)
			buf.Write(chunk[:n])
			if err != nil {
				atServer <- got{buf.Bytes(), err}
				return
			}
		}
		atServer <- got{buf.Bytes(), nil}
	}()
	go func() {
		b, err := io.ReadAll(client) // until the server closes
		atClient <- got{b, err}
	}()
	writeErr := make(chan error, 2)
	go func() { _, err := client.Write(up); writeErr <- err }()
	go func() { _, err := server.Write(down); writeErr <- err }()
	for range 2 {
		if err := <-writeErr; err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	s := <-atServer
	if s.err != nil || !bytes.Equal(s.b, up) {
		t.Fatalf("server got %d bytes (err %v), want the client's %d", len(s.b), s.err, size)
	}
	server.Close()
	c := <-atClient
	if c.err != nil || !bytes.Equal(c.b, down) {
		t.Fatalf("client got %d bytes (err %v), want the server's %d", len(c.b), c.err, size)
	}
	waitDone(t, k)
	if k.dirs[0].bytes != size || k.dirs[1].bytes != size || k.err != nil {
		t.Errorf("link counted %d up, %d down (err %v), want %d each", k.dirs[0].bytes, k.dirs[1].bytes, k.err, size)
	}
}

// TestLoopShutdown: shutdown from another goroutine ends a session the
// loop relays, and both peers see the end of the stream; a session still
// open when the loop stops is closed too.
func TestLoopShutdown(t *testing.T) {
	l := startTestLoop(t)
	client, server, k := linked(t, l)
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	k.shutdown()
	waitDone(t, k)
	for name, c := range map[string]net.Conn{"client": client, "server": server} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err == nil {
			t.Errorf("%s: read after shutdown succeeded", name)
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: no end of stream after shutdown", name)
		}
	}

	_, server2, k2 := linked(t, l)
	l.stop()
	waitDone(t, k2)
	server2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server2.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("server of a session open at stop: read gave %v, want the end of the stream", err)
	}
	c3, b3 := tcpPair(t)
	k3, err := newLink(c3, b3)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.add(k3); !errors.Is(err, errLoopStopped) {
		t.Errorf("add after stop: %v, want errLoopStopped", err)
	}
	k3.close()
}

// TestLoopDeliversBeforeReset: bytes the loop read from a server that
// then resets the connection still reach the client, however slowly it
// reads, and only then does the session end.
func TestLoopDeliversBeforeReset(t *testing.T) {
	l := startTestLoop(t)
	client, server, k := linked(t, l)
	go server.Write(make([]byte, 64<<20)) // more than the sockets hold: ends with the reset
	// The client reads nothing yet: the sockets fill up and bytes wait in
	// the loop, which stops reading the server.
	time.Sleep(300 * time.Millisecond)
	server.(*net.TCPConn).SetLinger(0)
	server.Close() // a reset
	time.Sleep(100 * time.Millisecond)
	n, _ := io.Copy(io.Discard, client) // until the loop closes it
	waitDone(t, k)
	if n == 0 || n != k.dirs[1].bytes || len(k.dirs[1].pending) != 0 {
		t.Errorf("client got %d bytes; the link wrote %d and kept %d undelivered", n, k.dirs[1].bytes, len(k.dirs[1].pending))
	}
	// Not "read: connection reset by peer": the reset was seen while
	// bytes waited, and they were delivered first.
	if k.err == nil || k.err.Error() != "connection reset" {
		t.Errorf("link ended with %v, want the reset seen while bytes waited", k.err)
	}
}
