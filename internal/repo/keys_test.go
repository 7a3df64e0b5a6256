package repo_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

func TestAddKeyAndKeyFile(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	id, err := r.SaveBlob(ctx, repo.BlobData, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	kf := repo.NewKeyFile()
	if !repo.IsKeyFile(kf) || repo.IsKeyFile([]byte("bulwark-key:v1:short")) {
		t.Fatal("IsKeyFile does not recognise key files")
	}
	if _, err := r.AddKey(ctx, kf); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddKey(ctx, []byte("second passphrase")); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"secret", "second passphrase", string(kf), string(bytes.TrimSpace(kf))} {
		r2, err := reopen(t, dir, secret)
		if err != nil {
			t.Fatalf("open with %.20q: %v", secret, err)
		}
		if got, err := r2.LoadBlob(ctx, id, nil); err != nil || string(got) != "payload" {
			t.Fatalf("read with %.20q: %q, %v", secret, got, err)
		}
	}
	// Another key file, and a key file's text used as if it were a
	// passphrase of another repository, open nothing.
	for _, secret := range [][]byte{repo.NewKeyFile(), []byte("wrong")} {
		if _, err := reopen(t, dir, string(secret)); !errors.Is(err, repo.ErrWrongPassword) {
			t.Errorf("open with a wrong secret: %v, want ErrWrongPassword", err)
		}
	}
	keys, err := r.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range keys {
		kinds[k.Kind]++
	}
	if kinds["passphrase"] != 2 || kinds["key-file"] != 1 {
		t.Fatalf("keys: %+v", keys)
	}
}
