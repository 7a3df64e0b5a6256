package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/zeebo/blake3"
)

// ErrCorrupt marks data that failed authentication or a hash check.
// Callers branch on it to report corruption rather than an I/O failure.
var ErrCorrupt = errors.New("repository data is corrupt")

// ID names a blob: the keyed BLAKE3 hash of its plaintext, so that names
// leak nothing about the content to someone without the key.
type ID [32]byte

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, fmt.Errorf("parse id %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parse id %q: %w", s, err)
	}
	return id, nil
}

func (id ID) String() string       { return hex.EncodeToString(id[:]) }
func (id ID) Short() string        { return hex.EncodeToString(id[:4]) }
func (id ID) LogValue() slog.Value { return slog.StringValue(id.Short()) }

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// masterKeySize is the size of the random master key: 32 bytes for
// AES-256-GCM and 32 bytes for the keyed BLAKE3 that names blobs.
const masterKeySize = 64

// Key is a repository's master key, unwrapped. It is safe for concurrent use.
type Key struct {
	aead     cipher.AEAD
	mac      []byte
	material []byte // kept to wrap it again (AddKey)
}

func newKey(material []byte) (*Key, error) {
	if len(material) != masterKeySize {
		return nil, fmt.Errorf("master key: got %d bytes, want %d", len(material), masterKeySize)
	}
	aead, err := newAEAD(material[:32])
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead, mac: append([]byte(nil), material[32:]...), material: append([]byte(nil), material...)}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// Hash returns the keyed BLAKE3 hash of data: the blob ID it would have.
func (k *Key) Hash(data []byte) ID {
	h, err := blake3.NewKeyed(k.mac)
	if err != nil {
		panic(err) // the key length is checked in newKey
	}
	h.Write(data)
	var id ID
	h.Sum(id[:0])
	return id
}

// Hasher returns a keyed BLAKE3 hasher for streaming use.
func (k *Key) Hasher() *blake3.Hasher {
	h, err := blake3.NewKeyed(k.mac)
	if err != nil {
		panic(err)
	}
	return h
}

// Seal encrypts and authenticates plaintext, appending nonce||ciphertext to dst.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	return seal(k.aead, dst, plaintext)
}

// Open authenticates and decrypts nonce||ciphertext, appending to dst. A
// failed authentication returns an error wrapping ErrCorrupt.
func (k *Key) Open(dst, sealed []byte) ([]byte, error) {
	return open(k.aead, dst, sealed)
}

func seal(aead cipher.AEAD, dst, plaintext []byte) []byte {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	dst = append(dst, nonce...)
	return aead.Seal(dst, nonce, plaintext, nil)
}

func open(aead cipher.AEAD, dst, sealed []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed object too short (%d bytes)", ErrCorrupt, len(sealed))
	}
	out, err := aead.Open(dst, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	return out, nil
}

// OpenInPlace is Open that decrypts into sealed's own memory.
func (k *Key) OpenInPlace(sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed object too short (%d bytes)", ErrCorrupt, len(sealed))
	}
	out, err := k.aead.Open(sealed[n:n], sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	return out, nil
}

// SealedOverhead is how many bytes Seal adds to a plaintext.
const SealedOverhead = 12 + 16
