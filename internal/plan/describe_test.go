package plan

import (
	"testing"
	"time"
)

func TestRetentionDescribe(t *testing.T) {
	tests := []struct {
		name string
		r    Retention
		want string
	}{
		{"none", Retention{}, "none: backups never expire"},
		{"full", Retention{Full: 2}, "the 2 newest full backups and every backup since the oldest of them"},
		{"full diff", Retention{Full: 1, Diff: 3}, "the newest full backup and every backup since the oldest of them, differential backups only the 3 newest ones"},
		{"gfs", Retention{Within: 30 * 24 * time.Hour, Daily: 7, Weekly: 4, Monthly: 1},
			"every backup of the last 30d; the newest backup of each of the last 7 days, 4 weeks and 1 month"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Describe(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1 << 10, 1536, 1 << 20, 3 << 30, 1 << 40} {
		s := FormatSize(n)
		back, ok := ParseSize(s)
		if !ok || back != n {
			t.Errorf("FormatSize(%d) = %q, which parses as %d, %v", n, s, back, ok)
		}
	}
	if got := FormatSize(1 << 20); got != "1MB" {
		t.Errorf("FormatSize(1 MiB) = %q, want 1MB", got)
	}
}
