package receive

import (
	"testing"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

func TestFollowHistory(t *testing.T) {
	// Timeline 1 ended at 0/5000A0 (child 2), timeline 2 at 0/9000000 (child 3).
	history := []wal.HistoryEntry{{TLI: 1, SwitchLSN: 0x50000A0}, {TLI: 2, SwitchLSN: 0x9000000}}
	tests := []struct {
		name string
		in   position
		want position
	}{
		{"before the first switch", position{1, 0x4000000}, position{1, 0x4000000}},
		{"at the first switch", position{1, 0x50000A0}, position{2, 0x50000A0}},
		{"past the first switch: diverged WAL", position{1, 0x6000000}, position{2, 0x50000A0}},
		{"far past the first switch: still its child", position{1, 0xA000000}, position{2, 0x50000A0}},
		{"on the middle timeline", position{2, 0x7000000}, position{2, 0x7000000}},
		{"past the middle timeline", position{2, 0x9000000}, position{3, 0x9000000}},
		{"current timeline", position{3, 0xB000000}, position{3, 0xB000000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := followHistory(tt.in, history, 3); got != tt.want {
				t.Errorf("followHistory(%v): got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"16MB", 16 << 20, true},
		{"1GB", 1 << 30, true},
		{"1024kB", 1 << 20, true},
		{"64B", 64, true},
		{"16 MB", 0, false},
		{"MB", 0, false},
		{"16TB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseSize(%q): got %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseNextTimeline(t *testing.T) {
	got, err := parseNextTimeline([][]byte{[]byte("2"), []byte("0/50000A0")})
	if err != nil || got != (position{2, 0x50000A0}) {
		t.Errorf("got %v, %v; want timeline 2 at 0/50000A0", got, err)
	}
	if _, err := parseNextTimeline([][]byte{[]byte("0"), []byte("0/1")}); err == nil {
		t.Error("timeline 0: got no error")
	}
}
