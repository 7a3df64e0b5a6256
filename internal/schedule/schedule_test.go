package schedule

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func every(d time.Duration) func(time.Time) time.Time {
	return func(t time.Time) time.Time { return t.Truncate(d).Add(d) }
}

func TestLoopNoOverlapAndOutcomes(t *testing.T) {
	var inSlow, maxSlow atomic.Int32
	var mu sync.Mutex
	var outcomes []Outcome
	m := NewMetrics(prometheus.NewRegistry())
	r := &Runner{
		Jobs: []Job{{Name: "slow", Next: every(100 * time.Millisecond)}, {Name: "failing", Next: every(150 * time.Millisecond)}},
		Run: func(ctx context.Context, job string) (int, error) {
			if job == "failing" {
				return 1, errors.New("exit status 1")
			}
			n := inSlow.Add(1)
			defer inSlow.Add(-1)
			for {
				old := maxSlow.Load()
				if n <= old || maxSlow.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(250 * time.Millisecond)
			return 0, nil
		},
		Record: func(o Outcome) {
			m.Observe(o)
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	if err := r.Loop(ctx); err != nil {
		t.Fatal(err)
	}
	if maxSlow.Load() != 1 {
		t.Fatalf("%d runs of the slow job overlapped", maxSlow.Load())
	}
	count := map[string]int{}
	for _, o := range outcomes {
		switch {
		case o.Skipped:
			count[o.Job+"/skipped"]++
		case o.OK:
			count[o.Job+"/ok"]++
		default:
			count[o.Job+"/failed"]++
			if o.ExitCode != 1 || o.Error == "" {
				t.Errorf("failed outcome without its exit code and error: %+v", o)
			}
		}
	}
	if count["slow/ok"] == 0 || count["slow/skipped"] == 0 || count["failing/failed"] == 0 {
		t.Fatalf("outcomes %v: want slow runs, skipped slow runs and failed runs", count)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues("failing", "failed")); int(got) != count["failing/failed"] {
		t.Errorf("metric failed runs %v, want %d", got, count["failing/failed"])
	}
}
