package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// Type is the kind of a backup.
type Type string

const (
	Full         Type = "full"
	Incremental  Type = "incr"
	Differential Type = "diff"
	Logical      Type = "logical"
)

// ParseType parses full, incr, diff or logical.
func ParseType(s string) (Type, error) {
	switch t := Type(s); t {
	case Full, Incremental, Differential, Logical:
		return t, nil
	}
	return "", fmt.Errorf("unknown backup type %q: want full, incr, diff or logical", s)
}

func (t Type) suffix() string {
	return map[Type]string{Full: "F", Incremental: "I", Differential: "D", Logical: "L"}[t]
}

// docKind is where backup records live in the repository.
const docKind = "backups"

// ErrNoBackup is returned when the repository holds no matching backup.
var ErrNoBackup = errors.New("no backup")

// Info is a backup's record, stored encrypted at backups/<id>. It is
// written last: a backup without a record does not exist.
type Info struct {
	ID         string         `json:"id"`
	Type       Type           `json:"type"`
	Base       string         `json:"base,omitempty"` // the backup an incr/diff was taken against
	Timeline   wal.TimelineID `json:"timeline"`
	StartLSN   wal.LSN        `json:"start_lsn"`
	StopLSN    wal.LSN        `json:"stop_lsn"`
	StartWAL   string         `json:"start_wal,omitempty"`
	StopWAL    string         `json:"stop_wal,omitempty"`
	StartTime  time.Time      `json:"start_time"`
	StopTime   time.Time      `json:"stop_time"`
	Size       int64          `json:"size"`        // bytes of the database (data directory or dump)
	StoredSize int64          `json:"stored_size"` // repository bytes a restore reads
	NewBytes   int64          `json:"new_bytes"`   // repository bytes this backup added
	ReadBytes  int64          `json:"read_bytes"`  // bytes read from the data directory (unchanged files are not read)
	Files      int            `json:"files"`
	Duration   float64        `json:"duration_s"`
	PGVersion  int            `json:"pg_version"`
	SystemID   string         `json:"system_id"`
	Database   string         `json:"database,omitempty"` // logical backups
	SegSize    uint64         `json:"wal_segment_size,omitempty"`
	Label      string         `json:"backup_label,omitempty"`
	// WALArchived: the backup's WAL is in the repository's WAL archive,
	// not in the backup (it was taken while archiving was on).
	WALArchived bool      `json:"wal_archived,omitempty"`
	Manifest    []repo.ID `json:"manifest"`
}

// newID makes a backup ID from its start time, pgBackRest style
// (20261124-015500F), unique in the repository.
func newID(ctx context.Context, r *repo.Repo, t Type, now time.Time) (string, error) {
	for {
		id := now.UTC().Format("20060102-150405") + t.suffix()
		var probe Info
		err := r.LoadDoc(ctx, docKind, id, &probe)
		if errors.Is(err, repo.ErrNotFound) {
			return id, nil
		}
		if err != nil && !repo.IsCorrupt(err) {
			return "", err
		}
		now = now.Add(time.Second)
	}
}

// List returns every backup of the repository, oldest first.
func List(ctx context.Context, r *repo.Repo) ([]*Info, error) {
	names, err := r.ListDocs(ctx, docKind)
	if err != nil {
		return nil, err
	}
	var out []*Info
	for _, n := range names {
		var info Info
		if err := r.LoadDoc(ctx, docKind, n, &info); err != nil {
			return nil, fmt.Errorf("read backup %s: %w", n, err)
		}
		out = append(out, &info)
	}
	slices.SortFunc(out, func(a, b *Info) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Load returns backup id, or the newest backup for "latest". Logical
// backups are found by id; "latest" picks the newest physical one unless
// logical is set.
func Load(ctx context.Context, r *repo.Repo, id string, logical bool) (*Info, error) {
	if id == "" || id == "latest" {
		all, err := List(ctx, r)
		if err != nil {
			return nil, err
		}
		for i := len(all) - 1; i >= 0; i-- {
			if (all[i].Type == Logical) == logical {
				return all[i], nil
			}
		}
		return nil, fmt.Errorf("%w in %s", ErrNoBackup, r.Location())
	}
	var info Info
	if err := r.LoadDoc(ctx, docKind, id, &info); err != nil {
		if errors.Is(err, repo.ErrNotFound) {
			return nil, fmt.Errorf("%w %q in %s (see 'bulwark backup list')", ErrNoBackup, id, r.Location())
		}
		return nil, fmt.Errorf("read backup %s: %w", id, err)
	}
	return &info, nil
}

// storedSize sums the repository bytes a restore of info reads: every part
// of every block, counted each time it is used.
func storedSize(ctx context.Context, r *repo.Repo, info *Info) (int64, error) {
	m := OpenManifest(ctx, r, info)
	var n int64
	for {
		e, err := m.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		for _, b := range e.Blocks {
			for _, p := range b.Parts {
				if l, ok := r.Index().Lookup(p); ok {
					n += int64(l.Length)
				}
			}
		}
	}
}

// walSegments lists the WAL segments the backup needs, from its start to
// its stop. The stop record ends at StopLSN: it lies in the segment of
// StopLSN-1, which is also the last segment pg_backup_stop waits for.
func (i *Info) walSegments() []wal.SegmentName {
	return wal.SegmentsBetween(i.Timeline, i.StartLSN, i.StopLSN-1, i.SegSize)
}
