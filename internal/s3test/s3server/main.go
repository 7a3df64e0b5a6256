// Command s3server is test tooling: a real S3 server (versitygw's gateway
// with its posix backend) over a directory, run by package s3test as a child
// process so that a test can kill it. It prints "ready" on stdout once it
// serves requests, and runs until SIGINT, SIGTERM or SIGKILL.
//
// It is the only importer of github.com/versity/versitygw: the bulwark binary
// must never link it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pkg/xattr"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// healthPath answers 200 without authentication once the gateway serves.
const healthPath = "/bulwark-s3test-health"

func main() {
	dir := flag.String("dir", "", "data directory (buckets are its subdirectories)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address host:port")
	access := flag.String("access", "", "root access key")
	secret := flag.String("secret", "", "root secret key")
	tlsCert := flag.String("tls-cert", "", "TLS certificate file (PEM): serve HTTPS (with -tls-key)")
	tlsKey := flag.String("tls-key", "", "TLS private key file (PEM), with -tls-cert")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *addr, *access, *secret, *tlsCert, *tlsKey); err != nil {
		fmt.Fprintln(os.Stderr, "s3server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, addr, access, secret, tlsCert, tlsKey string) error {
	if dir == "" || access == "" || secret == "" {
		return errors.New("-dir, -access and -secret are required")
	}
	if (tlsCert == "") != (tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if err := checkXattr(dir); err != nil {
		return err
	}
	be, err := posix.New(dir, meta.XattrMeta{}, posix.PosixOpts{Concurrency: 64})
	if err != nil {
		return fmt.Errorf("posix backend on %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- embedgw.RunVersityGW(ctx, be, &embedgw.Config{
			RootUserAccess:    access,
			RootUserSecret:    secret,
			Region:            "us-east-1",
			Ports:             []string{addr},
			MaxConnections:    1024, // must be > 0; far above what one test opens
			MaxRequests:       1024,
			MultipartMaxParts: 10000,
			HealthPath:        healthPath,
			Quiet:             true,
			CertFile:          tlsCert,
			KeyFile:           tlsKey,
		})
	}()
	if err := waitHealthy(ctx, addr, tlsCert != "", done); err != nil {
		return err
	}
	fmt.Println("ready")
	if err := <-done; err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// checkXattr fails clearly when dir's file system lacks user extended
// attributes, where versitygw keeps object metadata.
func checkXattr(dir string) error {
	probe := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return err
	}
	defer os.Remove(probe)
	if err := xattr.Set(probe, "user.bulwark-probe", []byte("1")); err != nil {
		return fmt.Errorf("%s does not support user extended attributes, which versitygw's posix backend needs "+
			"(use a directory on ext4, xfs or btrfs, or tmpfs on Linux 6.6 or later, e.g. set TMPDIR=/var/tmp): %w", dir, err)
	}
	return nil
}

// waitHealthy polls the health endpoint (over HTTPS when useTLS, without
// verifying the certificate: it is our own) until it answers 200, the
// gateway stops, or 30 s pass.
func waitHealthy(ctx context.Context, addr string, useTLS bool, done <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	scheme := "http://"
	if useTLS {
		scheme = "https://"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // health probe of our own server
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		resp, err := client.Get(scheme + addr + healthPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway on %s not healthy after 30s: %w", addr, err)
		}
		select {
		case err := <-done:
			return fmt.Errorf("gateway on %s: %w", addr, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait): // a poll interval, not synchronisation
		}
	}
}
