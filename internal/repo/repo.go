package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// FormatVersion is the version of the repository format this code writes.
// docs/repo-format.md describes every version.
const FormatVersion = 1

// ErrNotRepository is returned by Open when the location holds no repository.
var ErrNotRepository = errors.New("no repository here")

// ErrExists is returned by Init when the location already holds a repository.
var ErrExists = errors.New("a repository already exists here")

// Config is the repository's configuration, stored encrypted at "config".
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// Options tune a repository handle. The zero value means defaults.
type Options struct {
	Logger *slog.Logger
	// KDF is used when Init or AddKey wraps the master key. Zero: DefaultKDF.
	KDF KDFParams
	// PackSize is the size at which a pack is closed and uploaded.
	PackSize int
	// CompressLevel is the zstd level for blobs (zstd.SpeedFastest if zero).
	CompressLevel zstd.EncoderLevel
	// StrongLevel is the zstd level of Strong compression
	// (zstd.SpeedBestCompression if zero).
	StrongLevel zstd.EncoderLevel
	// SkipIndex opens without reading the index: for callers that only
	// use documents and objects (WAL push and fetch), which must start fast
	// however large the repository has grown.
	SkipIndex bool
}

// DefaultPackSize keeps packs large enough that thousands of small files do
// not become thousands of objects, and small enough to hold in memory.
const DefaultPackSize = 16 << 20

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KDF.N == 0 {
		o.KDF = DefaultKDF
	}
	if o.PackSize == 0 {
		o.PackSize = DefaultPackSize
	}
	if o.CompressLevel == 0 {
		o.CompressLevel = zstd.SpeedFastest
	}
	if o.StrongLevel == 0 {
		o.StrongLevel = zstd.SpeedBestCompression
	}
	return o
}

// Repo is an open repository. It is safe for concurrent use.
type Repo struct {
	store  Store
	key    *Key
	config Config
	opts   Options
	log    *slog.Logger

	index *Index

	mu      sync.Mutex
	packer  *packer
	pending map[ID]struct{} // reserved or packed, not yet indexed
	unsaved []packIndex     // uploaded packs not yet written to an index file

	enc       *zstd.Encoder // Fast: blobs and sealed documents
	encStrong *zstd.Encoder // Strong
	dec       *zstd.Decoder

	added atomic.Int64 // sealed bytes stored since Open

	ra *readAhead // nil: LoadBlob reads each blob on its own
}

// Init creates a new repository in an empty store, with a random master key
// wrapped by password.
func Init(ctx context.Context, s Store, password []byte, opts Options) (*Repo, error) {
	opts = opts.withDefaults()
	if len(password) == 0 {
		return nil, errors.New("init repository: empty passphrase")
	}
	if _, err := getAll(ctx, s, "config"); err == nil {
		return nil, fmt.Errorf("init %s: %w", s.Location(), ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("init %s: %w", s.Location(), err)
	}
	master := make([]byte, masterKeySize)
	if _, err := rand.Read(master); err != nil {
		return nil, err
	}
	key, err := newKey(master)
	if err != nil {
		return nil, err
	}
	kf, err := wrapKey(master, password, opts.KDF)
	if err != nil {
		return nil, err
	}
	if err := putJSON(ctx, s, "keys/"+randomName(), kf); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	cfg := Config{Version: FormatVersion, ID: randomName(), Created: time.Now().UTC()}
	r, err := newRepo(s, key, cfg, opts)
	if err != nil {
		return nil, err
	}
	// The config goes last: a store with keys but no config is not a repository.
	if err := r.putSealed(ctx, "config", cfg); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return r, nil
}

// Open unlocks an existing repository with password and loads its index.
// It returns ErrWrongPassword or ErrNotRepository (wrapped) when it cannot.
func Open(ctx context.Context, s Store, password []byte, opts Options) (*Repo, error) {
	opts = opts.withDefaults()
	sealedConfig, err := getAll(ctx, s, "config")
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("open %s: %w (run 'bulwark repo init' first)", s.Location(), ErrNotRepository)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Location(), err)
	}
	key, err := findKey(ctx, s, password)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Location(), err)
	}
	r, err := newRepo(s, key, Config{}, opts)
	if err != nil {
		return nil, err
	}
	if err := r.unseal("config", sealedConfig, &r.config); err != nil {
		return nil, fmt.Errorf("open %s: read config: %w", s.Location(), err)
	}
	if r.config.Version != FormatVersion {
		return nil, fmt.Errorf("open %s: repository format version %d, this bulwark reads version %d", s.Location(), r.config.Version, FormatVersion)
	}
	if opts.SkipIndex {
		return r, nil
	}
	if err := r.loadIndex(ctx); err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Location(), err)
	}
	return r, nil
}

func newRepo(s Store, key *Key, cfg Config, opts Options) (*Repo, error) {
	enc, err := newEncoder(opts.CompressLevel)
	if err != nil {
		return nil, err
	}
	encStrong, err := newEncoder(opts.StrongLevel)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	return &Repo{
		store:     s,
		key:       key,
		config:    cfg,
		opts:      opts,
		log:       opts.Logger.With("component", "repo"),
		index:     newIndex(),
		pending:   make(map[ID]struct{}),
		enc:       enc,
		encStrong: encStrong,
		dec:       dec,
	}, nil
}

// AddedBytes returns how many bytes of blobs this handle has stored.
func (r *Repo) AddedBytes() int64 { return r.added.Load() }

// newEncoder makes an encoder for EncodeAll from any goroutine. No zstd
// frame checksum: every blob already carries a keyed hash and a GCM tag.
//
// Blobs are at most a few MiB (1 MiB stream chunks, 256 KiB blocks), so a
// window beyond maxWindow finds nothing more and only costs memory: the
// strongest level would otherwise take some 60 MiB per encoder.
func newEncoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(maxWindow), zstd.WithLowerEncoderMem(true))
}

const maxWindow = 1 << 20

// Store returns the underlying store.
func (r *Repo) Store() Store { return r.store }

// Key returns the repository's master key.
func (r *Repo) Key() *Key { return r.key }

// Config returns the repository configuration.
func (r *Repo) Config() Config { return r.config }

// Location describes where the repository lives.
func (r *Repo) Location() string { return r.store.Location() }

// putSealed stores v as zstd-compressed, encrypted JSON.
func (r *Repo) putSealed(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed := r.key.Seal(nil, r.enc.EncodeAll(b, nil))
	return r.store.Put(ctx, key, bytes.NewReader(sealed), int64(len(sealed)))
}

// getSealed reads an object written by putSealed.
func (r *Repo) getSealed(ctx context.Context, key string, v any) error {
	sealed, err := getAll(ctx, r.store, key)
	if err != nil {
		return err
	}
	return r.unseal(key, sealed, v)
}

// unseal decodes the bytes of an object written by putSealed.
func (r *Repo) unseal(key string, sealed []byte, v any) error {
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	raw, err := r.dec.DecodeAll(plain, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: decompress: %v", ErrCorrupt, key, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %s: decode: %v", ErrCorrupt, key, err)
	}
	return nil
}

// SaveDoc stores v, encrypted, as document name of kind (for example
// kind "backups"). It replaces an existing document atomically.
func (r *Repo) SaveDoc(ctx context.Context, kind, name string, v any) error {
	if err := checkName(name); err != nil {
		return err
	}
	return r.putSealed(ctx, kind+"/"+name, v)
}

// LoadDoc reads document name of kind into v. It returns an error wrapping
// ErrNotFound when there is none.
func (r *Repo) LoadDoc(ctx context.Context, kind, name string, v any) error {
	if err := checkName(name); err != nil {
		return err
	}
	return r.getSealed(ctx, kind+"/"+name, v)
}

// ListDocs returns the names of the documents of kind, unsorted.
func (r *Repo) ListDocs(ctx context.Context, kind string) ([]string, error) {
	var names []string
	for key, err := range r.store.List(ctx, kind+"/") {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		name := strings.TrimPrefix(key, kind+"/")
		if strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid document name %q", name)
	}
	return nil
}

func randomName() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
