package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// file restores one regular file, block by block.
func (rs *restorer) file(ctx context.Context, e *Entry) error {
	p := rs.path(e.Path)
	if rs.delta && rs.matches(p, e) {
		rs.done.Add(e.Size)
		return rs.attrs(p, e)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// A large file (a 1 GiB relation segment) is written by several
	// goroutines, each taking every n-th block, so that one big table
	// does not leave the other cores idle.
	n := 1
	if len(e.Blocks) >= parallelBlocks {
		n = rs.opts.Jobs
	}
	g, gctx := errgroup.WithContext(ctx)
	for k := range n {
		g.Go(func() error { return rs.blocks(gctx, f, e, k, n) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return rs.attrs(p, e)
}

// parallelBlocks is the size, in blocks, from which a file is restored
// by several goroutines.
const parallelBlocks = 16

// blocks writes blocks k, k+n, k+2n… of e into f.
func (rs *restorer) blocks(ctx context.Context, f *os.File, e *Entry, k, n int) error {
	var buf []byte
	for i := k; i < len(e.Blocks); i += n {
		data, err := loadBlock(ctx, rs.r, e.Blocks[i], buf)
		if err != nil {
			return err
		}
		if len(data) != e.blockLen(i) {
			return fmt.Errorf("%w: block %d has %d bytes, want %d", repo.ErrCorrupt, i, len(data), e.blockLen(i))
		}
		if _, err := f.WriteAt(data, int64(i)*BlockSize); err != nil {
			return err
		}
		rs.done.Add(int64(len(data)))
		buf = data
	}
	return nil
}

// loadBlock rebuilds a block from its parts. Each part is checked against
// its hash as it is loaded; a whole block is therefore checked end to end.
func loadBlock(ctx context.Context, r *repo.Repo, b Block, buf []byte) ([]byte, error) {
	data, err := r.LoadBlob(ctx, b.Parts[0], buf)
	if err != nil {
		return nil, err
	}
	for _, id := range b.Parts[1:] {
		d, err := r.LoadBlob(ctx, id, nil)
		if err != nil {
			return nil, err
		}
		if err := applyDelta(data, d); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// matches reports whether the file at p already holds e's content.
func (rs *restorer) matches(p string, e *Entry) bool {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, BlockSize)
	for i, b := range e.Blocks {
		n, err := io.ReadFull(f, buf[:e.blockLen(i)])
		if err != nil || rs.key.Hash(buf[:n]) != b.Hash {
			return false
		}
	}
	return true
}

func (rs *restorer) attrs(p string, e *Entry) error {
	if err := os.Chmod(p, e.Mode&fs.ModePerm); err != nil {
		return err
	}
	if err := rs.owners.chown(p, e, rs.asRoot); err != nil {
		return err
	}
	mt := time.Unix(0, e.MTime)
	return os.Chtimes(p, mt, mt)
}

// ownerIDs resolves the user and group names of the manifest. Restoring
// as root gives files back to their owner (postgres); as anyone else,
// files belong to whoever restores.
type ownerIDs struct {
	mu    sync.Mutex
	users map[string]int
	grps  map[string]int
}

func (o *ownerIDs) ids(e *Entry) (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users == nil {
		o.users, o.grps = map[string]int{}, map[string]int{}
	}
	uid, ok := o.users[e.User]
	if !ok {
		uid = -1
		if u, err := user.Lookup(e.User); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
		}
		o.users[e.User] = uid
	}
	gid, ok := o.grps[e.Group]
	if !ok {
		gid = -1
		if g, err := user.LookupGroup(e.Group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
		o.grps[e.Group] = gid
	}
	return uid, gid
}

func (o *ownerIDs) chown(p string, e *Entry, asRoot bool) error {
	if !asRoot || e.User == "" {
		return nil
	}
	uid, gid := o.ids(e)
	if err := os.Chown(p, uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (o *ownerIDs) lchown(p string, e *Entry, asRoot bool) error {
	if !asRoot || e.User == "" {
		return nil
	}
	uid, gid := o.ids(e)
	return os.Lchown(p, uid, gid)
}
