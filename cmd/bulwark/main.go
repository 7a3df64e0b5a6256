// Command bulwark is high availability and disaster recovery for PostgreSQL.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/bulwarkdb/bulwark/internal/cli"
)

// memoryLimit is the soft limit of the Go heap unless GOMEMLIMIT says
// otherwise. Backups hold little live data; without a limit the collector
// lets the heap double past it, with one the same work stays near 150 MiB.
const memoryLimit = 150 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	os.Exit(cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
