package repo_test

import (
	"context"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	save := func(s string) repo.ID {
		t.Helper()
		id, err := r.SaveBlob(ctx, repo.BlobData, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b, c := save("a-blob"), save("b-blob"), save("c-blob")
	if err := r.Flush(ctx); err != nil { // pack 1: a b c
		t.Fatal(err)
	}
	d, e := save("d-blob"), save("e-blob")
	if err := r.Flush(ctx); err != nil { // pack 2: d e
		t.Fatal(err)
	}
	f := save("f-blob")
	if err := r.Flush(ctx); err != nil { // pack 3: f, unused
		t.Fatal(err)
	}
	used := map[repo.ID]bool{a: true, d: true, e: true}
	dry, err := r.Prune(ctx, func(id repo.ID) bool { return used[id] }, 0.05, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.PacksDeleted != 1 || dry.PacksRepacked != 1 || dry.PacksKept != 1 {
		t.Fatalf("dry run: %+v", dry)
	}
	if len(r.Index().Packs()) != 3 {
		t.Fatal("a dry run changed the index")
	}
	st, err := r.Prune(ctx, func(id repo.ID) bool { return used[id] }, 0.05, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksWritten != 1 {
		t.Fatalf("prune: %+v", st)
	}
	r2, err := reopen(t, dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[repo.ID]string{a: "a-blob", d: "d-blob", e: "e-blob"} {
		if got, err := r2.LoadBlob(ctx, id, nil); err != nil || string(got) != want {
			t.Errorf("kept blob %s: %q %v", id.Short(), got, err)
		}
	}
	for _, id := range []repo.ID{b, c, f} {
		if _, ok := r2.Index().Lookup(id); ok {
			t.Errorf("unused blob %s is still indexed", id.Short())
		}
	}
	if n := len(r2.Index().Packs()); n != 2 {
		t.Errorf("%d packs after prune, want 2 (pack 2 and the rewritten pack 1)", n)
	}
	dmg, err := r2.CheckPacks(ctx, true, 2, nil)
	if err != nil || !dmg.OK() || dmg.Unreferenced != 0 {
		t.Fatalf("check after prune: %+v %v", dmg, err)
	}
}
