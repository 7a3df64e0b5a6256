package repo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// TestReadAhead loads every blob through small windows, from many
// goroutines: blobs inside a window, across two, and at a pack's end.
func TestReadAhead(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[repo.ID][]byte{}
	for i := range 200 {
		b := make([]byte, 1+rng.IntN(3000))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		b = append(b, fmt.Sprint(i)...)
		id, err := r.SaveBlob(ctx, repo.BlobData, b)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = b
		if i%70 == 69 {
			r.Flush(ctx)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.SetReadAhead(4096, 3)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for id, b := range want {
				if rng := g; rng%2 == 0 && len(b)%2 == 0 {
					continue // goroutines read different subsets, in different orders
				}
				got, err := r.LoadBlob(ctx, id, nil)
				if err != nil || string(got) != string(b) {
					t.Errorf("blob %s: %d bytes, %v", id.Short(), len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
}
