package cli

import (
	"context"
	"sync"
	"time"
)

// workers is the pool of a background WAL process (push-daemon,
// fetch-daemon): each file is handed to one worker at a time, and a file
// whose work failed waits retry before it is handed out again.
type workers struct {
	mu       sync.Mutex
	inFlight map[string]bool
	failed   map[string]time.Time
	retry    time.Duration
	work     chan string
	wg       sync.WaitGroup
}

// startWorkers runs n workers calling fn for each submitted file name.
func startWorkers(n int, retry time.Duration, fn func(name string) error) *workers {
	w := &workers{inFlight: map[string]bool{}, failed: map[string]time.Time{}, retry: retry, work: make(chan string)}
	for range max(n, 1) {
		w.wg.Go(func() {
			for name := range w.work {
				err := fn(name)
				w.mu.Lock()
				delete(w.inFlight, name)
				if err != nil {
					w.failed[name] = time.Now()
				} else {
					delete(w.failed, name)
				}
				w.mu.Unlock()
			}
		})
	}
	return w
}

// submit hands name to a worker, waiting for a free one, unless it is
// being worked on or failed less than retry ago. It reports whether it did.
func (w *workers) submit(ctx context.Context, name string) bool {
	w.mu.Lock()
	skip := w.inFlight[name] || time.Since(w.failed[name]) < w.retry
	if !skip {
		w.inFlight[name] = true
	}
	w.mu.Unlock()
	if skip {
		return false
	}
	select {
	case w.work <- name:
		return true
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.inFlight, name)
		w.mu.Unlock()
		return false
	}
}

// busy reports whether name is being worked on.
func (w *workers) busy(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight[name]
}

// idle reports whether no file is being worked on.
func (w *workers) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight) == 0
}

// stop waits for the work in progress and ends the workers.
func (w *workers) stop() {
	close(w.work)
	w.wg.Wait()
}
