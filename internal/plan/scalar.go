package plan

import (
	"fmt"
	"math"
	"slices"
	"strconv"
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

// age decodes a duration as duration does, and also a whole number of days
// or weeks ("30d", "4w"): retention ages are counted in days.
func (d *decoder) age(path string, v ast.Node, dst *time.Duration) {
	sv, ok := v.(*ast.StringNode)
	if !ok {
		d.duration(path, v, dst)
		return
	}
	x, ok := parseAge(sv.Value)
	if !ok {
		d.bad(path, fmt.Sprintf("invalid duration %s: want a number with a unit (d for days, w for weeks, or h, m, s), such as 30d, 4w or 720h", quote(sv.Value)))
		return
	}
	*dst = x
	d.ok[path] = true
}

// parseAge parses a Go duration or a whole number of days (30d) or weeks
// (4w).
func parseAge(s string) (time.Duration, bool) {
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if n := len(s); n > 1 && isDigits(s[:n-1]) && units[s[n-1]] > 0 {
		unit := units[s[n-1]]
		x, err := strconv.ParseInt(s[:n-1], 10, 64)
		if err != nil || x > math.MaxInt64/int64(unit) {
			return 0, false
		}
		return time.Duration(x) * unit, true
	}
	x, err := time.ParseDuration(s)
	return x, err == nil
}

// boolean decodes true or false. Strings such as "yes" are refused.
func (d *decoder) boolean(path string, v ast.Node, dst *bool) {
	b, ok := v.(*ast.BoolNode)
	if !ok {
		d.wrongType(path, v, "true or false")
		return
	}
	*dst = b.Value
	d.ok[path] = true
}

// enum decodes a string that must be one of allowed.
func enum[T ~string](d *decoder, path string, v ast.Node, dst *T, allowed ...T) {
	var s string
	if d.str(path, v, &s); !d.ok[path] {
		return
	}
	if slices.Contains(allowed, T(s)) {
		*dst = T(s)
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	msg := fmt.Sprintf("must be one of %s, not %s", strings.Join(names, ", "), quote(s))
	if c := closest(s, names); c != "" {
		msg += " (did you mean " + c + "?)"
	}
	d.bad(path, msg)
}

// cron decodes a cron expression.
func (d *decoder) cron(path string, v ast.Node, dst *Cron) {
	var s string
	if d.str(path, v, &s); !d.ok[path] {
		return
	}
	c, err := ParseCron(s)
	if err != nil {
		d.bad(path, fmt.Sprintf("invalid cron expression %s: %v", quote(s), err))
		return
	}
	*dst = c
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
