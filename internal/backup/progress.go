package backup

import (
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// progressInterval is how often Progress callbacks fire.
const progressInterval = 500 * time.Millisecond

// reportProgress calls opts.Progress until the returned stop is called.
// The total is the size of the data directory, summed in the background.
func reportProgress(opts CreateOptions, phase string, rd *reader, pgdata string) (stop func()) {
	if opts.Progress == nil {
		return func() {}
	}
	var total atomic.Int64
	return ticker(func() { opts.Progress(Progress{Phase: phase, Done: rd.done.Load(), Total: total.Load()}) },
		func() { total.Store(dirSize(pgdata)) })
}

// ticker runs fn every progressInterval, and once more at stop; setup runs
// first in the same goroutine.
func ticker(fn, setup func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		setup()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				fn()
				return
			case <-t.C:
				fn()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func dirSize(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
