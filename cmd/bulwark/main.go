// Command bulwark is high availability and disaster recovery for PostgreSQL.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwarkdb/bulwark/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	os.Exit(cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
