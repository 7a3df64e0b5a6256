package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// errNoSeed means the repository has no backup a replica could start from.
var errNoSeed = errors.New("no physical backup of this cluster in the repository")

// seedReplica restores the newest physical backup of the cluster (system
// identifier systemID) from the plan's first repository into dataDir, so a
// new replica starts without loading the primary. The replica then replays
// the archived WAL (replicaRestoreCommand) and streams.
func (a *app) seedReplica(ctx context.Context, dataDir string, systemID uint64) (string, error) {
	r, err := a.openRepo(ctx, repoFlags{})
	if err != nil {
		return "", err
	}
	infos, err := backup.List(ctx, r)
	if err != nil {
		return "", err
	}
	var pick *backup.Info
	for _, in := range infos { // oldest first
		if in.Type != backup.Logical && in.SystemID == strconv.FormatUint(systemID, 10) {
			pick = in
		}
	}
	if pick == nil {
		return "", errNoSeed
	}
	_, err = backup.Restore(ctx, r, backup.RestoreOptions{Backup: pick.ID, PGData: dataDir, Logger: a.log,
		Archive: archive.New(r), ReadAhead: readAheadFor(r.Location())})
	return pick.ID, err
}

// replicaRestoreCommand is the restore_command of the cluster's replicas:
// WAL the primary no longer keeps comes from the plan's first repository.
// "" when the plan archives no WAL, or when the repository's passphrase is
// not in a file (the agents could not hand it to PostgreSQL without putting
// it in the environment).
func replicaRestoreCommand(p *plan.Plan) (string, error) {
	return walCommand(p, "fetch", "%f %p")
}

// archiveCommand is the archive_command the agents set when the plan
// archives WAL with archive_command: bulwark wal push into the plan's first
// repository. "" for another archiving mode.
func archiveCommand(p *plan.Plan) (string, error) {
	if p.Archiving.Mode != plan.ArchiveCommand {
		return "", nil
	}
	return walCommand(p, "push", "%p")
}

// walCommand is this binary's `wal VERB` on the plan's first repository,
// shell-quoted, followed by PostgreSQL's placeholders; "" when the plan
// archives no WAL or its repository has no password file.
func walCommand(p *plan.Plan, verb, placeholders string) (string, error) {
	if p.Archiving.Mode == plan.ArchiveNone || len(p.Repositories) == 0 || p.Repositories[0].PasswordFile == "" {
		return "", nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.Abs(exe); err != nil {
		return "", err
	}
	r := p.Repositories[0]
	argv := []string{exe, "wal", verb, "--repo", r.URL, "--password-file", r.PasswordFile}
	for i, s := range argv {
		argv[i] = shellQuote(s)
	}
	return strings.Join(argv, " ") + " " + placeholders, nil
}
