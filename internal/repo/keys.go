package repo

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"
)

// ErrWrongPassword is returned by Open when no key file of the repository
// can be unwrapped with the passphrase.
var ErrWrongPassword = errors.New("wrong repository passphrase: no key of this repository opens with it")

// A repository opens with a passphrase or with a key file. A passphrase
// may be guessable, so the key that wraps the master key is derived from
// it by scrypt, which costs about 100 ms per open on purpose. A key file
// holds 256 random bits and cannot be guessed: its wrapping key is derived
// by HKDF-SHA256 in microseconds. That matters to archive_command, which
// opens the repository once per WAL segment. A key file is text,
// "bulwark-key:v1:" and the base64url of the bits, and stands wherever a
// passphrase (file) does: Open recognises it by that prefix.
const keyFilePrefix = "bulwark-key:v1:"

// NewKeyFile returns the content of a new random key file.
func NewKeyFile() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return []byte(keyFilePrefix + base64.RawURLEncoding.EncodeToString(b) + "\n")
}

// IsKeyFile reports whether secret is the content of a key file.
func IsKeyFile(secret []byte) bool {
	_, ok := keyFileBits(secret)
	return ok
}

// keyFileBits returns the random bits of a key file's content, if secret is one.
func keyFileBits(secret []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(secret), []byte(keyFilePrefix))
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(string(rest))
	if err != nil || len(b) != 32 {
		return nil, false
	}
	return b, true
}

const (
	kdfScrypt = "scrypt"
	kdfHKDF   = "hkdf-sha256"
)

// KDFParams are the scrypt parameters that turn a passphrase into the key
// that wraps the master key. They are stored in each key file.
type KDFParams struct {
	N int `json:"n"`
	R int `json:"r"`
	P int `json:"p"`
}

// DefaultKDF costs about 100 ms and 32 MiB per unwrap on a current core:
// cheap for one command, expensive for a guesser.
var DefaultKDF = KDFParams{N: 1 << 15, R: 8, P: 1}

// keyFile is the JSON stored at keys/<id>. It holds the master key wrapped
// (AES-256-GCM) by a key derived from a passphrase; never the passphrase.
type keyFile struct {
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Data    []byte    `json:"data"` // nonce||AES-GCM(master key)
}

func (p KDFParams) derive(password, salt []byte) ([]byte, error) {
	k, err := scrypt.Key(password, salt, p.N, p.R, p.P, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return k, nil
}

// deriveKEK derives the key-encryption key from a passphrase or a key file.
func deriveKEK(kdf string, params KDFParams, secret, salt []byte) ([]byte, error) {
	if kdf == kdfHKDF {
		bits, ok := keyFileBits(secret)
		if !ok {
			return nil, ErrWrongPassword
		}
		return hkdf.Key(sha256.New, bits, salt, "bulwark key file v1", 32)
	}
	if _, ok := keyFileBits(secret); ok {
		return nil, ErrWrongPassword // a key file never opens a passphrase's key
	}
	return params.derive(secret, salt)
}

func wrapKey(master, password []byte, params KDFParams) (keyFile, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return keyFile{}, err
	}
	kdf := kdfScrypt
	if _, ok := keyFileBits(password); ok {
		kdf, params = kdfHKDF, KDFParams{}
	}
	kek, err := deriveKEK(kdf, params, password, salt)
	if err != nil {
		return keyFile{}, err
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return keyFile{}, err
	}
	host, _ := os.Hostname()
	return keyFile{
		Created: time.Now().UTC(),
		Host:    host,
		KDF:     kdf,
		Params:  params,
		Salt:    salt,
		Data:    seal(aead, nil, master),
	}, nil
}

func (kf keyFile) unwrap(password []byte) ([]byte, error) {
	if kf.KDF != kdfScrypt && kf.KDF != kdfHKDF {
		return nil, fmt.Errorf("key file: unknown kdf %q", kf.KDF)
	}
	kek, err := deriveKEK(kf.KDF, kf.Params, password, kf.Salt)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	master, err := open(aead, nil, kf.Data)
	if err != nil {
		return nil, ErrWrongPassword
	}
	return master, nil
}

// findKey tries the passphrase against every key file of the store.
func findKey(ctx context.Context, s Store, password []byte) (*Key, error) {
	tried := 0
	for name, err := range s.List(ctx, "keys/") {
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		var kf keyFile
		if err := getJSON(ctx, s, name, &kf); err != nil {
			return nil, fmt.Errorf("read key %s: %w", name, err)
		}
		tried++
		master, err := kf.unwrap(password)
		if errors.Is(err, ErrWrongPassword) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		return newKey(master)
	}
	if tried == 0 {
		return nil, fmt.Errorf("%w: no key files in %s", ErrNotRepository, s.Location())
	}
	return nil, ErrWrongPassword
}

func getJSON(ctx context.Context, s Store, key string, v any) error {
	b, err := getAll(ctx, s, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: decode %s: %v", ErrCorrupt, key, err)
	}
	return nil
}

func putJSON(ctx context.Context, s Store, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return s.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
}

func getAll(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

// AddKey wraps the master key with another passphrase or key file, so
// that either opens the repository. Nothing is re-encrypted.
func (r *Repo) AddKey(ctx context.Context, secret []byte) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("add key: empty passphrase")
	}
	kf, err := wrapKey(r.key.material, secret, r.opts.KDF)
	if err != nil {
		return "", err
	}
	name := randomName()
	if err := putJSON(ctx, r.store, "keys/"+name, kf); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return name, nil
}

// KeyInfo describes one wrapping of the master key (never the key).
type KeyInfo struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // passphrase or key-file
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
}

// Keys lists the repository's key files.
func (r *Repo) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	for name, err := range r.store.List(ctx, "keys/") {
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		var kf keyFile
		if err := getJSON(ctx, r.store, name, &kf); err != nil {
			return nil, fmt.Errorf("read key %s: %w", name, err)
		}
		kind := "passphrase"
		if kf.KDF == kdfHKDF {
			kind = "key-file"
		}
		out = append(out, KeyInfo{ID: strings.TrimPrefix(name, "keys/"), Kind: kind, Created: kf.Created, Host: kf.Host})
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// RemoveKey deletes key file id (a full ID or a unique prefix of at least
// 8 characters) so that its passphrase or key file no longer opens the
// repository. The last key is never removed. Data is not re-encrypted: the
// master key stays the same, so anyone who copied it (or an old key file
// together with its secret) keeps access; rotate the repository to revoke
// that.
func (r *Repo) RemoveKey(ctx context.Context, id string) (string, error) {
	keys, err := r.Keys(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, k := range keys {
		if strings.HasPrefix(k.ID, id) {
			match = append(match, k.ID)
		}
	}
	switch {
	case len(id) < 8:
		return "", fmt.Errorf("key %q: give at least 8 characters of its ID (bulwark repo key list)", id)
	case len(match) == 0:
		return "", fmt.Errorf("no key %q in %s (bulwark repo key list)", id, r.Location())
	case len(match) > 1:
		return "", fmt.Errorf("key %q is ambiguous: %s", id, strings.Join(match, ", "))
	case len(keys) == 1:
		return "", errors.New("refusing to remove the repository's last key: add another first (bulwark repo key add)")
	}
	if err := r.store.Delete(ctx, "keys/"+match[0]); err != nil {
		return "", fmt.Errorf("remove key: %w", err)
	}
	return match[0], nil
}
