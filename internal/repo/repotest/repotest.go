// Package repotest is the conformance suite every repo.Store runs.
package repotest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// RunStoreTests checks the Store contract on stores made by newStore.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) repo.Store) {
	ctx := context.Background()
	t.Run("PutGet", func(t *testing.T) {
		s := newStore(t)
		Put(t, s, "a/b/c", "hello")
		if got := Get(t, s, "a/b/c"); got != "hello" {
			t.Fatalf("get: got %q, want %q", got, "hello")
		}
		Put(t, s, "a/b/c", "replaced")
		if got := Get(t, s, "a/b/c"); got != "replaced" {
			t.Fatalf("get after replace: got %q, want %q", got, "replaced")
		}
	})
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "nope/x"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("get missing: got %v, want ErrNotFound", err)
		}
		if _, err := s.GetRange(ctx, "nope/x", 0, 1); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("get range missing: got %v, want ErrNotFound", err)
		}
	})
	t.Run("GetRange", func(t *testing.T) {
		s := newStore(t)
		Put(t, s, "r", "0123456789")
		rc, err := s.GetRange(ctx, "r", 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		if string(b) != "3456" {
			t.Fatalf("range: got %q, want %q", b, "3456")
		}
	})
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"data/00/a", "data/01/b", "index/c", "keys/d"} {
			Put(t, s, k, k)
		}
		got := List(t, s, "data/")
		slices.Sort(got)
		if want := []string{"data/00/a", "data/01/b"}; !slices.Equal(got, want) {
			t.Fatalf("list: got %v, want %v", got, want)
		}
		for k, err := range s.List(ctx, "missing/") {
			t.Fatalf("list of empty prefix yielded %q, %v", k, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		Put(t, s, "x/y", "1")
		if err := s.Delete(ctx, "x/y"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "x/y"); err != nil {
			t.Fatalf("delete absent: %v", err)
		}
		if _, err := s.Get(ctx, "x/y"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("get deleted: got %v, want ErrNotFound", err)
		}
	})
	t.Run("ShortWrite", func(t *testing.T) {
		s := newStore(t)
		err := s.Put(ctx, "short", strings.NewReader("abc"), 10)
		if err == nil {
			t.Fatal("put with a short reader succeeded")
		}
		if _, err := s.Get(ctx, "short"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("a failed put left an object: %v", err)
		}
	})
}

// Put stores v under key, failing the test on error.
func Put(t testing.TB, s repo.Store, key, v string) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader([]byte(v)), int64(len(v))); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// List returns the keys under prefix in the order the store yields them,
// failing the test on error.
func List(t testing.TB, s repo.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for k, err := range s.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		keys = append(keys, k)
	}
	return keys
}

// Get returns the object under key, failing the test on error.
func Get(t testing.TB, s repo.Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
