package repo

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Location says where a blob is stored.
type Location struct {
	Pack       ID
	Type       BlobType
	Offset     uint32
	Length     uint32 // sealed bytes in the pack
	RawLength  uint32
	Compressed bool
}

// loc is the compact in-memory form of a Location: packs are referred to by
// position so that an entry costs about 50 bytes, not 80.
type loc struct {
	pack       int32
	off, n     uint32
	raw        uint32
	typ        BlobType
	compressed bool
}

// Index maps blob IDs to their location. It is safe for concurrent use.
// Memory grows with the number of blobs (one per block of up to BlockSize
// bytes), never with the number of pages.
type Index struct {
	mu     sync.RWMutex
	blobs  map[ID]loc
	packs  []ID
	packIx map[ID]int32
}

func newIndex() *Index {
	return &Index{blobs: make(map[ID]loc), packIx: make(map[ID]int32)}
}

// packIndex is the JSON form of one pack in an index file.
type packIndex struct {
	ID    ID         `json:"id"`
	Blobs []packBlob `json:"blobs"`
}

type indexFile struct {
	Packs []packIndex `json:"packs"`
}

func (ix *Index) add(p packIndex) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	pi, ok := ix.packIx[p.ID]
	if !ok {
		pi = int32(len(ix.packs))
		ix.packs = append(ix.packs, p.ID)
		ix.packIx[p.ID] = pi
	}
	for _, b := range p.Blobs {
		if _, dup := ix.blobs[b.ID]; dup {
			continue // the same blob stored twice (after a crash): the first copy wins
		}
		ix.blobs[b.ID] = loc{pack: pi, off: b.Offset, n: b.Length, raw: b.RawLength, typ: b.Type, compressed: b.Compressed}
	}
}

// Lookup returns where blob id is stored.
func (ix *Index) Lookup(id ID) (Location, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	l, ok := ix.blobs[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: ix.packs[l.pack], Type: l.typ, Offset: l.off, Length: l.n, RawLength: l.raw, Compressed: l.compressed}, true
}

// Len returns the number of blobs indexed.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.blobs)
}

// Packs returns the IDs of every pack the index refers to.
func (ix *Index) Packs() []ID {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return append([]ID(nil), ix.packs...)
}

// ByPack returns, for each pack, the blobs the index places in it.
func (ix *Index) ByPack() map[ID][]ID {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m := make(map[ID][]ID, len(ix.packs))
	for id, l := range ix.blobs {
		p := ix.packs[l.pack]
		m[p] = append(m[p], id)
	}
	return m
}

// Index returns the repository's in-memory index.
func (r *Repo) Index() *Index { return r.index }

// indexKeys lists the repository's index files (not temporary files).
func (r *Repo) indexKeys(ctx context.Context) ([]string, error) {
	var keys []string
	for key, err := range r.store.List(ctx, "index/") {
		if err != nil {
			return nil, fmt.Errorf("list index: %w", err)
		}
		if !strings.Contains(strings.TrimPrefix(key, "index/"), ".") {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

func (r *Repo) loadIndex(ctx context.Context) error {
	keys, err := r.indexKeys(ctx)
	if err != nil {
		return err
	}
	for _, key := range keys {
		var f indexFile
		if err := r.getSealed(ctx, key, &f); err != nil {
			return fmt.Errorf("read index %s: %w", key, err)
		}
		for _, p := range f.Packs {
			r.index.add(p)
		}
	}
	return nil
}

// saveIndex writes the packs uploaded since the last index file. The
// caller holds no lock; packs are written before the index that names them,
// so an index entry always points at a pack that exists.
func (r *Repo) saveIndex(ctx context.Context, packs []packIndex) error {
	if len(packs) == 0 {
		return nil
	}
	if err := r.putSealed(ctx, "index/"+randomName(), indexFile{Packs: packs}); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}
