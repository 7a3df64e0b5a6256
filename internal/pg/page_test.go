package pg_test

import (
	"encoding/binary"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pg"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// header is a page header to build by hand.
type header struct {
	lsn                   wal.LSN
	flags                 uint16
	lower, upper, special uint16
	pageSizeVersion       uint16
}

// heapHeader is a plausible heap page with a few tuples.
var heapHeader = header{lsn: 0x16_B374D848, lower: 24 + 4*3, upper: 8192 - 3*40, special: 8192, pageSizeVersion: 8192 | 4}

func (h header) page() []byte {
	p := make([]byte, pg.PageSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(h.lsn>>32))
	binary.LittleEndian.PutUint32(p[4:], uint32(h.lsn))
	binary.LittleEndian.PutUint16(p[8:], 0xBEEF) // pd_checksum: not checked
	binary.LittleEndian.PutUint16(p[10:], h.flags)
	binary.LittleEndian.PutUint16(p[12:], h.lower)
	binary.LittleEndian.PutUint16(p[14:], h.upper)
	binary.LittleEndian.PutUint16(p[16:], h.special)
	binary.LittleEndian.PutUint16(p[18:], h.pageSizeVersion)
	return p
}

func TestPageLSN(t *testing.T) {
	tests := []struct {
		name string
		page []byte
		want wal.LSN
	}{
		{name: "heap page", page: heapHeader.page(), want: 0x16_B374D848},
		{name: "bytes as on disk", page: []byte{0x16, 0, 0, 0, 0x48, 0xD8, 0x74, 0xB3}, want: 0x16_B374D848},
		{name: "new page", page: make([]byte, pg.PageSize), want: 0},
		{name: "short", page: []byte{1, 2, 3}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pg.PageLSN(tt.page); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPageHeader(t *testing.T) {
	with := func(f func(h *header)) []byte {
		h := heapHeader
		f(&h)
		return h.page()
	}
	tests := []struct {
		name      string
		page      []byte
		wantNew   bool
		wantValid bool
	}{
		{name: "heap page", page: heapHeader.page(), wantValid: true},
		{name: "btree page with special space", page: with(func(h *header) { h.special = 8192 - 16; h.upper = 8192 - 16 }), wantValid: true},
		{name: "empty but initialised", page: with(func(h *header) { h.lower, h.upper = 24, 8192 }), wantValid: true},
		{name: "all valid flags", page: with(func(h *header) { h.flags = 0x0007 }), wantValid: true},
		{name: "all zeros", page: make([]byte, pg.PageSize), wantNew: true},
		{name: "upper zero, rest set", page: with(func(h *header) { h.upper = 0; h.lower = 0 }), wantNew: true},
		{name: "unknown flag", page: with(func(h *header) { h.flags = 0x0008 })},
		{name: "lower above upper", page: with(func(h *header) { h.lower = h.upper + 2 })},
		{name: "upper above special", page: with(func(h *header) { h.special = 8000 })},
		{name: "special beyond page", page: with(func(h *header) { h.special = 8200; h.upper = 8200 })},
		{name: "special not maxaligned", page: with(func(h *header) { h.special = 8188; h.upper = 8000 })},
		{name: "layout version 5", page: with(func(h *header) { h.pageSizeVersion = 8192 | 5 })},
		{name: "4 KiB page size", page: with(func(h *header) { h.pageSizeVersion = 4096 | 4 })},
		{name: "short slice", page: heapHeader.page()[:pg.PageSize-1]},
		{name: "long slice", page: append(heapHeader.page(), 0)},
		{name: "header only", page: heapHeader.page()[:pg.PageHeaderSize]},
		{name: "shorter than header", page: make([]byte, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pg.PageIsNew(tt.page); got != tt.wantNew {
				t.Errorf("PageIsNew: got %v, want %v", got, tt.wantNew)
			}
			if got := pg.PageHeaderValid(tt.page); got != tt.wantValid {
				t.Errorf("PageHeaderValid: got %v, want %v", got, tt.wantValid)
			}
		})
	}
}
