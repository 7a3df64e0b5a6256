package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

// fastKDF keeps tests quick; production uses repo.DefaultKDF.
var fastKDF = repo.KDFParams{N: 1 << 10, R: 8, P: 1}

func newRepo(t *testing.T) (*repo.Repo, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := repo.Init(context.Background(), fsstore.New(dir), []byte("secret"), repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func reopen(t *testing.T, dir, password string) (*repo.Repo, error) {
	t.Helper()
	return repo.Open(context.Background(), fsstore.New(dir), []byte(password), repo.Options{})
}

func TestInitOpen(t *testing.T) {
	ctx := context.Background()
	_, dir := newRepo(t)
	if _, err := repo.Init(ctx, fsstore.New(dir), []byte("x"), repo.Options{KDF: fastKDF}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("second init: got %v, want ErrExists", err)
	}
	if _, err := reopen(t, dir, "secret"); err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := reopen(t, dir, "wrong"); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("open with wrong passphrase: got %v, want ErrWrongPassword", err)
	}
	if _, err := reopen(t, t.TempDir(), "secret"); !errors.Is(err, repo.ErrNotRepository) {
		t.Fatalf("open empty dir: got %v, want ErrNotRepository", err)
	}
}

func TestNothingSecretInClear(t *testing.T) {
	r, dir := newRepo(t)
	ctx := context.Background()
	marker := []byte("plaintext-marker-that-must-not-appear")
	if _, err := r.SaveBlob(ctx, repo.BlobData, bytes.Repeat(marker, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveDoc(ctx, "backups", "b1", map[string]string{"label": string(marker)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, marker) || bytes.Contains(b, []byte("secret")) {
			t.Errorf("%s holds plaintext", p)
		}
		return nil
	})
}

func TestBlobsRoundTripAndDedup(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	var blobs [][]byte
	for i := range 50 {
		b := make([]byte, 1000+i*997)
		for j := range b {
			b[j] = byte(rnd.IntN(16)) // compressible
		}
		blobs = append(blobs, b)
	}
	var ids []repo.ID
	for _, b := range blobs {
		id, err := r.SaveBlob(ctx, repo.BlobData, b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := reopen(t, dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		got, err := r2.LoadBlob(ctx, id, nil)
		if err != nil {
			t.Fatalf("load blob %d: %v", i, err)
		}
		if !bytes.Equal(got, blobs[i]) {
			t.Fatalf("blob %d differs", i)
		}
		if r2.Reserve(id) {
			t.Fatalf("blob %d: Reserve says store it again after reopen", i)
		}
	}
}

func TestStreamRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	want := strings.Repeat("manifest line\n", 300000) // several chunks
	w := r.NewStreamWriter(ctx)
	io.Copy(w, strings.NewReader(want))
	ids, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ids) < 2 {
		t.Fatalf("got %d chunks, want several", len(ids))
	}
	got, err := io.ReadAll(r.OpenStream(ctx, ids))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("stream differs after round trip")
	}
}

func TestCorruptionIsFound(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	id, err := r.SaveBlob(ctx, repo.BlobData, bytes.Repeat([]byte("abc"), 5000))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := r.Index().Lookup(id)
	p := filepath.Join(dir, "data", l.Pack.String()[:2], l.Pack.String())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[l.Offset+20] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r2, err := reopen(t, dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadBlob(ctx, id, nil); !repo.IsCorrupt(err) {
		t.Fatalf("load flipped blob: got %v, want corruption", err)
	}
	d, err := r2.CheckPacks(ctx, false, 1, nil)
	if err != nil || !d.OK() {
		t.Fatalf("structure check: %v %+v, want clean (a flipped byte needs --read-data)", err, d)
	}
	d, err = r2.CheckPacks(ctx, true, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, bad := d.Blobs[id]; !bad {
		t.Fatalf("read-data check missed the flipped blob: %+v", d)
	}
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	l, err := r.Lock(ctx, "backup", true)
	if err != nil {
		t.Fatal(err)
	}
	var le *repo.LockedError
	_, err = r.Lock(ctx, "backup", true)
	if !errors.As(err, &le) {
		t.Fatalf("second exclusive lock: got %v, want LockedError", err)
	}
	if !strings.Contains(err.Error(), "backup") {
		t.Fatalf("lock error does not say who holds it: %v", err)
	}
	if _, err := r.Lock(ctx, "restore", false); !errors.As(err, &le) {
		t.Fatalf("shared lock under an exclusive one: got %v, want LockedError", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	s1, err := r.Lock(ctx, "restore", false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.Lock(ctx, "verify", false)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	s1.Unlock(ctx)
	s2.Unlock(ctx)

	// A lock left by a process that is gone is stale.
	host, _ := os.Hostname()
	stale := `{"host":"` + host + `","pid":999999999,"exclusive":true,"operation":"backup","created":"2026-01-01T00:00:00Z","refreshed":"2026-01-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, "locks", "deadbeef"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = r.Lock(ctx, "backup", true)
	if err != nil {
		t.Fatalf("lock over a stale lock: %v", err)
	}
	l.Unlock(ctx)
}
