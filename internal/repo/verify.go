package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Damage lists what verify found wrong, blob by blob.
type Damage struct {
	// Blobs maps each unreadable blob to the reason.
	Blobs map[ID]error
	// Packs lists problems with whole packs (missing, wrong hash, bad header).
	Packs []string
	// Unreferenced counts packs that no index names (left by an interrupted
	// write; harmless).
	Unreferenced int
}

// OK reports whether no damage was found.
func (d *Damage) OK() bool { return len(d.Blobs) == 0 && len(d.Packs) == 0 }

func (d *Damage) addPack(pack ID, reason error, blobs []ID, mu *sync.Mutex) {
	mu.Lock()
	defer mu.Unlock()
	d.Packs = append(d.Packs, fmt.Sprintf("pack %s: %v", pack, reason))
	for _, b := range blobs {
		d.Blobs[b] = reason
	}
}

// CheckPacks checks the structure: every pack the index names exists. With
// readData it also reads every pack, checks its hash and header, and
// decrypts and hashes every blob. progress, if not nil, is called with the
// number of packs done.
func (r *Repo) CheckPacks(ctx context.Context, readData bool, jobs int, progress func(done, total int)) (*Damage, error) {
	present := make(map[ID]bool)
	for key, err := range r.store.List(ctx, "data/") {
		if err != nil {
			return nil, fmt.Errorf("list packs: %w", err)
		}
		id, err := ParseID(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil {
			continue
		}
		present[id] = true
	}
	d := &Damage{Blobs: make(map[ID]error)}
	var mu sync.Mutex
	byPack := r.index.ByPack()
	packs := r.index.Packs()
	var todo []ID
	for _, p := range packs {
		if !present[p] {
			d.addPack(p, fmt.Errorf("%w: pack is missing", ErrCorrupt), byPack[p], &mu)
			continue
		}
		delete(present, p)
		todo = append(todo, p)
	}
	d.Unreferenced = len(present)
	if !readData {
		return d, nil
	}
	if jobs < 1 {
		jobs = 1
	}
	work := make(chan ID)
	var wg sync.WaitGroup
	done := 0
	for range jobs {
		wg.Go(func() {
			for p := range work {
				r.readPack(ctx, p, byPack[p], d, &mu)
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(todo))
				}
				mu.Unlock()
			}
		})
	}
	for _, p := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	return d, ctx.Err()
}

func (r *Repo) readPack(ctx context.Context, pack ID, blobs []ID, d *Damage, mu *sync.Mutex) {
	rc, err := r.store.Get(ctx, packKey(pack))
	if err != nil {
		d.addPack(pack, err, blobs, mu)
		return
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		d.addPack(pack, err, blobs, mu)
		return
	}
	if ID(sha256.Sum256(data)) != pack {
		d.addPack(pack, fmt.Errorf("%w: pack content does not match its name", ErrCorrupt), nil, mu)
	}
	if _, err := parsePackHeader(r.key, data); err != nil {
		d.addPack(pack, err, nil, mu)
	}
	for _, id := range blobs {
		l, _ := r.index.Lookup(id)
		if int64(l.Offset)+int64(l.Length) > int64(len(data)) {
			d.addPack(pack, fmt.Errorf("%w: pack is truncated", ErrCorrupt), []ID{id}, mu)
			continue
		}
		sealed := append([]byte(nil), data[l.Offset:l.Offset+l.Length]...)
		if _, err := r.openBlob(id, l, sealed, nil); err != nil {
			mu.Lock()
			d.Blobs[id] = err
			mu.Unlock()
		}
	}
}

// IsCorrupt reports whether err is damage in the repository rather than a
// failure to reach it.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }
