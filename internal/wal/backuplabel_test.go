package wal_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// pg15Label is backup_label text as pg_backup_stop() returns it in
// PostgreSQL 15.
const pg15Label = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2024-01-02 03:04:05 UTC
LABEL: bulwark: nightly
START TIMELINE: 1
`

func TestParseBackupLabel(t *testing.T) {
	full := wal.BackupLabel{
		StartLSN:      0x2000028,
		StartSegment:  wal.SegmentName{TLI: 1, Seg: 2},
		CheckpointLSN: 0x2000060,
		Method:        "streamed",
		From:          "primary",
		StartTime:     "2024-01-02 03:04:05 UTC",
		Label:         "bulwark: nightly",
		StartTimeline: 1,
	}
	minimal := wal.BackupLabel{
		StartLSN:      0x5_03000028,
		StartSegment:  wal.SegmentName{TLI: 3, Log: 5, Seg: 0x30},
		CheckpointLSN: 0x5_03000060,
	}
	tests := []struct {
		name    string
		in      string
		want    wal.BackupLabel
		wantErr bool
	}{
		{name: "postgres 15", in: pg15Label, want: full},
		{name: "no trailing newline", in: pg15Label[:len(pg15Label)-1], want: full},
		{name: "required keys only", in: "START WAL LOCATION: 5/3000028 (file 000000030000000500000030)\nCHECKPOINT LOCATION: 5/3000060\n", want: minimal},
		{name: "keys in another order", in: "CHECKPOINT LOCATION: 5/3000060\nSTART WAL LOCATION: 5/3000028 (file 000000030000000500000030)\n", want: minimal},
		{name: "unknown key ignored", in: "START WAL LOCATION: 5/3000028 (file 000000030000000500000030)\nCHECKPOINT LOCATION: 5/3000060\nINCREMENTAL FROM LSN: 5/1000000\n", want: minimal},
		{name: "empty label", in: "START WAL LOCATION: 5/3000028 (file 000000030000000500000030)\nCHECKPOINT LOCATION: 5/3000060\nLABEL: \n", want: minimal},
		{name: "empty", in: "", wantErr: true},
		{name: "missing checkpoint", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n", wantErr: true},
		{name: "missing start", in: "CHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
		{name: "duplicate key", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nCHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
		{name: "bad start lsn", in: "START WAL LOCATION: 0/20000280000 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
		{name: "bad start file", in: "START WAL LOCATION: 0/2000028 (file 00000001000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
		{name: "no file", in: "START WAL LOCATION: 0/2000028\nCHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
		{name: "bad checkpoint", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: x\n", wantErr: true},
		{name: "timeline mismatch", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 2\n", wantErr: true},
		{name: "timeline zero", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 0\n", wantErr: true},
		{name: "line without colon", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\ngarbage\n", wantErr: true},
		{name: "blank line", in: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\nCHECKPOINT LOCATION: 0/2000060\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wal.ParseBackupLabel(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got err %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackupLabelString(t *testing.T) {
	b, err := wal.ParseBackupLabel(pg15Label)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != pg15Label {
		t.Errorf("got:\n%s\nwant:\n%s", got, pg15Label)
	}
}

func FuzzParseBackupLabel(f *testing.F) {
	f.Add(pg15Label)
	f.Add("START WAL LOCATION: 5/3000028 (file 000000030000000500000030)\nCHECKPOINT LOCATION: 5/3000060\n")
	f.Add("LABEL: a: b\nSTART TIMELINE: 7\n")
	f.Fuzz(func(t *testing.T, text string) {
		b, err := wal.ParseBackupLabel(text)
		if err != nil {
			return
		}
		again, err := wal.ParseBackupLabel(b.String())
		if err != nil {
			t.Fatalf("reparse of %q: %v", b.String(), err)
		}
		if diff := cmp.Diff(b, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", text, diff)
		}
	})
}
