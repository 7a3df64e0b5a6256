package plan

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// str decodes a string. Numbers and booleans are refused rather than
// converted, so that what the plan says is what Bulwark uses.
func (d *decoder) str(path string, v ast.Node, dst *string) {
	switch v := v.(type) {
	case *ast.StringNode:
		*dst = v.Value
	case *ast.LiteralNode:
		*dst = v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		d.bad(path, fmt.Sprintf("must be a string, not %s; quote it", kind(v)))
		return
	default:
		d.wrongType(path, v, "a string")
		return
	}
	d.ok[path] = true
}

// int decodes an integer. Floats and strings are refused.
func (d *decoder) int(path string, v ast.Node, dst *int) {
	n, ok := v.(*ast.IntegerNode)
	if !ok {
		d.wrongType(path, v, "an integer")
		return
	}
	x, ok := intValue(n)
	if !ok {
		d.bad(path, "integer out of range")
		return
	}
	*dst = x
	d.ok[path] = true
}

// intValue is the value of n as an int, false if it does not fit.
func intValue(n *ast.IntegerNode) (int, bool) {
	switch x := n.Value.(type) {
	case int64:
		return int(x), x >= math.MinInt && x <= math.MaxInt
	case uint64:
		return int(x), x <= math.MaxInt
	}
	return 0, false
}

// duration decodes a Go duration ("30s", "1h30m"). A bare 0 is also
// accepted; other bare numbers are refused, as their unit would be a guess.
func (d *decoder) duration(path string, v ast.Node, dst *time.Duration) {
	switch v := v.(type) {
	case *ast.StringNode:
		x, err := time.ParseDuration(v.Value)
		if err != nil {
			d.bad(path, fmt.Sprintf("invalid duration %s: want a number with a unit (ms, s, m, h), such as 30s, 5m or 1h30m", quote(v.Value)))
			return
		}
		*dst = x
	case *ast.IntegerNode:
		if x, ok := intValue(v); !ok || x != 0 {
			d.bad(path, "a duration needs a unit (ms, s, m, h), such as 30s or 5m; only 0 may go without")
			return
		}
		*dst = 0
	default:
		d.wrongType(path, v, "a duration such as 30s or 5m")
		return
	}
	d.ok[path] = true
}

func (d *decoder) wrongType(path string, v ast.Node, want string) {
	d.bad(path, fmt.Sprintf("must be %s, not %s", want, kind(v)))
}

// kind names the kind of YAML value n is, for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// quote quotes s for a message, cut short if it is long.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
