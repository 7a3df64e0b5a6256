package repo_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

var update = flag.Bool("update", false, "rewrite testdata/repo/v<FormatVersion>")

const fixturePassword = "fixture"

// fixtureBlobs is what the fixture repository holds.
func fixtureBlobs() [][]byte {
	var out [][]byte
	for i := range 5 {
		out = append(out, bytes.Repeat([]byte(fmt.Sprintf("blob %d ", i)), 1000*(i+1)))
	}
	return out
}

type fixtureDoc struct{ Name string }

// TestFormatFixtures reads a repository written by every released format
// version: a format change must keep reading them (or say why not).
func TestFormatFixtures(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join("testdata", "repo", fmt.Sprintf("v%d", repo.FormatVersion))
	if *update {
		os.RemoveAll(dir)
		r, err := repo.Init(ctx, fsstore.New(dir), []byte(fixturePassword), repo.Options{KDF: fastKDF})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range fixtureBlobs() {
			if _, err := r.SaveBlob(ctx, repo.BlobData, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.SaveDoc(ctx, "backups", "fixture", fixtureDoc{Name: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	versions, _ := filepath.Glob(filepath.Join("testdata", "repo", "v*"))
	if len(versions) == 0 {
		t.Fatal("no fixtures: run go test ./internal/repo -run FormatFixtures -update")
	}
	for _, v := range versions {
		t.Run(filepath.Base(v), func(t *testing.T) {
			work := copyDir(t, v)
			r, err := repo.Open(ctx, fsstore.New(work), []byte(fixturePassword), repo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range fixtureBlobs() {
				got, err := r.LoadBlob(ctx, r.Key().Hash(b), nil)
				if err != nil || !bytes.Equal(got, b) {
					t.Fatalf("blob %d: %v", i, err)
				}
			}
			var doc fixtureDoc
			if err := r.LoadDoc(ctx, "backups", "fixture", &doc); err != nil || doc.Name == "" {
				t.Fatalf("doc: %v %+v", err, doc)
			}
			if d, err := r.CheckPacks(ctx, true, 1, nil); err != nil || !d.OK() {
				t.Fatalf("verify: %v %+v", err, d)
			}
			// The damaged copy: one flipped byte in a pack is found.
			packs, _ := filepath.Glob(filepath.Join(work, "data", "*", "*"))
			b, _ := os.ReadFile(packs[0])
			b[10] ^= 1
			os.WriteFile(packs[0], b, 0o600)
			if d, err := r.CheckPacks(ctx, true, 1, nil); err != nil || d.OK() {
				t.Fatalf("verify of a damaged copy: %v, found nothing", err)
			}
		})
	}
}

func copyDir(t *testing.T, src string) string {
	dst := t.TempDir()
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		in, _ := os.Open(p)
		defer in.Close()
		out, _ := os.Create(filepath.Join(dst, rel))
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	return dst
}
