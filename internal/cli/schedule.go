package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/schedule"
)

func (a *app) newScheduleCmd() *cobra.Command {
	var historyFile, metricsAddr, runNow string
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run the plan's scheduled jobs (backups, expire, sync) in the foreground",
		Long: `Run the plan's schedules in the foreground until SIGINT or SIGTERM: each job at
its cron times (server local time), as a child bulwark process with the same
plan and environment. A job never runs twice at once: a run due while the
previous one still runs is skipped and recorded (a Kubernetes CronJob's
concurrencyPolicy: Forbid). Every outcome is appended to --history as a JSON
line and, with --metrics-addr, exported to Prometheus at /metrics
(bulwark_schedule_runs_total{job,outcome}, ..._last_success_timestamp_seconds,
..._last_run_timestamp_seconds, ..._last_duration_seconds).

--run-now JOB runs one job at once, records it and exits with its outcome: for
a Kubernetes CronJob or a systemd timer that owns the timing (deploy/).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.plan == nil {
				return usageError{errors.New("schedule needs a plan: --plan bulwark.yaml or BULWARK_PLAN")}
			}
			if len(a.plan.Schedules) == 0 {
				return usageError{fmt.Errorf("%s has no schedules", a.plan.Path)}
			}
			if historyFile == "" {
				historyFile = defaultHistoryFile(a.getenv)
			}
			hist, err := openHistory(historyFile)
			if err != nil {
				return err
			}
			defer hist.Close()
			reg := prometheus.NewRegistry()
			metrics := schedule.NewMetrics(reg)
			r := &schedule.Runner{
				Run:    func(ctx context.Context, job string) (int, error) { return a.runJob(ctx, job) },
				Record: func(o schedule.Outcome) { metrics.Observe(o); hist.Write(o, a.log) },
				Logger: a.log,
			}
			for _, s := range a.plan.Schedules {
				r.Jobs = append(r.Jobs, schedule.Job{Name: s.Name, Next: s.Cron.Next})
			}
			if runNow != "" {
				if _, ok := a.scheduleJob(runNow); !ok {
					return usageError{fmt.Errorf("--run-now %q: no such schedule in %s", runNow, a.plan.Path)}
				}
				if o := r.RunOnce(cmd.Context(), runNow); !o.OK {
					return &exitError{max(o.ExitCode, 1), fmt.Errorf("job %s failed: %s", runNow, o.Error)}
				}
				return nil
			}
			if metricsAddr != "" {
				if err := serveMetrics(cmd.Context(), metricsAddr, reg); err != nil {
					return err
				}
			}
			a.log.Info("scheduler started", "plan", a.plan.Path, "jobs", len(r.Jobs), "history", historyFile)
			return r.Loop(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&historyFile, "history", "", "JSON-lines file of outcomes (default $XDG_STATE_HOME/bulwark/schedule-history.jsonl, or ~/.local/state/...)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9187)")
	cmd.Flags().StringVar(&runNow, "run-now", "", "run this schedule's job once, now, and exit with its outcome")
	return cmd
}

func (a *app) scheduleJob(name string) (plan.Schedule, bool) {
	for _, s := range a.plan.Schedules {
		if s.Name == name {
			return s, true
		}
	}
	return plan.Schedule{}, false
}

// jobArgs is the bulwark command line of a scheduled job.
func (a *app) jobArgs(s plan.Schedule) []string {
	argv := []string{"--plan", a.plan.Path, "--log-level", a.logLevel}
	switch s.Job {
	case plan.JobBackup:
		return append(argv, "backup", "create", "--type", s.Type, "--repo", s.Repository)
	case plan.JobExpire:
		return append(argv, "expire", "--repo", s.Repository, "--apply")
	default: // plan.JobSync
		return append(argv, "repo", "sync", "--from", s.Repository, "--to", s.To)
	}
}

// runJob runs one scheduled job as a child process and returns its exit
// code. Its output goes to our stderr, with the scheduler's logs.
func (a *app) runJob(ctx context.Context, name string) (int, error) {
	s, ok := a.scheduleJob(name)
	if !ok {
		return 2, fmt.Errorf("no schedule %q", name)
	}
	exe, err := os.Executable()
	if err != nil {
		return 1, err
	}
	cmd := exec.CommandContext(ctx, exe, a.jobArgs(s)...)
	cmd.Stdout, cmd.Stderr = a.stderr, a.stderr
	a.log.Info("job starting", "job", name, "command", cmd.Args[1:])
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), err
	}
	if err != nil {
		return 1, err
	}
	a.log.Info("job done", "job", name)
	return 0, nil
}

func defaultHistoryFile(getenv func(string) string) string {
	dir := getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "bulwark", "schedule-history.jsonl")
}

// history appends outcomes to a JSON-lines file.
type history struct {
	mu sync.Mutex
	f  *os.File
}

func openHistory(path string) (*history, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return &history{f: f}, nil
}

func (h *history) Write(o schedule.Outcome, log interface{ Error(string, ...any) }) {
	b, _ := json.Marshal(o)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.f.Write(append(b, '\n')); err != nil {
		log.Error("could not record an outcome in the history", "err", err)
	}
}

func (h *history) Close() error { return h.f.Close() }

// serveMetrics serves reg at addr until ctx ends. Read-only: nothing to
// authenticate.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	go serveHTTP(ctx, ln, mux) //nolint:errcheck // the scheduler carries on without its metrics
	return nil
}

// serveHTTP serves h on ln until ctx ends, then shuts down within 5 s.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-done
}
