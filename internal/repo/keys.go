package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/crypto/scrypt"
)

// ErrWrongPassword is returned by Open when no key file of the repository
// can be unwrapped with the passphrase.
var ErrWrongPassword = errors.New("wrong repository passphrase: no key of this repository opens with it")

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

func wrapKey(master, password []byte, params KDFParams) (keyFile, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return keyFile{}, err
	}
	kek, err := params.derive(password, salt)
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
		KDF:     "scrypt",
		Params:  params,
		Salt:    salt,
		Data:    seal(aead, nil, master),
	}, nil
}

func (kf keyFile) unwrap(password []byte) ([]byte, error) {
	if kf.KDF != "scrypt" {
		return nil, fmt.Errorf("key file: unknown kdf %q", kf.KDF)
	}
	kek, err := kf.Params.derive(password, kf.Salt)
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
