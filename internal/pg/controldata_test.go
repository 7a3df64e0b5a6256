package pg

import "testing"

// TestParseControldata reads the fields the agent judges a stopped
// replica by, from PostgreSQL 15's pg_controldata of a standby stopped
// after a pg_rewind: its checkpoint on the old timeline, its minimum
// recovery point on the new one.
func TestParseControldata(t *testing.T) {
	out := `pg_control version number:            1300
Database system identifier:           7311709379933176810
Database cluster state:               in archive recovery
Latest checkpoint location:           0/5002060
Latest checkpoint's REDO location:    0/5002028
Latest checkpoint's TimeLineID:       3
Minimum recovery ending location:     0/5765DA0
Min recovery ending loc's timeline:   4
`
	c, err := parseControldata(out)
	if err != nil {
		t.Fatal(err)
	}
	want := Control{SystemID: 7311709379933176810, State: "in archive recovery", Checkpoint: 0x5002060, Timeline: 3,
		MinRecovery: 0x5765DA0, MinRecoveryTimeline: 4}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if _, err := parseControldata("Database cluster state: shut down\n"); err == nil {
		t.Error("no system identifier: want an error")
	}
}
