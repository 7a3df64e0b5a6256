package wal_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

const mib = 1 << 20

func TestParseSegmentName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    wal.SegmentName
		wantErr bool
	}{
		{name: "typical", in: "000000010000000A000000FF", want: wal.SegmentName{TLI: 1, Log: 0xA, Seg: 0xFF}},
		{name: "first", in: "000000010000000000000001", want: wal.SegmentName{TLI: 1, Log: 0, Seg: 1}},
		{name: "high timeline", in: "FFFFFFFFFFFFFFFF00000000", want: wal.SegmentName{TLI: 1<<32 - 1, Log: 1<<32 - 1}},
		{name: "1 MiB segment", in: "000000010000000000000FFF", want: wal.SegmentName{TLI: 1, Seg: 0xFFF}},
		{name: "seg beyond any size", in: "000000010000000000001000", wantErr: true},
		{name: "timeline 0", in: "000000000000000A000000FF", wantErr: true},
		{name: "lower case", in: "000000010000000a000000ff", wantErr: true},
		{name: "short", in: "000000010000000A000000F", wantErr: true},
		{name: "long", in: "000000010000000A000000FF0", wantErr: true},
		{name: "partial", in: "000000010000000A000000FF.partial", wantErr: true},
		{name: "backup history", in: "000000010000000A000000FF.00000028.backup", wantErr: true},
		{name: "history", in: "00000002.history", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "not hex", in: "00000001000000G0000000FF", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wal.ParseSegmentName(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSegmentName(%q): got err %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParseSegmentName(%q): got %+v, want %+v", tt.in, got, tt.want)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String: got %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestSegmentArithmetic(t *testing.T) {
	tests := []struct {
		name    string
		segSize uint64
		lsn     wal.LSN
		want    string // SegmentOf(1, lsn)
		start   wal.LSN
		next    string
	}{
		{name: "16 MiB first byte", segSize: wal.DefaultSegmentSize, lsn: 0x1000000, want: "000000010000000000000001", start: 0x1000000, next: "000000010000000000000002"},
		{name: "16 MiB last byte of segment", segSize: wal.DefaultSegmentSize, lsn: 0x1FFFFFF, want: "000000010000000000000001", start: 0x1000000, next: "000000010000000000000002"},
		{name: "16 MiB log rollover", segSize: wal.DefaultSegmentSize, lsn: 0xA_FF000028, want: "000000010000000A000000FF", start: 0xA_FF000000, next: "000000010000000B00000000"},
		{name: "16 MiB example", segSize: wal.DefaultSegmentSize, lsn: 0x16_B374D848, want: "0000000100000016000000B3", start: 0x16_B3000000, next: "0000000100000016000000B4"},
		{name: "1 MiB", segSize: mib, lsn: 0x3_FFF00010, want: "000000010000000300000FFF", start: 0x3_FFF00000, next: "000000010000000400000000"},
		{name: "64 MiB", segSize: 64 * mib, lsn: 0x2_C4000000, want: "000000010000000200000031", start: 0x2_C4000000, next: "000000010000000200000032"},
		{name: "1 GiB", segSize: 1024 * mib, lsn: 0x5_C0000001, want: "000000010000000500000003", start: 0x5_C0000000, next: "000000010000000600000000"},
		{name: "zero", segSize: wal.DefaultSegmentSize, lsn: 0, want: "000000010000000000000000", start: 0, next: "000000010000000000000001"},
		{name: "last segment wraps", segSize: wal.DefaultSegmentSize, lsn: 1<<64 - 1, want: "00000001FFFFFFFF000000FF", start: 0xFFFFFFFF_FF000000, next: "000000010000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg := wal.SegmentOf(1, tt.lsn, tt.segSize)
			want := mustSeg(t, tt.want)
			if seg != want {
				t.Fatalf("SegmentOf(%v): got %v, want %v", tt.lsn, seg, want)
			}
			if !seg.Valid(tt.segSize) {
				t.Errorf("Valid: got false for %v", seg)
			}
			if got := seg.StartLSN(tt.segSize); got != tt.start {
				t.Errorf("StartLSN: got %v, want %v", got, tt.start)
			}
			if got, want := seg.Next(tt.segSize), mustSeg(t, tt.next); got != want {
				t.Errorf("Next: got %v, want %v", got, want)
			}
			if got, want := seg.SegNo(tt.segSize), uint64(tt.lsn)/tt.segSize; got != want {
				t.Errorf("SegNo: got %d, want %d", got, want)
			}
		})
	}
}

func mustSeg(t *testing.T, s string) wal.SegmentName {
	t.Helper()
	seg, err := wal.ParseSegmentName(s)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

func TestSegmentValid(t *testing.T) {
	tests := []struct {
		name    string
		seg     wal.SegmentName
		segSize uint64
		want    bool
	}{
		{name: "last for 16 MiB", seg: wal.SegmentName{TLI: 1, Seg: 0xFF}, segSize: wal.DefaultSegmentSize, want: true},
		{name: "too big for 16 MiB", seg: wal.SegmentName{TLI: 1, Seg: 0x100}, segSize: wal.DefaultSegmentSize, want: false},
		{name: "fine for 1 MiB", seg: wal.SegmentName{TLI: 1, Seg: 0x100}, segSize: mib, want: true},
		{name: "1 GiB has four per log", seg: wal.SegmentName{TLI: 1, Seg: 4}, segSize: 1024 * mib, want: false},
		{name: "timeline 0", seg: wal.SegmentName{}, segSize: wal.DefaultSegmentSize, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.seg.Valid(tt.segSize); got != tt.want {
				t.Errorf("Valid(%d) of %v: got %v, want %v", tt.segSize, tt.seg, got, tt.want)
			}
		})
	}
}

func TestCheckSegmentSize(t *testing.T) {
	tests := []struct {
		name    string
		size    uint64
		wantErr bool
	}{
		{name: "default", size: wal.DefaultSegmentSize},
		{name: "min", size: mib},
		{name: "max", size: 1024 * mib},
		{name: "zero", size: 0, wantErr: true},
		{name: "too small", size: mib / 2, wantErr: true},
		{name: "too big", size: 2048 * mib, wantErr: true},
		{name: "not a power of two", size: 24 * mib, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := wal.CheckSegmentSize(tt.size); (err != nil) != tt.wantErr {
				t.Errorf("CheckSegmentSize(%d): got %v, want error %v", tt.size, err, tt.wantErr)
			}
		})
	}
}

func TestInvalidSegmentSizePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("SegmentOf with a 3 MiB segment size: got no panic")
		}
	}()
	wal.SegmentOf(1, 0, 3*mib)
}

func TestSegmentsBetween(t *testing.T) {
	names := func(segs []wal.SegmentName) []string {
		var out []string
		for _, s := range segs {
			out = append(out, s.String())
		}
		return out
	}
	tests := []struct {
		name        string
		start, stop wal.LSN
		segSize     uint64
		want        []string
	}{
		{name: "same segment", start: 0x2000028, stop: 0x2000138, segSize: wal.DefaultSegmentSize,
			want: []string{"000000020000000000000002"}},
		{name: "stop on boundary is included", start: 0x2000028, stop: 0x3000000, segSize: wal.DefaultSegmentSize,
			want: []string{"000000020000000000000002", "000000020000000000000003"}},
		{name: "across log", start: 0x1_FE000000, stop: 0x2_00000010, segSize: wal.DefaultSegmentSize,
			want: []string{"0000000200000001000000FE", "0000000200000001000000FF", "000000020000000200000000"}},
		{name: "1 GiB segments", start: 0x0_80000000, stop: 0x1_40000000, segSize: 1024 * mib,
			want: []string{"000000020000000000000002", "000000020000000000000003", "000000020000000100000000", "000000020000000100000001"}},
		{name: "end of LSN space", start: 1<<64 - 2, stop: 1<<64 - 1, segSize: wal.DefaultSegmentSize,
			want: []string{"00000002FFFFFFFF000000FF"}},
		{name: "stop before start", start: 0x3000000, stop: 0x2000000, segSize: wal.DefaultSegmentSize, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(wal.SegmentsBetween(2, tt.start, tt.stop, tt.segSize))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SegmentsBetween(%v, %v) (-want +got):\n%s", tt.start, tt.stop, diff)
			}
		})
	}
}

func TestIsHistoryFile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "history", in: "00000002.history", want: true},
		{name: "high timeline", in: "0000001A.history", want: true},
		{name: "lower case", in: "0000001a.history", want: false},
		{name: "short", in: "0000002.history", want: false},
		{name: "segment", in: "000000020000000000000001", want: false},
		{name: "suffix", in: "00000002.history.tmp", want: false},
		{name: "other suffix", in: "00000002.histor", want: false},
		{name: "empty", in: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wal.IsHistoryFile(tt.in); got != tt.want {
				t.Errorf("IsHistoryFile(%q): got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseSegmentName(f *testing.F) {
	for _, s := range []string{"000000030000000A000000FF", "000000010000000000000FFF", "00000002.history", "000000010000000A000000FF.partial"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seg, err := wal.ParseSegmentName(s)
		if err != nil {
			return
		}
		if again, err := wal.ParseSegmentName(seg.String()); err != nil || again != seg {
			t.Fatalf("round trip of %q: got %v, %v", s, again, err)
		}
		// A parsed name is valid for 1 MiB segments, and maps back to itself
		// through its start LSN.
		if !seg.Valid(mib) {
			t.Fatalf("%v: not valid for 1 MiB segments", seg)
		}
		if back := wal.SegmentOf(seg.TLI, seg.StartLSN(mib), mib); back != seg {
			t.Fatalf("SegmentOf(StartLSN(%v)): got %v", seg, back)
		}
	})
}
