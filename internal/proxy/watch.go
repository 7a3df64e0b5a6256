package proxy

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// errClientGone: the client closed its connection while it was held.
var errClientGone = errors.New("the client closed its connection")

// watchClient closes gone when the client closes conn while it is held
// waiting for a backend, so that it stops waiting and never opens a
// server session for nobody (clients with a connect timeout leave and
// retry during a failover). It peeks and so consumes nothing: data from
// the client, rather than its end, stops the watch. stop ends the watch
// and returns once it has ended.
func watchClient(conn net.Conn) (gone <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return ch, func() {}
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return ch, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ended := false
		rc.Read(func(fd uintptr) bool { // returns early once stop sets a past deadline
			var b [1]byte
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EAGAIN) {
				return false // nothing yet: wait until readable
			}
			ended = n == 0 || err != nil
			return true
		})
		if ended {
			close(ch)
		}
	}()
	return ch, func() {
		tc.SetReadDeadline(time.Now())
		<-done
		tc.SetReadDeadline(time.Time{})
	}
}
