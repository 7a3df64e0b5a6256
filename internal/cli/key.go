package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

func (a *app) newRepoKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage the passphrases and key files that open a repository"}
	cmd.AddCommand(a.newRepoKeyAddCmd(), a.newRepoKeyListCmd(), a.newRepoKeyRemoveCmd())
	return cmd
}

func (a *app) newRepoKeyAddCmd() *cobra.Command {
	var f repoFlags
	var newPassword, newKeyFile string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Let another passphrase or a key file open the repository (nothing is re-encrypted)",
		Long: `Wrap the repository's master key with another passphrase (--new-password-file)
or with a key file (--new-key-file, created with 256 random bits if it does not
exist). The current passphrase or key file opens the repository first.

A key file opens the repository in microseconds, a passphrase in about 100 ms
(scrypt, on purpose): give archive_command a key file, as
--password-file /etc/bulwark/archive.key. Keep it as safe as the passphrase.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (newPassword == "") == (newKeyFile == "") {
				return usageError{errors.New("give one of --new-password-file or --new-key-file")}
			}
			r, err := a.openRepoWith(cmd.Context(), f, repo.Options{SkipIndex: true}) // keys only
			if err != nil {
				return err
			}
			var secret []byte
			created := false
			if newKeyFile != "" {
				if secret, err = os.ReadFile(newKeyFile); errors.Is(err, fs.ErrNotExist) {
					secret = repo.NewKeyFile()
					if err := os.WriteFile(newKeyFile, secret, 0o600); err != nil {
						return err
					}
					created = true
				} else if err != nil {
					return err
				}
				if !repo.IsKeyFile(secret) {
					return fmt.Errorf("%s is not a bulwark key file: remove it, or name a path that does not exist to create one", newKeyFile)
				}
			} else {
				if secret, err = readPassphrase(newPassword); err != nil {
					return err
				}
			}
			id, err := r.AddKey(cmd.Context(), secret)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"id": id, "key_file_created": created})
			}
			if created {
				fmt.Fprintf(a.stdout, "created key file %s\n", newKeyFile)
			}
			fmt.Fprintf(a.stdout, "added key %s\n", id[:8])
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&newPassword, "new-password-file", "", "file holding the passphrase to add")
	cmd.Flags().StringVar(&newKeyFile, "new-key-file", "", "key file to add (created if it does not exist)")
	return cmd
}

func (a *app) newRepoKeyListCmd() *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the passphrases and key files that open the repository (never the secrets)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openRepoWith(cmd.Context(), f, repo.Options{SkipIndex: true}) // keys only
			if err != nil {
				return err
			}
			keys, err := r.Keys(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(keys)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tCREATED\tHOST")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID[:8], k.Kind, k.Created.Local().Format(time.DateTime), k.Host)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) newRepoKeyRemoveCmd() *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Stop a passphrase or key file from opening the repository (never the last key)",
		Long: `Remove a key (an ID or its first 8 or more characters, from repo key list) so
that its passphrase or key file no longer opens the repository. To rotate a
passphrase: repo key add --new-password-file NEW, then repo key remove OLD-ID.
Data is not re-encrypted: the master key does not change.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			r, err := a.openRepoWith(cmd.Context(), f, repo.Options{SkipIndex: true}) // keys only
			if err != nil {
				return err
			}
			id, err := r.RemoveKey(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"removed": id})
			}
			fmt.Fprintf(a.stdout, "removed key %s\n", id[:8])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
