// Package schedule runs a plan's jobs on their schedules in the
// foreground, one run per job at a time (a run that would overlap the
// previous one of the same job is skipped and recorded, as a Kubernetes
// CronJob with concurrencyPolicy Forbid), and records every outcome.
package schedule

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Job is one scheduled job.
type Job struct {
	Name string
	// Next returns the first time after t the job runs.
	Next func(t time.Time) time.Time
}

// Outcome is the result of one run, or of a skipped one.
type Outcome struct {
	Job      string    `json:"job"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_s"`
	OK       bool      `json:"ok"`
	ExitCode int       `json:"exit_code"`
	Error    string    `json:"error,omitempty"`
	// Skipped: the previous run of the job was still running.
	Skipped bool `json:"skipped,omitempty"`
}

// Runner runs Jobs. Run does the work of one job and returns its exit
// code (0 for success) and an error; Record hears every outcome, from the
// job's goroutine (it must be safe for concurrent use).
type Runner struct {
	Jobs   []Job
	Run    func(ctx context.Context, job string) (int, error)
	Record func(Outcome)
	Now    func() time.Time
	Logger *slog.Logger
}

// Loop runs the jobs on their schedules until ctx is cancelled, then waits
// for the runs in progress (they see ctx cancelled) and returns nil.
func (r *Runner) Loop(ctx context.Context) error {
	now := r.now
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		mu      sync.Mutex
		running = map[string]bool{}
		wg      sync.WaitGroup
	)
	defer wg.Wait()
	next := make([]time.Time, len(r.Jobs))
	for i, j := range r.Jobs {
		next[i] = j.Next(now())
		log.Info("scheduled", "job", j.Name, "next", next[i])
	}
	for {
		soonest := -1
		for i := range next {
			if soonest < 0 || next[i].Before(next[soonest]) {
				soonest = i
			}
		}
		if soonest < 0 {
			<-ctx.Done()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next[soonest])):
		}
		t := now()
		for i, j := range r.Jobs {
			if next[i].After(t) {
				continue
			}
			next[i] = j.Next(t)
			mu.Lock()
			busy := running[j.Name]
			running[j.Name] = true
			mu.Unlock()
			if busy {
				log.Warn("previous run still running: this run is skipped", "job", j.Name, "next", next[i])
				r.Record(Outcome{Job: j.Name, Start: t, Skipped: true, Error: "previous run still running"})
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := r.RunOnce(ctx, j.Name)
				mu.Lock()
				running[j.Name] = false
				mu.Unlock()
				if !o.OK {
					log.Error("job failed", "job", j.Name, "exit_code", o.ExitCode, "err", o.Error)
				}
			}()
		}
	}
}

// RunOnce runs job now, records and returns its outcome.
func (r *Runner) RunOnce(ctx context.Context, job string) Outcome {
	start := r.now()
	code, err := r.Run(ctx, job)
	o := Outcome{Job: job, Start: start, Duration: r.now().Sub(start).Seconds(), ExitCode: code, OK: code == 0 && err == nil}
	if err != nil {
		o.Error = err.Error()
	}
	r.Record(o)
	return o
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}
