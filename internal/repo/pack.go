package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
)

// BlobType says what a blob holds. It is recorded in pack headers and the
// index so that verify can tell data from metadata.
type BlobType uint8

const (
	// BlobData holds file content: a block, or a delta of changed pages.
	BlobData BlobType = 0
	// BlobTree holds a piece of a stream, such as a backup manifest.
	BlobTree BlobType = 1
	// BlobDelta holds the changed pages of a block.
	BlobDelta BlobType = 2
)

const flagCompressed = 0x80

// headerEntrySize is the size of one pack header entry:
// type|flags (1), id (32), sealed length (4), raw length (4).
const headerEntrySize = 1 + 32 + 4 + 4

// packBlob describes one blob inside a pack.
type packBlob struct {
	Type       BlobType `json:"t"`
	ID         ID       `json:"id"`
	Offset     uint32   `json:"o"`
	Length     uint32   `json:"l"` // sealed length in the pack
	RawLength  uint32   `json:"r"` // plaintext length
	Compressed bool     `json:"c,omitempty"`
}

// packer accumulates sealed blobs for one pack in memory.
type packer struct {
	buf   bytes.Buffer
	blobs []packBlob
}

// packBufs recycles pack buffers: each is sized once for a whole pack,
// instead of doubling its way there.
var packBufs sync.Pool

func newPacker(size int) *packer {
	p := &packer{}
	if b, ok := packBufs.Get().(*bytes.Buffer); ok {
		p.buf = *b
	} else {
		p.buf.Grow(size + size/8)
	}
	return p
}

// release returns the pack's buffer for reuse; p must not be used after.
func (p *packer) release() {
	b := p.buf
	b.Reset()
	packBufs.Put(&b)
	p.buf = bytes.Buffer{}
}

func (p *packer) add(b packBlob, sealed []byte) {
	b.Offset = uint32(p.buf.Len())
	b.Length = uint32(len(sealed))
	p.buf.Write(sealed)
	p.blobs = append(p.blobs, b)
}

// finish appends the sealed header and its length, and returns the pack's
// bytes and ID (the SHA-256 of those bytes).
//
// Layout: blob… | seal(header entries) | uint32 LE length of the sealed header.
func (p *packer) finish(k *Key) ([]byte, ID) {
	hdr := make([]byte, 0, len(p.blobs)*headerEntrySize)
	for _, b := range p.blobs {
		t := byte(b.Type)
		if b.Compressed {
			t |= flagCompressed
		}
		hdr = append(hdr, t)
		hdr = append(hdr, b.ID[:]...)
		hdr = binary.LittleEndian.AppendUint32(hdr, b.Length)
		hdr = binary.LittleEndian.AppendUint32(hdr, b.RawLength)
	}
	sealed := k.Seal(nil, hdr)
	p.buf.Write(sealed)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(sealed)))
	p.buf.Write(n[:])
	data := p.buf.Bytes()
	return data, ID(sha256.Sum256(data))
}

// parsePackHeader reads the blob list at the end of a whole pack.
func parsePackHeader(k *Key, data []byte) ([]packBlob, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: pack too short", ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if n > len(data)-4 {
		return nil, fmt.Errorf("%w: pack header length %d out of range", ErrCorrupt, n)
	}
	hdr, err := k.Open(nil, data[len(data)-4-n:len(data)-4])
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	if len(hdr)%headerEntrySize != 0 {
		return nil, fmt.Errorf("%w: pack header size %d", ErrCorrupt, len(hdr))
	}
	var blobs []packBlob
	off := uint32(0)
	for e := hdr; len(e) > 0; e = e[headerEntrySize:] {
		b := packBlob{
			Type:       BlobType(e[0] &^ flagCompressed),
			Compressed: e[0]&flagCompressed != 0,
			Offset:     off,
			Length:     binary.LittleEndian.Uint32(e[33:37]),
			RawLength:  binary.LittleEndian.Uint32(e[37:41]),
		}
		copy(b.ID[:], e[1:33])
		off += b.Length
		blobs = append(blobs, b)
	}
	if int(off) > len(data)-4-n {
		return nil, fmt.Errorf("%w: pack header describes %d bytes, pack has %d", ErrCorrupt, off, len(data)-4-n)
	}
	return blobs, nil
}

func packKey(id ID) string {
	s := id.String()
	return "data/" + s[:2] + "/" + s
}
