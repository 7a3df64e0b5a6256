package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/bulwarkdb/bulwark/internal/plan"
	"github.com/bulwarkdb/bulwark/internal/proxy"
	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// proxyFlags are bulwark proxy's flags.
type proxyFlags struct {
	listenRW, listenRO, http  string
	maxLag, roFallback        string
	waitPrimary               time.Duration
	relayLoops                int
	tlsCert, tlsKey           string
	backendSSLMode, backendCA string
}

func (a *app) newProxyCmd() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy --plan bulwark.yaml --listen-rw ADDR --listen-ro ADDR",
		Short: "Route PostgreSQL clients to the cluster's primary (read-write port) or a replica (read-only port)",
		Long: "Run a PostgreSQL proxy that follows the cluster's leader through an etcd watch. New connections\n" +
			"on the read-write port go to the current primary, on the read-only port to the replica within\n" +
			"--max-lag with the fewest sessions. When the primary changes, sessions on the old one are closed\n" +
			"at once; during a failover new connections wait up to --wait-primary for the new primary.\n" +
			"TLS from clients terminates at the proxy. Stateless: run several behind a load balancer.\n" +
			"Logs are JSON on stderr. See docs/proxy.md.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.proxy(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listenRW, "listen-rw", "", "address of the read-write port, such as :5000")
	fl.StringVar(&f.listenRO, "listen-ro", "", "address of the read-only port, such as :5001")
	fl.StringVar(&f.http, "http", "", "address to serve GET /health and /metrics on")
	fl.StringVar(&f.maxLag, "max-lag", "1MB", "replicas further behind get no read-only connections (bytes, or with kB, MB, GB)")
	fl.StringVar(&f.roFallback, "ro-fallback", "none", "without a replica within --max-lag, read-only connections wait (none) or go to the primary (primary)")
	fl.DurationVar(&f.waitPrimary, "wait-primary", proxy.DefaultWaitPrimary, "how long a new connection waits for a primary (or replica) before it is refused")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "certificate (PEM) presented to clients; with --tls-key, enables TLS from clients")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fl.StringVar(&f.backendSSLMode, "backend-sslmode", "disable", "TLS to PostgreSQL: disable, require (encrypt, no verification) or verify-full")
	fl.StringVar(&f.backendCA, "backend-ca", "", "CA bundle (PEM) that verifies PostgreSQL's certificates (verify-full; default: the system's)")
	fl.IntVar(&f.relayLoops, "relay-loops", 0, "event loops that copy the bytes of sessions without TLS (0: half of GOMAXPROCS, at least 1; -1: none, two goroutines per session instead)")
	return cmd
}

func (a *app) proxy(ctx context.Context, f proxyFlags) error {
	o, err := proxyOptions(f)
	if err != nil {
		return err
	}
	_, c, err := a.clusterPlan()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: a.level}))
	if o.Source, err = etcdSource(c, log); err != nil {
		return err
	}
	o.Logger = log
	p, err := proxy.New(o)
	if err != nil {
		return err
	}
	return runProxy(ctx, p, f.http)
}

// proxyOptions turns the flags into the proxy's options, but for Source
// and Logger.
func proxyOptions(f proxyFlags) (proxy.Options, error) {
	o := proxy.Options{ListenRW: f.listenRW, ListenRO: f.listenRO, WaitPrimary: f.waitPrimary, RelayLoops: f.relayLoops}
	if f.listenRW == "" && f.listenRO == "" {
		return o, usageError{errors.New("give --listen-rw, --listen-ro or both")}
	}
	if f.waitPrimary <= 0 {
		return o, usageError{fmt.Errorf("--wait-primary %s: want a positive duration", f.waitPrimary)}
	}
	if f.relayLoops < -1 {
		return o, usageError{fmt.Errorf("--relay-loops %d: want 0 (automatic), -1 (none) or a positive number", f.relayLoops)}
	}
	lag, ok := plan.ParseSize(f.maxLag)
	if !ok || lag <= 0 {
		return o, usageError{fmt.Errorf("--max-lag %q: want a positive size such as 1MB or 65536", f.maxLag)}
	}
	o.MaxLag = lag
	switch f.roFallback {
	case "none":
		o.ROFallback = proxy.FallbackNone
	case "primary":
		o.ROFallback = proxy.FallbackPrimary
	default:
		return o, usageError{fmt.Errorf("--ro-fallback %q: want none or primary", f.roFallback)}
	}
	var err error
	if o.TLS, err = proxyServerTLS(f.tlsCert, f.tlsKey); err != nil {
		return o, err
	}
	o.BackendTLS, err = proxyBackendTLS(f.backendSSLMode, f.backendCA)
	return o, err
}

func proxyServerTLS(cert, key string) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if cert == "" {
		return nil, nil
	}
	tc, err := plan.TLS{CertFile: cert, KeyFile: key}.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	return tc, nil
}

// proxyBackendTLS is the TLS configuration towards PostgreSQL for a
// libpq-like sslmode.
func proxyBackendTLS(mode, caFile string) (*tls.Config, error) {
	if caFile != "" && mode != "verify-full" {
		return nil, usageError{fmt.Errorf("--backend-ca needs --backend-sslmode verify-full, not %s", mode)}
	}
	switch mode {
	case "disable":
		return nil, nil
	case "require":
		// As libpq's sslmode=require: encrypted, but any certificate will do.
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	case "verify-full": // the proxy checks each backend's certificate against its host
		tc, err := plan.TLS{CAFile: caFile}.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--backend-ca: %w", err)
		}
		return tc, nil
	}
	return nil, usageError{fmt.Errorf("--backend-sslmode %q: want disable, require or verify-full", mode)}
}

// etcdSource follows the plan's cluster through etcd. It asks the agents'
// APIs only read-only questions, so it needs their CA but no certificate.
func etcdSource(c *plan.Cluster, log *slog.Logger) (*failover.EtcdSource, error) {
	tc, err := etcdTLS(c)
	if err != nil {
		return nil, err
	}
	s := &failover.EtcdSource{Endpoints: c.Etcd.Endpoints, TLS: tc, Cluster: c.Name, Logger: log}
	if c.APITLS.CertFile != "" {
		tc, err := plan.TLS{CAFile: c.APITLS.CAFile}.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("API TLS: %w", err)
		}
		s.HTTP = &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	return s, nil
}

// runProxy runs p and, with httpAddr, serves its Handler there, until ctx
// ends or p fails.
func runProxy(ctx context.Context, p *proxy.Proxy, httpAddr string) error {
	g, ctx := errgroup.WithContext(ctx)
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		g.Go(func() error {
			if err := serveHTTP(ctx, ln, p.Handler()); err != nil {
				return fmt.Errorf("--http: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return p.Run(ctx) })
	return g.Wait()
}
