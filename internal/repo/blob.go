package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// BlobError reports a blob that could not be read back intact.
type BlobError struct {
	ID   ID
	Pack ID
	Err  error
}

func (e *BlobError) Error() string {
	return fmt.Sprintf("blob %s in pack %s: %v", e.ID.Short(), e.Pack.Short(), e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// Reserve returns true when the caller must store blob id with StoreBlob,
// and false when it is already stored or another caller is storing it.
// This is how identical blocks are stored once.
func (r *Repo) Reserve(id ID) bool {
	if _, ok := r.index.Lookup(id); ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[id]; ok {
		return false
	}
	r.pending[id] = struct{}{}
	return true
}

// Compression says how hard StoreBlob compresses a blob.
type Compression int

const (
	// Fast is zstd's fastest level (Options.CompressLevel): compression is
	// the bottleneck of a full backup.
	Fast Compression = iota
	// Strong is zstd's strongest level (Options.StrongLevel), some ten
	// times slower: for small volumes of data that it shrinks much more,
	// such as the changed pages of an index (8.9:1 against 4.7:1).
	Strong
)

// StoreBlob compresses, encrypts and packs data, which must hash to id. It
// may upload a full pack before returning. The blob becomes durable and
// visible to Open at the next Flush (or when enough packs have gone by).
// Safe for concurrent use; callers compress in parallel.
func (r *Repo) StoreBlob(ctx context.Context, t BlobType, id ID, data []byte, c Compression) error {
	b := packBlob{Type: t, ID: id, RawLength: uint32(len(data))}
	cbuf, sbuf := getScratch(), getScratch()
	defer putScratch(cbuf)
	defer putScratch(sbuf)
	payload := data
	enc := r.enc
	if c == Strong {
		enc = r.encStrong
	}
	if c := enc.EncodeAll(data, (*cbuf)[:0]); len(c) < len(data) {
		payload, b.Compressed = c, true
		*cbuf = c
	}
	sealed := r.key.Seal((*sbuf)[:0], payload)
	*sbuf = sealed

	r.added.Add(int64(len(sealed)))
	r.mu.Lock()
	if r.packer == nil {
		r.packer = newPacker(r.opts.PackSize)
	}
	r.packer.add(b, sealed)
	var full *packer
	if r.packer.buf.Len() >= r.opts.PackSize {
		full, r.packer = r.packer, nil
	}
	r.mu.Unlock()
	if full == nil {
		return nil
	}
	return r.uploadPack(ctx, full, false)
}

// scratchPool recycles the buffers a blob is compressed and sealed into,
// so that a backup's garbage does not grow with its speed.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

func getScratch() *[]byte  { return scratchPool.Get().(*[]byte) }
func putScratch(b *[]byte) { scratchPool.Put(b) }

// SaveBlob stores data unless a blob with the same content exists, and
// returns its ID.
func (r *Repo) SaveBlob(ctx context.Context, t BlobType, data []byte) (ID, error) {
	id := r.key.Hash(data)
	if !r.Reserve(id) {
		return id, nil
	}
	return id, r.StoreBlob(ctx, t, id, data, Fast)
}

// indexBatch is how many packs go into one index file during a long write.
const indexBatch = 64

func (r *Repo) uploadPack(ctx context.Context, p *packer, flush bool) error {
	defer p.release()
	data, id := p.finish(r.key)
	if err := r.store.Put(ctx, packKey(id), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("upload pack %s: %w", id.Short(), err)
	}
	pi := packIndex{ID: id, Blobs: p.blobs}
	r.index.add(pi)
	r.mu.Lock()
	for _, b := range p.blobs {
		delete(r.pending, b.ID)
	}
	r.unsaved = append(r.unsaved, pi)
	var batch []packIndex
	if flush || len(r.unsaved) >= indexBatch {
		batch, r.unsaved = r.unsaved, nil
	}
	r.mu.Unlock()
	r.log.Debug("pack uploaded", "pack", id, "blobs", len(p.blobs), "bytes", len(data))
	return r.saveIndex(ctx, batch)
}

// Flush uploads the open pack and writes the index of every pack uploaded
// so far. After Flush returns, every stored blob survives a crash.
// Callers must not call StoreBlob concurrently with Flush.
func (r *Repo) Flush(ctx context.Context) error {
	r.mu.Lock()
	p := r.packer
	r.packer = nil
	r.mu.Unlock()
	if p != nil && len(p.blobs) > 0 {
		return r.uploadPack(ctx, p, true)
	}
	r.mu.Lock()
	batch := r.unsaved
	r.unsaved = nil
	r.mu.Unlock()
	return r.saveIndex(ctx, batch)
}

// LoadBlob reads blob id, checks it and returns its plaintext, appended to
// buf[:0]. Damage is reported as a *BlobError wrapping ErrCorrupt.
func (r *Repo) LoadBlob(ctx context.Context, id ID, buf []byte) ([]byte, error) {
	l, ok := r.index.Lookup(id)
	if !ok {
		return nil, &BlobError{ID: id, Err: fmt.Errorf("%w: not in the index", ErrCorrupt)}
	}
	if r.ra != nil {
		sealed, ok, err := r.ra.read(ctx, r.store, l.Pack, int64(l.Offset), int64(l.Length))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, &BlobError{ID: id, Pack: l.Pack, Err: err}
		}
		if ok {
			out, err := r.openBlob(id, l, sealed, buf)
			if err != nil {
				return nil, &BlobError{ID: id, Pack: l.Pack, Err: err}
			}
			return out, nil
		}
	}
	rc, err := r.store.GetRange(ctx, packKey(l.Pack), int64(l.Offset), int64(l.Length))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w: pack is missing", ErrCorrupt)
		}
		return nil, &BlobError{ID: id, Pack: l.Pack, Err: err}
	}
	defer rc.Close()
	sealed := make([]byte, l.Length)
	if _, err := io.ReadFull(rc, sealed); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: pack is truncated", ErrCorrupt)
		}
		return nil, &BlobError{ID: id, Pack: l.Pack, Err: err}
	}
	out, err := r.openBlob(id, l, sealed, buf)
	if err != nil {
		return nil, &BlobError{ID: id, Pack: l.Pack, Err: err}
	}
	return out, nil
}

// openBlob decrypts, decompresses and checks one sealed blob.
func (r *Repo) openBlob(id ID, l Location, sealed, buf []byte) ([]byte, error) {
	plain, err := r.key.OpenInPlace(sealed)
	if err != nil {
		return nil, err
	}
	out := plain
	if l.Compressed {
		out, err = r.dec.DecodeAll(plain, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
		}
	}
	if uint32(len(out)) != l.RawLength {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrCorrupt, len(out), l.RawLength)
	}
	if r.key.Hash(out) != id {
		return nil, fmt.Errorf("%w: content does not match its hash", ErrCorrupt)
	}
	return out, nil
}
