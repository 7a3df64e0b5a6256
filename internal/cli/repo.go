package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/backup"
	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/fsstore"
)

// repoFlags name a repository and its passphrase.
type repoFlags struct {
	repo         string
	passwordFile string
}

func (f *repoFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.repo, "repo", "", "repository URL (file:///path or s3://bucket/prefix) or name from the plan; env BULWARK_REPO")
	cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "file holding the repository passphrase, or a key file (repo key add --new-key-file); env BULWARK_REPO_PASSWORD_FILE or BULWARK_REPO_PASSWORD")
}

// resolve applies flag > env > plan precedence.
func (a *app) resolveRepo(f repoFlags) (plan.Repository, error) {
	name := f.repo
	if name == "" {
		name = a.getenv("BULWARK_REPO")
	}
	if a.plan != nil {
		return a.plan.Repository(name)
	}
	if name == "" {
		return plan.Repository{}, usageError{errors.New("no repository: pass --repo URL, set BULWARK_REPO, or name a plan with --plan")}
	}
	return plan.Repository{URL: name}, nil
}

func (a *app) password(f repoFlags, r plan.Repository) ([]byte, error) {
	file := a.passwordFile(f, r)
	if file == "" {
		if pw := a.getenv("BULWARK_REPO_PASSWORD"); pw != "" {
			return []byte(pw), nil
		}
		return nil, usageError{errors.New("no repository passphrase: set BULWARK_REPO_PASSWORD or BULWARK_REPO_PASSWORD_FILE, or pass --password-file")}
	}
	return readPassphrase(file)
}

// passwordFile is the file the passphrase (or key file) comes from, in
// the order flag, BULWARK_REPO_PASSWORD_FILE, BULWARK_REPO_PASSWORD (then
// none: ""), the plan.
func (a *app) passwordFile(f repoFlags, r plan.Repository) string {
	if f.passwordFile != "" {
		return f.passwordFile
	}
	if file := a.getenv("BULWARK_REPO_PASSWORD_FILE"); file != "" {
		return file
	}
	if a.getenv("BULWARK_REPO_PASSWORD") != "" {
		return ""
	}
	return r.PasswordFile
}

// readPassphrase reads a passphrase or key file, without its final newline.
func readPassphrase(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	pw := trimNL(string(b))
	if pw == "" {
		return nil, fmt.Errorf("passphrase file %s is empty", file)
	}
	return []byte(pw), nil
}

// openStore turns a repository URL into a Store: file:///abs/path, or
// s3://bucket/prefix configured from the AWS environment (s3.go).
func (a *app) openStore(ctx context.Context, rawURL string) (repo.Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, usageError{fmt.Errorf("repository URL %q: %w", redactURL(rawURL), err)}
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, usageError{fmt.Errorf("repository URL %q: a file URL has no host: use file:///abs/path", u.Redacted())}
		}
		if !filepath.IsAbs(u.Path) {
			return nil, usageError{fmt.Errorf("repository URL %q: path must be absolute", u.Redacted())}
		}
		return fsstore.New(u.Path), nil
	case "s3":
		return a.openS3Store(ctx, rawURL)
	case "":
		return nil, usageError{fmt.Errorf("repository %q is not a URL: use file:///abs/path or s3://bucket/prefix", u.Redacted())}
	}
	return nil, usageError{fmt.Errorf("repository URL %q: scheme %q is not supported (file:// and s3:// are)", u.Redacted(), u.Scheme)}
}

// openRepo opens the repository named by flags, env or plan.
func (a *app) openRepo(ctx context.Context, f repoFlags) (*repo.Repo, error) {
	return a.openRepoWith(ctx, f, repo.Options{})
}

// openRepoWith opens the repository with options (a logger is added).
func (a *app) openRepoWith(ctx context.Context, f repoFlags, opts repo.Options) (*repo.Repo, error) {
	pr, err := a.resolveRepo(f)
	if err != nil {
		return nil, err
	}
	s, err := a.openStore(ctx, pr.URL)
	if err != nil {
		return nil, err
	}
	pw, err := a.password(f, pr)
	if err != nil {
		return nil, err
	}
	opts.Logger = a.log
	return repo.Open(ctx, s, pw, opts)
}

func (a *app) newRepoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Create and check backup repositories"}
	cmd.AddCommand(a.newRepoInitCmd(), a.newRepoVerifyCmd(), a.newRepoKeyCmd(), a.newRepoSyncCmd())
	return cmd
}

func (a *app) newRepoInitCmd() *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create an encrypted repository",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pr, err := a.resolveRepo(f)
			if err != nil {
				return err
			}
			s, err := a.initStore(cmd.Context(), pr.URL)
			if err != nil {
				return err
			}
			pw, err := a.password(f, pr)
			if err != nil {
				return err
			}
			r, err := repo.Init(cmd.Context(), s, pw, repo.Options{Logger: a.log})
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"location": r.Location(), "id": r.Config().ID, "version": r.Config().Version})
			}
			fmt.Fprintf(a.stdout, "created repository %s at %s\n", r.Config().ID[:8], r.Location())
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) newRepoVerifyCmd() *cobra.Command {
	var f repoFlags
	var readData bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check a repository's structure, and with --read-data every byte of it",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openRepo(cmd.Context(), f)
			if err != nil {
				return err
			}
			pr := a.progress()
			rep, err := backup.Verify(cmd.Context(), r, readData, runtime.GOMAXPROCS(0), pr)
			a.endProgress(pr)
			if err != nil {
				return err
			}
			if a.json() {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printProblems(rep)
			}
			if !rep.OK() {
				return errDamaged
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "read, decrypt and hash every blob")
	return cmd
}

func (a *app) printProblems(rep *backup.VerifyReport) {
	for _, p := range rep.Problems {
		var where []string
		if p.Backup != "" {
			where = append(where, "backup "+p.Backup)
		}
		if p.File != "" {
			where = append(where, "file "+p.File)
		}
		fmt.Fprintf(a.stdout, "DAMAGED %s: %s\n", strings.Join(where, ", "), p.Err)
	}
	fmt.Fprintln(a.stdout, rep.Summary())
	if rep.Unreferenced > 0 {
		fmt.Fprintf(a.stdout, "%d packs are not referenced (left by interrupted writes; harmless)\n", rep.Unreferenced)
	}
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) endProgress(pr func(backup.Progress)) {
	if pr != nil {
		fmt.Fprintln(a.stderr)
	}
}
