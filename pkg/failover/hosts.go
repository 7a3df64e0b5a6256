package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwarkdb/bulwark/internal/wal"
)

// HostsSource follows a cluster without Bulwark's help: it connects to
// every host of a multi-host connection string each Interval and asks the
// server itself (pg_is_in_recovery(), transaction_read_only, its WAL
// position). It knows no terms: when two hosts both claim to be primaries,
// it reports none until only one does.
type HostsSource struct {
	// ConnString lists the hosts, as libpq does:
	// "host=db1,db2,db3 port=5432 user=app dbname=app" or
	// "postgres://app@db1:5432,db2:5432/app".
	ConnString string
	// Interval between rounds; default 500 ms.
	Interval time.Duration
	Logger   *slog.Logger // nil: no logs
}

type hostState struct {
	addr      string
	primary   bool
	lsn       wal.LSN
	reachable bool
}

// Follow implements Source.
func (s *HostsSource) Follow(ctx context.Context, update func(Topology)) error {
	base, err := pgx.ParseConfig(s.ConnString)
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	hosts := hostConfigs(base)
	log := logger(s.Logger)
	var last *Topology
	for {
		states := probeHosts(ctx, hosts)
		t, err := hostsTopology(states)
		if err != nil {
			log.Warn("hosts disagree", "err", err)
		}
		last = report(last, t, update)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cmp.Or(s.Interval, 500*time.Millisecond)):
		}
	}
}

// hostConfigs splits a multi-host configuration into one per host.
func hostConfigs(base *pgx.ConnConfig) []*pgx.ConnConfig {
	targets := append([]*pgconn.FallbackConfig{{Host: base.Host, Port: base.Port, TLSConfig: base.TLSConfig}}, base.Fallbacks...)
	var out []*pgx.ConnConfig
	seen := map[string]bool{}
	for _, f := range targets {
		addr := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))
		if seen[addr] {
			continue // sslmode=prefer lists each host twice, with and without TLS
		}
		seen[addr] = true
		c := base.Copy()
		c.Host, c.Port, c.TLSConfig, c.Fallbacks = f.Host, f.Port, f.TLSConfig, nil
		c.ConnectTimeout = min(cmp.Or(c.ConnectTimeout, 2*time.Second), 2*time.Second)
		out = append(out, c)
	}
	return out
}

func probeHosts(ctx context.Context, hosts []*pgx.ConnConfig) []hostState {
	states := make([]hostState, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { states[i] = probeHost(ctx, h) })
	}
	wg.Wait()
	return states
}

func probeHost(ctx context.Context, c *pgx.ConnConfig) hostState {
	st := hostState{addr: net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, c)
	if err != nil {
		return st
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var recovery bool
	var readOnly, lsn string
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('transaction_read_only'),
		coalesce(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, '0/0')::text`).Scan(&recovery, &readOnly, &lsn)
	if err != nil {
		return st
	}
	st.reachable, st.primary = true, !recovery && readOnly == "off"
	st.lsn, _ = wal.ParseLSN(lsn)
	return st
}

// hostsTopology names the primary only when exactly one host claims it.
func hostsTopology(states []hostState) (Topology, error) {
	var primaries []hostState
	for _, s := range states {
		if s.primary {
			primaries = append(primaries, s)
		}
	}
	if len(primaries) != 1 {
		if len(primaries) > 1 {
			return Topology{}, fmt.Errorf("%d hosts claim to be the primary", len(primaries))
		}
		return Topology{}, nil
	}
	p := primaries[0]
	t := Topology{Primary: &Node{Name: p.addr, Addr: p.addr}}
	for _, s := range states {
		if s.reachable && !s.primary {
			t.Replicas = append(t.Replicas, Node{Name: s.addr, Addr: s.addr, LagBytes: int64(max(p.lsn, s.lsn) - s.lsn)})
		}
	}
	sortReplicas(t.Replicas)
	return t, nil
}

var errNotPrimary = errors.New("the server is not a primary (in recovery or read-only)")
