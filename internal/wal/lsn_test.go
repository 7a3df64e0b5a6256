package wal_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    wal.LSN
		wantErr bool
	}{
		{name: "typical", in: "16/B374D848", want: 0x16_B374D848},
		{name: "zero", in: "0/0", want: 0},
		{name: "lower case", in: "16/b374d848", want: 0x16_B374D848},
		{name: "leading zeros", in: "00000016/0B374D84", want: 0x16_0B374D84},
		{name: "max", in: "FFFFFFFF/FFFFFFFF", want: 1<<64 - 1},
		{name: "empty", in: "", wantErr: true},
		{name: "no slash", in: "16B374D848", wantErr: true},
		{name: "empty high", in: "/1", wantErr: true},
		{name: "empty low", in: "1/", wantErr: true},
		{name: "nine digits", in: "1/123456789", wantErr: true},
		{name: "two slashes", in: "1/2/3", wantErr: true},
		{name: "not hex", in: "1/G", wantErr: true},
		{name: "sign", in: "+1/2", wantErr: true},
		{name: "space", in: " 1/2", wantErr: true},
		{name: "hex prefix", in: "0x1/2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wal.ParseLSN(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLSN(%q): got err %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseLSN(%q): got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLSNString(t *testing.T) {
	tests := []struct {
		name string
		in   wal.LSN
		want string
	}{
		{name: "zero", in: 0, want: "0/0"},
		{name: "typical", in: 0x16_B374D848, want: "16/B374D848"},
		{name: "low only", in: 0x2000028, want: "0/2000028"},
		{name: "max", in: 1<<64 - 1, want: "FFFFFFFF/FFFFFFFF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLSNJSON(t *testing.T) {
	type doc struct {
		StartLSN wal.LSN `json:"start_lsn"`
	}
	b, err := json.Marshal(doc{StartLSN: 0x2000028})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"start_lsn":"0/2000028"}`; got != want {
		t.Errorf("marshal: got %s, want %s", got, want)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.StartLSN != 0x2000028 {
		t.Errorf("unmarshal: got %v, want 0/2000028", d.StartLSN)
	}
	if err := json.Unmarshal([]byte(`{"start_lsn":"nope"}`), &d); err == nil {
		t.Error("unmarshal of a bad LSN: got nil error")
	}
}

func TestLogValues(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	log.Info("x", "lsn", wal.LSN(0x16_B374D848), "timeline", wal.TimelineID(3),
		"segment", wal.SegmentName{TLI: 3, Log: 0xA, Seg: 0xFF})
	want := "level=INFO msg=x lsn=16/B374D848 timeline=3 segment=000000030000000A000000FF\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseTimelineID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    wal.TimelineID
		wantErr bool
	}{
		{name: "one", in: "1", want: 1},
		{name: "max", in: "4294967295", want: 1<<32 - 1},
		{name: "zero", in: "0", wantErr: true},
		{name: "overflow", in: "4294967296", wantErr: true},
		{name: "hex", in: "A", wantErr: true},
		{name: "sign", in: "+1", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wal.ParseTimelineID(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTimelineID(%q): got err %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseTimelineID(%q): got %v, want %v", tt.in, got, tt.want)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String: got %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF", "0/2000028", "a/b", "1/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lsn, err := wal.ParseLSN(s)
		if err != nil {
			return
		}
		again, err := wal.ParseLSN(lsn.String())
		if err != nil || again != lsn {
			t.Fatalf("round trip of %q via %q: got %v, %v", s, lsn.String(), again, err)
		}
	})
}
