package repo

import (
	"bytes"
	"testing"
)

// FuzzPackHeader: whatever a pack's bytes, parsing its header is an error
// or a list of blobs inside the pack — never a panic.
func FuzzPackHeader(f *testing.F) {
	k, err := newKey(bytes.Repeat([]byte{7}, masterKeySize))
	if err != nil {
		f.Fatal(err)
	}
	var p packer
	p.add(packBlob{ID: ID{1}, RawLength: 3}, k.Seal(nil, []byte("abc")))
	good, _ := p.finish(k)
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		blobs, err := parsePackHeader(k, data)
		if err != nil {
			return
		}
		for _, b := range blobs {
			if int(b.Offset)+int(b.Length) > len(data) {
				t.Fatalf("blob %v beyond the pack", b)
			}
		}
	})
}
