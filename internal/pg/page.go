// Package pg understands one local PostgreSQL 15 server: the layout of its
// data directory (relation files, pages, what a base backup leaves out) and
// the SQL calls the backup engine makes on it (probe, backup start/stop,
// replication slots).
//
// It knows nothing of the repository format or of etcd and must not import
// internal/repo or go.etcd.io (imports_test.go enforces this). The pure
// parts (pages, paths) do no I/O; the SQL functions take a *pgx.Conn owned
// by the caller.
package pg

import (
	"encoding/binary"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// PageSize is BLCKSZ, the size of a heap or index page. Servers built with
// another block size are reported by Probe (Server.BlockSize) and are not
// supported by the page functions.
const PageSize = 8192

// Page header layout (PageHeaderData in storage/bufpage.h). Multi-byte
// fields are in the server's byte order; every platform we run on is
// little-endian.
const (
	offLSN             = 0  // pd_lsn: xlogid uint32, xrecoff uint32
	offFlags           = 10 // pd_flags uint16 (after pd_checksum at 8)
	offLower           = 12 // pd_lower uint16
	offUpper           = 14 // pd_upper uint16
	offSpecial         = 16 // pd_special uint16
	offPageSizeVersion = 18 // pd_pagesize_version uint16

	// PageHeaderSize is SizeOfPageHeaderData: the bytes before the line
	// pointers.
	PageHeaderSize = 24

	validFlagBits     = 0x0007 // PD_VALID_FLAG_BITS
	pageLayoutVersion = 4      // PG_PAGE_LAYOUT_VERSION
	maxAlign          = 8      // MAXIMUM_ALIGNOF on 64-bit platforms
)

// PageLSN returns pd_lsn, the LSN of the last WAL record that changed the
// page: the first 8 bytes as xlogid<<32 | xrecoff, each uint32
// little-endian. It returns wal.InvalidLSN if page is shorter than 8 bytes.
func PageLSN(page []byte) wal.LSN {
	if len(page) < offLSN+8 {
		return wal.InvalidLSN
	}
	hi := binary.LittleEndian.Uint32(page[offLSN:])
	lo := binary.LittleEndian.Uint32(page[offLSN+4:])
	return wal.LSN(uint64(hi)<<32 | uint64(lo))
}

// PageIsNew reports whether the page has never been initialised: pd_upper
// is 0, as PageIsNew in bufpage.h (an all-zero page, for example, which a
// relation extension leaves behind). It returns false if page is shorter
// than the header.
func PageIsNew(page []byte) bool {
	if len(page) < PageHeaderSize {
		return false
	}
	return binary.LittleEndian.Uint16(page[offUpper:]) == 0
}

// PageHeaderValid is the cheap sanity check of PageIsVerifiedExtended's
// header part, plus the page size and layout version: pd_flags has no bits
// outside PD_VALID_FLAG_BITS, pd_lower <= pd_upper <= pd_special <=
// PageSize, pd_special is MAXALIGNed, and pd_pagesize_version is
// 8192|4. It does not verify the checksum.
//
// It returns false for a slice that is not exactly PageSize long, and for a
// new page (whose header is all zeros): callers check PageIsNew first, as
// PostgreSQL does, and treat a new page as valid only if it is all zeros.
func PageHeaderValid(page []byte) bool {
	if len(page) != PageSize {
		return false
	}
	u16 := func(off int) uint16 { return binary.LittleEndian.Uint16(page[off:]) }
	lower, upper, special := u16(offLower), u16(offUpper), u16(offSpecial)
	return upper != 0 && // PageIsNew: PostgreSQL skips the header checks
		u16(offFlags)&^validFlagBits == 0 &&
		lower <= upper &&
		upper <= special &&
		special <= PageSize &&
		special%maxAlign == 0 &&
		u16(offPageSizeVersion) == PageSize|pageLayoutVersion
}

// PageHasSpecial reports a valid page with a special space: index pages
// (B-tree, hash, GiST, GIN, SP-GiST, BRIN) have one, heap pages do not.
func PageHasSpecial(page []byte) bool {
	return PageHeaderValid(page) && binary.LittleEndian.Uint16(page[offSpecial:]) < PageSize
}
