package backup

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
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

// bytesEntry stores content the backup makes itself (backup_label,
// tablespace_map), owned like the data directory.
func (rd *reader) bytesEntry(ctx context.Context, name string, content []byte, pgdata string) (*Entry, error) {
	e := &Entry{Path: name, Kind: KindFile, Mode: 0o600, Extra: true, MTime: time.Now().UnixNano()}
	if fi, err := os.Stat(pgdata); err == nil {
		e.User, e.Group = rd.owners.names(fi)
	}
	return e, rd.fill(ctx, bytes.NewReader(content), e, nil, false)
}

// storedSize sums the repository bytes a restore of info reads: every part
// of every block, counted each time it is used.
func storedSize(ctx context.Context, r *repo.Repo, info *Info) (int64, error) {
	m := OpenManifest(ctx, r, info)
	var n int64
	for {
		e, err := m.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		for _, b := range e.Blocks {
			for _, p := range b.Parts {
				if l, ok := r.Index().Lookup(p); ok {
					n += int64(l.Length)
				}
			}
		}
	}
}
