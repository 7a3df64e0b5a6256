// Command hawriter is the client side of bench/ha.sh, the failover benchmark:
// a writer that commits one row per transaction to whichever server is the
// primary and logs every acknowledged commit, a watcher that logs which
// nodes claim to be the primary on their REST API, and a checker that turns
// both logs and the table into one JSON report per failover.
//
//	hawriter run   --conn CONNSTR --out FILE [--table ha_writes] [--node-sql EXPR] [--write-timeout 5s]
//	hawriter watch --urls [NAME=]URL,... --out FILE
//	hawriter check --conn CONNSTR --acks FILE --watch FILE --fault UNIXTIME_NS [--old NODE] [--table ha_writes]
//
// It measures the cluster, not a client library: it reconnects every 20 ms
// without backoff, and it never retries a write whose outcome is unknown.
//
// Log formats (one event a line, fields separated by one space, times in
// Unix nanoseconds):
//
//	acks:  SEQ NODE TIME CONN      an acknowledged commit; NODE names the server (--node-sql),
//	                               CONN numbers the writer's connections from 1
//	       SEQ unknown TIME CONN   a write whose commit outcome is unknown
//	watch: TIME NAME,NAME          the set of nodes answering 200 on /primary changed ("-": none)
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Subcommands parse their own flag.FlagSet: this is a bench tool with three
// flat verbs and no shared flags, where STYLE's cobra tree buys nothing.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "hawriter:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageError{"usage: hawriter run|watch|check [flags]"}
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "run":
		var o writerOptions
		fs.StringVar(&o.Conn, "conn", "", "libpq connection string (multi-host, target_session_attrs=read-write)")
		fs.StringVar(&o.Out, "out", "", "append acknowledged commits to this file")
		fs.StringVar(&o.Table, "table", defaultTable, "table to insert into (created if missing)")
		fs.StringVar(&o.NodeSQL, "node-sql", defaultNodeSQL, "SQL expression naming the server (Patroni forces cluster_name to the scope on every node)")
		fs.DurationVar(&o.WriteTimeout, "write-timeout", defaultWriteTimeout, "give up on one write after this long (its outcome is then unknown)")
		if err := parse(fs, args[1:], func() bool { return o.Conn != "" && o.Out != "" }, "--conn and --out are required"); err != nil {
			return err
		}
		o.Logger = log.With("component", "writer")
		return runWriter(ctx, o)
	case "watch":
		var urls, out string
		fs.StringVar(&urls, "urls", "", "comma-separated [NAME=]URL of each node's REST API")
		fs.StringVar(&out, "out", "", "append changes of the set of primaries to this file")
		if err := parse(fs, args[1:], func() bool { return urls != "" && out != "" }, "--urls and --out are required"); err != nil {
			return err
		}
		nodes, err := parseNodes(urls)
		if err != nil {
			return usageError{err.Error()}
		}
		return runWatch(ctx, nodes, out, log.With("component", "watch"))
	case "check":
		var o checkOptions
		fs.StringVar(&o.Conn, "conn", "", "libpq connection string of the cluster (finds the primary)")
		fs.StringVar(&o.Acks, "acks", "", "the writer's log")
		fs.StringVar(&o.Watch, "watch", "", "the watcher's log")
		fs.Int64Var(&o.Fault, "fault", 0, "when the fault was injected, Unix nanoseconds")
		fs.StringVar(&o.Old, "old", "", "node that was primary at the fault (default: the node of the last ack before it)")
		fs.StringVar(&o.Table, "table", defaultTable, "the writer's table")
		complete := func() bool { return o.Conn != "" && o.Acks != "" && o.Watch != "" && o.Fault != 0 }
		if err := parse(fs, args[1:], complete, "--conn, --acks, --watch and --fault are required"); err != nil {
			return err
		}
		return runCheck(ctx, o, stdout)
	}
	return usageError{fmt.Sprintf("unknown command %q: want run, watch or check", args[0])}
}

// parse parses args into fs; complete, called after, reports whether every
// required flag is set, and what names them for the error.
func parse(fs *flag.FlagSet, args []string, complete func() bool, what string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	if !complete() {
		return usageError{fs.Name() + ": " + what}
	}
	return nil
}

// ack is one line of the writer's log.
type ack struct {
	Seq  int64
	Node string // "unknown": the commit outcome is unknown
	At   int64  // Unix nanoseconds
	Conn int    // which of the writer's connections, from 1
}

const nodeUnknown = "unknown"

// readAcks reads a writer's log. A last line cut short (the writer was
// killed mid-write) is ignored; any other bad line is an error.
func readAcks(path string) ([]ack, error) {
	var out []ack
	err := readLines(path, func(line string, last bool) error {
		var a ack
		if _, err := fmt.Sscanf(line, "%d %s %d %d", &a.Seq, &a.Node, &a.At, &a.Conn); err != nil {
			if last {
				return nil
			}
			return fmt.Errorf("bad ack line %q: %w", line, err)
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// watchEvent is one line of the watcher's log.
type watchEvent struct {
	At        int64
	Primaries []string // sorted
}

func readWatch(path string) ([]watchEvent, error) {
	var out []watchEvent
	err := readLines(path, func(line string, last bool) error {
		var e watchEvent
		var set string
		if _, err := fmt.Sscanf(line, "%d %s", &e.At, &set); err != nil {
			if last {
				return nil
			}
			return fmt.Errorf("bad watch line %q: %w", line, err)
		}
		if set != "-" {
			e.Primaries = strings.Split(set, ",")
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func readLines(path string, fn func(line string, last bool) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var prev string
	havePrev := false
	for sc.Scan() {
		if havePrev {
			if err := fn(prev, false); err != nil {
				return err
			}
		}
		prev, havePrev = sc.Text(), true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if havePrev {
		return fn(prev, true)
	}
	return nil
}
