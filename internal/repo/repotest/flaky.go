package repotest

import (
	"context"
	"io"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// FlakyStore injects faults into a real Store. Nil hooks pass through.
type FlakyStore struct {
	repo.Store
	// FailPut, if it returns an error, fails the Put of key with it
	// before anything is written.
	FailPut func(key string) error
}

// Put fails when FailPut says so.
func (s *FlakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if s.FailPut != nil {
		if err := s.FailPut(key); err != nil {
			return err // injected fault
		}
	}
	return s.Store.Put(ctx, key, r, size)
}
