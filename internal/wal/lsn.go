// Package wal owns PostgreSQL's write-ahead-log vocabulary: log sequence
// numbers, timelines, segment file names and the backup_label file.
//
// Everything here is pure: parsing, formatting and arithmetic. The package
// performs no I/O and must not import anything that does (no database
// drivers, no file systems, no repository code).
package wal

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL log sequence number: a byte position in the WAL
// stream. The zero value is InvalidLSN.
type LSN uint64

// InvalidLSN is PostgreSQL's InvalidXLogRecPtr.
const InvalidLSN LSN = 0

// maxLSNComponent is the most hex digits PostgreSQL accepts on either side
// of the slash (MAXPG_LSNCOMPONENT in pg_lsn.c).
const maxLSNComponent = 8

// ParseLSN parses the text form of an LSN, "16/B374D848": two groups of
// 1 to 8 hex digits (either case) separated by a slash, as pg_lsn_in
// accepts. It returns an error for anything else.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse lsn %q: missing \"/\"", s)
	}
	h, err := parseLSNComponent(hi)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	l, err := parseLSNComponent(lo)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func parseLSNComponent(s string) (uint64, error) {
	if len(s) < 1 || len(s) > maxLSNComponent || !isHex(s, false) {
		return 0, fmt.Errorf("want 1 to %d hex digits, got %q", maxLSNComponent, s)
	}
	// Cannot fail: at most 8 hex digits were checked above.
	return strconv.ParseUint(s, 16, 32)
}

// String formats l as PostgreSQL does ("%X/%X"): "16/B374D848", "0/0".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// LogValue implements slog.LogValuer.
func (l LSN) LogValue() slog.Value { return slog.StringValue(l.String()) }

// MarshalText implements encoding.TextMarshaler, so JSON shows "0/2000028".
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseLSN.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// TimelineID identifies a PostgreSQL timeline. Valid timelines start at 1.
type TimelineID uint32

// ParseTimelineID parses a decimal timeline ID. Zero is rejected: PostgreSQL
// never uses timeline 0.
func ParseTimelineID(s string) (TimelineID, error) {
	if !isDecimal(s) {
		return 0, fmt.Errorf("parse timeline %q: not a decimal number", s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("parse timeline %q: %w", s, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("parse timeline %q: timeline 0 is invalid", s)
	}
	return TimelineID(v), nil
}

// String formats t in decimal, as PostgreSQL prints timelines.
func (t TimelineID) String() string { return strconv.FormatUint(uint64(t), 10) }

// LogValue implements slog.LogValuer.
func (t TimelineID) LogValue() slog.Value { return slog.Uint64Value(uint64(t)) }

// isHex reports whether s is non-empty and all hex digits; upperOnly
// rejects a–f, as PostgreSQL's file-name checks do.
func isHex(s string, upperOnly bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'A' <= c && c <= 'F':
		case 'a' <= c && c <= 'f' && !upperOnly:
		default:
			return false
		}
	}
	return true
}

// isDecimal reports whether s is non-empty and all ASCII digits (no sign).
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
