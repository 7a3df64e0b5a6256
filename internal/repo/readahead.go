package repo

import (
	"context"
	"io"
	"sync"
)

// readAhead keeps recently read windows of packs for LoadBlob. A restore
// reads a pack's blobs in about the order they were written, so one request
// for a window serves dozens of blobs: on S3 a request costs milliseconds
// whatever its size.
type readAhead struct {
	size int64
	max  int

	mu      sync.Mutex
	windows map[windowKey]*window
	order   []windowKey // oldest first
}

type windowKey struct {
	pack ID
	idx  int64
}

type window struct {
	ready chan struct{}
	data  []byte
	err   error
}

// SetReadAhead makes LoadBlob read packs size bytes at a time and keep the
// last max windows (size × max bytes of memory). Zero size turns it off.
// Call it before concurrent use.
func (r *Repo) SetReadAhead(size int64, max int) {
	if size <= 0 || max <= 0 {
		r.ra = nil
		return
	}
	r.ra = &readAhead{size: size, max: max, windows: map[windowKey]*window{}}
}

// read returns bytes [off, off+n) of pack from a window, or ok false when
// they are not within one window (the caller reads them directly).
func (ra *readAhead) read(ctx context.Context, s Store, pack ID, off, n int64) (b []byte, ok bool, err error) {
	k := windowKey{pack, off / ra.size}
	start := k.idx * ra.size
	if off+n > start+ra.size {
		return nil, false, nil
	}
	ra.mu.Lock()
	w := ra.windows[k]
	if w == nil {
		w = &window{ready: make(chan struct{})}
		ra.windows[k] = w
		ra.order = append(ra.order, k)
		if len(ra.order) > ra.max {
			delete(ra.windows, ra.order[0])
			ra.order = ra.order[1:]
		}
		ra.mu.Unlock()
		w.data, w.err = readWindow(ctx, s, pack, start, ra.size)
		close(w.ready)
	} else {
		ra.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	if w.err != nil {
		ra.mu.Lock()
		if ra.windows[k] == w {
			delete(ra.windows, k) // a later read tries again
		}
		ra.mu.Unlock()
		return nil, false, w.err
	}
	lo, hi := off-start, off-start+n
	if hi > int64(len(w.data)) {
		return nil, false, nil // past the pack's end: let the direct read report it
	}
	// A copy: the caller decrypts in place.
	return append([]byte(nil), w.data[lo:hi]...), true, nil
}

func readWindow(ctx context.Context, s Store, pack ID, start, size int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, packKey(pack), start, size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
