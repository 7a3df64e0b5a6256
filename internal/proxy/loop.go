package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A relay loop copies the bytes of many plain-TCP sessions in one
// goroutine, the way HAProxy's threads do: one level-triggered epoll set
// over descriptors taken out of Go's poller, one read per readiness, a
// write straight after it, and a copy kept only of what the receiver could
// not take yet. The loop waits for its epoll set through Go's poller (the
// set's descriptor is itself pollable), so it blocks in no syscall and
// holds no thread while its sessions are idle.
//
// Why not a goroutine per direction: each message then costs a read that
// finds nothing (Go's poller is edge-triggered, so it reads until EAGAIN),
// a park and a wake through the runtime's poller, and the scheduler's
// hand-offs between threads. With pgbench -S -c 8 at a fixed 8,000 TPS on
// two cores that was 47-53 µs of proxy CPU per transaction, against 36-43
// µs for HAProxy and 29-35 µs for this loop; unthrottled, 14-16k TPS
// against HAProxy's 18-20k and the loop's 20-23k. A loop on a locked
// thread blocking in epoll_wait took 33-36 µs: the scheduler's monitor
// wakes every 20 µs for a while after such a syscall.
//
// Reads and writes go through RawSyscall: the descriptors are
// non-blocking, so the calls are short, and they skip the scheduler's
// bookkeeping around a syscall, which cost 5-6 µs per transaction.

// loopBuffer is what one read takes at most; a loop has one such buffer
// for all its sessions.
const loopBuffer = 16 << 10

// DefaultRelayLoops is the number of relay loops for Options.RelayLoops
// 0: half of GOMAXPROCS, at least one. Each loop uses at most one CPU; on
// two cores one loop took less CPU per transaction than two (49-51 µs
// against 30-34 in a stand-alone relay of an earlier design, blocking in
// epoll_wait).
func DefaultRelayLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// loops is a set of relay loops; sessions are spread over them in turn.
// A nil *loops has none: pick returns nil.
type loops struct {
	all  []*loop
	next atomic.Uint32
}

// startLoops starts n loops, each in a goroutine of its own.
func startLoops(n int, log *slog.Logger) (*loops, error) {
	ls := &loops{}
	for i := range n {
		l, err := newLoop(log.With("loop", i))
		if err != nil {
			ls.stop()
			return nil, err
		}
		ls.all = append(ls.all, l)
		go l.run()
	}
	return ls, nil
}

// pick returns the loop for the next session, nil when there is none.
func (ls *loops) pick() *loop {
	if ls == nil || len(ls.all) == 0 {
		return nil
	}
	return ls.all[ls.next.Add(1)%uint32(len(ls.all))]
}

// stop ends every loop and waits for them. Sessions still in a loop are
// closed.
func (ls *loops) stop() {
	if ls == nil {
		return
	}
	for _, l := range ls.all {
		l.stop()
	}
}

// errLoopStopped is what add returns once the loop is stopping.
var errLoopStopped = errors.New("relay loop stopped")

// loop is one relay loop. Its links map and everything in its links but
// mu, closed and fds belong to its goroutine.
type loop struct {
	ep   *os.File // the epoll set, in Go's poller
	wake int      // an eventfd in the set: queue or stopping changed
	log  *slog.Logger
	done chan struct{} // closed when run has returned

	mu       sync.Mutex
	queue    []*link
	stopping bool

	epfd    int             // ep's descriptor
	links   map[int32]*link // by descriptor
	nextID  int32
	scratch []byte
}

func newLoop(log *slog.Logger) (*loop, error) {
	// Non-blocking, so that os.NewFile puts the set in Go's poller.
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("proxy: relay loop: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("proxy: relay loop: epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	if err := ep.SetReadDeadline(time.Time{}); err != nil { // os.ErrNoDeadline: not in the poller
		ep.Close()
		return nil, fmt.Errorf("proxy: relay loop: epoll set not pollable: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("proxy: relay loop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		ep.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("proxy: relay loop: epoll_ctl: %w", err)
	}
	return &loop{ep: ep, epfd: epfd, wake: wake, log: log, done: make(chan struct{}),
		links: map[int32]*link{}, scratch: make([]byte, loopBuffer)}, nil
}

// add hands k to the loop, which owns its descriptors from then on, and
// closes them and k.done when the session ends. It fails once the loop
// is stopping; k is then the caller's to close.
func (l *loop) add(k *link) error {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return errLoopStopped
	}
	l.queue = append(l.queue, k)
	l.signal()
	l.mu.Unlock()
	return nil
}

// stop asks the loop to end and waits until it has; the sessions it
// still relays are closed. It may be called more than once.
func (l *loop) stop() {
	l.mu.Lock()
	if !l.stopping {
		l.stopping = true
		l.signal()
	}
	l.mu.Unlock()
	<-l.done
}

// signal wakes the loop. The caller holds l.mu, under which run closes the
// eventfd once stopping: it never writes to a closed descriptor.
func (l *loop) signal() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(l.wake, one[:]) // EAGAIN: the counter is full, a wake-up is pending anyway
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.done)
	defer func() {
		l.ep.Close()
		l.mu.Lock()
		l.stopping = true
		unix.Close(l.wake)
		l.mu.Unlock()
	}()
	rc, err := l.ep.SyscallConn()
	events := make([]unix.EpollEvent, 256)
	for err == nil {
		var n int
		var perr error
		err = rc.Read(func(fd uintptr) bool { // until events, or an error
			n, perr = epollPoll(int(fd), events)
			return n > 0 || perr != nil
		})
		if perr == unix.EINTR {
			continue
		}
		if err == nil {
			err = perr
		}
		if err != nil {
			break
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(l.wake) {
				if !l.takeQueue() {
					l.endAll()
					return
				}
				continue
			}
			if k := l.links[ev.Fd]; k != nil && k.id == ev.Pad { // else: ended earlier in this batch
				l.serve(k, ev)
			}
		}
	}
	// Cannot happen with a valid epoll set; fail closed.
	l.log.Error("relay loop failed; closing its sessions", "err", err)
	l.mu.Lock()
	l.stopping = true // add fails from now on
	l.mu.Unlock()
	l.endAll()
}

// epollPoll returns the events ready on the epoll set ep now, without
// waiting.
func epollPoll(ep int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// takeQueue registers the sessions added since the last call; false when
// the loop is to stop.
func (l *loop) takeQueue() bool {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	queue, stopping := l.queue, l.stopping
	l.queue = nil
	l.mu.Unlock()
	for _, k := range queue {
		l.nextID++
		k.id = l.nextID
		for side, fd := range k.fds {
			k.mask[side] = k.want(side)
			if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: k.mask[side], Fd: int32(fd), Pad: k.id}); err != nil {
				k.err = fmt.Errorf("epoll_ctl: %w", err)
				l.end(k)
				break
			}
			l.links[int32(fd)] = k
		}
	}
	return !stopping
}

// serve acts on one readiness event of one of k's descriptors: it moves
// bytes out of it (the direction that reads it) and into it (the
// direction that writes it, if that one has bytes waiting).
func (l *loop) serve(k *link, ev unix.EpollEvent) {
	side := k.side(ev.Fd)
	out, in := &k.dirs[side], &k.dirs[1-side]
	acted := false
	if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(out.pending) == 0 {
		acted = true
		if !l.pump(k, side) {
			return
		}
	}
	if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(in.pending) > 0 {
		acted = true
		if !l.flush(k, 1-side) {
			return
		}
	}
	if !acted && ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// A hang-up or error on a descriptor whose bytes wait for its
		// peer: deliver them, then end. Out of the set, it cannot report
		// the hang-up again meanwhile.
		k.gone[side] = true
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, k.fds[side], nil)
		delete(l.links, ev.Fd)
	}
	l.rearm(k)
}

// pump reads once from k's side and writes what it read to the other
// side, keeping what that one did not take. false: the session ended.
func (l *loop) pump(k *link, side int) bool {
	n, err := rawIO(unix.SYS_READ, k.fds[side], l.scratch)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return true
	case err != nil:
		k.err = fmt.Errorf("read: %w", err)
		l.end(k)
		return false
	case n == 0: // end of stream: as with the goroutine copy, both sides end
		l.end(k)
		return false
	}
	d := &k.dirs[side]
	d.pending = l.scratch[:n]
	if !l.flush(k, side) {
		return false
	}
	d.pending = bytes.Clone(d.pending) // what is left of it: scratch is the next read's
	return true
}

// flush writes the bytes k's direction from side keeps for its receiver.
// false: the session ended.
func (l *loop) flush(k *link, side int) bool {
	d := &k.dirs[side]
	w, err := rawIO(unix.SYS_WRITE, k.fds[1-side], d.pending)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		k.err = fmt.Errorf("write: %w", err)
		l.end(k)
		return false
	}
	d.bytes += int64(w)
	d.pending = d.pending[w:]
	if len(d.pending) == 0 {
		d.pending = nil   // a big backlog's buffer is not kept for the session's life
		if k.gone[side] { // its sender hung up: this was the last of it
			k.err = errors.New("connection reset")
			l.end(k)
			return false
		}
	}
	return true
}

// rearm updates what epoll watches on k's descriptors to k.want.
func (l *loop) rearm(k *link) {
	for side, fd := range k.fds {
		want := k.want(side)
		if k.gone[side] || want == k.mask[side] {
			continue
		}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: want, Fd: int32(fd), Pad: k.id}); err != nil {
			k.err = fmt.Errorf("epoll_ctl: %w", err)
			l.end(k)
			return
		}
		k.mask[side] = want
	}
}

// end closes k's descriptors and tells its owner.
func (l *loop) end(k *link) {
	k.mu.Lock()
	for _, fd := range k.fds {
		if l.links[int32(fd)] == k {
			delete(l.links, int32(fd))
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		}
		unix.Close(fd)
	}
	k.closed = true
	k.mu.Unlock()
	close(k.done)
}

// endAll ends every session, queued or registered: the loop is stopping.
func (l *loop) endAll() {
	for _, k := range l.links {
		l.end(k) // takes both its descriptors out of links
	}
	l.mu.Lock()
	queue := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, k := range queue {
		l.end(k)
	}
}

// rawIO reads or writes fd without telling the scheduler: fd is
// non-blocking, so the call is short.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// link is one session in a loop: the client's descriptor (side 0) and the
// backend's (side 1), and the bytes in flight each way. dirs[i] reads
// fds[i] and writes fds[1-i].
type link struct {
	fds  [2]int
	done chan struct{} // closed once the loop has closed fds

	mu     sync.Mutex // guards closed, and fds against shutdown after close
	closed bool

	// The loop's, until done is closed.
	id   int32
	mask [2]uint32 // what epoll watches on each descriptor
	gone [2]bool   // hung up and out of the set; its pending bytes are delivered
	dirs [2]struct {
		pending []byte // read, not yet written
		bytes   int64  // written
	}
	err error // why it ended, if not an orderly end of stream
}

// newLink takes client and backend out of Go's poller: it duplicates
// their descriptors and closes them. On error both are closed.
func newLink(client, backend net.Conn) (*link, error) {
	k := &link{fds: [2]int{-1, -1}, done: make(chan struct{})}
	var err error
	for side, c := range []net.Conn{client, backend} {
		if err == nil {
			k.fds[side], err = dupConn(c)
		}
		c.Close()
	}
	if err != nil {
		for _, fd := range k.fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return nil, err
	}
	return k, nil
}

// dupConn duplicates c's descriptor, close-on-exec and, like c's,
// non-blocking.
func dupConn(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	cerr := rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	return nfd, nil
}

// want is what epoll should watch on k's side: reading while the
// direction out of it has nothing waiting and its peer is there to take
// it, writing while the direction into it has bytes waiting.
func (k *link) want(side int) uint32 {
	var want uint32
	if len(k.dirs[side].pending) == 0 && !k.gone[1-side] {
		want |= unix.EPOLLIN
	}
	if len(k.dirs[1-side].pending) > 0 {
		want |= unix.EPOLLOUT
	}
	return want
}

func (k *link) side(fd int32) int {
	if int32(k.fds[0]) == fd {
		return 0
	}
	return 1
}

// shutdown ends the session from any goroutine: the loop sees both
// descriptors hang up and closes them. It does not block.
func (k *link) shutdown() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	// The backend first: not another byte from the client reaches a
	// server this session was closed to keep it from.
	unix.Shutdown(k.fds[1], unix.SHUT_RDWR)
	unix.Shutdown(k.fds[0], unix.SHUT_RDWR)
}

// close closes the descriptors of a link no loop took.
func (k *link) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	for _, fd := range k.fds {
		unix.Close(fd)
	}
	k.closed = true
}
