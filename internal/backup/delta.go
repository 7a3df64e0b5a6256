package backup

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// pagesPerBlock is how many pages a block holds; a delta's bitmap has one
// bit per page.
const pagesPerBlock = BlockSize / pg.PageSize

// changedPages returns a bitmap of the pages of block that changed since
// a backup that started at since: page LSN at or after since, or a page
// that is new or unrecognisable (we cannot trust its LSN, so it is taken).
//
// Why this is safe: every page modified after a backup's start checkpoint
// carries an LSN past that checkpoint (full_page_writes is forced during a
// backup, and with data checksums hint-bit changes are WAL-logged), and a
// page torn by a concurrent write is restored by WAL replay from this
// backup's own start.
func changedPages(block []byte, since wal.LSN) uint32 {
	var m uint32
	for i := 0; i*pg.PageSize < len(block); i++ {
		p := block[i*pg.PageSize : (i+1)*pg.PageSize]
		if pg.PageIsNew(p) || !pg.PageHeaderValid(p) || pg.PageLSN(p) >= since {
			m |= 1 << i
		}
	}
	return m
}

// encodeDelta builds a delta blob: a little-endian uint32 bitmap followed
// by the changed pages in order.
func encodeDelta(block []byte, mask uint32, dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst[:0], mask)
	for i := range pagesPerBlock {
		if mask&(1<<i) != 0 {
			dst = append(dst, block[i*pg.PageSize:(i+1)*pg.PageSize]...)
		}
	}
	return dst
}

// applyDelta writes the pages of delta into block.
func applyDelta(block, delta []byte) error {
	if len(delta) < 4 {
		return fmt.Errorf("%w: delta of %d bytes", repo.ErrCorrupt, len(delta))
	}
	mask := binary.LittleEndian.Uint32(delta)
	pages := delta[4:]
	if len(pages) != bits.OnesCount32(mask)*pg.PageSize {
		return fmt.Errorf("%w: delta holds %d bytes for %d pages", repo.ErrCorrupt, len(pages), bits.OnesCount32(mask))
	}
	for i := range pagesPerBlock {
		if mask&(1<<i) == 0 {
			continue
		}
		off := i * pg.PageSize
		if off+pg.PageSize > len(block) {
			return fmt.Errorf("%w: delta page %d beyond a block of %d bytes", repo.ErrCorrupt, i, len(block))
		}
		copy(block[off:], pages[:pg.PageSize])
		pages = pages[pg.PageSize:]
	}
	return nil
}
