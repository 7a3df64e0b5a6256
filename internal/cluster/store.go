package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNotLeader means a leader-only write was refused because the caller no
// longer holds the leader key it read.
var ErrNotLeader = errors.New("not the leader (any more)")

// ErrLeaseLost means the lease expired or was revoked: everything written
// under it is gone.
var ErrLeaseLost = errors.New("etcd lease expired")

// Options configure a Store.
type Options struct {
	Endpoints []string
	TLS       *tls.Config // nil for plain http endpoints
	Cluster   string      // the cluster's name: its keys live under /bulwark/<name>/
	// DialTimeout bounds connecting; keepalives on the gRPC connection use
	// the same period, so a black-holed etcd is noticed within about twice
	// this. Default 2s.
	DialTimeout time.Duration
}

// Store reads and writes a cluster's documents in etcd. It is safe for
// concurrent use. Each call is bounded by its ctx, or by CallTimeout when
// ctx has no deadline.
type Store struct {
	cli    *clientv3.Client
	prefix string
}

// Open connects to etcd. It does not wait for etcd to answer: the first
// call does.
func Open(o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	if o.Cluster == "" || strings.Contains(o.Cluster, "/") {
		return nil, fmt.Errorf("cluster name %q is not usable as an etcd key", o.Cluster)
	}
	dial := o.DialTimeout
	if dial <= 0 {
		dial = 2 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		TLS:                  o.TLS,
		DialTimeout:          dial,
		DialKeepAliveTime:    dial,
		DialKeepAliveTimeout: dial,
		PermitWithoutStream:  true,
		Logger:               zap.NewNop(), // errors reach the caller; the client's own logs repeat them
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &Store{cli: cli, prefix: "/bulwark/" + o.Cluster + "/"}, nil
}

// CallTimeout bounds a Store call whose context has no deadline: etcd
// trouble must never hold a caller indefinitely.
const CallTimeout = 5 * time.Second

func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, CallTimeout)
}

// Close closes the connection.
func (s *Store) Close() error { return s.cli.Close() }

const (
	keyLeader     = "leader"
	keyTerm       = "term"
	keySync       = "sync"
	keyConfig     = "config"
	keyRequest    = "request"
	keyInitialize = "initialize"
	keyBeat       = "beat"
	dirMembers    = "members/"
	dirHistory    = "history/"
	dirReinit     = "reinit/"
)

func (s *Store) key(k string) string { return s.prefix + k }

// Snapshot is everything a cluster keeps in etcd, read at one revision.
type Snapshot struct {
	Revision int64
	Leader   *Leader // nil: no leader
	// LeaderRev is the revision at which the leader key got its value. It
	// guards leader-only writes: a leader never rewrites its key (the
	// lease keeps it alive), so the revision changes only when leadership
	// does, by expiry or handover.
	LeaderRev int64
	// LeaderLease is the lease the leader key lives under: the leader's
	// agent renews it.
	LeaderLease int64
	// Beat is the leader's last heartbeat (nil if none), written at
	// BeatRev; it belongs to the current leadership only if its Term is
	// the leader's.
	Beat      *Beat
	BeatRev   int64
	Term      uint64 // the highest term ever granted
	termRev   int64
	Members   map[string]Member
	Leases    map[string]int64 // member name → the lease its member key is under
	Sync      *Sync
	Config    *Config
	configRev int64
	Request   *Request
	// SystemID is the system identifier of the cluster's data, recorded by
	// the node that initialized it; 0 before that.
	SystemID uint64
	Reinit   map[string]bool // nodes asked to re-clone
}

// WaitHealthy reads the cluster every 200 ms until it is healthy for
// nodes (Snapshot.Unhealthy) and returns that state. When ctx's deadline
// passes first, the error says what was still wrong; when ctx is
// cancelled, it is ctx's error.
func (s *Store) WaitHealthy(ctx context.Context, nodes []string) (Snapshot, error) {
	why := "not read yet"
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := s.Read(rctx)
		cancel()
		if err == nil {
			if why = snap.Unhealthy(nodes); why == "" {
				return snap, nil
			}
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return Snapshot{}, ctx.Err()
			}
			return Snapshot{}, errors.New(why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// EtcdLeader returns the client endpoint of etcd's current raft leader,
// among the endpoints the store was opened with.
func (s *Store) EtcdLeader(ctx context.Context) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var errs []error
	for _, ep := range s.cli.Endpoints() {
		st, err := s.cli.Status(ctx, ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return ep, nil
		}
	}
	return "", fmt.Errorf("no etcd endpoint is the leader: %w", errors.Join(errs...))
}

// Read reads the whole cluster state in one request.
func (s *Store) Read(ctx context.Context) (Snapshot, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return Snapshot{}, fmt.Errorf("read cluster state: %w", err)
	}
	snap := Snapshot{Revision: resp.Header.Revision, Members: map[string]Member{}, Leases: map[string]int64{}, Reinit: map[string]bool{}}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), s.prefix)
		var err error
		switch {
		case k == keyLeader:
			snap.Leader, snap.LeaderRev, snap.LeaderLease = new(Leader), kv.ModRevision, kv.Lease
			err = json.Unmarshal(kv.Value, snap.Leader)
		case k == keyBeat:
			snap.Beat, snap.BeatRev = new(Beat), kv.ModRevision
			err = json.Unmarshal(kv.Value, snap.Beat)
		case k == keyTerm:
			snap.Term, err = strconv.ParseUint(string(kv.Value), 10, 64)
			snap.termRev = kv.ModRevision
		case k == keySync:
			snap.Sync = new(Sync)
			err = json.Unmarshal(kv.Value, snap.Sync)
		case k == keyConfig:
			snap.Config, snap.configRev = new(Config), kv.ModRevision
			err = json.Unmarshal(kv.Value, snap.Config)
		case k == keyRequest:
			snap.Request = new(Request)
			err = json.Unmarshal(kv.Value, snap.Request)
		case k == keyInitialize:
			snap.SystemID, err = strconv.ParseUint(string(kv.Value), 10, 64)
		case strings.HasPrefix(k, dirMembers):
			var m Member
			if err = json.Unmarshal(kv.Value, &m); err == nil {
				snap.Members[m.Name] = m
				snap.Leases[m.Name] = kv.Lease
			}
		case strings.HasPrefix(k, dirReinit):
			snap.Reinit[strings.TrimPrefix(k, dirReinit)] = true
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("read cluster state: key %s: %w", k, err)
		}
	}
	return snap, nil
}

// Grant creates a lease of ttl (whole seconds, rounded up).
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return int64(resp.ID), nil
}

// KeepAlive renews a lease once. ErrLeaseLost: it expired.
func (s *Store) KeepAlive(ctx context.Context, lease int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(lease))
	if err != nil {
		if strings.Contains(err.Error(), "requested lease not found") {
			return ErrLeaseLost
		}
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// LeaseTTL returns the TTL a lease was granted with. ErrLeaseLost if it
// expired.
func (s *Store) LeaseTTL(ctx context.Context, lease int64) (time.Duration, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return 0, fmt.Errorf("lease TTL: %w", err)
	}
	if resp.TTL <= 0 {
		return 0, ErrLeaseLost
	}
	return time.Duration(resp.GrantedTTL) * time.Second, nil
}

// Revoke ends a lease and deletes every key under it.
func (s *Store) Revoke(ctx context.Context, lease int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.cli.Revoke(ctx, clientv3.LeaseID(lease))
	return err
}

// Campaign makes name the leader with the next term if there is no leader
// and no other term was granted since snap was read. The leader key lives
// under lease, and the same transaction writes the new leadership's first
// heartbeat, which says the winner fences fenceAfter after it sent this
// request. It returns false, without error, when another node won.
func (s *Store) Campaign(ctx context.Context, snap Snapshot, name string, lease int64, now time.Time, fenceAfter time.Duration) (Leader, int64, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	l := Leader{Name: name, Term: snap.Term + 1, Since: now}
	val, _ := json.Marshal(l)
	beat, _ := json.Marshal(Beat{Term: l.Term, FenceAfter: fenceAfter})
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(s.key(keyLeader)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(s.key(keyTerm)), "=", snap.termRev),
	).Then(
		clientv3.OpPut(s.key(keyTerm), strconv.FormatUint(l.Term, 10)),
		clientv3.OpPut(s.key(keyLeader), string(val), clientv3.WithLease(clientv3.LeaseID(lease))),
		clientv3.OpPut(s.key(keyBeat), string(beat), clientv3.WithLease(clientv3.LeaseID(lease))),
	).Commit()
	if err != nil {
		return Leader{}, 0, false, fmt.Errorf("campaign: %w", err)
	}
	if !resp.Succeeded {
		return Leader{}, 0, false, nil
	}
	return l, resp.Header.Revision, true, nil
}

// Handover gives leadership from the leader whose key was written at
// leaderRev to another member, under that member's lease, with the next
// term, in one transaction. ErrNotLeader if the caller no longer leads.
func (s *Store) Handover(ctx context.Context, leaderRev int64, snap Snapshot, to string, now time.Time) (Leader, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	lease, ok := snap.Leases[to]
	if !ok {
		return Leader{}, fmt.Errorf("handover to %s: no such live member", to)
	}
	l := Leader{Name: to, Term: snap.Term + 1, Since: now}
	val, _ := json.Marshal(l)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.key(keyLeader)), "=", leaderRev),
		clientv3.Compare(clientv3.ModRevision(s.key(keyTerm)), "=", snap.termRev),
	).Then(
		clientv3.OpPut(s.key(keyTerm), strconv.FormatUint(l.Term, 10)),
		clientv3.OpPut(s.key(keyLeader), string(val), clientv3.WithLease(clientv3.LeaseID(lease))),
		clientv3.OpDelete(s.key(keyRequest)),
	).Commit()
	if err != nil {
		return Leader{}, fmt.Errorf("handover to %s: %w", to, err)
	}
	if !resp.Succeeded {
		return Leader{}, ErrNotLeader
	}
	return l, nil
}

// Beat writes the leader's heartbeat, under its lease, if the caller
// (leaderRev) still holds the leader key. ErrNotLeader otherwise. Write it
// only after a successful renewal of lease, and count the leader's fence
// deadline from that renewal's send time.
func (s *Store) Beat(ctx context.Context, leaderRev, lease int64, b Beat) error {
	val, _ := json.Marshal(b)
	if _, err := s.guarded(ctx, leaderRev, clientv3.OpPut(s.key(keyBeat), string(val), clientv3.WithLease(clientv3.LeaseID(lease)))); err != nil {
		return fmt.Errorf("leader heartbeat: %w", err)
	}
	return nil
}

// EndSilentLeadership deletes the leader key written at leaderRev if the
// leader has written no heartbeat since the one at beatRev. false, without
// error, if either changed: the leader is alive, or already replaced.
func (s *Store) EndSilentLeadership(ctx context.Context, leaderRev, beatRev int64) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.key(keyLeader)), "=", leaderRev),
		clientv3.Compare(clientv3.ModRevision(s.key(keyBeat)), "=", beatRev),
	).Then(clientv3.OpDelete(s.key(keyLeader))).Commit()
	if err != nil {
		return false, fmt.Errorf("end a silent leadership: %w", err)
	}
	return resp.Succeeded, nil
}

// Resign deletes the leader key if the caller (leaderRev) still holds it.
func (s *Store) Resign(ctx context.Context, leaderRev int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.guarded(ctx, leaderRev, clientv3.OpDelete(s.key(keyLeader)))
	return err
}

// guarded runs ops only if the leader key is still the one written at
// leaderRev. ErrNotLeader otherwise.
func (s *Store) guarded(ctx context.Context, leaderRev int64, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.key(keyLeader)), "=", leaderRev),
	).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, ErrNotLeader
	}
	return resp, nil
}

// PutSync records the synchronous standbys; only the leader may.
func (s *Store) PutSync(ctx context.Context, leaderRev int64, sy Sync) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	val, _ := json.Marshal(sy)
	if _, err := s.guarded(ctx, leaderRev, clientv3.OpPut(s.key(keySync), string(val))); err != nil {
		return fmt.Errorf("record synchronous standbys: %w", err)
	}
	return nil
}

// PutMember publishes a member's state under its lease.
func (s *Store) PutMember(ctx context.Context, m Member, lease int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	val, _ := json.Marshal(m)
	_, err := s.cli.Put(ctx, s.key(dirMembers+m.Name), string(val), clientv3.WithLease(clientv3.LeaseID(lease)))
	if err != nil {
		return fmt.Errorf("publish member %s: %w", m.Name, err)
	}
	return nil
}

// InitConfig stores c if there is no configuration yet, and returns the one
// in force.
func (s *Store) InitConfig(ctx context.Context, c Config) (Config, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	val, _ := json.Marshal(c)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(keyConfig)), "=", 0)).
		Then(clientv3.OpPut(s.key(keyConfig), string(val))).
		Else(clientv3.OpGet(s.key(keyConfig))).Commit()
	if err != nil {
		return Config{}, fmt.Errorf("initialize configuration: %w", err)
	}
	if resp.Succeeded {
		return c, nil
	}
	var cur Config
	err = json.Unmarshal(resp.Responses[0].GetResponseRange().Kvs[0].Value, &cur)
	return cur, err
}

// UpdateConfig applies change to the configuration in force, retrying if
// another writer changed it meanwhile.
func (s *Store) UpdateConfig(ctx context.Context, change func(*Config) error) (Config, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for {
		snap, err := s.Read(ctx)
		if err != nil {
			return Config{}, err
		}
		if snap.Config == nil {
			return Config{}, errors.New("the cluster has no configuration yet: start an agent first")
		}
		c := *snap.Config
		if err := change(&c); err != nil {
			return Config{}, err
		}
		val, _ := json.Marshal(c)
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(s.key(keyConfig)), "=", snap.configRev)).
			Then(clientv3.OpPut(s.key(keyConfig), string(val))).Commit()
		if err != nil {
			return Config{}, fmt.Errorf("update configuration: %w", err)
		}
		if resp.Succeeded {
			return c, nil
		}
	}
}

// Initialize records the system identifier of the cluster's data if none is
// recorded yet, and returns the one recorded. The first node to record one
// bootstraps the cluster; the others clone it.
func (s *Store) Initialize(ctx context.Context, systemID uint64) (uint64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(keyInitialize)), "=", 0)).
		Then(clientv3.OpPut(s.key(keyInitialize), strconv.FormatUint(systemID, 10))).
		Else(clientv3.OpGet(s.key(keyInitialize))).Commit()
	if err != nil {
		return 0, fmt.Errorf("record cluster identity: %w", err)
	}
	if resp.Succeeded {
		return systemID, nil
	}
	return strconv.ParseUint(string(resp.Responses[0].GetResponseRange().Kvs[0].Value), 10, 64)
}

// PutRequest stores a switchover or failover request, replacing any other.
func (s *Store) PutRequest(ctx context.Context, r Request) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	val, _ := json.Marshal(r)
	_, err := s.cli.Put(ctx, s.key(keyRequest), string(val))
	return err
}

// DeleteRequest removes the pending request.
func (s *Store) DeleteRequest(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.cli.Delete(ctx, s.key(keyRequest))
	return err
}

// SetReinit asks node to re-clone (on) or clears the request (off).
func (s *Store) SetReinit(ctx context.Context, node string, on bool) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var err error
	if on {
		_, err = s.cli.Put(ctx, s.key(dirReinit+node), "")
	} else {
		_, err = s.cli.Delete(ctx, s.key(dirReinit+node))
	}
	return err
}

// AddEvent records a change of leadership. Events are keyed by term; a
// later record for the same term (a rejoin's rewind) replaces it.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	val, _ := json.Marshal(e)
	_, err := s.cli.Put(ctx, s.key(fmt.Sprintf("%s%020d", dirHistory, e.Term)), string(val))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

// History returns the recorded events, oldest first.
func (s *Store) History(ctx context.Context) ([]Event, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key(dirHistory), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	events := make([]Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e Event
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("read history %s: %w", kv.Key, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// Event returns the event of term, or false.
func (s *Store) Event(ctx context.Context, term uint64) (Event, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key(fmt.Sprintf("%s%020d", dirHistory, term)))
	if err != nil || len(resp.Kvs) == 0 {
		return Event{}, false, err
	}
	var e Event
	err = json.Unmarshal(resp.Kvs[0].Value, &e)
	return e, err == nil, err
}

// Watch sends on the returned channel (coalescing) whenever one of the
// cluster's keys changes, until ctx ends, members' keys excepted: every
// agent rewrites its own each loop, and waking every agent for each of
// those would keep them all stepping without pause. The leader's heartbeat
// does wake them, once a loop: a replica notes when it saw each one. A
// broken watch is re-established.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	return s.watch(ctx, func(key string) bool { return !strings.HasPrefix(key, s.prefix+dirMembers) })
}

// WatchAll is Watch for every change, members' published states included,
// but not the leader's heartbeat: what a proxy or a client follows.
func (s *Store) WatchAll(ctx context.Context) <-chan struct{} {
	return s.watch(ctx, func(key string) bool { return key != s.key(keyBeat) })
}

func (s *Store) watch(ctx context.Context, wanted func(key string) bool) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			wctx := clientv3.WithRequireLeader(ctx)
			for resp := range s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix()) {
				if resp.Err() != nil {
					break
				}
				if !slices.ContainsFunc(resp.Events, func(ev *clientv3.Event) bool { return wanted(string(ev.Kv.Key)) }) {
					continue
				}
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return ch
}
