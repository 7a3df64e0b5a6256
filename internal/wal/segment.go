package wal

import (
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
)

// Segment sizes PostgreSQL accepts (initdb --wal-segsize): a power of two
// from MinSegmentSize to MaxSegmentSize. Functions taking a segSize panic
// on any other value, because a wrong size silently maps LSNs to the wrong
// files; check sizes read from outside (pg_control, a manifest) with
// CheckSegmentSize first.
const (
	DefaultSegmentSize = 16 << 20 // initdb's default, 16 MiB
	MinSegmentSize     = 1 << 20
	MaxSegmentSize     = 1 << 30
)

// CheckSegmentSize returns an error unless size is a WAL segment size
// PostgreSQL accepts.
func CheckSegmentSize(size uint64) error {
	if size < MinSegmentSize || size > MaxSegmentSize || bits.OnesCount64(size) != 1 {
		return fmt.Errorf("wal segment size %d: want a power of two from 1 MiB to 1 GiB", size)
	}
	return nil
}

// segmentsPerXLogID is XLogSegmentsPerXLogId: how many segments share one
// "log" value (the middle 8 hex digits of a file name). It panics on an
// invalid segSize (see CheckSegmentSize).
func segmentsPerXLogID(segSize uint64) uint64 {
	if err := CheckSegmentSize(segSize); err != nil {
		panic("wal: " + err.Error())
	}
	return 0x100000000 / segSize
}

// maxSegInName is the largest Seg any supported segment size produces
// (4096 segments per log for 1 MiB segments).
const maxSegInName = 0x100000000/MinSegmentSize - 1

// SegmentName names one WAL segment file, "000000010000000A000000FF":
// timeline, log and segment, each as 8 upper-case hex digits. Log and Seg
// together are the segment number (see SegNo); how they split depends on
// the segment size, so methods doing arithmetic take segSize.
type SegmentName struct {
	TLI TimelineID
	Log uint32
	Seg uint32
}

// ParseSegmentName parses a WAL segment file name: exactly 24 upper-case hex
// digits, as PostgreSQL's IsXLogFileName requires. It rejects timeline 0 and
// a Seg no supported segment size produces (above 0xFFF). Whether Seg fits
// the cluster's segment size (0x00–0xFF for 16 MiB) is checked by Valid.
// Suffixed names (".partial", ".backup") are not segment names.
func ParseSegmentName(s string) (SegmentName, error) {
	if len(s) != 24 || !isHex(s, true) {
		return SegmentName{}, fmt.Errorf("parse segment name %q: want 24 upper-case hex digits", s)
	}
	tli, _ := strconv.ParseUint(s[0:8], 16, 32) // cannot fail: 8 hex digits
	log, _ := strconv.ParseUint(s[8:16], 16, 32)
	seg, _ := strconv.ParseUint(s[16:24], 16, 32)
	if tli == 0 {
		return SegmentName{}, fmt.Errorf("parse segment name %q: timeline 0 is invalid", s)
	}
	if seg > maxSegInName {
		return SegmentName{}, fmt.Errorf("parse segment name %q: segment %X is out of range for any segment size", s, seg)
	}
	return SegmentName{TLI: TimelineID(tli), Log: uint32(log), Seg: uint32(seg)}, nil
}

// String formats s as a WAL file name, "000000010000000A000000FF".
func (s SegmentName) String() string {
	return fmt.Sprintf("%08X%08X%08X", uint32(s.TLI), s.Log, s.Seg)
}

// LogValue implements slog.LogValuer.
func (s SegmentName) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (the file name).
func (s SegmentName) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseSegmentName.
func (s *SegmentName) UnmarshalText(b []byte) error {
	v, err := ParseSegmentName(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Valid reports whether s can exist in a cluster with this segment size:
// a timeline of at least 1 and Seg below the segments per log (256 for
// 16 MiB). It panics on an invalid segSize.
func (s SegmentName) Valid(segSize uint64) bool {
	return s.TLI != 0 && uint64(s.Seg) < segmentsPerXLogID(segSize)
}

// SegmentOf returns the segment on timeline tli that holds the byte at lsn
// (XLByteToSeg + XLogFileName). It panics on an invalid segSize.
func SegmentOf(tli TimelineID, lsn LSN, segSize uint64) SegmentName {
	return segmentFromNo(tli, uint64(lsn)/segSize, segSize)
}

func segmentFromNo(tli TimelineID, segNo, segSize uint64) SegmentName {
	per := segmentsPerXLogID(segSize)
	return SegmentName{TLI: tli, Log: uint32(segNo / per), Seg: uint32(segNo % per)}
}

// SegNo returns the segment number (XLogSegNo): Log × segments-per-log + Seg.
// It panics on an invalid segSize. If s is not Valid for segSize, the
// excess Seg carries into the following logs, as time.Date normalises.
func (s SegmentName) SegNo(segSize uint64) uint64 {
	return uint64(s.Log)*segmentsPerXLogID(segSize) + uint64(s.Seg)
}

// StartLSN returns the LSN of the first byte of s. It panics on an invalid
// segSize.
func (s SegmentName) StartLSN(segSize uint64) LSN {
	return LSN(s.SegNo(segSize) * segSize)
}

// Next returns the segment after s on the same timeline: Seg+1, or the
// next Log after the last Seg. After the very last segment of the LSN space
// it wraps to segment 0. It panics on an invalid segSize.
func (s SegmentName) Next(segSize uint64) SegmentName {
	return segmentFromNo(s.TLI, s.SegNo(segSize)+1, segSize)
}

// SegmentsBetween lists, in order, the segments on timeline tli from the one
// holding start through the one holding stop, both included. It returns nil
// when stop < start. It panics on an invalid segSize.
//
// pg_backup_stop itself waits for the segment holding the byte before the
// stop LSN (XLByteToPrevSeg). When stop is exactly on a segment boundary
// this list has one segment more; that segment is also needed to replay the
// backup's end, so asking for it is safe.
//
// The slice holds one entry per segment: callers bound the range first.
func SegmentsBetween(tli TimelineID, start, stop LSN, segSize uint64) []SegmentName {
	if stop < start {
		return nil
	}
	first, last := uint64(start)/segSize, uint64(stop)/segSize
	out := make([]SegmentName, 0, last-first+1)
	for n := first; ; n++ {
		out = append(out, segmentFromNo(tli, n, segSize))
		if n == last { // tested here, not in the loop header: last may be the largest uint64 segment
			return out
		}
	}
}

// IsHistoryFile reports whether name is a timeline history file name,
// "00000002.history": 8 upper-case hex digits and ".history", as
// PostgreSQL's IsTLHistoryFileName requires.
func IsHistoryFile(name string) bool {
	const suffix = ".history"
	return len(name) == 8+len(suffix) && isHex(name[:8], true) && name[8:] == suffix
}
