package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Write runs fn in a transaction on the primary and commits it.
//
// fn may run more than once: when an attempt surely did not commit (the
// connection broke or the server turned out not to be the primary before
// COMMIT was sent, or the topology moved to another primary meanwhile,
// which cuts the attempt's connection even while fn waits on it), Write
// waits for the primary, backing off, and calls fn again in a new
// transaction, until Config.FailoverTimeout. fn must therefore do nothing
// outside the transaction that it cannot repeat, and must not commit or
// roll back tx itself.
//
// An error from fn that is not a lost connection is returned as is, after
// a rollback. If the connection breaks while COMMIT is in flight, Write
// returns an error matching ErrUnknownOutcome and does not retry. With no
// primary before the timeout, the error matches ErrNoPrimary.
func (p *Pool) Write(ctx context.Context, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.FailoverTimeout, errTimedOut)
	defer cancel()
	var last error
	for n := 0; ; n++ {
		np, changed, err := p.primaryPool()
		if err != nil {
			return err
		}
		if np != nil {
			if last = p.writeOnce(ctx, np, fn); !errors.Is(last, errRetry) {
				return last
			}
			p.log.Debug("write not committed; retrying", "node", np.node.Name, "err", last)
		}
		if err := p.backoff(ctx, n, changed); err != nil {
			return noPrimary(ctx, err, last)
		}
	}
}

// errRetry marks an attempt that surely did not commit.
var errRetry = errors.New("not committed; retrying")

func (p *Pool) writeOnce(callCtx context.Context, np *nodePool, fn func(pgx.Tx) error) error {
	ctx, done := np.attempt(callCtx)
	defer done()
	tx, err := np.pool.Begin(ctx)
	if err != nil {
		if callCtx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: %s: %w", errRetry, np.node.Name, err)
	}
	defer np.cutOnReplace(tx.Conn())()
	if err := fn(tx); err != nil {
		broken := tx.Conn().IsClosed() || lostConnection(err) || notPrimary(err)
		rollback(ctx, tx)
		if broken && callCtx.Err() == nil {
			return fmt.Errorf("%w: %s: %w", errRetry, np.node.Name, err)
		}
		return err
	}
	if !p.current(np) {
		// The cluster named another primary while fn ran: commit nowhere
		// but there.
		rollback(ctx, tx)
		return fmt.Errorf("%w: %s is no longer the primary", errRetry, np.node.Name)
	}
	err = tx.Commit(ctx)
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !lostConnection(err) {
		return err // the server refused the commit: it did not happen
	}
	return fmt.Errorf("%w: on %s: %w", ErrUnknownOutcome, np.node.Name, err)
}

// Read runs fn in a read-only transaction on a replica within
// Config.MaxReadLag (the one with the fewest connections in use), or on
// the primary when there is none. A lost connection is retried, on
// another node if the topology changed, until Config.FailoverTimeout.
func (p *Pool) Read(ctx context.Context, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.FailoverTimeout, errTimedOut)
	defer cancel()
	var last error
	for n := 0; ; n++ {
		np, changed, err := p.readPool()
		if err != nil {
			return err
		}
		if np != nil {
			if last = readOnce(ctx, np, fn); !errors.Is(last, errRetry) {
				return last
			}
		}
		if err := p.backoff(ctx, n, changed); err != nil {
			return noPrimary(ctx, err, last)
		}
	}
}

// rollback ends tx after a failed attempt, within 5 s even if the caller's
// context has ended: a black-holed old primary must not hold the call.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	tx.Rollback(ctx)
}

func readOnce(callCtx context.Context, np *nodePool, fn func(pgx.Tx) error) error {
	ctx, done := np.attempt(callCtx)
	defer done()
	err := pgx.BeginTxFunc(ctx, np.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		defer np.cutOnReplace(tx.Conn())()
		return fn(tx)
	})
	// A pool retired by a topology change between picking and acquiring
	// is closed, or the change cut the call off: try the new topology.
	if err != nil && callCtx.Err() == nil && (lostConnection(err) || errors.Is(err, puddle.ErrClosedPool) || errors.Is(context.Cause(ctx), errReplaced)) {
		return fmt.Errorf("%w: %s: %w", errRetry, np.node.Name, err)
	}
	return err
}

// errTimedOut is the cause of a call's context when FailoverTimeout ends
// it, as opposed to the caller's own deadline or cancellation.
var errTimedOut = errors.New("failover timeout")

// noPrimary explains a call that ran out of time or was cancelled.
func noPrimary(ctx context.Context, err, last error) error {
	if !errors.Is(context.Cause(ctx), errTimedOut) {
		return err
	}
	if last != nil {
		return fmt.Errorf("%w within the failover timeout; last attempt: %w", ErrNoPrimary, last)
	}
	return fmt.Errorf("%w within the failover timeout", ErrNoPrimary)
}

// lostConnection reports whether err means the connection broke or the
// server went away: the current transaction is lost with it.
func lostConnection(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, errNotPrimary) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// notPrimary reports whether err says the server takes no writes.
func notPrimary(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, errNotPrimary) || (errors.As(err, &pgErr) && pgErr.Code == "25006") // read_only_sql_transaction
}
