package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockInfo is what a lock object records about its holder. It is stored in
// clear (locks/<id>) and holds nothing secret.
type LockInfo struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Start     string    `json:"start,omitempty"` // process start time from /proc, to tell a reused PID
	Exclusive bool      `json:"exclusive"`
	Operation string    `json:"operation"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
}

// LockedError is returned by Lock when another process holds a conflicting lock.
type LockedError struct {
	Holder LockInfo
	Key    string
}

func (e *LockedError) Error() string {
	h := e.Holder
	return fmt.Sprintf("repository is locked by %q (pid %d on host %s, since %s): wait for it to finish; "+
		"a lock whose process is gone is removed automatically, and one not refreshed for %s is ignored",
		h.Operation, h.PID, h.Host, h.Created.Format(time.RFC3339), LockStaleAfter)
}

// LockStaleAfter is how long a lock may go unrefreshed before other hosts
// treat it as abandoned; holders refresh it every LockRefresh.
const (
	LockStaleAfter = 30 * time.Minute
	LockRefresh    = 5 * time.Minute
)

// Lock is a held repository lock. Unlock releases it.
type Lock struct {
	r    *Repo
	key  string
	info LockInfo
	stop chan struct{}
	wg   sync.WaitGroup
}

// Lock takes a lock for operation. An exclusive lock conflicts with every
// other lock; a shared one only with exclusive locks. Stale locks (dead
// process on this host, or not refreshed for LockStaleAfter) are removed.
func (r *Repo) Lock(ctx context.Context, operation string, exclusive bool) (*Lock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &Lock{r: r, key: "locks/" + randomName(), stop: make(chan struct{}), info: LockInfo{
		Host: host, PID: os.Getpid(), Start: procStart(os.Getpid()),
		Exclusive: exclusive, Operation: operation, Created: now, Refreshed: now,
	}}
	if err := putJSON(ctx, r.store, l.key, l.info); err != nil {
		return nil, fmt.Errorf("write lock: %w", err)
	}
	if err := r.checkLocks(ctx, l); err != nil {
		r.store.Delete(context.WithoutCancel(ctx), l.key)
		return nil, err
	}
	l.wg.Add(1)
	go l.refresh(ctx)
	return l, nil
}

func (r *Repo) checkLocks(ctx context.Context, mine *Lock) error {
	for key, err := range r.store.List(ctx, "locks/") {
		if err != nil {
			return fmt.Errorf("list locks: %w", err)
		}
		if key == mine.key {
			continue
		}
		var other LockInfo
		if err := getJSON(ctx, r.store, key, &other); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("read lock %s: %w", key, err)
		}
		if !mine.info.Exclusive && !other.Exclusive {
			continue
		}
		if stale, why := other.stale(mine.info.Host, time.Now()); stale {
			r.log.Warn("removing stale lock", "lock", key, "operation", other.Operation, "pid", other.PID, "host", other.Host, "reason", why)
			if err := r.store.Delete(ctx, key); err != nil {
				return fmt.Errorf("remove stale lock %s: %w", key, err)
			}
			continue
		}
		return &LockedError{Holder: other, Key: key}
	}
	return nil
}

func (i LockInfo) stale(host string, now time.Time) (bool, string) {
	if i.Host == host {
		if !processAlive(i.PID) {
			return true, "process is gone"
		}
		if i.Start != "" && procStart(i.PID) != i.Start {
			return true, "process is gone (its pid was reused)"
		}
		return false, ""
	}
	if now.Sub(i.Refreshed) > LockStaleAfter {
		return true, "not refreshed for " + now.Sub(i.Refreshed).Round(time.Second).String()
	}
	return false, ""
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// procStart returns the start time of pid in clock ticks since boot (field
// 22 of /proc/PID/stat), or "" where /proc is unavailable.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func (l *Lock) refresh(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			l.info.Refreshed = time.Now().UTC()
			if err := putJSON(ctx, l.r.store, l.key, l.info); err != nil {
				l.r.log.Warn("refresh lock failed; retrying", "err", err)
			}
		}
	}
}

// Unlock releases the lock. It is safe to call once.
func (l *Lock) Unlock(ctx context.Context) error {
	close(l.stop)
	l.wg.Wait()
	return l.r.store.Delete(context.WithoutCancel(ctx), l.key)
}
