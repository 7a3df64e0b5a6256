package pgtest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfRendering(t *testing.T) {
	tests := []struct {
		name      string
		conf      map[string]string
		wantLines string
		wantArgs  []string
	}{
		{"raw", map[string]string{"fsync": "on"}, "fsync = 'on'\n", []string{"-c", "fsync=on"}},
		{"quoted", map[string]string{"work_mem": "'8MB'"}, "work_mem = '8MB'\n", []string{"-c", "work_mem=8MB"}},
		{"embedded quote", map[string]string{"a": "it's"}, "a = 'it''s'\n", []string{"-c", "a=it's"}},
		{"sorted", map[string]string{"b": "2", "a": "1"}, "a = '1'\nb = '2'\n", []string{"-c", "a=1", "-c", "b=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := confLines(tt.conf); got != tt.wantLines {
				t.Errorf("confLines: got %q, want %q", got, tt.wantLines)
			}
			if diff := cmp.Diff(tt.wantArgs, confArgs(tt.conf)); diff != "" {
				t.Errorf("confArgs (-want +got):\n%s", diff)
			}
		})
	}
}
