package archive_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

const segSize = wal.MinSegmentSize // 1 MiB segments keep the tests small

func newArchive(t *testing.T) (*archive.Archive, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := repo.Init(context.Background(), fsstore.New(dir), []byte("pw"), repo.Options{KDF: repo.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return archive.New(r), dir
}

// segment makes a segment with a valid long page header and some content.
func segment(name string, sysid uint64, fill byte) []byte {
	seg, err := wal.ParseSegmentName(name)
	if err != nil {
		panic(err)
	}
	b := bytes.Repeat([]byte{fill}, segSize)
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 2) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint32(b[4:], uint32(seg.TLI))
	binary.LittleEndian.PutUint64(b[8:], uint64(seg.StartLSN(segSize)))
	binary.LittleEndian.PutUint64(b[24:], sysid)
	binary.LittleEndian.PutUint32(b[32:], segSize)
	binary.LittleEndian.PutUint32(b[36:], 8192)
	return b
}

func push(t *testing.T, a *archive.Archive, name string, data []byte) {
	t.Helper()
	if _, err := a.Push(context.Background(), name, data); err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
}

func TestPushFetchAndConflict(t *testing.T) {
	ctx := context.Background()
	a, _ := newArchive(t)
	name := "000000010000000000000003"
	data := segment(name, 7, 1)
	push(t, a, name, data)
	if existed, err := a.Push(ctx, name, data); err != nil || !existed {
		t.Fatalf("second push of the same content: existed %v, err %v; want success", existed, err)
	}
	other := segment(name, 7, 2)
	var ce *archive.ConflictError
	if _, err := a.Push(ctx, name, other); !errors.As(err, &ce) {
		t.Fatalf("push of different content: %v, want a ConflictError", err)
	}
	got, err := a.Fetch(ctx, name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch after a refused push: err %v, same content %v", err, bytes.Equal(got, data))
	}
	if _, err := a.Fetch(ctx, "000000010000000000000004"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("fetch of a missing segment: %v, want ErrNotFound", err)
	}
	// Another cluster's segment and a segment under the wrong name.
	if _, err := a.Push(ctx, "000000010000000000000005", segment("000000010000000000000005", 8, 1)); err == nil {
		t.Error("push of another system's segment succeeded")
	}
	if _, err := a.Push(ctx, "000000010000000000000006", data); err == nil {
		t.Error("push of segment 3's content as segment 6 succeeded")
	}
	if _, err := a.Push(ctx, "pg_control", []byte("x")); err == nil {
		t.Error("push of a file that is not WAL succeeded")
	}
}

func TestStreamedPieces(t *testing.T) {
	ctx := context.Background()
	a, _ := newArchive(t)
	push(t, a, "000000010000000000000001", segment("000000010000000000000001", 7, 1))
	seg, _ := wal.ParseSegmentName("000000010000000000000002")
	full := segment(seg.String(), 7, 3)
	// Pieces out of order and overlapping; a piece after a hole is not used.
	for _, p := range [][2]int{{4096, 9000}, {0, 4096}, {8000, 12000}, {20000, 30000}} {
		if err := a.PushPartial(ctx, seg, uint64(p[0]), full[p[0]:p[1]]); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.Partial(ctx, seg); err != nil || n != 12000 {
		t.Fatalf("Partial: %d, %v; want 12000", n, err)
	}
	got, err := a.Fetch(ctx, seg.String())
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(full[:12000]), make([]byte, segSize-12000)...)
	if !bytes.Equal(got, want) {
		t.Fatal("a streamed segment is not its beginning padded with zeros")
	}
	c, err := a.Contents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tl := c.Timelines[0]
	if tl.Streamed == nil || tl.Streamed.Bytes != 12000 || tl.End.LSN != seg.StartLSN(segSize)+12000 || len(tl.Gaps) != 0 {
		t.Fatalf("contents: %+v streamed %+v", tl, tl.Streamed)
	}
	// Completing the segment replaces the pieces.
	push(t, a, seg.String(), full)
	if err := a.DropPartial(ctx, seg); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Fetch(ctx, seg.String()); !bytes.Equal(got, full) {
		t.Fatal("the full segment is not served after the pieces")
	}
}

func TestContentsGapsAndTimelines(t *testing.T) {
	ctx := context.Background()
	a, _ := newArchive(t)
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000005", "000000010000000000000006",
		"000000020000000000000005", "000000020000000000000006"} {
		push(t, a, n, segment(n, 7, 1))
	}
	// Timeline 2 branched off timeline 1 inside segment 5.
	push(t, a, "00000002.history", []byte("1\t0/500100\tno recovery target specified\n"))
	c, err := a.Contents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Timelines) != 2 {
		t.Fatalf("timelines: %+v", c.Timelines)
	}
	g := c.Timelines[0].Gaps
	if len(g) != 1 || g[0].From != "000000010000000000000003" || g[0].To != "000000010000000000000004" || g[0].Count != 2 {
		t.Fatalf("gaps of timeline 1: %+v", g)
	}
	if tl := c.Timelines[1]; tl.Parent != 1 || tl.SwitchLSN != 0x500100 {
		t.Fatalf("timeline 2: parent %d switch %s", tl.Parent, tl.SwitchLSN)
	}
	if c.Latest(1) != 2 {
		t.Errorf("latest timeline from 1: %d", c.Latest(1))
	}
	// From segment 1 on timeline 1 to the end of timeline 2: segments 3 and 4
	// are missing; segment 5 comes from timeline 2.
	missing, err := c.Missing(1, 0x100028, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"000000010000000000000003", "000000010000000000000004"}) {
		t.Fatalf("missing: %q", missing)
	}
	if missing, _ := c.Missing(1, 0x500028, 2, 0); len(missing) != 0 {
		t.Fatalf("missing after the gap: %q", missing)
	}
}
