package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

func (a *app) newRepoSyncCmd() *cobra.Command {
	var f repoFlags
	var to string
	var jobs int
	cmd := &cobra.Command{
		Use:   "sync --from REPO --to REPO",
		Short: "Copy the backups and WAL a repository's copy lacks (3-2-1: a second medium, offsite)",
		Long: `Copy into --to every object of --from that it lacks: backups, packs, index, WAL,
keys. --to is an empty location (the copy is created) or an earlier copy of
--from; each copy is a repository in its own right, opened with the same
passphrases, and restores on its own. Objects never change once written, so an
object the copy has is not read again: syncing a synced pair only lists. Every
object is checked before it is written (packs against their hash, the rest by
decryption); a damaged one stops the sync and is not copied. Interrupted, it
resumes where it stopped when run again. Repositories are plan names or URLs.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if f.repo == "" || to == "" {
				return usageError{errors.New("give both --from and --to (plan repository names or URLs)")}
			}
			src, err := a.openRepoWith(ctx, f, repo.Options{SkipIndex: true})
			if err != nil {
				return err
			}
			pr, err := a.resolveRepo(repoFlags{repo: to})
			if err != nil {
				return err
			}
			if pr.URL == src.Location() {
				return usageError{fmt.Errorf("--from and --to are the same repository (%s)", pr.URL)}
			}
			dst, err := a.initStore(ctx, pr.URL) // a sync to a new bucket creates it
			if err != nil {
				return err
			}
			lock, err := src.Lock(ctx, "sync", false)
			if err != nil {
				return err
			}
			defer lock.Unlock(ctx)
			st, err := repo.Sync(ctx, src, dst, syncOptions(src, jobs))
			if err != nil {
				return fmt.Errorf("sync %s to %s: %w (copied %d objects before stopping; run again to resume)", src.Location(), dst.Location(), err, st.Copied)
			}
			if a.json() {
				return a.printJSON(map[string]any{"from": src.Location(), "to": dst.Location(), "objects_copied": st.Copied, "objects_present": st.Present, "bytes_copied": st.Bytes})
			}
			fmt.Fprintf(a.stdout, "synced %s to %s: %d objects copied (%s), %d already there\n", src.Location(), dst.Location(), st.Copied, humanBytes(st.Bytes), st.Present)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.repo, "from", "", "repository to copy from (plan name or URL)")
	cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "passphrase or key file of --from (the copy opens with the same)")
	cmd.Flags().StringVar(&to, "to", "", "repository to copy into (plan name or URL): empty, or a copy of --from")
	cmd.Flags().IntVar(&jobs, "jobs", 4, "objects copied at once")
	return cmd
}

// teeCopies brings each repository of also up to date as a copy of r (a
// sync; an empty location becomes a copy) and returns a handle on r that
// writes to all of them.
func (a *app) teeCopies(ctx context.Context, r *repo.Repo, also []string) (*repo.Repo, error) {
	var stores []repo.Store
	for _, name := range also {
		pr, err := a.resolveRepo(repoFlags{repo: name})
		if err != nil {
			return nil, err
		}
		if pr.URL == r.Location() {
			return nil, usageError{fmt.Errorf("--also %s is the repository itself", name)}
		}
		dst, err := a.initStore(ctx, pr.URL)
		if err != nil {
			return nil, err
		}
		st, err := repo.Sync(ctx, r, dst, syncOptions(r, 0))
		if err != nil {
			return nil, fmt.Errorf("bring %s up to date before the backup: %w", dst.Location(), err)
		}
		a.log.Info("copy up to date", "copy", dst.Location(), "objects_copied", st.Copied)
		stores = append(stores, dst)
	}
	return r.Tee(stores...), nil
}

// syncOptions copies with jobs workers and has the archive check the WAL
// objects it copies.
func syncOptions(r *repo.Repo, jobs int) repo.SyncOptions {
	return repo.SyncOptions{Jobs: jobs, Verify: map[string]func(string, []byte) error{"wal/": archive.New(r).VerifyObject}}
}
