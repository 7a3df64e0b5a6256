// Package repo owns Bulwark's repository format: encrypted, content-addressed
// blobs packed into pack files, the index that locates them, encrypted
// documents (backup records), streams (manifests) and locks.
//
// It knows nothing of PostgreSQL: callers give it bytes and get IDs back.
// The on-disk format is specified in docs/repo-format.md; a change to it
// bumps FormatVersion in the same commit.
package repo

import (
	"context"
	"errors"
	"io"
	"iter"
)

// ErrNotFound is returned by Store.Get and Store.GetRange when the key is absent.
var ErrNotFound = errors.New("object not found")

// Store holds a repository's objects under slash-separated keys such as
// "data/ab/ab12…" or "backups/20261124-015500F".
//
// Implementations are safe for concurrent use.
type Store interface {
	// Put stores size bytes read from r under key. It is atomic: readers see
	// all of the object or none of it, and a crash leaves the previous
	// object (or none). Put replaces an existing object.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the whole object. It returns an error wrapping ErrNotFound if
	// the key is absent. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes of the object starting at offset.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// List yields every key that starts with prefix, in no particular order.
	List(ctx context.Context, prefix string) iter.Seq2[string, error]
	// Delete removes the object. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Location describes the store for messages, with no secrets in it.
	Location() string
}
