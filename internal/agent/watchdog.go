package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwarkdb/bulwark/internal/ha"
)

// Watchdog modes, as in the plan's cluster.watchdog.mode.
const (
	WatchdogOff       = "off"
	WatchdogAutomatic = "automatic" // use the device when it opens; lead without it otherwise
	WatchdogRequired  = "required"  // never lead without an armed watchdog
)

// watchdog drives a Linux watchdog device (/dev/watchdog, softdog or a
// hardware one) while this node leads. It is kept alive only while the
// lease holds and the main loop runs: if the agent dies, hangs or the
// whole node freezes while its PostgreSQL is the primary, the kernel
// resets the machine before the lease expires, so before another node
// can be promoted. Giving up leadership disarms it
// with the magic close ('V'). Safe for concurrent use.
type watchdog struct {
	device string
	mode   string

	mu      sync.Mutex
	f       *os.File
	armedAt time.Time
}

// arm opens the device if it is not open, sets its timeout and pets it. A
// device that takes no timeout (or a plain file, as in tests) is still
// petted by writes; in required mode that is an error.
func (w *watchdog) arm(timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		return w.petLocked()
	}
	f, err := os.OpenFile(w.device, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open watchdog %s: %w", w.device, err)
	}
	secs := max(1, int(timeout/time.Second))
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil && w.mode == WatchdogRequired {
		f.Write([]byte("V"))
		f.Close()
		return fmt.Errorf("set the timeout of watchdog %s to %ds: %w", w.device, secs, err)
	}
	w.f, w.armedAt = f, time.Now()
	return w.petLocked()
}

// petLocked resets the device's timer.
func (w *watchdog) petLocked() error {
	if w.f == nil {
		return errors.New("watchdog not armed")
	}
	if unix.IoctlWatchdogKeepalive(int(w.f.Fd())) == nil {
		return nil
	}
	_, err := w.f.Write([]byte{0}) // drivers count any write as a keepalive
	return err
}

// disarm stops the device with the magic close, unless it was armed
// less than grace ago (a campaign armed it and may be about to win). A
// kernel built with CONFIG_WATCHDOG_NOWAYOUT cannot be stopped:
// docs/ha.md says so.
func (w *watchdog) disarm(grace time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil || time.Since(w.armedAt) < grace {
		return nil
	}
	_, err := w.f.Write([]byte("V"))
	err = errors.Join(err, w.f.Close())
	w.f = nil
	return err
}

// watchdogTimeout is how long after its last keepalive the device fires:
// ttl − 2 × max(loop_wait, 1 s), in whole seconds, at least 1 s. Short
// enough that a keepalive sent well after a renewal (whose reply may come
// late under load) still fires before the lease can expire.
func (a *Agent) watchdogTimeout() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.watchdogTimeoutLocked()
}

func (a *Agent) watchdogTimeoutLocked() time.Duration {
	margin := max(time.Duration(a.st.cfg.LoopWait), time.Second)
	return max(time.Second, (time.Duration(a.st.cfg.TTL) - 2*margin).Truncate(time.Second))
}

// runWatchdog keeps the watchdog alive while this node leads, its lease
// was renewed recently enough that the device would fire before the lease
// can expire if nothing renews it, and its main loop is not stuck. It
// disarms it when the node stops leading; releaseWatchdog decides when
// the agent stops.
func (a *Agent) runWatchdog(ctx context.Context) {
	w := a.wd
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The device fires timeout after the last keepalive: send one only
		// while that is at least 250 ms before a replica may end this
		// leadership (the fence deadline plus ha.TakeoverMargin), so a
		// hung node is reset before another can be promoted.
		a.mu.Lock()
		timeout := a.watchdogTimeoutLocked()
		leading := a.st.leading
		expiry := a.fenceDeadlineLocked().Add(ha.TakeoverMargin)
		healthy := leading && !time.Now().Add(timeout).After(expiry.Add(-250*time.Millisecond)) &&
			time.Since(a.st.stepAt) < time.Duration(a.st.cfg.TTL)
		a.mu.Unlock()
		var err error
		switch {
		case !leading:
			err = w.disarm(2 * time.Second)
		case !healthy:
			// Not petted: if this lasts, the device resets the node
			// before the lease can expire for the others.
		default:
			err = w.arm(timeout)
		}
		if err != nil {
			a.log.Warn("watchdog", "err", err)
		}
	}
}

// releaseWatchdog runs when the agent has stopped: a leader that stopped
// holding its node (stopLeading) leaves the device armed, so it resets the
// node unless an agent is back in time; otherwise it is disarmed.
func (a *Agent) releaseWatchdog(keepArmed bool) {
	switch {
	case a.wd == nil:
	case keepArmed:
		a.log.Warn("stopping while leading: the watchdog stays armed")
	default:
		if err := a.wd.disarm(0); err != nil {
			a.log.Warn("watchdog: disarm", "err", err)
		}
	}
}

// watchdogReady says whether this node may campaign: in required mode
// only once the watchdog is armed, which it arms.
func (a *Agent) watchdogReady() error {
	if a.wd == nil || a.wd.mode != WatchdogRequired {
		return nil
	}
	return a.wd.arm(a.watchdogTimeout())
}
