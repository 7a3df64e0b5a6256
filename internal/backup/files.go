package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// storeJob is a block (or delta) to compress, encrypt and pack.
type storeJob struct {
	typ  repo.BlobType
	c    repo.Compression
	id   repo.ID
	data *[]byte // from bufPool; the worker returns it
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, BlockSize+4); return &b }}

// reader decides what changed in each file and hands new blobs to the
// store workers. Its methods other than entry are safe for concurrent use:
// several files are read at once, so that reading, hashing and
// compressing overlap on every core.
type reader struct {
	r     *repo.Repo
	key   *repo.Key
	jobs  chan<- storeJob
	since wal.LSN
	// notBefore: a file modified after this instant is read even when its
	// size and mtime match the base (mtime granularity and clock skew).
	notBefore time.Time

	done   atomic.Int64 // bytes processed, for progress
	read   atomic.Int64 // bytes actually read from disk
	owners ownerCache   // used by entry only
}

func newReader(r *repo.Repo, jobs chan<- storeJob, base *Info) *reader {
	rd := &reader{r: r, key: r.Key(), jobs: jobs}
	if base != nil {
		rd.since = base.StartLSN
		rd.notBefore = base.StartTime.Add(-time.Second)
	}
	return rd
}

// entry builds the manifest entry of one walked item, without the content
// of a regular file (see reuse and content). Not safe for concurrent use.
func (rd *reader) entry(it walkItem) *Entry {
	e := &Entry{Path: it.rel, Mode: it.info.Mode().Perm() | it.info.Mode()&(fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky)}
	e.User, e.Group = rd.owners.names(it.info)
	switch {
	case it.target != "":
		e.Kind, e.Target = KindLink, it.target
	case it.info.IsDir():
		e.Kind = KindDir
	default:
		e.Kind = KindFile
		e.MTime = it.info.ModTime().UnixNano()
	}
	return e
}

// reuse gives e the base's content when the file is unchanged since the
// base: same size and mtime, and modified before notBefore. The file is
// then referenced, not read.
func (rd *reader) reuse(it walkItem, base *Entry, e *Entry) bool {
	if base == nil || base.Kind != KindFile || base.Size != it.info.Size() || base.MTime != e.MTime ||
		!it.info.ModTime().Before(rd.notBefore) {
		return false
	}
	e.Size, e.Sum, e.Blocks = base.Size, base.Sum, base.Blocks
	rd.done.Add(e.Size)
	return true
}

// content reads a regular file and fills in e's blocks, size and sum.
func (rd *reader) content(ctx context.Context, it walkItem, base *Entry, e *Entry) error {
	f, err := os.Open(it.abs)
	if errors.Is(err, fs.ErrNotExist) {
		return errVanished
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", it.rel, err)
	}
	defer f.Close()
	rf, isRel := pg.ParseRelFile(it.rel)
	return rd.fill(ctx, f, e, base, isRel && rf.Fork == pg.ForkMain && base != nil)
}

// fill stores everything read from in as the blocks of e. With
// pageDeltas, changed blocks of a relation's main fork are stored as the
// pages that changed since the base.
func (rd *reader) fill(ctx context.Context, in io.Reader, e *Entry, base *Entry, pageDeltas bool) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	block := (*buf)[:BlockSize]
	var hashes []byte
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(in, block)
		if n > 0 {
			b, serr := rd.storeBlock(ctx, block[:n], base, i, pageDeltas)
			if serr != nil {
				return serr
			}
			e.Blocks = append(e.Blocks, b)
			e.Size += int64(n)
			rd.done.Add(int64(n))
			rd.read.Add(int64(n))
			hashes = append(hashes, b.Hash[:]...)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
	}
	sum := rd.key.Hash(hashes)
	e.Sum = &sum
	return nil
}

// storeBlock decides how block i of a file is kept: as the base's block
// (unchanged), as the base's parts plus a delta of the changed pages, or
// whole.
func (rd *reader) storeBlock(ctx context.Context, block []byte, base *Entry, i int, pageDeltas bool) (Block, error) {
	h := rd.key.Hash(block)
	if base != nil && i < len(base.Blocks) && base.blockLen(i) == len(block) {
		bb := base.Blocks[i]
		if bb.Hash == h {
			return bb, nil
		}
		if pageDeltas && len(bb.Parts) < maxParts && len(block)%pg.PageSize == 0 {
			mask := changedPages(block, rd.since)
			// A delta saves what did not change, but a restore reads the
			// base block and the delta: past three quarters changed, the
			// saving no longer pays for that. maxParts bounds chains.
			if n := bits.OnesCount32(mask); n > 0 && n <= len(block)/pg.PageSize*3/4 {
				buf := bufPool.Get().(*[]byte)
				*buf = encodeDelta(block, mask, *buf)
				id := rd.key.Hash(*buf)
				c := repo.Fast
				if pg.PageHasSpecial(block[:pg.PageSize]) {
					// Index pages shrink far more at the strongest level;
					// heap pages barely do, at ten times the cost.
					c = repo.Strong
				}
				if err := rd.submit(ctx, storeJob{typ: repo.BlobDelta, c: c, id: id, data: buf}); err != nil {
					return Block{}, err
				}
				return Block{Hash: h, Parts: append(append([]repo.ID(nil), bb.Parts...), id)}, nil
			}
		}
	}
	buf := bufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], block...)
	if err := rd.submit(ctx, storeJob{typ: repo.BlobData, id: h, data: buf}); err != nil {
		return Block{}, err
	}
	return Block{Hash: h, Parts: []repo.ID{h}}, nil
}

// submit queues a blob for storage unless the repository has it already.
func (rd *reader) submit(ctx context.Context, j storeJob) error {
	if !rd.r.Reserve(j.id) {
		bufPool.Put(j.data)
		return nil
	}
	select {
	case rd.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bytesEntry stores content the backup makes itself (backup_label,
// tablespace_map), owned like the data directory.
func (rd *reader) bytesEntry(ctx context.Context, name string, content []byte, pgdata string) (*Entry, error) {
	e := &Entry{Path: name, Kind: KindFile, Mode: 0o600, Extra: true, MTime: time.Now().UnixNano()}
	if fi, err := os.Stat(pgdata); err == nil {
		e.User, e.Group = rd.owners.names(fi)
	}
	return e, rd.fill(ctx, bytes.NewReader(content), e, nil, false)
}

// storeWorker compresses, encrypts and packs blobs until jobs closes.
func storeWorker(ctx context.Context, r *repo.Repo, jobs <-chan storeJob) error {
	for j := range jobs {
		err := r.StoreBlob(ctx, j.typ, j.id, *j.data, j.c)
		bufPool.Put(j.data)
		if err != nil {
			for range jobs { // drain so the reader is not blocked
			}
			return err
		}
	}
	return nil
}

// errVanished marks a file deleted while the backup ran.
var errVanished = errors.New("file vanished")

// ownerCache maps uids and gids to names, so that a restore as root can
// give files back to the same user.
type ownerCache struct {
	users, groups map[uint32]string
}

func (c *ownerCache) names(fi fs.FileInfo) (string, string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", ""
	}
	if c.users == nil {
		c.users, c.groups = make(map[uint32]string), make(map[uint32]string)
	}
	u, ok := c.users[st.Uid]
	if !ok {
		if x, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
			u = x.Username
		}
		c.users[st.Uid] = u
	}
	g, ok := c.groups[st.Gid]
	if !ok {
		if x, err := user.LookupGroupId(strconv.Itoa(int(st.Gid))); err == nil {
			g = x.Name
		}
		c.groups[st.Gid] = g
	}
	return u, g
}
