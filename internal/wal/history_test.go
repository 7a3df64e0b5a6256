package wal

import "testing"

func TestParseHistory(t *testing.T) {
	h, err := ParseHistory("1\t0/3000000\tno recovery target specified\n\n# comment\n2\t0/50000A8\tbefore 2026-11-24 10:00:00+00\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].TLI != 1 || h[0].SwitchLSN != 0x3000000 || h[1].TLI != 2 || h[1].Reason == "" {
		t.Fatalf("got %+v", h)
	}
	for _, bad := range []string{"x\t0/1", "1", "2\t0/5\n1\t0/6", "1\tzz"} {
		if _, err := ParseHistory(bad); err == nil {
			t.Errorf("ParseHistory(%q) succeeded", bad)
		}
	}
	if HistoryFileName(10) != "0000000A.history" {
		t.Errorf("HistoryFileName(10) = %s", HistoryFileName(10))
	}
}

func TestParseSegmentHeader(t *testing.T) {
	b := make([]byte, LongPageHeaderSize)
	b[0], b[1], b[2] = 0x10, 0xD1, 2
	b[8+3] = 1 // pageaddr 0x1000000
	b[24] = 7
	b[32+2] = 0x00
	b[32+3] = 0x01 // 16 MiB
	h, err := ParseSegmentHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Magic != 0xD110 || h.PageAddr != 0x1000000 || h.SystemID != 7 || h.SegmentSize != 16<<20 {
		t.Fatalf("got %+v", h)
	}
	b[2] = 0
	if _, err := ParseSegmentHeader(b); err == nil {
		t.Error("a short page header was accepted as the start of a segment")
	}
}
