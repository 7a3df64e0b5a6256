package fsstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
	"github.com/bulwarkdb/bulwark/internal/repo/repotest"
)

func TestStore(t *testing.T) {
	repotest.RunStoreTests(t, func(t *testing.T) repo.Store { return fsstore.New(t.TempDir()) })
}

func TestListSkipsTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := fsstore.New(dir)
	if err := s.Put(context.Background(), "data/aa/x", strings.NewReader("1"), 1); err != nil {
		t.Fatal(err)
	}
	// What an interrupted Put leaves behind.
	if err := os.WriteFile(filepath.Join(dir, "data", "aa", ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, err := range s.List(context.Background(), "data/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 || keys[0] != "data/aa/x" {
		t.Fatalf("list: got %v, want [data/aa/x]", keys)
	}
}

func TestRejectsEscapingKeys(t *testing.T) {
	s := fsstore.New(t.TempDir())
	for _, k := range []string{"../x", "/abs", "a/../../b", ""} {
		if err := s.Put(context.Background(), k, strings.NewReader(""), 0); err == nil {
			t.Errorf("put %q: got nil error, want a refusal", k)
		}
	}
}
