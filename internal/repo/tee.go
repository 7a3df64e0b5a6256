package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
)

// teeStore writes to several stores and reads from the first: a backup
// that reads the database once and lands in every copy of a repository.
type teeStore struct {
	primary Store
	copies  []Store
}

// Tee returns a handle on r that also writes every object to copies, which
// must be copies of r (see Sync: the same keys, so the same objects). Reads
// come from r's store. A write lands in the copies before r, so r (the
// reference) never names an object a copy lacks.
//
// r must not be written through while the returned handle is in use: the
// two share r's index.
func (r *Repo) Tee(copies ...Store) *Repo {
	// The encoders and decoder are safe for concurrent use: shared.
	return &Repo{
		store: &teeStore{primary: r.store, copies: copies}, key: r.key, config: r.config, opts: r.opts, log: r.log,
		index: r.index, pending: make(map[ID]struct{}), enc: r.enc, encStrong: r.encStrong, dec: r.dec,
	}
}

func (t *teeStore) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	for _, c := range t.copies {
		if err := c.Put(ctx, key, bytes.NewReader(data), size); err != nil {
			return fmt.Errorf("copy %s: %w", c.Location(), err)
		}
	}
	return t.primary.Put(ctx, key, bytes.NewReader(data), size)
}

func (t *teeStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return t.primary.Get(ctx, key)
}

func (t *teeStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return t.primary.GetRange(ctx, key, off, n)
}

func (t *teeStore) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return t.primary.List(ctx, prefix)
}

func (t *teeStore) Delete(ctx context.Context, key string) error {
	for _, c := range t.copies {
		if err := c.Delete(ctx, key); err != nil {
			return fmt.Errorf("copy %s: %w", c.Location(), err)
		}
	}
	return t.primary.Delete(ctx, key)
}

func (t *teeStore) Location() string { return t.primary.Location() }
