package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline TLI ended
// at SwitchLSN, where its child timeline branched off.
type HistoryEntry struct {
	TLI       TimelineID
	SwitchLSN LSN
	Reason    string
}

// HistoryFileName names the history file of timeline tli, "00000002.history".
func HistoryFileName(tli TimelineID) string { return fmt.Sprintf("%08X.history", uint32(tli)) }

// ParseHistory parses a timeline history file as PostgreSQL writes it:
// "parentTLI<tab>switchpoint<tab>reason" per line, ancestors first.
// Blank lines and lines starting with '#' are skipped, as
// readTimeLineHistory does.
func ParseHistory(data string) ([]HistoryEntry, error) {
	var out []HistoryEntry
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) < 2 {
			return nil, fmt.Errorf("history line %d: want timeline and switch point, got %q", n+1, line)
		}
		tli, err := strconv.ParseUint(strings.TrimSpace(fields[0]), 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("history line %d: bad timeline %q", n+1, fields[0])
		}
		lsn, err := ParseLSN(strings.TrimSpace(fields[1]))
		if err != nil {
			return nil, fmt.Errorf("history line %d: %w", n+1, err)
		}
		e := HistoryEntry{TLI: TimelineID(tli), SwitchLSN: lsn}
		if len(fields) == 3 {
			e.Reason = strings.TrimSpace(fields[2])
		}
		if len(out) > 0 && (e.TLI <= out[len(out)-1].TLI || e.SwitchLSN < out[len(out)-1].SwitchLSN) {
			return nil, fmt.Errorf("history line %d: timelines must increase", n+1)
		}
		out = append(out, e)
	}
	return out, nil
}

// PageHeader is the long page header at the start of every WAL segment
// (XLogLongPageHeaderData).
type PageHeader struct {
	Magic       uint16
	Info        uint16
	TLI         TimelineID
	PageAddr    LSN
	SystemID    uint64
	SegmentSize uint32
	BlockSize   uint32
}

// LongPageHeaderSize is sizeof(XLogLongPageHeaderData).
const LongPageHeaderSize = 40

const xlpLongHeader = 0x0002

// ParseSegmentHeader reads the long page header at the start of a segment
// (little-endian, as on every platform PostgreSQL packages ship for here).
func ParseSegmentHeader(b []byte) (PageHeader, error) {
	if len(b) < LongPageHeaderSize {
		return PageHeader{}, fmt.Errorf("wal segment header: %d bytes, want %d", len(b), LongPageHeaderSize)
	}
	le16 := func(o int) uint16 { return uint16(b[o]) | uint16(b[o+1])<<8 }
	le32 := func(o int) uint32 { return uint32(le16(o)) | uint32(le16(o+2))<<16 }
	le64 := func(o int) uint64 { return uint64(le32(o)) | uint64(le32(o+4))<<32 }
	h := PageHeader{
		Magic:       le16(0),
		Info:        le16(2),
		TLI:         TimelineID(le32(4)),
		PageAddr:    LSN(le64(8)),
		SystemID:    le64(24),
		SegmentSize: le32(32),
		BlockSize:   le32(36),
	}
	if h.Info&xlpLongHeader == 0 {
		return h, fmt.Errorf("wal segment header: no long page header (info %#x): not the start of a segment", h.Info)
	}
	return h, nil
}
