// Package s3store is the repository Store on S3-compatible object storage
// (AWS S3, MinIO, Ceph RGW, versitygw…), through minio-go. Key K of the
// store at s3://bucket/prefix is the object "prefix/K" in the bucket.
//
// It owns the S3 client and the bounds below. It knows nothing of the
// repository format, never creates a bucket except in EnsureBucket, and never
// puts credentials in its errors or its Location.
//
// # Retries
//
// minio-go retries each request itself, up to Config.MaxAttempts attempts
// (default 6), sleeping before attempt n+1 a random time in
// [0, min(1 s, 200 ms × 2ⁿ)] (exponential backoff with full jitter, so at
// most 3.4 s in all). It retries network errors, HTTP 408, 429, 499, 500,
// 502, 503, 504 and 520, and S3 codes such as RequestTimeout, SlowDown,
// Throttling, InternalError and ExpiredToken; it does not retry a
// certificate that is not trusted. It re-sends a request body only if the
// body is seekable: Put makes sure it is (it reads a body that cannot seek,
// up to PartSize, into memory; minio-go buffers multipart parts itself).
//
// # Timeouts
//
// Connecting gives up after Config.DialTimeout (4 s), waiting for a
// response's headers after ResponseTimeout (1 min), and a read of an object
// that receives nothing for StallTimeout (1 min) fails. So a dead endpoint
// fails every call in bounded time with an error naming it: a stopped
// server (connection refused) after the backoff alone, about 3 s; a host
// that drops packets after MaxAttempts × DialTimeout plus the backoff, about
// 27 s. The caller's context bounds everything, including the wait for a
// slot.
//
// # Requests in flight
//
// At most Config.MaxInFlight requests (default 16) run at once; callers
// beyond that wait, or give up when their context ends. A Put holds one
// slot for its whole upload, buffering included (parts go one after the
// other), so memory stays under MaxInFlight × PartSize; a Get or
// GetRange from its request until its reader returns an error or EOF or is
// closed, a List for each page of 1000 keys (not while the caller handles
// them). A caller holding an unread reader while it waits for another call
// on the same Store can therefore wait for itself once all slots are taken:
// read or close readers first.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

var _ repo.Store = (*Store)(nil)

// listPage is how many keys List asks for at a time (S3's maximum).
const listPage = 1000

// Store keeps objects in one bucket under a prefix. It is safe for
// concurrent use.
type Store struct {
	client   *minio.Client
	cfg      Config // with defaults
	sem      chan struct{}
	sse      encrypt.ServerSide // nil: no request
	pageSize int                // keys per List request
}

// New returns a Store for cfg.Bucket and cfg.Prefix. It reads cfg.CAFile
// but makes no request: a missing bucket or a dead endpoint shows at the
// first call (EnsureBucket creates the bucket). ctx is not kept.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{client: client, cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight), pageSize: listPage}
	switch cfg.SSE {
	case SSES3:
		s.sse = encrypt.NewSSE()
	case SSEKMS:
		if s.sse, err = encrypt.NewSSEKMS(cfg.SSEKMSKeyID, nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Location returns s3://bucket/prefix.
func (s *Store) Location() string {
	if s.cfg.Prefix == "" {
		return "s3://" + s.cfg.Bucket
	}
	return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix
}

// object returns the object name of key.
func (s *Store) object(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.Contains("/"+key+"/", "/../") {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	if s.cfg.Prefix == "" {
		return key, nil
	}
	return s.cfg.Prefix + "/" + key, nil
}

// acquire takes a request slot, or returns ctx's error.
func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.sem }

// Put uploads the object in one PUT, or above Config.PartSize as a
// multipart upload; both are atomic: the object appears whole when the PUT
// (or the upload's completion) succeeds. An interrupted multipart upload
// leaves its parts on the server until a lifecycle rule aborts it. r must
// hold exactly size bytes (size < 0: unknown); otherwise Put fails and
// stores nothing.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	// The slot is taken first: it also bounds the memory of buffered bodies.
	if err := s.acquire(ctx); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer s.release()
	body, size, err := sized(r, size, s.cfg.PartSize)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	_, err = s.client.PutObject(ctx, s.cfg.Bucket, name, body, size, minio.PutObjectOptions{
		PartSize:             uint64(s.cfg.PartSize),
		NumThreads:           1, // one request per slot
		ServerSideEncryption: s.sse,
		ContentType:          "application/octet-stream",
	})
	if err != nil {
		return s.fail(ctx, "put", key, err)
	}
	return nil
}

// sized returns r as a body minio-go can retry and that holds exactly size
// bytes, and that size (which it works out when size < 0 and r can seek).
//   - A ReaderAt that seeks (bytes.Reader, os.File) is checked by seeking and
//     sent as a section of itself.
//   - Another reader of at most partSize bytes is read into memory.
//   - A larger one (or one of unknown size) is streamed through a check;
//     minio-go buffers and retries its parts one at a time.
func sized(r io.Reader, size, partSize int64) (io.Reader, int64, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		cur, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, 0, err
		}
		end, err := ra.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, err
		}
		if _, err := ra.Seek(cur, io.SeekStart); err != nil {
			return nil, 0, err
		}
		if size >= 0 && end-cur != size {
			return nil, 0, &sizeError{fmt.Sprintf("reader holds %d bytes, want %d", end-cur, size)}
		}
		return io.NewSectionReader(ra, cur, end-cur), end - cur, nil
	}
	if size < 0 || size > partSize {
		return &exactReader{r: r, left: size}, size, nil
	}
	buf := make([]byte, size)
	if n, err := io.ReadFull(r, buf); err != nil {
		return nil, 0, &sizeError{fmt.Sprintf("reader ended after %d bytes, want %d", n, size)}
	}
	if extra(r) {
		return nil, 0, &sizeError{fmt.Sprintf("reader holds more than %d bytes", size)}
	}
	return bytes.NewReader(buf), size, nil
}

// extra reports whether r has more to read.
func extra(r io.Reader) bool {
	var one [1]byte
	n, _ := io.ReadFull(r, one[:])
	return n > 0
}

// exactReader fails the upload when r does not hold exactly left bytes
// (left < 0: any number).
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left < 0 {
		return e.r.Read(p)
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.left)]
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0 && extra(e.r):
		return n, &sizeError{"reader holds more bytes than the size given"}
	case e.left > 0 && errors.Is(err, io.EOF):
		return n, &sizeError{fmt.Sprintf("reader ended %d bytes short", e.left)}
	}
	return n, err
}

// Get opens the whole object. It returns an error wrapping repo.ErrNotFound
// if the object is absent: the request is made before Get returns. The
// reader holds a request slot until it returns an error or EOF or is
// closed; the caller closes it.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.get(ctx, "get", key, minio.GetObjectOptions{})
}

// GetRange opens length bytes of the object from offset, as Get does. A
// range past the end of the object reads what there is (nothing if offset
// is at or past the end).
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range %d+%d", key, offset, length)
	}
	if length == 0 {
		if err := s.stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(offset, offset+length-1); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return s.get(ctx, "get", key, opts)
}

func (s *Store) get(ctx context.Context, op, key string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if err := s.acquire(ctx); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, key, err)
	}
	rc, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.cfg.Bucket, name, opts)
	if err != nil {
		s.release()
		if code(err) == minio.InvalidRange { // offset at or past the end
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, s.fail(ctx, op, key, err)
	}
	return newBody(rc, s.release, s.cfg.StallTimeout, key, s.cfg.Endpoint), nil
}

// stat checks that the object exists.
func (s *Store) stat(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.acquire(ctx); err != nil {
		return fmt.Errorf("stat %s: %w", key, err)
	}
	defer s.release()
	if _, err := s.client.StatObject(ctx, s.cfg.Bucket, name, minio.StatObjectOptions{}); err != nil {
		return s.fail(ctx, "stat", key, err)
	}
	return nil
}

// List yields the keys under prefix (without the store's prefix), in
// lexical order, a page of 1000 at a time. It stops at the first error,
// which it yields.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		full := prefix
		if s.cfg.Prefix != "" {
			full = s.cfg.Prefix + "/" + prefix
		}
		after := ""
		for {
			names, more, err := s.listPage(ctx, full, after)
			if err != nil {
				yield("", s.fail(ctx, "list", prefix, err))
				return
			}
			for _, n := range names {
				if s.cfg.Prefix != "" {
					n = strings.TrimPrefix(n, s.cfg.Prefix+"/")
				}
				if !yield(n, nil) {
					return
				}
			}
			if !more {
				return
			}
			after = names[len(names)-1]
		}
	}
}

// listPage returns up to s.pageSize object names under full that sort after
// after, and whether there may be more.
func (s *Store) listPage(ctx context.Context, full, after string) (names []string, more bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return nil, false, err
	}
	defer s.release()
	noOwner := false
	opts := minio.ListObjectsOptions{Prefix: full, Recursive: true, StartAfter: after, MaxKeys: s.pageSize, FetchOwner: &noOwner}
	// The iterator runs in this goroutine and stops requesting when we stop.
	for obj := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, opts) {
		if obj.Err != nil {
			return nil, false, obj.Err
		}
		names = append(names, obj.Key)
		if len(names) == s.pageSize {
			return names, true, nil
		}
	}
	if err := ctx.Err(); err != nil { // the iterator ends quietly when ctx does
		return nil, false, err
	}
	return names, false, nil
}

// Delete removes the object; an absent object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.acquire(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer s.release()
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, name, minio.RemoveObjectOptions{}); err != nil && code(err) != minio.NoSuchKey {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// EnsureBucket creates the bucket, in Config.Region, unless it exists, and
// reports whether it did. It is idempotent; repo init calls it.
func (s *Store) EnsureBucket(ctx context.Context) (created bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return false, s.fail(ctx, "check bucket", s.cfg.Bucket, err)
	}
	if ok {
		return false, nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	switch {
	case err == nil:
		return true, nil
	case code(err) == "BucketAlreadyOwnedByYou": // created meanwhile, by us
		return false, nil
	}
	return false, s.fail(ctx, "create bucket", s.cfg.Bucket, err)
}

// body is an object's content. It fails a read that gets nothing for
// timeout (by closing the response under it), and gives the request slot
// back once, at its first error or EOF or at Close.
type body struct {
	rc      io.ReadCloser
	done    func()
	timeout time.Duration
	timer   *time.Timer
	stalled atomic.Bool
	key     string
	where   string
	release sync.Once
}

func newBody(rc io.ReadCloser, release func(), timeout time.Duration, key, endpoint string) *body {
	b := &body{rc: rc, done: release, timeout: timeout, key: key, where: endpoint}
	b.timer = time.AfterFunc(timeout, func() {
		b.stalled.Store(true)
		rc.Close() // unblocks the Read
	})
	b.timer.Stop() // armed by each Read
	return b
}

func (b *body) Read(p []byte) (int, error) {
	b.timer.Reset(b.timeout)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil {
		if b.stalled.Load() {
			err = fmt.Errorf("get %s: no data from %s for %s", b.key, b.where, b.timeout)
		} else if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("get %s: read from %s: %w", b.key, b.where, err)
		}
		b.release.Do(b.done)
	}
	return n, err
}

func (b *body) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.release.Do(b.done)
	return err
}
