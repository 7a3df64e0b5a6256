// Package archive keeps a cluster's write-ahead log in a repository: the
// segments archive_command pushes and the receiver streams, partial
// segments, timeline history and backup history files. It reads them back
// for restore_command and describes what it holds (ranges, gaps, age) for
// status, restore and backups.
//
// Each file is one object, compressed and encrypted, outside the packs: a
// push is one short process and must not wait on a backup's lock or load
// the pack index. The layout is in docs/repo-format.md:
//
//	wal/<TLI><LOG>/<segment>                     a full segment
//	wal/<TLI><LOG>/<segment>.stream/<from>-<to>   a piece of a segment the receiver is still streaming
//	wal/<TLI><LOG>/<segment>.partial              the last, partial segment of a timeline PostgreSQL left at a promotion
//	wal/<TLI><LOG>/<segment>.<offset>.backup      backup history file
//	wal/history/<TLI>.history                    timeline history
package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// ErrNotFound is returned by Fetch when the archive does not hold the file.
var ErrNotFound = errors.New("not in the archive")

// ConflictError refuses a push whose content differs from the file already
// archived under the same name. The archived file is never replaced.
type ConflictError struct{ Name string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is already archived with different content: refusing to overwrite it (is another cluster archiving to this repository?)", e.Name)
}

// Info identifies the cluster whose WAL the archive holds. The first push
// records it; every later segment must match.
type Info struct {
	SystemID    uint64 `json:"system_id,string"`
	SegmentSize uint64 `json:"segment_size"`
}

// Archive is the WAL archive of one repository.
type Archive struct {
	r    *repo.Repo
	info *Info
}

// New returns the archive kept in r.
func New(r *repo.Repo) *Archive { return &Archive{r: r} }

// Repo returns the repository that holds the archive.
func (a *Archive) Repo() *repo.Repo { return a.r }

const (
	prefix     = "wal/"
	historyDir = "wal/history/"
	streamDir  = ".stream/"
	docKind    = "archive"
	docInfo    = "info"
)

// header is kept in the clear before each object's sealed body: a magic,
// when it was pushed, and the keyed hash of the content. Comparing a push
// with what is archived reads 48 bytes; status learns an object's age from
// it.
type header struct {
	Pushed time.Time
	ID     repo.ID
}

const (
	headerMagic = "BWAL"
	headerLen   = 4 + 4 + 8 + 32
)

func (h header) marshal() []byte {
	b := make([]byte, 0, headerLen)
	b = append(b, headerMagic...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Pushed.UnixNano()))
	return append(b, h.ID[:]...)
}

func parseHeader(key string, b []byte) (header, error) {
	if len(b) < headerLen || string(b[:4]) != headerMagic || binary.LittleEndian.Uint32(b[4:]) != 1 {
		return header{}, fmt.Errorf("%w: %s: not a WAL archive object", repo.ErrCorrupt, key)
	}
	var h header
	h.Pushed = time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:]))).UTC()
	copy(h.ID[:], b[16:headerLen])
	return h, nil
}

// Kind is what a file name in pg_wal is.
type Kind int

const (
	KindSegment Kind = iota
	KindHistory
	KindBackupHistory
	KindPartial // "<segment>.partial", archived by PostgreSQL after a promotion
)

// Classify names the kind of a file PostgreSQL archives, and its segment
// for segments and backup history files.
func Classify(name string) (Kind, wal.SegmentName, error) {
	if wal.IsHistoryFile(name) {
		return KindHistory, wal.SegmentName{}, nil
	}
	if seg, err := wal.ParseSegmentName(name); err == nil {
		return KindSegment, seg, nil
	}
	if base, ok := strings.CutSuffix(name, ".partial"); ok {
		if seg, err := wal.ParseSegmentName(base); err == nil {
			return KindPartial, seg, nil
		}
	}
	// 000000010000000000000002.00000028.backup
	if base, rest, ok := strings.Cut(name, "."); ok && strings.HasSuffix(rest, ".backup") && len(rest) == 8+len(".backup") {
		if seg, err := wal.ParseSegmentName(base); err == nil {
			return KindBackupHistory, seg, nil
		}
	}
	return 0, wal.SegmentName{}, fmt.Errorf("%q is not a WAL segment, timeline history or backup history file name", name)
}

func segDir(seg wal.SegmentName) string { return prefix + seg.String()[:16] + "/" }

// objectKey is where the file called name is stored.
func objectKey(name string) (string, error) {
	k, seg, err := Classify(name)
	if err != nil {
		return "", err
	}
	if k == KindHistory {
		return historyDir + name, nil
	}
	return segDir(seg) + name, nil
}

// Info returns the identity of the archived cluster. It returns an error
// wrapping ErrNotFound when nothing has been pushed yet.
func (a *Archive) Info(ctx context.Context) (Info, error) {
	if a.info != nil {
		return *a.info, nil
	}
	var info Info
	if err := a.r.LoadDoc(ctx, docKind, docInfo, &info); err != nil {
		if errors.Is(err, repo.ErrNotFound) {
			return Info{}, fmt.Errorf("archive info: %w", ErrNotFound)
		}
		return Info{}, fmt.Errorf("archive info: %w", err)
	}
	a.info = &info
	return info, nil
}

// checkSegment validates a segment's header against its name and against
// the cluster the archive holds, recording that cluster on the first push.
func (a *Archive) checkSegment(ctx context.Context, seg wal.SegmentName, data []byte) error {
	h, err := wal.ParseSegmentHeader(data)
	if err != nil {
		return fmt.Errorf("%s: %w", seg, err)
	}
	size := uint64(len(data))
	if uint64(h.SegmentSize) != size || wal.CheckSegmentSize(size) != nil {
		return fmt.Errorf("%s: %d bytes, but its header says segments are %d bytes", seg, size, h.SegmentSize)
	}
	if want := seg.StartLSN(size); h.PageAddr != want {
		return fmt.Errorf("%s: first page is for %s, not %s: the file is not this segment", seg, h.PageAddr, want)
	}
	return a.Identify(ctx, Info{SystemID: h.SystemID, SegmentSize: size})
}

// MismatchError refuses WAL of another cluster than the archive holds.
type MismatchError struct{ Archive, Got Info }

func (e *MismatchError) Error() string {
	if e.Got.SystemID != e.Archive.SystemID {
		return fmt.Sprintf("WAL of database system %d, but this repository archives system %d: use one repository per cluster", e.Got.SystemID, e.Archive.SystemID)
	}
	return fmt.Sprintf("WAL segments of %d bytes, but the archive holds %d-byte segments", e.Got.SegmentSize, e.Archive.SegmentSize)
}

// Identify records the cluster whose WAL the archive holds if it holds
// none yet, and otherwise checks that info is that cluster (a
// *MismatchError if not).
func (a *Archive) Identify(ctx context.Context, info Info) error {
	have, err := a.Info(ctx)
	if errors.Is(err, ErrNotFound) {
		if err := a.r.SaveDoc(ctx, docKind, docInfo, info); err != nil {
			return fmt.Errorf("record archive info: %w", err)
		}
		a.info = &info
		return nil
	} else if err != nil {
		return err
	}
	if have != info {
		return &MismatchError{Archive: have, Got: info}
	}
	return nil
}

// Push archives the file called name (a segment, history or backup history
// file) with its content. Pushing the same content again succeeds and
// reports existed; different content under an archived name fails with a
// *ConflictError and changes nothing.
func (a *Archive) Push(ctx context.Context, name string, data []byte) (existed bool, err error) {
	kind, seg, err := Classify(name)
	if err != nil {
		return false, err
	}
	if kind == KindSegment {
		if err := a.checkSegment(ctx, seg, data); err != nil {
			return false, err
		}
	}
	key, _ := objectKey(name)
	return a.put(ctx, name, key, data)
}

func (a *Archive) put(ctx context.Context, name, key string, data []byte) (existed bool, err error) {
	id := a.r.Key().Hash(data)
	old, err := a.readHeader(ctx, key)
	switch {
	case err == nil && old.ID == id:
		return true, nil
	case err == nil:
		return false, &ConflictError{Name: name}
	case !errors.Is(err, repo.ErrNotFound):
		return false, fmt.Errorf("push %s: %w", name, err)
	}
	h := header{Pushed: time.Now(), ID: id}
	if err := a.r.PutObject(ctx, key, h.marshal(), data); err != nil {
		return false, fmt.Errorf("push %s: %w", name, err)
	}
	return false, nil
}

func (a *Archive) readHeader(ctx context.Context, key string) (header, error) {
	rc, err := a.r.Store().GetRange(ctx, key, 0, headerLen)
	if err != nil {
		return header{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return header{}, err
	}
	return parseHeader(key, b)
}

// Fetch returns the archived file called name. For a segment that was
// never archived whole but whose beginning the receiver streamed, it
// returns that beginning padded with zeros to a full segment, as
// pg_receivewal leaves a .partial file: recovery replays it to its last
// complete record. A missing file wraps ErrNotFound; damaged content
// wraps repo.ErrCorrupt.
func (a *Archive) Fetch(ctx context.Context, name string) ([]byte, error) {
	data, err := a.FetchComplete(ctx, name)
	if errors.Is(err, ErrNotFound) {
		if kind, seg, _ := Classify(name); kind == KindSegment {
			return a.fetchPartial(ctx, seg)
		}
	}
	return data, err
}

func (a *Archive) get(ctx context.Context, key string) ([]byte, error) {
	hb, data, err := a.r.GetObject(ctx, key, headerLen)
	if err != nil {
		return nil, err
	}
	return a.check(key, hb, data)
}

// VerifyObject checks the raw bytes of an archive object, as a copy
// reads them: header, authentication, content hash. raw is not modified.
func (a *Archive) VerifyObject(key string, raw []byte) error {
	hb, data, err := a.r.OpenObject(key, bytes.Clone(raw), headerLen)
	if err != nil {
		return err
	}
	_, err = a.check(key, hb, data)
	return err
}

func (a *Archive) check(key string, hb, data []byte) ([]byte, error) {
	h, err := parseHeader(key, hb)
	if err != nil {
		return nil, err
	}
	if a.r.Key().Hash(data) != h.ID {
		return nil, fmt.Errorf("%w: %s: content does not match its hash", repo.ErrCorrupt, key)
	}
	return data, nil
}

// FetchComplete is Fetch without the fallback to a streamed beginning: it
// returns only files archived whole, which never change, and so may be
// fetched ahead of time and kept.
func (a *Archive) FetchComplete(ctx context.Context, name string) ([]byte, error) {
	key, err := objectKey(name)
	if err != nil {
		return nil, err
	}
	data, err := a.get(ctx, key)
	if errors.Is(err, repo.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return data, err
}

// Has reports whether the file called name is archived (a partial segment
// does not count).
func (a *Archive) Has(ctx context.Context, name string) (bool, error) {
	key, err := objectKey(name)
	if err != nil {
		return false, err
	}
	_, err = a.readHeader(ctx, key)
	if errors.Is(err, repo.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// piece is one stored range of a partial segment.
type piece struct {
	key      string
	from, to uint64 // byte offsets within the segment
}

func parsePieceName(name string) (from, to uint64, ok bool) {
	f, t, ok := strings.Cut(name, "-")
	if !ok || len(f) != 8 || len(t) != 8 {
		return 0, 0, false
	}
	var err1, err2 error
	from, err1 = parseHex(f)
	to, err2 = parseHex(t)
	return from, to, err1 == nil && err2 == nil && from < to
}

func parseHex(s string) (uint64, error) { return strconv.ParseUint(s, 16, 32) }

func (a *Archive) pieces(ctx context.Context, seg wal.SegmentName) ([]piece, error) {
	dir := segDir(seg) + seg.String() + streamDir
	var out []piece
	for key, err := range a.r.Store().List(ctx, dir) {
		if err != nil {
			return nil, err
		}
		from, to, ok := parsePieceName(path.Base(key))
		if !ok {
			continue
		}
		out = append(out, piece{key: key, from: from, to: to})
	}
	sortPieces(out)
	return out, nil
}

// PushPartial stores bytes [from, from+len(data)) of segment seg, streamed
// before the segment is complete. Pieces may overlap; Fetch uses the
// longest run that starts at the beginning of the segment.
func (a *Archive) PushPartial(ctx context.Context, seg wal.SegmentName, from uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	key := pieceKey(seg, from, from+uint64(len(data)))
	h := header{Pushed: time.Now(), ID: a.r.Key().Hash(data)}
	if err := a.r.PutObject(ctx, key, h.marshal(), data); err != nil {
		return fmt.Errorf("push partial %s: %w", seg, err)
	}
	return nil
}

func pieceKey(seg wal.SegmentName, from, to uint64) string {
	return fmt.Sprintf("%s%s%s%08x-%08x", segDir(seg), seg, streamDir, from, to)
}

// DeletePiece removes the piece [from, to) of seg, once a larger piece
// written by PushPartial covers it.
func (a *Archive) DeletePiece(ctx context.Context, seg wal.SegmentName, from, to uint64) error {
	return a.r.Store().Delete(ctx, pieceKey(seg, from, to))
}

// DropPartial removes the partial pieces of seg, once it is archived whole.
func (a *Archive) DropPartial(ctx context.Context, seg wal.SegmentName) error {
	ps, err := a.pieces(ctx, seg)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := a.r.Store().Delete(ctx, p.key); err != nil {
			return err
		}
	}
	return nil
}

// partialRun returns how many bytes from the start of seg the pieces cover
// without a hole, and the pieces that make up that run.
func partialRun(ps []piece) (end uint64, run []piece) {
	for _, p := range ps {
		if p.from > end {
			break
		}
		if p.to > end {
			end = p.to
			run = append(run, p)
		}
	}
	return end, run
}

func (a *Archive) fetchPartial(ctx context.Context, seg wal.SegmentName) ([]byte, error) {
	ps, err := a.pieces(ctx, seg)
	if err != nil {
		return nil, err
	}
	end, run := partialRun(ps)
	if end == 0 {
		return nil, fmt.Errorf("%s: %w", seg, ErrNotFound)
	}
	info, err := a.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]byte, info.SegmentSize)
	for _, p := range run {
		data, err := a.get(ctx, p.key)
		if err != nil {
			return nil, err
		}
		if uint64(len(data)) != p.to-p.from || p.to > uint64(len(out)) {
			return nil, fmt.Errorf("%w: %s: %d bytes, its name says %d", repo.ErrCorrupt, p.key, len(data), p.to-p.from)
		}
		copy(out[p.from:], data)
	}
	return out, nil
}

// Partial returns how far the receiver has streamed segment seg: the
// number of bytes from its start that the archive holds without a hole.
func (a *Archive) Partial(ctx context.Context, seg wal.SegmentName) (uint64, error) {
	ps, err := a.pieces(ctx, seg)
	if err != nil {
		return 0, err
	}
	end, _ := partialRun(ps)
	return end, nil
}

// History returns the parsed history of timeline tli (nil for timeline 1).
func (a *Archive) History(ctx context.Context, tli wal.TimelineID) ([]wal.HistoryEntry, error) {
	if tli == 1 {
		return nil, nil
	}
	data, err := a.Fetch(ctx, wal.HistoryFileName(tli))
	if err != nil {
		return nil, err
	}
	return wal.ParseHistory(string(data))
}
