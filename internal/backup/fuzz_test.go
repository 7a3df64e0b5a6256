package backup

import (
	"encoding/json"
	"testing"

	"github.com/bulwarkdb/bulwark/internal/pg"
)

// FuzzEntry decodes manifest lines: never a panic, and a decoded entry
// encodes and decodes to itself.
func FuzzEntry(f *testing.F) {
	f.Add(`{"path":"base/1/1259","kind":"file","mode":384,"size":8192,"blocks":["` + zeroHex + `"]}`)
	f.Add(`{"path":"x","kind":"file","blocks":[{"h":"` + zeroHex + `","p":["` + zeroHex + `","` + zeroHex + `"]}]}`)
	f.Fuzz(func(t *testing.T, line string) {
		var e Entry
		if json.Unmarshal([]byte(line), &e) != nil {
			return
		}
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatalf("encode %+v: %v", e, err)
		}
		var again Entry
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("decode of our own encoding %s: %v", b, err)
		}
	})
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

// FuzzApplyDelta: a damaged delta is an error, never a panic.
func FuzzApplyDelta(f *testing.F) {
	block := make([]byte, BlockSize)
	f.Add(encodeDelta(block, 0b101, nil))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, delta []byte) {
		applyDelta(make([]byte, 4*pg.PageSize), delta)
	})
}

func TestDeltaRoundTrip(t *testing.T) {
	base := make([]byte, BlockSize)
	cur := make([]byte, BlockSize)
	for i := range cur {
		cur[i] = byte(i / pg.PageSize)
	}
	var mask uint32 = 1<<0 | 1<<7 | 1<<31
	d := encodeDelta(cur, mask, nil)
	if err := applyDelta(base, d); err != nil {
		t.Fatal(err)
	}
	for i := range pagesPerBlock {
		page := base[i*pg.PageSize : (i+1)*pg.PageSize]
		changed := mask&(1<<i) != 0
		if got := page[0] == byte(i); got != changed && i != 0 {
			t.Fatalf("page %d: applied %v, want %v", i, got, changed)
		}
	}
}
