package plan

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a plan file.
type Problem struct {
	File   string
	Line   int    // 1-based; 0 when the problem has no place in the file (an empty file)
	Column int    // 1-based; 0 when Line is 0
	Field  string // path of the field, such as "repositories[1].url"; "" for the whole file
	Msg    string
}

// String formats p as "file:line:col: field: msg", leaving out the parts p
// does not have.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is what Parse and Load return for a plan file that is not valid. It
// holds every problem found, in file order.
type Error struct {
	Problems []Problem // at least one
}

// Error lists the problems, one per line, as "file:line:col: field: msg".
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
