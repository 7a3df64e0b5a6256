package repo

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// PutObject stores data as its own object under key, compressed and
// encrypted, outside the packs. It is for things written one at a time by
// short-lived processes (WAL segments): no pack, no index, no lock.
//
// The object is header || Seal(zstd(data)), where header is caller
// metadata kept in the clear (it must hold nothing secret). Put replaces an
// existing object: callers that must not overwrite check first.
func (r *Repo) PutObject(ctx context.Context, key string, header, data []byte) error {
	sealed := r.key.Seal(slices.Clip(header), r.compressParallel(data))
	r.added.Add(int64(len(sealed)))
	return r.store.Put(ctx, key, bytes.NewReader(sealed), int64(len(sealed)))
}

// GetObject reads an object written by PutObject whose clear header is
// headerLen bytes long, and returns the header and the data.
func (r *Repo) GetObject(ctx context.Context, key string, headerLen int) (header, data []byte, err error) {
	raw, err := getAll(ctx, r.store, key)
	if err != nil {
		return nil, nil, err
	}
	return r.OpenObject(key, raw, headerLen)
}

// OpenObject decodes the bytes of an object written by PutObject (key
// names it in errors). raw is decrypted in place.
func (r *Repo) OpenObject(key string, raw []byte, headerLen int) (header, data []byte, err error) {
	if len(raw) < headerLen {
		return nil, nil, fmt.Errorf("%w: %s: %d bytes, shorter than its header", ErrCorrupt, key, len(raw))
	}
	header = raw[:headerLen]
	plain, err := r.key.OpenInPlace(raw[headerLen:])
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", key, err)
	}
	data, err = r.dec.DecodeAll(plain, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: decompress: %v", ErrCorrupt, key, err)
	}
	return header, data, nil
}

// objectChunk is the piece of an object compressed on its own: a 16 MiB
// WAL segment is four zstd frames compressed at once, one per core, and
// decoded as one stream (zstd concatenates frames). The encoder's window
// is smaller than a chunk, so cutting loses nothing.
const objectChunk = 4 << 20

func (r *Repo) compressParallel(data []byte) []byte {
	if len(data) <= objectChunk {
		return r.enc.EncodeAll(data, nil)
	}
	parts := make([][]byte, (len(data)+objectChunk-1)/objectChunk)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range parts {
		chunk := data[i*objectChunk : min((i+1)*objectChunk, len(data))]
		sem <- struct{}{}
		wg.Go(func() {
			parts[i] = r.enc.EncodeAll(chunk, nil)
			<-sem
		})
	}
	wg.Wait()
	return slices.Concat(parts...)
}
