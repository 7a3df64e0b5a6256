package backup_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/pgtest"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
	"github.com/bulwarkdb/bulwark/internal/repo/repotest"
)

// A disk that fills up in the middle of a backup: the backup fails with
// the system's error, nothing is recorded, the repository stays valid and
// the next backup (with room again) works.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	p := pgtest.Start(t, pgtest.Options{Name: "primary"})
	_, dir := newRepo(t)
	p.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(random()::text) AS v FROM generate_series(1, 400000) g`)

	var packs atomic.Int32
	flaky := &repotest.FlakyStore{Store: fsstore.New(dir), FailPut: func(key string) error {
		if strings.HasPrefix(key, "data/") && packs.Add(1) > 1 {
			return fmt.Errorf("put %s: %w", key, syscall.ENOSPC)
		}
		return nil
	}}
	r, err := repo.Open(ctx, flaky, []byte("pw"), repo.Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Create(ctx, r, backup.CreateOptions{Type: backup.Full, PGData: p.DataDir, DB: p.ConnString()})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("backup onto a full disk: got %v, want the disk-full error", err)
	}

	r, err = repo.Open(ctx, fsstore.New(dir), []byte("pw"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := backup.List(ctx, r); len(list) != 0 {
		t.Fatalf("a failed backup is listed: %v", list[0].ID)
	}
	rep, err := backup.Verify(ctx, r, true, 2, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("repository after a full disk: %v %+v", err, rep)
	}
	info := take(t, r, p, backup.Full) // the lock was released
	want := p.TableHashes(t)
	s := restoreAndStart(t, r, info.ID)
	if got := s.TableHashes(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored data differs: got %v, want %v", got, want)
	}
}
