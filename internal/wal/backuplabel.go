package wal

import (
	"fmt"
	"strings"
)

// BackupLabel is the content of a backup_label file, as pg_backup_stop()
// returns it in PostgreSQL 15:
//
//	START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
//	CHECKPOINT LOCATION: 0/2000060
//	BACKUP METHOD: streamed
//	BACKUP FROM: primary
//	START TIME: 2024-01-02 03:04:05 UTC
//	LABEL: bulwark 20240102T030405Z
//	START TIMELINE: 1
//
// Recovery starts replay at StartLSN, from the checkpoint at CheckpointLSN.
type BackupLabel struct {
	StartLSN      LSN
	StartSegment  SegmentName // the WAL file holding StartLSN
	CheckpointLSN LSN
	Method        string     // "streamed" for pg_backup_start/stop and pg_basebackup; "" if absent
	From          string     // "primary" or "standby"; "" if absent
	StartTime     string     // server local time with zone abbreviation, kept as text
	Label         string     // the label given to pg_backup_start
	StartTimeline TimelineID // 0 if absent (before PostgreSQL 11)
}

// backup_label keys, in the order PostgreSQL writes them.
const (
	keyStartWAL   = "START WAL LOCATION"
	keyCheckpoint = "CHECKPOINT LOCATION"
	keyMethod     = "BACKUP METHOD"
	keyFrom       = "BACKUP FROM"
	keyStartTime  = "START TIME"
	keyLabel      = "LABEL"
	keyTimeline   = "START TIMELINE"
)

// ParseBackupLabel parses backup_label text. START WAL LOCATION and
// CHECKPOINT LOCATION are required (recovery cannot start without them);
// the other known keys are optional, as in PostgreSQL's read_backup_label.
// Keys may come in any order but only once; lines with unknown keys (added
// by later PostgreSQL versions) are ignored. As PostgreSQL does, it rejects
// a START TIMELINE that differs from the timeline of the start WAL file.
func ParseBackupLabel(text string) (BackupLabel, error) {
	var b BackupLabel
	seen := make(map[string]bool)
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			return BackupLabel{}, fmt.Errorf("parse backup_label line %d: want \"KEY: value\", got %q", i+1, line)
		}
		if seen[key] {
			return BackupLabel{}, fmt.Errorf("parse backup_label line %d: duplicate %s", i+1, key)
		}
		seen[key] = true
		if err := b.set(key, value); err != nil {
			return BackupLabel{}, fmt.Errorf("parse backup_label line %d: %w", i+1, err)
		}
	}
	for _, key := range []string{keyStartWAL, keyCheckpoint} {
		if !seen[key] {
			return BackupLabel{}, fmt.Errorf("parse backup_label: missing %s", key)
		}
	}
	if b.StartTimeline != 0 && b.StartTimeline != b.StartSegment.TLI {
		return BackupLabel{}, fmt.Errorf("parse backup_label: START TIMELINE %v differs from timeline %v of file %v",
			b.StartTimeline, b.StartSegment.TLI, b.StartSegment)
	}
	return b, nil
}

// set stores one key's value; unknown keys are ignored.
func (b *BackupLabel) set(key, value string) error {
	var err error
	switch key {
	case keyStartWAL:
		b.StartLSN, b.StartSegment, err = parseStartWAL(value)
	case keyCheckpoint:
		b.CheckpointLSN, err = ParseLSN(value)
	case keyMethod:
		b.Method = value
	case keyFrom:
		b.From = value
	case keyStartTime:
		b.StartTime = value
	case keyLabel:
		b.Label = value
	case keyTimeline:
		b.StartTimeline, err = ParseTimelineID(value)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// parseStartWAL parses "0/2000028 (file 000000010000000000000002)".
func parseStartWAL(value string) (LSN, SegmentName, error) {
	lsnText, rest, ok := strings.Cut(value, " (file ")
	if !ok || !strings.HasSuffix(rest, ")") {
		return 0, SegmentName{}, fmt.Errorf("want \"LSN (file NAME)\", got %q", value)
	}
	lsn, err := ParseLSN(lsnText)
	if err != nil {
		return 0, SegmentName{}, err
	}
	seg, err := ParseSegmentName(strings.TrimSuffix(rest, ")"))
	if err != nil {
		return 0, SegmentName{}, err
	}
	return lsn, seg, nil
}

// String formats b as PostgreSQL writes backup_label, one "KEY: value" line
// each, omitting optional fields that are empty. ParseBackupLabel reads the
// result back to b, provided no text field holds a newline.
func (b BackupLabel) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %v (file %v)\n", keyStartWAL, b.StartLSN, b.StartSegment)
	fmt.Fprintf(&sb, "%s: %v\n", keyCheckpoint, b.CheckpointLSN)
	for _, f := range []struct{ key, value string }{
		{keyMethod, b.Method},
		{keyFrom, b.From},
		{keyStartTime, b.StartTime},
		{keyLabel, b.Label},
	} {
		if f.value != "" {
			fmt.Fprintf(&sb, "%s: %s\n", f.key, f.value)
		}
	}
	if b.StartTimeline != 0 {
		fmt.Fprintf(&sb, "%s: %v\n", keyTimeline, b.StartTimeline)
	}
	return sb.String()
}
