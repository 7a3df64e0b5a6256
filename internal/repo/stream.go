package repo

import (
	"bytes"
	"context"
	"io"
)

// StreamChunk is the size of the blobs a stream is cut into. A manifest of
// any size is written and read with this much memory.
const StreamChunk = 1 << 20

// StreamWriter cuts a byte stream into tree blobs. It is not safe for
// concurrent use. Close returns nothing; IDs lists the blobs in order.
type StreamWriter struct {
	// ctx is kept because io.Writer's Write takes none; it bounds this
	// stream's blob writes and nothing else.
	ctx context.Context
	r   *Repo
	buf bytes.Buffer
	ids []ID
	err error
}

// NewStreamWriter starts a stream. ctx bounds every blob write it makes.
func (r *Repo) NewStreamWriter(ctx context.Context) *StreamWriter {
	return &StreamWriter{ctx: ctx, r: r}
}

func (w *StreamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.buf.Write(p)
	for w.buf.Len() >= StreamChunk {
		if err := w.emit(w.buf.Next(StreamChunk)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *StreamWriter) emit(chunk []byte) error {
	id, err := w.r.SaveBlob(w.ctx, BlobTree, chunk)
	if err != nil {
		w.err = err
		return err
	}
	w.ids = append(w.ids, id)
	return nil
}

// Finish stores what is buffered and returns the stream's blob IDs.
func (w *StreamWriter) Finish() ([]ID, error) {
	if w.err == nil && w.buf.Len() > 0 {
		w.emit(w.buf.Next(w.buf.Len()))
	}
	return w.ids, w.err
}

// OpenStream returns a reader over the stream made of blobs ids.
func (r *Repo) OpenStream(ctx context.Context, ids []ID) io.Reader {
	return &streamReader{ctx: ctx, r: r, ids: ids}
}

type streamReader struct {
	ctx context.Context // as in StreamWriter: io.Reader's Read takes none
	r   *Repo
	ids []ID
	cur []byte
	buf []byte
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if len(s.ids) == 0 {
			return 0, io.EOF
		}
		b, err := s.r.LoadBlob(s.ctx, s.ids[0], s.buf)
		if err != nil {
			return 0, err
		}
		s.buf, s.cur, s.ids = b, b, s.ids[1:]
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}
