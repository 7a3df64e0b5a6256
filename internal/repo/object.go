package repo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// PutObject stores data as its own object under key, compressed and
// encrypted, outside the packs. It is for things written one at a time by
// short-lived processes (WAL segments): no pack, no index, no lock.
//
// The object is header || Seal(zstd(data)), where header is caller
// metadata kept in the clear (it must hold nothing secret). Put replaces an
// existing object: callers that must not overwrite check first.
func (r *Repo) PutObject(ctx context.Context, key string, header, data []byte) error {
	sealed := r.key.Seal(slices.Clip(header), r.enc.EncodeAll(data, nil))
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
