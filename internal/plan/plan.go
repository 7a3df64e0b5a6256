// Package plan owns the DR plan file, bulwark.yaml: its schema, how it is
// read, and the checks that reject a bad plan before anything acts on it.
//
// A plan is strict. Unknown keys, wrong types, out-of-range values and
// passwords are errors, and Parse reports every problem it finds, each with
// its file, line, column and field path (see Error). The checks are about the
// plan alone: the package does not look at the machine it runs on (whether
// pgdata exists, whether a repository is reachable), reads no environment
// variables or flags, and never writes. The cli package turns a Plan into the
// Options of the packages that act on it. docs/plan.md describes the schema.
package plan

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Version is the only plan schema version this package reads.
const Version = 1

// MaxSize is the largest plan file Parse accepts. A plan is a few kilobytes.
// The cap bounds the work of goccy/go-yaml's parser, which is quadratic in
// the number of keys of a mapping (40,000 keys take seconds).
const MaxSize = 64 << 10

// Plan is a parsed and validated plan file.
type Plan struct {
	Version      int // always Version
	Service      Service
	Postgres     Postgres
	Repositories []Repository // at least one; names are unique
	Path         string       // the file the plan came from, as given to Load or Parse
}

// Service says what is protected and how much loss and downtime it tolerates.
type Service struct {
	Name string        // matches [a-z0-9][a-z0-9_-]*
	Tier int           // 0 (mission critical) to 4 (non-critical)
	RTO  time.Duration // recovery time objective; > 0
	RPO  time.Duration // recovery point objective; >= 0, where 0 means no data loss
}

// Postgres locates the local PostgreSQL instance.
type Postgres struct {
	PGData string // data directory; absolute and cleaned
	DB     string // libpq connection string or URL; "" lets libpq use its defaults
	BinDir string // directory of pg_ctl, initdb and friends; absolute and cleaned
}

// DefaultBinDir is Postgres.BinDir when the plan names none (Debian and
// Ubuntu's layout for PostgreSQL 15).
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Repository is a place backups and WAL are stored.
type Repository struct {
	Name         string // unique in the plan; "" for a URL that names no plan repository
	URL          string // file:///absolute/path, or s3://bucket/prefix (not usable yet)
	PasswordFile string // absolute path of the file holding the passphrase; "" if not set
}

// Load reads the plan file at path and parses it with Parse. A file that
// cannot be read gives an error wrapping the os error (errors.Is(err,
// fs.ErrNotExist) works); a bad plan gives an *Error.
func Load(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	// One byte past the cap lets Parse see that the file is too large
	// without reading all of it.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates the plan in data. file names it in problems and
// becomes Plan.Path; Parse does not read it. Defaults are filled in. On any
// problem Parse returns a nil Plan and an *Error listing all of them.
func Parse(file string, data []byte) (*Plan, error) {
	d := newDecoder(file)
	p := d.decode(data)
	if p != nil {
		d.validate(p)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	p.Path = file
	p.Postgres.PGData = filepath.Clean(p.Postgres.PGData)
	p.Postgres.BinDir = filepath.Clean(cmp.Or(p.Postgres.BinDir, DefaultBinDir))
	for i, r := range p.Repositories {
		if r.PasswordFile != "" {
			p.Repositories[i].PasswordFile = filepath.Clean(r.PasswordFile)
		}
	}
	return p, nil
}

// Repository picks the repository a command works on. An empty nameOrURL is
// the plan's first repository; a name of one of the plan's repositories is
// that repository; anything else must be a repository URL, returned as a
// Repository with no name or password file. p may be nil (no plan file), in
// which case only a URL is accepted. The URL is checked as a plan's would be:
// supported scheme, and no password in it.
func (p *Plan) Repository(nameOrURL string) (Repository, error) {
	if p != nil {
		if nameOrURL == "" && len(p.Repositories) > 0 {
			return p.Repositories[0], nil
		}
		for _, r := range p.Repositories {
			if r.Name == nameOrURL {
				return r, nil
			}
		}
	}
	if nameOrURL == "" {
		return Repository{}, errors.New("no repository: give a repository URL or a plan")
	}
	if !strings.Contains(nameOrURL, ":") {
		// Plan names cannot contain ":", so this was meant as a name.
		if p == nil {
			return Repository{}, fmt.Errorf("repository %q: no plan to look the name up in; give a URL such as file:///var/lib/bulwark/repo", nameOrURL)
		}
		return Repository{}, fmt.Errorf("plan %s has no repository named %q (it has %s)", p.Path, nameOrURL, strings.Join(p.repositoryNames(), ", "))
	}
	if msg := checkRepositoryURL(nameOrURL); msg != "" {
		// The URL is not echoed: it may carry a password.
		return Repository{}, fmt.Errorf("repository URL: %s", msg)
	}
	return Repository{URL: nameOrURL}, nil
}

func (p *Plan) repositoryNames() []string {
	names := make([]string, len(p.Repositories))
	for i, r := range p.Repositories {
		names[i] = r.Name
	}
	return names
}
