package backup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// ExpireOptions configure Expire.
type ExpireOptions struct {
	Retention Retention
	// Apply removes; without it Expire only reports what it would remove.
	Apply  bool
	Now    time.Time // the clock; zero means time.Now()
	Logger *slog.Logger
}

// ExpireReport says what Expire removed (or would remove).
type ExpireReport struct {
	Applied bool            `json:"applied"`
	Backups []ExpiredBackup `json:"backups"`
	Removed int             `json:"backups_removed"`
	Kept    int             `json:"backups_kept"`
	Packs   repo.PruneStats `json:"packs"`
	WAL     int             `json:"wal_objects_removed"`
	WALFrom string          `json:"wal_kept_from,omitempty"` // the oldest segment kept
}

// ExpiredBackup is one backup and the policy's verdict.
type ExpiredBackup struct {
	ID       string    `json:"id"`
	Type     Type      `json:"type"`
	StopTime time.Time `json:"stop_time"`
	Keep     bool      `json:"keep"`
	Reason   string    `json:"reason"`
}

// Expire applies a retention policy to the repository: it removes the
// records of the backups out of policy, then every pack no remaining
// backup uses, then the archived WAL older than the oldest remaining
// physical backup's start. It holds the exclusive lock, so it never runs
// beside a backup, a restore or a verify (it fails with a *repo.LockedError
// instead), and it never deletes a blob a kept backup still uses: the used
// set is read from every kept backup's manifest before anything is deleted.
func Expire(ctx context.Context, r *repo.Repo, opts ExpireOptions) (*ExpireReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	lock, err := r.Lock(ctx, "expire", true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(ctx)
	infos, err := List(ctx, r)
	if err != nil {
		return nil, err
	}
	verdicts, err := opts.Retention.Apply(infos, opts.Now)
	if err != nil {
		return nil, err
	}
	rep := &ExpireReport{Applied: opts.Apply}
	var kept []*Info
	for _, v := range verdicts {
		rep.Backups = append(rep.Backups, ExpiredBackup{ID: v.Info.ID, Type: v.Info.Type, StopTime: v.Info.StopTime, Keep: v.Keep, Reason: v.Reason})
		if v.Keep {
			kept = append(kept, v.Info)
		}
	}
	rep.Kept, rep.Removed = len(kept), len(verdicts)-len(kept)
	// What the kept backups use, read before anything is deleted.
	used := map[repo.ID]struct{}{}
	for _, b := range kept {
		if err := addUsed(ctx, r, b, used); err != nil {
			return nil, fmt.Errorf("read backup %s: %w (nothing was removed)", b.ID, err)
		}
	}
	if opts.Apply {
		for _, v := range verdicts {
			if v.Keep {
				continue
			}
			if err := r.Store().Delete(ctx, docKind+"/"+v.Info.ID); err != nil {
				return nil, fmt.Errorf("remove backup %s: %w", v.Info.ID, err)
			}
			opts.Logger.Info("backup removed", "backup", v.Info.ID, "type", v.Info.Type)
		}
	}
	rep.Packs, err = r.Prune(ctx, func(id repo.ID) bool { _, ok := used[id]; return ok }, repo.DefaultRepackUnused, !opts.Apply)
	if err != nil {
		return nil, fmt.Errorf("remove unused packs: %w", err)
	}
	if oldest := oldestPhysical(kept); oldest != nil {
		seg := wal.SegmentOf(oldest.Timeline, oldest.StartLSN, oldest.SegSize)
		rep.WALFrom = seg.String()
		rep.WAL, err = archive.New(r).ExpireBefore(ctx, seg.SegNo(oldest.SegSize), !opts.Apply)
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func oldestPhysical(infos []*Info) *Info {
	var best *Info
	for _, b := range infos {
		if b.Type != Logical && b.SegSize != 0 && (best == nil || b.StartLSN < best.StartLSN) {
			best = b
		}
	}
	return best
}

// addUsed adds every blob backup b needs to used: its manifest and every
// part of every block.
func addUsed(ctx context.Context, r *repo.Repo, b *Info, used map[repo.ID]struct{}) error {
	for _, id := range b.Manifest {
		used[id] = struct{}{}
	}
	m := OpenManifest(ctx, r, b)
	for {
		e, err := m.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, blk := range e.Blocks {
			for _, id := range blk.Parts {
				used[id] = struct{}{}
			}
		}
	}
}
