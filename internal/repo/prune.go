package repo

import (
	"bytes"
	"context"
	"fmt"
)

// PruneStats says what Prune removed and what it left.
type PruneStats struct {
	PacksDeleted int   `json:"packs_deleted"`
	BytesDeleted int64 `json:"bytes_deleted"` // sealed bytes of unused blobs removed (whole packs, and from repacked ones)
	PacksKept    int   `json:"packs_kept"`
	// PacksRepacked were rewritten without their unused blobs into
	// PacksWritten new packs.
	PacksRepacked int `json:"packs_repacked"`
	PacksWritten  int `json:"packs_written"`
	// UnusedKept is the sealed size of unused blobs left in kept packs
	// (a pack is deleted only when none of its blobs is used).
	UnusedKept int64 `json:"unused_bytes_kept"`
}

// indexChunk bounds the blobs of one index file Prune writes.
const indexChunk = 50000

// DefaultRepackUnused is the share of a pack's bytes that may be unused
// before Prune rewrites the pack without them.
const DefaultRepackUnused = 0.05

// Prune deletes the packs none of whose blobs used reports as used, copies
// the used blobs of packs more than repackUnused unused into new packs
// (sealed bytes as they are: nothing is decrypted), and rewrites the index
// without the old packs. The caller holds the exclusive lock (no writer
// adds blobs meanwhile) and has decided what is used from every backup
// that remains. With dryRun it only counts.
//
// Order makes a crash harmless: new packs are written first, then new
// index files naming only the packs that stay, then the old index files
// are deleted, then the old packs. An interruption leaves either extra
// index entries for packs that still exist, or packs no index names
// (garbage a later Prune removes).
func (r *Repo) Prune(ctx context.Context, used func(ID) bool, repackUnused float64, dryRun bool) (PruneStats, error) {
	var st PruneStats
	byPack := r.index.ByPack()
	var keep, repack []packIndex
	var drop []ID
	for pack, blobs := range byPack {
		pi := packIndex{ID: pack}
		anyUsed := false
		var size, unused int64
		for _, id := range blobs {
			l, _ := r.index.Lookup(id)
			size += int64(l.Length)
			pi.Blobs = append(pi.Blobs, packBlob{Type: l.Type, ID: id, Offset: l.Offset, Length: l.Length, RawLength: l.RawLength, Compressed: l.Compressed})
			if used(id) {
				anyUsed = true
			} else {
				unused += int64(l.Length)
			}
		}
		switch {
		case anyUsed && unused > 0 && float64(unused) > repackUnused*float64(size):
			repack = append(repack, pi)
			drop = append(drop, pack)
			st.PacksRepacked++
			st.BytesDeleted += unused
		case anyUsed:
			keep = append(keep, pi)
			st.PacksKept++
			st.UnusedKept += unused
		default:
			drop = append(drop, pack)
			st.PacksDeleted++
			st.BytesDeleted += size
		}
	}
	// Packs the index knows but places no blob in (all duplicates) go too.
	for _, pack := range r.index.Packs() {
		if _, ok := byPack[pack]; !ok {
			drop = append(drop, pack)
			st.PacksDeleted++
		}
	}
	if dryRun || len(drop) == 0 {
		return st, nil
	}
	written, err := r.repack(ctx, repack, used)
	if err != nil {
		return st, err
	}
	st.PacksWritten = len(written)
	keep = append(keep, written...)
	oldIndex, err := r.indexKeys(ctx)
	if err != nil {
		return st, err
	}
	var batch []packIndex
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.saveIndex(ctx, batch)
		batch, n = nil, 0
		return err
	}
	for _, pi := range keep {
		batch = append(batch, pi)
		n += len(pi.Blobs)
		if n >= indexChunk {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	for _, key := range oldIndex {
		if err := r.store.Delete(ctx, key); err != nil {
			return st, fmt.Errorf("delete old index %s: %w", key, err)
		}
	}
	for _, pack := range drop {
		if err := r.store.Delete(ctx, packKey(pack)); err != nil {
			return st, fmt.Errorf("delete pack %s: %w", pack.Short(), err)
		}
	}
	// The in-memory index now describes only the kept packs.
	r.index = newIndex()
	for _, pi := range keep {
		r.index.add(pi)
	}
	return st, nil
}

// repack copies the used blobs of packs into new packs and returns them.
func (r *Repo) repack(ctx context.Context, packs []packIndex, used func(ID) bool) ([]packIndex, error) {
	var out []packIndex
	var p *packer
	upload := func() error {
		if p == nil || len(p.blobs) == 0 {
			return nil
		}
		defer p.release()
		data, id := p.finish(r.key)
		if err := r.store.Put(ctx, packKey(id), bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("upload repacked pack: %w", err)
		}
		out = append(out, packIndex{ID: id, Blobs: p.blobs})
		p = nil
		return nil
	}
	for _, pi := range packs {
		data, err := getAll(ctx, r.store, packKey(pi.ID))
		if err != nil {
			return nil, fmt.Errorf("read pack %s to repack: %w", pi.ID.Short(), err)
		}
		for _, b := range pi.Blobs {
			if !used(b.ID) {
				continue
			}
			end := uint64(b.Offset) + uint64(b.Length)
			if end > uint64(len(data)) {
				return nil, fmt.Errorf("%w: pack %s is shorter than its index says", ErrCorrupt, pi.ID.Short())
			}
			if p == nil {
				p = newPacker(r.opts.PackSize)
			}
			p.add(b, data[b.Offset:end])
			if p.buf.Len() >= r.opts.PackSize {
				if err := upload(); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, upload()
}
