// Package plan owns the DR plan file, bulwark.yaml: its schema, how it is
// read, and the checks that reject a bad plan before anything acts on it.
//
// Check goes further: it takes a valid plan and says whether it can meet its
// own targets (the 3-2-1 rule, the RPO, the RTO), from the plan and from
// Facts measured elsewhere. It is pure: no I/O, no clock.
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
	Archiving    Archiving    // how WAL reaches the repositories between backups
	Replication  Replication  // how the primary replicates to its standbys
	Cluster      *Cluster     // the nodes and agents of an HA cluster; nil when the plan has none
	Schedules    []Schedule   // jobs run on a timetable; names are unique; may be empty
	Drills       Drills       // where drill results are kept
	Path         string       // the file the plan came from, as given to Load or Parse
}

// Service says what is protected and how much loss and downtime it tolerates.
type Service struct {
	Name string        // matches [a-z0-9][a-z0-9_-]*
	Tier int           // 0 (mission critical) to 4 (non-critical)
	RTO  time.Duration // recovery time objective; > 0
	RPO  time.Duration // recovery point objective; >= 0, where 0 means no data loss
	// Region is where the primary runs, such as eu-west-1; "" if the plan
	// does not say. A repository in another region is offsite.
	Region string
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
	Region       string // where the repository is, such as eu-central-1; "" if not said
	// Offsite, when set, says whether the repository is offsite whatever
	// Region says: true for another provider in the same region, false for
	// another zone of the same site. nil lets Region decide: a repository
	// is offsite when both it and the service have a region and they
	// differ.
	Offsite   *bool
	Retention Retention // which backups expire keeps; the zero value sets no policy
}

// Retention says which backups of a repository to keep, with the meaning of
// backup.Retention (cli copies it field by field): a backup is kept when any
// rule keeps it, and the newest backup always is. Each field is 0 when the
// plan does not set it; a zero Retention sets no policy, and expire then
// refuses to run.
type Retention struct {
	// Full keeps the Full newest full backups and every backup taken since
	// the oldest of them; >= 1 when set.
	Full int
	// Diff narrows what Full keeps to the Diff newest differential backups
	// (an incremental goes with the backup it follows); >= 0, 0 keeps all,
	// and only with Full.
	Diff    int
	Within  time.Duration // keep every backup that finished within this long; > 0 when set
	Daily   int           // keep the newest backup of each of the last Daily days; >= 0
	Weekly  int           // likewise for ISO weeks; >= 0
	Monthly int           // likewise for months; >= 0
}

// expires says whether r sets a policy: without one, backups pile up.
func (r Retention) expires() bool { return r != Retention{} }

// ArchiveMode is how WAL is copied into the repositories between backups.
type ArchiveMode string

const (
	ArchiveNone    ArchiveMode = "none"            // no WAL between backups: a restore reaches only a backup
	ArchiveCommand ArchiveMode = "archive_command" // bulwark wal push, one whole segment at a time
	// ArchiveReceiver streams WAL (bulwark wal receive), durable in the
	// repository at least every ReceiverFlushInterval.
	ArchiveReceiver ArchiveMode = "receiver"
	// ArchiveSyncReceiver streams WAL as a synchronous standby (bulwark wal
	// receive --synchronous): a commit returns only once its WAL is stored.
	ArchiveSyncReceiver ArchiveMode = "sync_receiver"
)

// DefaultArchiveMode is Archiving.Mode when the plan names none.
const DefaultArchiveMode = ArchiveNone

// ReceiverFlushInterval is the longest received WAL waits before it is
// durable in the repository with ArchiveReceiver: the default
// --flush-interval of bulwark wal receive (receive.DefaultFlushInterval).
const ReceiverFlushInterval = time.Second

// Archiving says how WAL reaches the repositories.
type Archiving struct {
	Mode ArchiveMode // DefaultArchiveMode when the plan says none
	// Timeout is the server's archive_timeout, the longest a partly filled
	// segment waits before archive_command gets it; >= 1s, and only with
	// ArchiveCommand. 0 when not set: on a quiet server a segment may then
	// wait for ever.
	Timeout time.Duration
}

// ReplicationMode is how the primary replicates to its standbys.
type ReplicationMode string

const (
	ReplicationNone   ReplicationMode = "none"   // no standbys
	ReplicationAsync  ReplicationMode = "async"  // a commit does not wait for standbys
	ReplicationSync   ReplicationMode = "sync"   // a commit waits for one standby (FIRST 1)
	ReplicationQuorum ReplicationMode = "quorum" // a commit waits for SyncCount standbys (ANY n)
)

// DefaultReplicationMode is Replication.Mode when the plan names none.
const DefaultReplicationMode = ReplicationNone

// Replication declares how the primary replicates to its standbys. The
// agents of Cluster apply it (and it can change at runtime through etcd);
// Check needs it to know whether an RPO of 0 can hold.
type Replication struct {
	Mode      ReplicationMode // DefaultReplicationMode when the plan says none
	SyncCount int             // standbys that confirm each commit with ReplicationQuorum (>= 1); 0 otherwise
	// Strict, with sync or quorum, refuses writes while too few standbys
	// are synchronous rather than fall back to async.
	Strict bool
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
	p.Archiving.Mode = cmp.Or(p.Archiving.Mode, DefaultArchiveMode)
	p.Replication.Mode = cmp.Or(p.Replication.Mode, DefaultReplicationMode)
	p.fillClusterDefaults()
	if p.Drills.History == "" {
		p.Drills.History = filepath.Join(filepath.Dir(file), "drills")
	}
	p.Drills.History = filepath.Clean(p.Drills.History)
	for i := range p.Schedules {
		s := &p.Schedules[i]
		s.Repository = cmp.Or(s.Repository, p.Repositories[0].Name)
	}
	return p, nil
}

// Drills configures DR drills.
type Drills struct {
	// History is the directory drill results and reports are kept in;
	// default "drills" beside the plan file.
	History string
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
