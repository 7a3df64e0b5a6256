package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// BlockSize is the granularity of the manifest and the index: 32 pages.
// A terabyte is four million blocks, not 134 million pages; inside a block
// an incremental still stores only the pages that changed.
const BlockSize = 256 << 10

// maxParts bounds the delta chain of a block: past it the whole block is
// stored again, so a restore never reads more than maxParts blobs per block.
const maxParts = 8

// Block is one BlockSize slice of a file.
type Block struct {
	// Hash is the keyed hash of the block's content as it was read.
	Hash repo.ID
	// Parts rebuild the block: Parts[0] is a whole block, each later part a
	// page delta (see delta.go) applied in order.
	Parts []repo.ID
}

// whole reports a block stored as one blob of its own content.
func (b Block) whole() bool { return len(b.Parts) == 1 && b.Parts[0] == b.Hash }

type blockJSON struct {
	H repo.ID   `json:"h"`
	P []repo.ID `json:"p"`
}

// MarshalJSON writes a whole block as its hash alone, the common case.
func (b Block) MarshalJSON() ([]byte, error) {
	if b.whole() {
		return json.Marshal(b.Hash)
	}
	return json.Marshal(blockJSON{H: b.Hash, P: b.Parts})
}

// UnmarshalJSON reads either form.
func (b *Block) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &b.Hash); err != nil {
			return err
		}
		b.Parts = []repo.ID{b.Hash}
		return nil
	}
	var j blockJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if len(j.P) == 0 {
		return errors.New("block with no parts")
	}
	b.Hash, b.Parts = j.H, j.P
	return nil
}

// Entry kinds.
const (
	KindFile = "file"
	KindDir  = "dir"
	KindLink = "link"
)

// Entry is one line of a manifest: a file, directory or symlink of the data
// directory, or (Extra) a file the backup adds: WAL, backup_label.
type Entry struct {
	Path   string      `json:"path"` // relative to PGDATA, slash-separated
	Kind   string      `json:"kind"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size,omitempty"`
	MTime  int64       `json:"mtime,omitempty"` // Unix nanoseconds
	Sum    *repo.ID    `json:"sum,omitempty"`   // keyed hash over the block hashes
	User   string      `json:"user,omitempty"`
	Group  string      `json:"group,omitempty"`
	Target string      `json:"target,omitempty"` // symlink target
	Extra  bool        `json:"extra,omitempty"`
	Blocks []Block     `json:"blocks,omitempty"`
}

// blockLen returns the length of block i of the entry.
func (e *Entry) blockLen(i int) int {
	if n := e.Size - int64(i)*BlockSize; n < BlockSize {
		return int(n)
	}
	return BlockSize
}

// comparePaths orders paths component by component, the order in which
// the walk visits them, so that a manifest can be merge-joined with a walk.
func comparePaths(a, b string) int {
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ac, bc := a, b
		if ai >= 0 {
			ac = a[:ai]
		}
		if bi >= 0 {
			bc = b[:bi]
		}
		if c := strings.Compare(ac, bc); c != 0 {
			return c
		}
		switch {
		case ai < 0 && bi < 0:
			return 0
		case ai < 0:
			return -1
		case bi < 0:
			return 1
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}

// manifestWriter streams entries into repository blobs.
type manifestWriter struct {
	sw    *repo.StreamWriter
	bw    *bufio.Writer
	enc   *json.Encoder
	files int
}

func newManifestWriter(ctx context.Context, r *repo.Repo) *manifestWriter {
	sw := r.NewStreamWriter(ctx)
	bw := bufio.NewWriterSize(sw, 64<<10)
	return &manifestWriter{sw: sw, bw: bw, enc: json.NewEncoder(bw)}
}

func (w *manifestWriter) add(e *Entry) error {
	if e.Kind == KindFile {
		w.files++
	}
	return w.enc.Encode(e)
}

func (w *manifestWriter) finish() ([]repo.ID, error) {
	if err := w.bw.Flush(); err != nil {
		return nil, err
	}
	return w.sw.Finish()
}

// ManifestReader reads a manifest entry by entry, with bounded memory.
type ManifestReader struct {
	dec *json.Decoder
}

// OpenManifest opens the manifest of a backup.
func OpenManifest(ctx context.Context, r *repo.Repo, info *Info) *ManifestReader {
	return &ManifestReader{dec: json.NewDecoder(bufio.NewReaderSize(r.OpenStream(ctx, info.Manifest), 64<<10))}
}

// Next returns the next entry, or io.EOF after the last.
func (m *ManifestReader) Next() (*Entry, error) {
	var e Entry
	if err := m.dec.Decode(&e); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if repo.IsCorrupt(err) {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		return nil, fmt.Errorf("read manifest: %w: %v", repo.ErrCorrupt, err)
	}
	return &e, nil
}

// baseCursor walks the base backup's manifest alongside the data
// directory walk (both in comparePaths order) to find each file's entry.
type baseCursor struct {
	m   *ManifestReader
	cur *Entry
	err error
}

func newBaseCursor(m *ManifestReader) *baseCursor {
	c := &baseCursor{m: m}
	c.advance()
	return c
}

func (c *baseCursor) advance() {
	if c.m == nil {
		c.cur = nil
		return
	}
	e, err := c.m.Next()
	if err != nil || e.Extra { // Extra entries follow the data section
		if err != io.EOF {
			c.err = err
		}
		c.cur, c.m = nil, nil
		return
	}
	c.cur = e
}

// find returns the base entry for path, or nil if the base has none.
// Calls must come in increasing path order.
func (c *baseCursor) find(path string) (*Entry, error) {
	for c.cur != nil && comparePaths(c.cur.Path, path) < 0 {
		c.advance()
	}
	if c.err != nil {
		return nil, fmt.Errorf("base manifest: %w", c.err)
	}
	if c.cur != nil && c.cur.Path == path {
		return c.cur, nil
	}
	return nil, nil
}
