package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/agent"
)

func TestThroughPeerLinks(t *testing.T) {
	nodes := []agent.Node{
		{Name: "n1", Host: "10.0.0.1", Port: 5432, APIURL: "https://10.0.0.1:8008"},
		{Name: "n2", Host: "10.0.0.2", Port: 5432, APIURL: "https://10.0.0.2:8008"},
	}
	err := throughPeerLinks(nodes, "n1", map[string]string{"n2": "127.0.0.1:7001"}, map[string]string{"n2": "127.0.0.1:7002"})
	if err != nil {
		t.Fatal(err)
	}
	if n := nodes[1]; n.Host != "127.0.0.1" || n.Port != 7001 || n.APIURL != "https://127.0.0.1:7002" {
		t.Errorf("n2 through its links: %+v", n)
	}
	if n := nodes[0]; n.Host != "10.0.0.1" || n.Port != 5432 {
		t.Errorf("the node itself changed: %+v", n)
	}
	for _, bad := range []map[string]string{{"n3": "127.0.0.1:1"}, {"n1": "127.0.0.1:1"}, {"n2": "no-port"}} {
		var u usageError
		if err := throughPeerLinks(nodes, "n1", bad, nil); !errors.As(err, &u) {
			t.Errorf("--peer-pg %v: got %v, want a usage error", bad, err)
		}
	}
}

func TestReadLinks(t *testing.T) {
	dir := t.TempDir()
	if ls, err := readLinks(dir); ls != nil || err != nil {
		t.Fatalf("no links file: %v, %v", ls, err)
	}
	want := []link{{linkEtcd, "127.0.0.1:1", "127.0.0.1:2"}, {linkPG, "127.0.0.1:3", "127.0.0.1:4"}, {linkAPI, "127.0.0.1:5", "127.0.0.1:6"}}
	if err := writeLinks(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readLinks(dir)
	if err != nil || len(got) != len(want) || got[1] != want[1] {
		t.Fatalf("read back %v, %v; want %v", got, err, want)
	}
	os.WriteFile(filepath.Join(dir, linksFile), []byte("127.0.0.1:1 127.0.0.1:2\n"), 0o644)
	if _, err := readLinks(dir); err == nil || !strings.Contains(err.Error(), "bad line") {
		t.Errorf("a line without a kind: %v", err)
	}
}
