package proxy

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

var (
	nodeA = failover.Node{Name: "a", Addr: "10.0.0.1:5432"}
	nodeB = failover.Node{Name: "b", Addr: "10.0.0.2:5432", LagBytes: 100}
	nodeC = failover.Node{Name: "c", Addr: "10.0.0.3:5432", LagBytes: 5 << 20}
	nodeD = failover.Node{Name: "d", Addr: "10.0.0.4:5432", LagBytes: 0}
)

func TestPick(t *testing.T) {
	full := failover.Topology{Term: 3, Primary: &nodeA, Replicas: []failover.Node{nodeD, nodeB, nodeC}}
	lagging := failover.Topology{Term: 3, Primary: &nodeA, Replicas: []failover.Node{nodeC}}
	for _, tc := range []struct {
		name string
		acc  access
		t    failover.Topology
		fb   Fallback
		load map[string]int
		want string // "" for none
	}{
		{"rw goes to the primary", readWrite, full, FallbackNone, nil, "a"},
		{"rw without a primary goes nowhere", readWrite, failover.Topology{Term: 4}, FallbackNone, nil, ""},
		{"ro ties go by name", readOnly, full, FallbackNone, nil, "b"},
		{"ro goes to the least loaded", readOnly, full, FallbackNone, map[string]int{"b": 2, "d": 1}, "d"},
		{"ro never to a replica past the bound", readOnly, full, FallbackNone, map[string]int{"b": 9, "d": 9}, "b"},
		{"ro without a replica in bound goes nowhere", readOnly, lagging, FallbackNone, nil, ""},
		{"ro falls back to the primary when allowed", readOnly, lagging, FallbackPrimary, nil, "a"},
		{"ro fallback needs a primary", readOnly, failover.Topology{Term: 4, Replicas: []failover.Node{nodeC}}, FallbackPrimary, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := pick(tc.acc, tc.t, 1<<20, tc.fb, tc.load)
			if got := map[bool]string{true: n.Name}[ok]; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStale(t *testing.T) {
	moved := nodeA
	moved.Addr = "10.0.0.9:5432"
	t3 := failover.Topology{Term: 3, Primary: &nodeA, Replicas: []failover.Node{nodeB, nodeC}}
	for _, tc := range []struct {
		name string
		acc  access
		node failover.Node
		term uint64
		t    failover.Topology
		want bool
	}{
		{"rw on the primary of the term stays", readWrite, nodeA, 3, t3, false},
		{"rw on the old primary closes", readWrite, nodeB, 2, t3, true},
		{"rw of an older term closes even on the same node", readWrite, nodeA, 2, t3, true},
		{"rw closes without a primary", readWrite, nodeA, 3, failover.Topology{Term: 3}, true},
		{"rw closes when the primary's address changed", readWrite, nodeA, 3, failover.Topology{Term: 3, Primary: &moved}, true},
		{"ro on a replica stays, lagging or not", readOnly, nodeC, 1, t3, false},
		{"ro on the primary stays", readOnly, nodeA, 1, t3, false},
		{"ro on a node gone from the topology closes", readOnly, nodeD, 3, t3, true},
		{"ro closes without a primary or replicas", readOnly, nodeB, 3, failover.Topology{Term: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stale(tc.acc, tc.node, tc.term, tc.t); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRelayStartup: messages up to ReadyForQuery are copied byte for byte
// (and what the server sent after), and the cancel key is reported.
func TestRelayStartup(t *testing.T) {
	var in []byte
	for _, m := range []pgproto3.BackendMessage{
		&pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "server_version", Value: "15.8"},
		&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.NoticeResponse{Message: "after"},
	} {
		var err error
		if in, err = m.Encode(in); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	var keys []pgproto3.BackendKeyData
	n, err := relayStartup(&out, bufio.NewReader(bytes.NewReader(in)), func(k pgproto3.BackendKeyData) { keys = append(keys, k) })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) || n != int64(len(in)) {
		t.Errorf("relayed %d bytes %x, want %x", n, out.Bytes(), in)
	}
	if len(keys) != 1 || keys[0].ProcessID != 4242 || !bytes.Equal(keys[0].SecretKey, []byte{1, 2, 3, 4}) {
		t.Errorf("keys %+v", keys)
	}
}

// FuzzRelayStartup: whatever a server sends, relayStartup ends without
// panicking.
func FuzzRelayStartup(f *testing.F) {
	f.Add([]byte("R\x00\x00\x00\x08\x00\x00\x00\x00K\x00\x00\x00\x0c\x00\x00\x00\x01abcdZ\x00\x00\x00\x05I"))
	f.Add([]byte("K\x00\x00\x00\x05Z\x00\x00\x00\x05I"))
	f.Add([]byte("E\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		relayStartup(io.Discard, bufio.NewReader(bytes.NewReader(in)), func(pgproto3.BackendKeyData) {})
	})
}

// FuzzReadPacket: a client's first packet is read whole or refused.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := readPacket(bytes.NewReader(in))
		if err == nil && (len(p) < 8 || !bytes.Equal(p, in[:len(p)])) {
			t.Errorf("read %x from %x", p, in)
		}
	})
}
