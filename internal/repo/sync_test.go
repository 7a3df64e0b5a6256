package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

func TestSync(t *testing.T) {
	ctx := context.Background()
	src, srcDir := newRepo(t)
	id, err := src.SaveBlob(ctx, repo.BlobData, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.SaveDoc(ctx, "backups", "b1", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	dstDir := t.TempDir()
	st, err := repo.Sync(ctx, src, fsstore.New(dstDir), repo.SyncOptions{})
	if err != nil || st.Copied == 0 {
		t.Fatalf("first sync: %+v %v", st, err)
	}
	dst, err := reopen(t, dstDir, "secret")
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	if got, err := dst.LoadBlob(ctx, id, nil); err != nil || string(got) != "payload" {
		t.Fatalf("blob in the copy: %q %v", got, err)
	}
	// A synced pair: nothing copied, nothing read.
	if st, err := repo.Sync(ctx, src, fsstore.New(dstDir), repo.SyncOptions{}); err != nil || st.Copied != 0 || st.Present == 0 {
		t.Fatalf("second sync: %+v %v", st, err)
	}
	// A damaged pack is not copied.
	id2, _ := src.SaveBlob(ctx, repo.BlobData, []byte("second"))
	if err := src.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := src.Index().Lookup(id2)
	pack := filepath.Join(srcDir, "data", l.Pack.String()[:2], l.Pack.String())
	b, _ := os.ReadFile(pack)
	b[0] ^= 1
	os.WriteFile(pack, b, 0o600)
	if _, err := repo.Sync(ctx, src, fsstore.New(dstDir), repo.SyncOptions{}); !repo.IsCorrupt(err) {
		t.Fatalf("sync of a damaged pack: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dstDir, "data", l.Pack.String()[:2], l.Pack.String())); err == nil {
		t.Fatal("the damaged pack was copied")
	}
	// Another repository is refused.
	_, otherDir := newRepo(t)
	if _, err := repo.Sync(ctx, src, fsstore.New(otherDir), repo.SyncOptions{}); !errors.Is(err, repo.ErrOtherRepository) {
		t.Fatalf("sync into another repository: %v", err)
	}
}
