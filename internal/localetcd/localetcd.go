// Package localetcd runs an etcd member inside this process, for `bulwark
// up` (a development, drill and demo cluster on one machine) and for
// tests: a single member, or one of a few on loopback. Production
// clusters use external etcd endpoints.
//
// It owns the server's data directory only as far as etcd does: Close stops
// the server and leaves the directory.
package localetcd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options configure a Server. The zero value of each field is its default.
type Options struct {
	Dir       string // data directory; required
	ClientURL string // where clients connect, such as http://127.0.0.1:2379; required
	PeerURL   string // the raft peer URL; required
	Name      string // member name; "local" when ""
	// InitialCluster lists every member as NAME=PEERURL,... when the
	// cluster has more than this one; "" for a single member. It counts
	// only on the first start: etcd keeps the membership in Dir.
	InitialCluster string
	TickMs         uint // raft heartbeat; DefaultTickMs when 0
	ElectionMs     uint // raft election timeout; DefaultElectionMs when 0
	// CertFile and KeyFile make clients connect over TLS (ClientURL must
	// then be https); with ClientCAFile, clients must present a
	// certificate that CA signed.
	CertFile, KeyFile, ClientCAFile string
}

// Raft timings of local members. They are lower than etcd's defaults
// (100 ms, 1000 ms) so that leases can be short: etcd refuses TTLs under
// about 1.5 election timeouts.
const (
	DefaultTickMs     = 50
	DefaultElectionMs = 500
)

// Server is a running embedded etcd.
type Server struct {
	e *embed.Etcd
}

// Start starts the server and returns once it serves clients, or fails
// after ctx ends.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" || o.ClientURL == "" || o.PeerURL == "" {
		return nil, errors.New("localetcd: Dir, ClientURL and PeerURL are required")
	}
	cu, err := url.Parse(o.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("client URL: %w", err)
	}
	pu, err := url.Parse(o.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("peer URL: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = cmp.Or(o.Name, "local")
	cfg.Dir = o.Dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cmp.Or(o.InitialCluster, cfg.Name+"="+pu.String())
	cfg.InitialClusterToken = "bulwark-local"
	if o.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: o.CertFile, KeyFile: o.KeyFile,
			TrustedCAFile: o.ClientCAFile, ClientCertAuth: o.ClientCAFile != ""}
	}
	cfg.TickMs = cmp.Or(o.TickMs, DefaultTickMs)
	cfg.ElectionMs = cmp.Or(o.ElectionMs, DefaultElectionMs)
	// etcd logs every request and its shutdown chatter at info level; a
	// local cluster's etcd only needs to say when it fails.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "fatal"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w", o.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Server{e: e}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd in %s: %w", o.Dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("etcd in %s not ready: %w", o.Dir, ctx.Err())
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd in %s not ready after 30s", o.Dir)
	}
}

// Err reports a fatal server error; it never yields while the server is fine.
func (s *Server) Err() <-chan error { return s.e.Err() }

// ClientURL is where clients reach the server.
func (s *Server) ClientURL() string { return s.e.Clients[0].Addr().String() }

// Close stops the server.
func (s *Server) Close() { s.e.Close() }
