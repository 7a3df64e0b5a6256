package drill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// Table is where a drill's workload writes: one row per write, numbered,
// tagged with the node that took it. No primary key on seq, so that a
// write applied twice shows as a duplicate instead of an error.
const Table = "bulwark_drill"

const createTableSQL = `CREATE TABLE IF NOT EXISTS ` + Table + ` (
	run text NOT NULL, seq bigint NOT NULL, node text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`

// Ack is one write the server acknowledged.
type Ack struct {
	Seq  int64
	Node string
	At   time.Time
}

// Writer is the drill's workload: one INSERT per transaction, as fast as
// the cluster takes them, through something that follows the primary.
type Writer interface {
	// Write inserts write seq of run and returns the node that took it.
	// An error matching failover.ErrUnknownOutcome means the write may or
	// may not have committed.
	Write(ctx context.Context, run string, seq int64) (node string, err error)
}

// PoolWriter writes through the client library.
type PoolWriter struct{ Pool *failover.Pool }

func (w PoolWriter) Write(ctx context.Context, run string, seq int64) (string, error) {
	var node string
	err := w.Pool.Write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO `+Table+` (run, seq, node) VALUES ($1, $2, current_setting('cluster_name')) RETURNING node`,
			run, seq).Scan(&node)
	})
	return node, err
}

// ConnWriter writes through one address (a proxy's read-write port, or
// a virtual IP), reconnecting after an error.
type ConnWriter struct {
	ConnString string
	mu         sync.Mutex
	conn       *pgx.Conn
}

func (w *ConnWriter) Write(ctx context.Context, run string, seq int64) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := pgx.Connect(cctx, w.ConnString)
		cancel()
		if err != nil {
			return "", err
		}
		w.conn = c
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var node string
	err := w.conn.QueryRow(qctx, `INSERT INTO `+Table+` (run, seq, node) VALUES ($1, $2, current_setting('cluster_name')) RETURNING node`,
		run, seq).Scan(&node)
	if err != nil {
		w.conn.Close(context.WithoutCancel(ctx))
		w.conn = nil
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code[:2] != "08" && pgErr.Code[:3] != "57P" {
			return "", err // the server refused the INSERT: it did not commit
		}
		// A single INSERT in autocommit: a connection lost while it ran
		// leaves its outcome unknown.
		return "", fmt.Errorf("%w: %w", failover.ErrUnknownOutcome, err)
	}
	return node, nil
}

// Close closes the connection.
func (w *ConnWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		w.conn.Close(context.Background())
		w.conn = nil
	}
}

// workload runs a Writer and records what it saw.
type workload struct {
	run     string
	start   time.Time
	mu      sync.Mutex
	acks    []Ack
	unknown []int64
	errs    []time.Time
	stop    context.CancelFunc
	done    chan struct{}
}

// startWorkload writes until stop, pausing 20 ms after an error.
func startWorkload(w Writer, run string) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	wl := &workload{run: run, start: time.Now(), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(wl.done)
		for seq := int64(1); ctx.Err() == nil; seq++ {
			node, err := w.Write(ctx, run, seq)
			now := time.Now()
			wl.mu.Lock()
			switch {
			case err == nil:
				wl.acks = append(wl.acks, Ack{seq, node, now})
			case ctx.Err() != nil:
			default:
				wl.errs = append(wl.errs, now)
				if errors.Is(err, failover.ErrUnknownOutcome) {
					wl.unknown = append(wl.unknown, seq)
				}
			}
			wl.mu.Unlock()
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}()
	return wl
}

// halt stops the workload and waits for its last write.
func (wl *workload) halt() {
	wl.stop()
	<-wl.done
}

// snapshot returns what the workload saw so far.
func (wl *workload) snapshot() (acks []Ack, errs []time.Time, unknown []int64) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return append([]Ack(nil), wl.acks...), append([]time.Time(nil), wl.errs...), append([]int64(nil), wl.unknown...)
}

func (wl *workload) startedAt() time.Time { return wl.start }

// acksOnSince counts the writes node acknowledged after t.
func (wl *workload) acksOnSince(node string, t time.Time) int {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	n := 0
	for i := len(wl.acks) - 1; i >= 0 && wl.acks[i].At.After(t); i-- {
		if wl.acks[i].Node == node {
			n++
		}
	}
	return n
}
