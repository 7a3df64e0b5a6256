// Package failover routes a Go program's PostgreSQL work to the current
// primary of a Bulwark cluster, and its reads to healthy replicas, across
// failovers and switchovers.
//
// A Source follows the cluster's topology: EtcdSource watches the keys the
// agents keep in etcd (the leader, its term and each member's state);
// AgentsSource asks the agents' REST APIs; HostsSource probes the servers of
// a multi-host connection string. A Pool wraps a pgx pool per node and
// sends each transaction where the topology says:
//
//   - Pool.Write runs a function in a transaction on the primary. When the
//     transaction surely did not commit (the connection broke before COMMIT
//     was sent, or the node turned out not to be the primary), it waits for
//     the new primary, with exponential backoff and jitter, and runs the
//     function again. When the connection broke during COMMIT, nobody can
//     know whether it committed: Write returns an error that matches
//     ErrUnknownOutcome, and never retries it.
//   - Pool.Read runs a function in a read-only transaction on a replica
//     within the lag bound, or on the primary when none is.
//
// A write never reaches a node that is not the primary: the pool for the
// primary belongs to one node and term and is closed as soon as the
// topology names another, every new connection to it is checked with
// pg_is_in_recovery() and transaction_read_only, and Write checks the term
// again before it commits.
//
// The package owns no goroutine beyond those of Open, which Close stops.
package failover

import (
	"context"
	"errors"
	"slices"
)

// Node is one PostgreSQL server of a cluster.
type Node struct {
	Name string
	// Addr is host:port of its PostgreSQL.
	Addr string
	// LagBytes is how far a replica's WAL is behind the primary's last
	// position the source knows; 0 for the primary.
	LagBytes int64
	// APIURL is the base URL of the node's agent, when the source knows it.
	APIURL string
}

// Topology is a cluster as a Source sees it at one moment.
type Topology struct {
	// Term is the leader's term: it increases with every election and
	// handover. 0 when the source knows no terms (HostsSource).
	Term uint64
	// Primary is the node that accepts writes, confirmed running as the
	// primary of Term; nil while there is none (a failover in progress).
	Primary *Node
	// Replicas are the healthy replicas streaming from Primary, least lag
	// first.
	Replicas []Node
}

// ReplicasWithin returns the replicas at most maxLag bytes behind, least
// lag first.
func (t Topology) ReplicasWithin(maxLag int64) []Node {
	return slices.DeleteFunc(slices.Clone(t.Replicas), func(n Node) bool { return n.LagBytes > maxLag })
}

// Equal reports whether t and u route alike: same term, same primary, same
// replicas and lags.
func (t Topology) Equal(u Topology) bool {
	if t.Term != u.Term || (t.Primary == nil) != (u.Primary == nil) {
		return false
	}
	if t.Primary != nil && *t.Primary != *u.Primary {
		return false
	}
	return slices.Equal(t.Replicas, u.Replicas)
}

// Source follows a cluster's topology.
type Source interface {
	// Follow calls update with the topology as soon as it is known and
	// then each time it changes, until ctx ends; then it returns
	// ctx.Err(). It returns early only with an error that makes following
	// impossible (a malformed configuration). While the cluster cannot be
	// reached it keeps the last topology it reported and retries. update
	// is called from one goroutine at a time and must not block for long.
	Follow(ctx context.Context, update func(Topology)) error
}

// Errors a Pool returns; match them with errors.Is.
var (
	// ErrUnknownOutcome: the connection broke while COMMIT was in flight.
	// The transaction may or may not have committed; the caller must find
	// out (for instance by reading back a unique key) before retrying.
	ErrUnknownOutcome = errors.New("failover: the outcome of the commit is unknown")
	// ErrNoPrimary: no primary appeared within Config.FailoverTimeout.
	ErrNoPrimary = errors.New("failover: no primary")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("failover: pool closed")
)
