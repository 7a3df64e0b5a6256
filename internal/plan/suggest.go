package plan

import (
	"strings"
)

// suggest names the known key that name is a typo of, if one is close, or
// else lists the known keys.
func suggest(name string, fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	if c := closest(name, names); c != "" {
		return "did you mean " + c + "?"
	}
	return "known: " + strings.Join(names, ", ")
}

// closest is the first of known that name is likely a typo of, or "".
func closest(name string, known []string) string {
	for _, k := range known {
		if distance(name, k) <= min(2, len(k)/3) {
			return k
		}
	}
	return ""
}

// distance is the edit distance between a and b in bytes, counting a swap of
// two neighbours as one edit (optimal string alignment).
func distance(a, b string) int {
	if len(a) > len(b)+2 || len(b) > len(a)+2 {
		return 3 // too far to matter; saves work on long keys
	}
	prev, row := make([]int, len(b)+1), make([]int, len(b)+1)
	var prev2 []int
	for j := range row {
		row[j] = j
	}
	for i := range len(a) {
		prev2, prev, row = prev, row, prev2
		if row == nil {
			row = make([]int, len(b)+1)
		}
		row[0] = i + 1
		for j := range len(b) {
			cost := 1
			if a[i] == b[j] {
				cost = 0
			}
			row[j+1] = min(prev[j+1]+1, row[j]+1, prev[j]+cost)
			if i > 0 && j > 0 && a[i] == b[j-1] && a[i-1] == b[j] {
				row[j+1] = min(row[j+1], prev2[j-1]+1)
			}
		}
	}
	return row[len(b)]
}
