package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Target is where a point-in-time recovery stops: exactly one of Time,
// LSN, XID, Name or Latest. Recovery stops after the target (inclusive),
// so a transaction committed at the target time is kept.
type Target struct {
	Time   time.Time
	LSN    wal.LSN
	XID    string
	Name   string // a restore point made with pg_create_restore_point
	Latest bool   // replay every archived WAL record
	// Action after the target is reached: promote (default), pause or
	// shutdown (recovery_target_action).
	Action string
	// Timeline to recover along: "latest" (default: the newest timeline
	// descending from the backup's), "current" (the backup's) or a number.
	Timeline string
}

// IsSet reports whether t asks for any point-in-time recovery.
func (t Target) IsSet() bool {
	return !t.Time.IsZero() || t.LSN != 0 || t.XID != "" || t.Name != "" || t.Latest
}

// Validate checks that t names one target and a known action.
func (t Target) Validate() error {
	n := 0
	for _, set := range []bool{!t.Time.IsZero(), t.LSN != 0, t.XID != "", t.Name != "", t.Latest} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("give one recovery target: --target-time, --target-lsn, --target-xid, --target-name or --latest")
	}
	if t.XID != "" {
		if _, err := strconv.ParseUint(t.XID, 10, 64); err != nil {
			return fmt.Errorf("--target-xid %q: want a transaction ID (a number)", t.XID)
		}
	}
	switch t.Action {
	case "", "promote", "pause", "shutdown":
	default:
		return fmt.Errorf("--target-action %q: want promote, pause or shutdown", t.Action)
	}
	if _, err := t.timeline(1, nil); err != nil {
		return err
	}
	if t.Action != "" && !t.IsSet() {
		return errors.New("--target-action needs a recovery target")
	}
	return nil
}

func (t Target) String() string {
	switch {
	case !t.Time.IsZero():
		return "time " + t.Time.Format(time.RFC3339Nano)
	case t.LSN != 0:
		return "lsn " + t.LSN.String()
	case t.XID != "":
		return "xid " + t.XID
	case t.Name != "":
		return "restore point " + t.Name
	}
	return "the end of the archived WAL"
}

// timeline resolves Timeline for a backup on timeline from.
func (t Target) timeline(from wal.TimelineID, c *archive.Contents) (wal.TimelineID, error) {
	switch t.Timeline {
	case "", "latest":
		if c == nil {
			return from, nil
		}
		return c.Latest(from), nil
	case "current":
		return from, nil
	}
	n, err := strconv.ParseUint(t.Timeline, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--target-timeline %q: want latest, current or a timeline number", t.Timeline)
	}
	return wal.TimelineID(n), nil
}

// ChooseBackup picks the backup to start a recovery to t from: the newest
// physical backup that finished before the target (time or LSN), or the
// newest for other targets. infos is oldest first, as List returns.
func ChooseBackup(infos []*Info, t Target) (*Info, error) {
	var oldest *Info
	for i := len(infos) - 1; i >= 0; i-- {
		b := infos[i]
		if b.Type == Logical {
			continue
		}
		oldest = b
		switch {
		case !t.Time.IsZero() && b.StopTime.After(t.Time):
			continue
		case t.LSN != 0 && b.StopLSN > t.LSN:
			continue
		}
		return b, nil
	}
	if oldest == nil {
		return nil, fmt.Errorf("%w to recover from", ErrNoBackup)
	}
	return nil, fmt.Errorf("%w that finished before the target %s: the oldest, %s, finished at %s (lsn %s)",
		ErrNoBackup, t, oldest.ID, oldest.StopTime.Format(time.RFC3339), oldest.StopLSN)
}

// CheckArchive names the WAL segments that recovering info to t needs and
// the archive lacks. For a time, xid or restore-point target, where the
// last segment needed is unknown until replay, segments missing after the
// backup are reported as warnings (recovery stops at the first), and an
// error only for LSN and latest targets.
func CheckArchive(ctx context.Context, ar *archive.Archive, info *Info, t Target) (missing []string, fatal bool, err error) {
	c, err := ar.Contents(ctx)
	if err != nil {
		return nil, false, err
	}
	if len(c.Timelines) == 0 {
		if info.WALArchived {
			return nil, true, fmt.Errorf("backup %s relies on the WAL archive, and the archive in %s is empty", info.ID, ar.Repo().Location())
		}
		return nil, t.Latest || t.LSN != 0, fmt.Errorf("the archive in %s is empty: recovery can only reach the end of backup %s", ar.Repo().Location(), info.ID)
	}
	// Without a target the restore replays only the backup's own WAL: what
	// newer timelines hold (a failover since, its first segment not
	// archived yet) does not matter.
	tli, to := info.Timeline, info.StopLSN-1
	if t.IsSet() {
		if tli, err = t.timeline(info.Timeline, c); err != nil {
			return nil, true, err
		}
		to = t.LSN
	}
	missing, err = c.Missing(info.Timeline, info.StartLSN, tli, to)
	if err != nil {
		return nil, true, err
	}
	// Segments inside the backup's own range are fatal whatever the target.
	stopSeg := wal.SegmentOf(info.Timeline, info.StopLSN-1, c.SegmentSize).String()
	for _, m := range missing {
		if m <= stopSeg && m[:8] == stopSeg[:8] {
			return missing, true, nil
		}
	}
	return missing, t.Latest || t.LSN != 0, nil
}

// recoverySettings are the lines a point-in-time restore appends to
// postgresql.auto.conf.
func (t Target) recoverySettings(restoreCommand string) []string {
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	lines := []string{
		"restore_command = " + q(restoreCommand),
	}
	switch t.Timeline {
	case "", "latest":
		lines = append(lines, "recovery_target_timeline = 'latest'")
	default:
		lines = append(lines, "recovery_target_timeline = "+q(t.Timeline))
	}
	switch {
	case !t.Time.IsZero():
		lines = append(lines, "recovery_target_time = "+q(t.Time.Format("2006-01-02 15:04:05.999999-07:00")))
	case t.LSN != 0:
		lines = append(lines, "recovery_target_lsn = "+q(t.LSN.String()))
	case t.XID != "":
		lines = append(lines, "recovery_target_xid = "+q(t.XID))
	case t.Name != "":
		lines = append(lines, "recovery_target_name = "+q(t.Name))
	}
	if !t.Latest {
		action := t.Action
		if action == "" {
			action = "promote"
		}
		lines = append(lines, "recovery_target_inclusive = on", "recovery_target_action = "+q(action))
	}
	return lines
}

// recoveryKeys are settings a restore replaces: those left in the backed
// up postgresql.auto.conf would fight the new ones.
var recoveryKeys = []string{"restore_command", "recovery_target", "recovery_target_time", "recovery_target_lsn",
	"recovery_target_xid", "recovery_target_name", "recovery_target_inclusive", "recovery_target_action",
	"recovery_target_timeline", "primary_conninfo", "primary_slot_name"}

// writeRecovery configures dir for archive recovery to t: it comments out
// earlier recovery settings in postgresql.auto.conf, appends the new ones,
// and creates recovery.signal, owned like dir.
func writeRecovery(dir string, t Target, restoreCommand string, now time.Time) error {
	auto := filepath.Join(dir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(string(old)) {
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		key = strings.TrimSpace(key)
		for _, k := range recoveryKeys {
			if key == k {
				line = "# " + line
				break
			}
		}
		b.WriteString(line)
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "# Recovery to %s, written by bulwark restore at %s\n", t, now.UTC().Format(time.RFC3339))
	for _, l := range t.recoverySettings(restoreCommand) {
		b.WriteString(l + "\n")
	}
	if err := writeOwned(dir, auto, []byte(b.String())); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, "standby.signal"))
	return writeOwned(dir, filepath.Join(dir, "recovery.signal"), nil)
}

// writeOwned writes a file (mode 0600) with the owner of dir.
func writeOwned(dir, path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return chownLike(dir, path)
}
