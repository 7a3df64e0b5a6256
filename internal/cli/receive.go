package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/archive"
	"github.com/bulwarkdb/bulwark/internal/receive"
	"github.com/bulwarkdb/bulwark/internal/repo"
)

func (a *app) newWalReceiveCmd() *cobra.Command {
	var rf repoFlags
	var opts receive.Options
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Stream WAL into the repository over replication, asynchronously or as a synchronous standby",
		Long: `Stream WAL into the repository over the physical replication protocol, as
pg_receivewal does, until interrupted (SIGINT or SIGTERM flushes and stops).

The receiver uses its own physical replication slot (--slot, created if absent)
so the server keeps the WAL it has not yet archived. It reports WAL to the
server as flushed only once the repository holds it durably. Received WAL is
made durable at least every --flush-interval; a complete segment is archived
whole.

With --synchronous it flushes as soon as the stream pauses: list its
--application-name in the primary's synchronous_standby_names and a commit
returns only once its WAL is in the repository. Without --synchronous, do not
list it there.

It reconnects after connection failures and follows timeline switches. WAL
the server removed before it was received is logged as an error and recorded
as a gap in the receiver's state (bulwark status). The connection string comes
from --db, else BULWARK_DB, else the plan's postgres.db; replication=true and
application_name are set by the receiver.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.ConnString == "" {
				opts.ConnString = a.getenv("BULWARK_DB")
			}
			if opts.ConnString == "" && a.plan != nil {
				opts.ConnString = a.plan.Postgres.DB
			}
			if opts.ConnString == "" {
				return usageError{errors.New("no server: pass --db CONNSTRING, set BULWARK_DB, or set postgres.db in the plan")}
			}
			r, err := a.openRepoWith(cmd.Context(), rf, repo.Options{SkipIndex: true})
			if err != nil {
				return err
			}
			opts.Logger = a.log
			return receive.Run(cmd.Context(), archive.New(r), opts)
		},
	}
	rf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&opts.ConnString, "db", "", "connection string of the server to stream from; env BULWARK_DB (put the password in PGPASSFILE or PGPASSWORD, not here: flags show in ps)")
	fl.StringVar(&opts.Slot, "slot", receive.DefaultSlot, "physical replication slot (created with RESERVE_WAL if absent)")
	fl.BoolVar(&opts.Synchronous, "synchronous", false, "flush and acknowledge as soon as the stream pauses (run as a synchronous standby)")
	fl.StringVar(&opts.ApplicationName, "application-name", receive.DefaultApplicationName, "application_name to connect with (the name in synchronous_standby_names)")
	fl.DurationVar(&opts.FlushInterval, "flush-interval", receive.DefaultFlushInterval, "longest time received WAL waits before it is durable in the repository")
	return cmd
}
