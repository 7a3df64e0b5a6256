package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/bulwarkdb/bulwark/internal/pg"
)

// walkItem is one thing found in the data directory.
type walkItem struct {
	rel    string // relative to PGDATA, slash-separated
	abs    string
	info   fs.FileInfo
	target string // symlink target, for tablespaces
}

// walkData visits the data directory in comparePaths order, leaving out
// what pg_basebackup leaves out, and following tablespace links in
// pg_tblspc (their content is backed up under pg_tblspc/<oid>/).
// Files that vanish during the walk (dropped relations) are skipped: WAL
// replay recreates the truth.
func walkData(ctx context.Context, root string, fn func(walkItem) error) error {
	info, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", root)
	}
	if err := fn(walkItem{rel: ".", abs: root, info: info}); err != nil {
		return err
	}
	return walkDir(ctx, "", root, fn)
}

func walkDir(ctx context.Context, relDir, absDir string, fn func(walkItem) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(absDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read directory: %w", err)
	}
	names := make([]string, len(entries))
	for i, d := range entries {
		names[i] = d.Name()
	}
	unlogged := pg.UnloggedFilter(relDir, names) // only the init fork of an unlogged relation is kept
	for _, d := range entries {
		rel := path.Join(relDir, d.Name())
		abs := filepath.Join(absDir, d.Name())
		kind := pg.Exclude(rel, d.IsDir())
		if kind == pg.SkipFile {
			continue
		}
		if unlogged(d.Name()) {
			continue
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", rel, err)
		}
		if err := visit(ctx, walkItem{rel: rel, abs: abs, info: info}, kind, fn); err != nil {
			return err
		}
	}
	return nil
}

func visit(ctx context.Context, it walkItem, kind pg.ExcludeKind, fn func(walkItem) error) error {
	mode := it.info.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(it.abs)
		if err != nil {
			return fmt.Errorf("read link %s: %w", it.rel, err)
		}
		if path.Dir(it.rel) != "pg_tblspc" && it.rel != "pg_wal" {
			it.target = target
			return fn(it) // an ordinary link, kept as a link
		}
		resolved, err := os.Stat(it.abs)
		if err != nil {
			return fmt.Errorf("tablespace %s -> %s: %w", it.rel, target, err)
		}
		if it.rel == "pg_wal" { // pg_wal elsewhere: backed up as an empty directory
			it.info = resolved
			return fn(it)
		}
		it.target = target
		if err := fn(it); err != nil {
			return err
		}
		return walkDir(ctx, it.rel, it.abs, fn)
	case mode.IsDir():
		if err := fn(it); err != nil {
			return err
		}
		if kind == pg.SkipContents {
			return nil
		}
		return walkDir(ctx, it.rel, it.abs, fn)
	case mode.IsRegular():
		return fn(it)
	}
	return nil // sockets, devices: not part of a cluster
}
