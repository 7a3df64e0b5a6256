package plan

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// position is a place in the plan file; the zero value is no place.
type position struct {
	line, col int
}

// where is the position of the value of path, or of its nearest ancestor in
// the file when path is absent.
func (d *decoder) where(path string) position {
	for {
		if at, ok := d.pos[path]; ok || path == "" {
			return at
		}
		path = parent(path)
	}
}

// whereKey is the position of the key of path, or of the key of its nearest
// ancestor in the file when path is absent; the top of the document for a
// top-level field.
func (d *decoder) whereKey(path string) position {
	for {
		if at, ok := d.keyAt[path]; ok {
			return at
		}
		if path == "" {
			return d.pos[""]
		}
		path = parent(path)
	}
}

// nodePos is where n starts: a block mapping at its first key, a key-value
// pair at its key, anything else at its token.
func nodePos(n ast.Node) position {
	switch n := n.(type) {
	case nil:
		return position{}
	case *ast.MappingNode:
		if !n.IsFlowStyle && len(n.Values) > 0 {
			return nodePos(n.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(n.Key)
	}
	return tokenPos(n.GetToken())
}

func tokenPos(tk *token.Token) position {
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{line: tk.Position.Line, col: tk.Position.Column}
}

// keyName is the text of a mapping key.
func keyName(k ast.MapKeyNode) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	if k == nil || k.GetToken() == nil {
		return ""
	}
	return k.GetToken().Value
}

// join is the path of key in the mapping at path. Keys that are not plain
// words are quoted, so that a path stays on one line and reads unambiguously.
func join(path, key string) string {
	plain := key != "" && len(key) <= 64 && !strings.ContainsFunc(key, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	})
	if !plain {
		key = quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// parent is the path of the field holding path: "repositories[1]" for
// "repositories[1].url", "repositories" for "repositories[1]".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
