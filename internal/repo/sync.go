package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// SyncOptions configure Sync.
type SyncOptions struct {
	// Jobs is how many objects are copied at once (default 4): object
	// stores reward parallel requests.
	Jobs int
	// Verify checks objects whose format this package does not own
	// (WAL objects: the archive package's), by key prefix. An object of
	// a prefix with no verifier and no known format is copied as is.
	Verify map[string]func(key string, data []byte) error
	// Progress, if set, is called after each copied object.
	Progress func(SyncStats)
}

// SyncStats says what Sync did.
type SyncStats struct {
	Copied  int   `json:"objects_copied"`
	Present int   `json:"objects_present"` // already in the target: not read
	Bytes   int64 `json:"bytes_copied"`
}

// ErrOtherRepository refuses a sync into a location that holds a different
// repository.
var ErrOtherRepository = errors.New("the target holds another repository")

// syncOrder is the order prefixes are copied in: what names an object
// comes after the object, so an interrupted sync leaves a target whose
// every reference resolves, and the backup records come last.
var syncOrder = []string{"keys/", "config", "data/", "index/", "wal/", "archive/", "backups/"}

// Sync copies into dst every object of r that dst lacks, so that dst
// becomes (or stays) a copy of r: same master key and passphrases, same
// backups, same WAL. A copy is a repository in its own right. Objects are
// immutable (packs are named by their hash, the rest by unique names), so
// an object already in dst is not read again: a sync of a synced pair only
// lists. Every object copied is checked first (a pack against its SHA-256
// name, sealed documents by decryption, others by opts.Verify) and a
// damaged one is never written. Sync is resumable: run it again after an
// interruption. Locks are not copied; the caller holds r's shared lock and
// dst's exclusive lock.
func Sync(ctx context.Context, r *Repo, dst Store, opts SyncOptions) (SyncStats, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	var st SyncStats
	if err := checkSyncTarget(ctx, r, dst); err != nil {
		return st, err
	}
	have := map[string]bool{}
	for key, err := range dst.List(ctx, "") {
		if err != nil {
			return st, fmt.Errorf("list target: %w", err)
		}
		have[key] = true
	}
	var mu sync.Mutex
	for _, prefix := range syncOrder {
		var keys []string
		for key, err := range r.store.List(ctx, prefix) {
			if err != nil {
				return st, fmt.Errorf("list %s: %w", r.Location(), err)
			}
			if prefix == "config" && key != "config" {
				continue
			}
			if have[key] && !mutable(key) {
				st.Present++
				continue
			}
			keys = append(keys, key)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(opts.Jobs)
		for _, key := range keys {
			g.Go(func() error {
				n, err := r.copyObject(gctx, dst, key, opts)
				if err != nil {
					return err
				}
				mu.Lock()
				st.Copied++
				st.Bytes += n
				snap := st
				mu.Unlock()
				if opts.Progress != nil {
					opts.Progress(snap)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// mutable objects are copied again on every sync: a receiver's state
// (package receive names its documents "archive/receiver-<slot>").
func mutable(key string) bool { return strings.HasPrefix(key, "archive/receiver-") }

// checkSyncTarget accepts an empty target or a copy of r.
func checkSyncTarget(ctx context.Context, r *Repo, dst Store) error {
	sealed, err := getAll(ctx, dst, "config")
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read target config: %w", err)
	}
	var cfg Config
	if err := r.unseal("config", sealed, &cfg); err != nil || cfg.ID != r.config.ID {
		return fmt.Errorf("%s: %w (sync copies a repository into an empty location or into its own copy)", dst.Location(), ErrOtherRepository)
	}
	return nil
}

// copyObject reads key from r, checks it and writes it to dst.
func (r *Repo) copyObject(ctx context.Context, dst Store, key string, opts SyncOptions) (int64, error) {
	data, err := getAll(ctx, r.store, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := r.checkObject(key, data, opts.Verify); err != nil {
		return 0, fmt.Errorf("%s in %s: %w (not copied)", key, r.Location(), err)
	}
	if err := dst.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return 0, fmt.Errorf("write %s to %s: %w", key, dst.Location(), err)
	}
	return int64(len(data)), nil
}

func (r *Repo) checkObject(key string, data []byte, verify map[string]func(string, []byte) error) error {
	switch {
	case strings.HasPrefix(key, "data/"):
		id, err := ParseID(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil {
			return fmt.Errorf("%w: pack name: %v", ErrCorrupt, err)
		}
		if ID(sha256.Sum256(data)) != id {
			return fmt.Errorf("%w: pack content does not match its name", ErrCorrupt)
		}
		return nil
	case strings.HasPrefix(key, "keys/"):
		var kf keyFile
		if err := json.Unmarshal(data, &kf); err != nil {
			return fmt.Errorf("%w: key file: %v", ErrCorrupt, err)
		}
		return nil
	case key == "config", strings.HasPrefix(key, "index/"), strings.HasPrefix(key, "backups/"), strings.HasPrefix(key, "archive/"):
		_, err := r.key.Open(nil, data)
		return err
	}
	for prefix, fn := range verify {
		if strings.HasPrefix(key, prefix) {
			return fn(key, data)
		}
	}
	return nil
}
