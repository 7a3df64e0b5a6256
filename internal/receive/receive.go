// Package receive streams a PostgreSQL server's WAL into the repository's
// archive over the physical replication protocol, as pg_receivewal does:
// it owns the replication connection, its slot, the flush positions it
// reports and the receiver state that bulwark status shows.
//
// It reports a flush position to the server only for WAL the archive
// holds durably, so with its application name in synchronous_standby_names
// a commit returns only once its WAL is in the repository. It must not
// report WAL it has merely received, and it never skips WAL silently: WAL
// the server removed before it was received is logged and recorded in the
// state as a gap.
//
// It writes WAL only through the archive package, and its state as a
// repository document.
package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Options configure Run. The zero value of each field means its default.
type Options struct {
	// ConnString is a libpq connection string or URL for the server.
	// replication=true and application_name are set by Run. Its password
	// is never logged.
	ConnString string
	// Slot is the physical replication slot, created (reserving WAL) if
	// absent.
	Slot string
	// ApplicationName is sent as application_name: with Synchronous, the
	// name the primary lists in synchronous_standby_names. In async mode
	// it must not be listed there, or commits wait up to FlushInterval.
	ApplicationName string
	// Synchronous flushes as soon as the incoming WAL pauses and reports
	// the flush position right away, so that synchronous commits wait
	// only for the repository write.
	Synchronous bool
	// FlushInterval bounds how long received WAL stays in memory before it
	// is durable in the repository (async mode).
	FlushInterval time.Duration
	Logger        *slog.Logger
}

// Defaults of Options.
const (
	DefaultSlot            = "bulwark_receive"
	DefaultApplicationName = "bulwark_receive"
	DefaultFlushInterval   = time.Second
)

func (o Options) withDefaults() Options {
	if o.Slot == "" {
		o.Slot = DefaultSlot
	}
	if o.ApplicationName == "" {
		o.ApplicationName = DefaultApplicationName
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// slotName is what PostgreSQL accepts as a replication slot name.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (o Options) validate() error {
	if o.ConnString == "" {
		return errors.New("receive: no connection string")
	}
	if !slotName.MatchString(o.Slot) {
		return fmt.Errorf("receive: slot name %q: want 1 to 63 lower-case letters, digits or underscores", o.Slot)
	}
	return nil
}

// Timing of the replication loop.
const (
	// syncMaxDelay bounds how long synchronous mode lets received WAL wait
	// for a pause in the stream before flushing it anyway.
	syncMaxDelay = 5 * time.Millisecond
	// statusInterval is how often a status update is sent when nothing
	// else prompts one (wal_receiver_status_interval's default). It asks
	// the server for a reply, so that a silent server is noticed.
	statusInterval = 10 * time.Second
	// serverTimeout ends a connection on which the server has said nothing
	// for this long although asked to reply.
	serverTimeout = 3 * statusInterval
	// setupTimeout bounds connecting and the commands before streaming.
	setupTimeout = 30 * time.Second
	// stopTimeout bounds the final flush after ctx is cancelled.
	stopTimeout = 30 * time.Second

	minBackoff = 100 * time.Millisecond
	maxBackoff = 15 * time.Second
)

// permanentError marks an error that reconnecting cannot fix: Run returns
// it instead of retrying.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// isPermanent reports whether reconnecting cannot fix err: Run's own
// refusals, and the server refusing who we are.
func isPermanent(err error) bool {
	if errors.As(err, new(permanentError)) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28000", "28P01", // invalid authorization, invalid password
			"42501": // insufficient privilege (no REPLICATION attribute)
			return true
		}
	}
	return false
}

// removedError reports that the server no longer has a segment the
// receiver asked for.
type removedError struct {
	seg string
	err error
}

func (e *removedError) Error() string { return e.err.Error() }
func (e *removedError) Unwrap() error { return e.err }

var removedSegment = regexp.MustCompile(`requested WAL segment ([0-9A-F]{24}) has already been removed`)

// asRemoved turns the server's "requested WAL segment ... has already been
// removed" into a *removedError, and returns other errors unchanged.
func asRemoved(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if m := removedSegment.FindStringSubmatch(pe.Message); m != nil {
			return &removedError{seg: m[1], err: err}
		}
	}
	return err
}

// receiver is one Run: what outlives a connection.
type receiver struct {
	ar   *archive.Archive
	opts Options
	cfg  *pgconn.Config
	log  *slog.Logger
	pub  *publisher

	// removed is the segment the server last said it had removed, set
	// until the next connection has chosen where to resume.
	removed string
	// streamed is set by a connection once the server sent WAL.
	streamed bool
	// buf is the segment buffer, reused by each connection.
	buf []byte
}

// Run streams WAL from the server into the archive until ctx is cancelled,
// then flushes what it holds, publishes its state and returns nil. It
// reconnects with backoff after any connection failure, logging each
// (Warn). It returns an error only for what reconnecting cannot fix: bad
// options or connection string, a server of another database system than
// the archive's, a refused login, a conflicting archived file.
//
// Run owns the replication slot opts.Slot: run one receiver per slot.
func Run(ctx context.Context, a *archive.Archive, opts Options) error {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return err
	}
	cfg, err := connConfig(opts)
	if err != nil {
		return err
	}
	r := &receiver{ar: a, opts: opts, cfg: cfg, log: opts.Logger.With("component", "receive", "slot", opts.Slot)}
	r.pub = &publisher{r: a.Repo(), name: docName(opts.Slot)}
	if err := r.loadState(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	pubCtx, stopPub := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.pub.run(pubCtx, func(err error) { r.log.Warn("could not publish the receiver state; retrying", "err", err) })
	}()
	err = r.loop(ctx)
	stopPub()
	<-done

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	r.pub.update(func(s *State) { s.Connected = false })
	if serr := r.pub.save(stopCtx); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// loadState starts from the previously published state, keeping its gaps.
func (r *receiver) loadState(ctx context.Context) error {
	var old State
	err := r.ar.Repo().LoadDoc(ctx, docKind, docName(r.opts.Slot), &old)
	if err != nil && !errors.Is(err, repo.ErrNotFound) {
		return fmt.Errorf("load receiver state: %w", err)
	}
	r.pub.update(func(s *State) {
		*s = old
		s.Slot, s.ApplicationName, s.Synchronous = r.opts.Slot, r.opts.ApplicationName, r.opts.Synchronous
		s.Connected, s.LastError = false, ""
	})
	return nil
}

// loop runs connections until ctx is cancelled or one fails permanently.
func (r *receiver) loop(ctx context.Context) error {
	backoff := minBackoff
	for {
		r.streamed = false
		err := r.connection(ctx)
		if ctx.Err() != nil {
			r.log.Info("stopped", "lsn", r.pub.snapshot().FlushedLSN)
			return nil
		}
		r.pub.update(func(s *State) { s.Connected, s.LastError = false, err.Error() })
		if isPermanent(err) {
			return err // the caller reports it: a human must act
		}
		var re *removedError
		if errors.As(err, &re) {
			r.removed = re.seg // the next connection resumes past it and records the gap
		}
		if r.streamed {
			backoff = minBackoff
		}
		r.log.Warn("replication connection ended; reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			r.log.Info("stopped", "lsn", r.pub.snapshot().FlushedLSN)
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// connConfig parses the connection string for a physical replication
// connection.
func connConfig(opts Options) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(opts.ConnString)
	if err != nil {
		// Not err itself: a malformed string can defeat pgconn's password
		// redaction, and a password must never reach a log.
		return nil, permanent(errors.New("receive: cannot parse the connection string (not shown: it may hold a password)"))
	}
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = opts.ApplicationName
	return cfg, nil
}

// position is a point in the WAL of one timeline.
type position struct {
	tli wal.TimelineID
	lsn wal.LSN
}

func (p position) String() string { return fmt.Sprintf("%s on timeline %d", p.lsn, p.tli) }
