package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	defaultTable        = "ha_writes"
	defaultNodeSQL      = "current_setting('cluster_name')"
	defaultWriteTimeout = 5 * time.Second
	// reconnectPause is the fixed pause between two connection attempts: no
	// backoff, so the time to the first commit after a failover is the
	// cluster's, within 20 ms plus one connection.
	reconnectPause = 20 * time.Millisecond
	// flushEvery bounds how stale the acks file is for bench/ha.sh, which
	// polls it to see the first commit after the fault.
	flushEvery = 50 * time.Millisecond
	// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h), absent from package
	// syscall; golang.org/x/sys/unix is only an indirect requirement.
	tcpUserTimeout = 0x12
)

type writerOptions struct {
	Conn         string
	Out          string
	Table        string
	NodeSQL      string // SQL expression naming the server a row is written on
	WriteTimeout time.Duration
	Logger       *slog.Logger
}

// runWriter inserts one row per transaction until ctx ends, appending every
// acknowledged commit, and every write whose outcome is unknown, to o.Out.
// Errors end the connection, not the writer; it returns an error only when
// its configuration or its log file is unusable.
func runWriter(ctx context.Context, o writerOptions) error {
	cfg, err := pgx.ParseConfig(o.Conn)
	if err != nil {
		return fmt.Errorf("parse --conn: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = time.Second
	}
	cfg.DialFunc = dialer(cfg.ConnectTimeout).DialContext
	out, err := openAckLog(o.Out)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx)) // flushes until the writer is done, past SIGTERM
	wg.Go(func() { out.flushLoop(flushCtx, o.Logger) })
	w := &writer{opts: o, cfg: cfg, out: out, log: o.Logger}
	w.loop(ctx)
	stopFlush()
	wg.Wait()
	return out.Close()
}

// dialer keeps a dead peer from holding a connection for minutes: keepalive
// probes after 1 s idle, and TCP_USER_TIMEOUT drops a connection whose sent
// data stays unacknowledged for 2 s. On loopback a killed server's socket is
// reset at once; these matter only for a peer that is frozen.
func dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 2},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, 2000)
			})
			return errors.Join(err, serr)
		},
	}
}

type writer struct {
	opts    writerOptions
	cfg     *pgx.ConnConfig
	out     *ackLog
	log     *slog.Logger
	seq     int64 // last seq used
	conn    int   // connections opened so far
	ready   bool  // the table exists and seq starts after its largest value
	lastErr string
	repeats int
}

// loop connects, writes until an error, and starts again, until ctx ends.
func (w *writer) loop(ctx context.Context) {
	for ctx.Err() == nil {
		conn, node, err := w.connect(ctx)
		if err != nil {
			w.fail(err)
			sleep(ctx, reconnectPause)
			continue
		}
		err = w.writeUntilError(ctx, conn)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 100*time.Millisecond)
		conn.Close(closeCtx) // the connection is broken or done with: nothing to report
		cancel()
		if ctx.Err() == nil {
			w.fail(fmt.Errorf("write on %s: %w", node, err))
			sleep(ctx, reconnectPause)
		}
	}
	w.flushErrors()
}

// connect opens a connection to a read-write server and, the first time,
// creates the table and starts seq after its largest value.
// It returns the connection and the name of its server.
func (w *writer) connect(ctx context.Context) (*pgx.Conn, string, error) {
	conn, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return nil, "", fmt.Errorf("connect: %w", err)
	}
	if !w.ready {
		if err := w.prepareTable(ctx, conn); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, "", err
		}
	}
	var node string
	if err := conn.QueryRow(ctx, "SELECT "+w.opts.NodeSQL).Scan(&node); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, "", fmt.Errorf("read node name (%s): %w", w.opts.NodeSQL, err)
	}
	w.flushErrors()
	w.conn++
	w.log.Info("connected", "node", node, "conn", w.conn, "host", conn.PgConn().Conn().RemoteAddr().String())
	return conn, node, nil
}

func (w *writer) prepareTable(ctx context.Context, conn *pgx.Conn) error {
	t := pgx.Identifier{w.opts.Table}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t+" (seq bigint PRIMARY KEY, node text NOT NULL, at timestamptz NOT NULL)"); err != nil {
		return fmt.Errorf("create table %s: %w", t, err)
	}
	var last int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM "+t).Scan(&last); err != nil {
		return fmt.Errorf("read last seq of %s: %w", t, err)
	}
	w.seq, w.ready = last, true
	return nil
}

// writeUntilError inserts rows, one per implicit transaction, until one
// fails or ctx ends, and returns that error (nil when ctx ended). A write
// whose commit may have happened is logged as unknown, under its seq, which
// is never reused. The end of ctx (SIGTERM) lets the write in flight finish,
// so that every unknown outcome is the cluster's doing.
func (w *writer) writeUntilError(ctx context.Context, conn *pgx.Conn) error {
	q := "INSERT INTO " + pgx.Identifier{w.opts.Table}.Sanitize() +
		" (seq, node, at) VALUES ($1, " + w.opts.NodeSQL + ", clock_timestamp()) RETURNING node"
	var node string
	for ctx.Err() == nil {
		w.seq++
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.WriteTimeout)
		err := conn.QueryRow(wctx, q, w.seq).Scan(&node)
		cancel()
		now := time.Now().UnixNano()
		if err == nil {
			w.out.add(ack{Seq: w.seq, Node: node, At: now, Conn: w.conn})
			continue
		}
		if outcomeUnknown(err) {
			w.out.add(ack{Seq: w.seq, Node: nodeUnknown, At: now, Conn: w.conn})
		}
		return err
	}
	return nil
}

// outcomeUnknown reports whether a failed single-statement transaction may
// have committed. Only an ERROR from the server (the statement was rolled
// back) or a failure before anything was sent proves it did not; a FATAL
// can come after the commit record was flushed (e.g. a backend terminated
// while waiting for a synchronous standby), and a broken connection says
// nothing.
func outcomeUnknown(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity != "ERROR"
	}
	return !pgconn.SafeToRetry(err)
}

// fail logs an error, folding a run of identical ones (a connection refused
// 50 times a second during a failover) into one line with a count.
func (w *writer) fail(err error) {
	msg := err.Error()
	if msg == w.lastErr {
		w.repeats++
		return
	}
	w.flushErrors()
	w.lastErr = msg
	w.log.Warn("error; reconnecting", "err", msg)
}

func (w *writer) flushErrors() {
	if w.repeats > 0 {
		w.log.Warn("previous error repeated", "times", w.repeats, "err", w.lastErr)
	}
	w.lastErr, w.repeats = "", 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ackLog is the writer's log file: buffered, flushed by flushLoop every
// flushEvery and by Close. Safe for concurrent use.
type ackLog struct {
	mu sync.Mutex
	f  *os.File
	b  *bufio.Writer
}

func openAckLog(path string) (*ackLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open acks log: %w", err)
	}
	return &ackLog{f: f, b: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (l *ackLog) add(a ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.b, "%d %s %d %d\n", a.Seq, a.Node, a.At, a.Conn) // write errors surface at Flush
}

func (l *ackLog) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Flush()
}

func (l *ackLog) flushLoop(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.flush(); err != nil {
				log.Error("flush acks log", "err", err)
			}
		}
	}
}

// Close flushes what is buffered and closes the file.
func (l *ackLog) Close() error {
	return errors.Join(l.flush(), l.f.Close())
}
