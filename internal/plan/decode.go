package plan

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// decoder turns the YAML of a plan into a Plan, walking goccy/go-yaml's AST
// by hand rather than unmarshalling, so that it can report every problem (an
// unmarshaller stops at the first) and say where each one is.
type decoder struct {
	file     string
	problems []Problem
	// pos maps each field path seen ("service.rto", "repositories[1]") to
	// where its value is, or its key when the value is empty. "" is the top
	// of the document. Checks after decoding find their positions here.
	pos map[string]position
	// keyAt maps each field path seen to where its key is (for a list
	// entry, its "-"). A missing field is reported at its parent's key.
	keyAt map[string]position
	// ok holds the fields given a value: true when the value decoded, false
	// when it was of the wrong kind (already reported). Absent and empty
	// fields are not in it.
	ok map[string]bool
}

// field is a key a mapping may hold and how to decode its value.
type field struct {
	key    string
	decode func(path string, v ast.Node)
}

// maxDepth bounds how deeply flow collections ("[[[") and same-line block
// sequences ("- - -") may nest. A plan needs 3 levels, and goccy/go-yaml's
// parser takes time and memory quadratic in this depth (100,000 "[" take
// 15 GB), so deeper input is refused before it is parsed.
const maxDepth = 32

// secretAdvice says where a repository passphrase goes instead of the plan.
const secretAdvice = "put the passphrase in a file and name it with password_file, or use BULWARK_REPO_PASSWORD"

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]position{}, keyAt: map[string]position{}, ok: map[string]bool{}}
}

func (d *decoder) report(path string, at position, format string, args ...any) {
	// Error prints one problem per line; goccy's messages are not ours to trust.
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	d.problems = append(d.problems, Problem{File: d.file, Line: at.line, Column: at.col, Field: path, Msg: msg})
}

// bad reports a problem with the value of path and marks it as not decoded.
func (d *decoder) bad(path, msg string) {
	d.report(path, d.where(path), "%s", msg)
	d.ok[path] = false
}

// err returns the problems found, in file order, as an *Error, or nil.
func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(d.problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{Problems: d.problems}
}

// decode parses data and decodes it into a Plan without validating values.
// It returns nil if data is not YAML holding a single mapping.
func (d *decoder) decode(data []byte) *Plan {
	if len(data) > MaxSize {
		d.report("", position{}, "larger than %d KiB; this is not a plan file", MaxSize>>10)
		return nil
	}
	if !utf8.Valid(data) {
		d.report("", invalidUTF8(data), "not UTF-8 text")
		return nil
	}
	tokens := lexer.Tokenize(string(data))
	if !d.checkNesting(tokens) {
		return nil
	}
	f, err := parse(tokens)
	if err != nil {
		d.syntaxError(err, tokens)
		return nil
	}
	body := d.document(f)
	if body == nil {
		return nil
	}
	d.scanSecrets("", body)
	if !d.checkVersion(body) {
		return nil
	}
	p := &Plan{}
	d.mapping("", body, []field{
		{"version", func(path string, v ast.Node) { d.int(path, v, &p.Version) }},
		{"service", func(path string, v ast.Node) { d.service(path, v, &p.Service) }},
		{"postgres", func(path string, v ast.Node) { d.postgres(path, v, &p.Postgres) }},
		{"repositories", func(path string, v ast.Node) { d.repositories(path, v, &p.Repositories) }},
		{"archiving", func(path string, v ast.Node) { d.archiving(path, v, &p.Archiving) }},
		{"replication", func(path string, v ast.Node) { d.replication(path, v, &p.Replication) }},
		{"schedules", func(path string, v ast.Node) { d.schedules(path, v, &p.Schedules) }},
		{"drills", func(path string, v ast.Node) {
			d.mapping(path, v, []field{
				{"history", func(path string, v ast.Node) { d.str(path, v, &p.Drills.History) }},
			})
		}},
		{"cluster", func(path string, v ast.Node) { d.cluster(path, v, &p.Cluster) }},
	})
	if !d.ok[""] {
		return nil // not a mapping: nothing to validate
	}
	return p
}

// invalidUTF8 is the position of the first byte of data that is not UTF-8.
func invalidUTF8(data []byte) position {
	at := position{1, 1}
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n <= 1 {
			return at
		}
		at.col++
		if r == '\n' {
			at = position{at.line + 1, 1}
		}
		data = data[n:]
	}
	return at
}

// parse runs goccy/go-yaml's parser on tokens. Duplicate keys are let through
// so that they are reported along with every other problem.
func parse(tokens token.Tokens) (f *ast.File, err error) {
	// The parser is third-party code fed bytes a person typed; a bug in it
	// must become a problem with the plan, not a crash of the agent.
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
}

func (d *decoder) checkNesting(tokens token.Tokens) bool {
	flow, line, entries := 0, 0, 0
	for _, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow--
		case token.SequenceEntryType, token.MappingKeyType:
			at := tokenPos(tk)
			if at.line != line {
				line, entries = at.line, 0
			}
			entries++
		}
		if flow > maxDepth || entries > maxDepth {
			d.report("", tokenPos(tk), "nested more than %d levels deep; this is not a plan file", maxDepth)
			return false
		}
	}
	return true
}

// syntaxError reports err, the parser's complaint about tokens.
func (d *decoder) syntaxError(err error, tokens token.Tokens) {
	var yerr interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &yerr) {
		at, msg := tokenPos(yerr.GetToken()), yerr.GetMessage()
		// An unquoted cron expression such as */5 * * * * reads as YAML
		// aliases, and the parser's message does not say so.
		alias := slices.IndexFunc(tokens, func(tk *token.Token) bool {
			return tk.Type == token.AliasType && tokenPos(tk).line == at.line
		})
		if alias >= 0 {
			at = tokenPos(tokens[alias])
			msg += `; a value that starts with * must be quoted, as in cron: "*/5 * * * *"`
		}
		d.report("", at, "invalid YAML: %s", msg)
		return
	}
	d.report("", position{}, "invalid YAML: %v", err)
}

// document returns the body of the single YAML document in f, or nil after
// reporting why there is none.
func (d *decoder) document(f *ast.File) ast.Node {
	var body ast.Node
	for _, doc := range f.Docs {
		_, null := doc.Body.(*ast.NullNode)
		switch {
		case doc.Body == nil || null:
			continue // "---" alone, comments only, or "~"
		case body != nil:
			d.report("", nodePos(doc.Body), "a plan file holds one YAML document; this is a second one")
			return nil
		}
		body = doc.Body
	}
	if body == nil {
		d.report("", position{}, "empty; a plan needs version, service, postgres and repositories (see docs/plan.md)")
	}
	return d.enter("", position{1, 1}, body)
}

// checkVersion refuses a plan of another schema version before decoding it
// as version 1, which would bury the reason under a pile of problems.
func (d *decoder) checkVersion(body ast.Node) bool {
	m, ok := body.(*ast.MappingNode)
	if !ok {
		return true // reported by mapping
	}
	for _, kv := range m.Values {
		n, ok := kv.Value.(*ast.IntegerNode)
		if keyName(kv.Key) != "version" || !ok {
			continue
		}
		if v, ok := intValue(n); !ok || v != Version {
			d.report("version", nodePos(n), "unsupported plan version %s; this bulwark reads version %d", n.GetToken().Value, Version)
			return false
		}
	}
	return true
}

// scanSecrets reports every key under n that would hold a password.
func (d *decoder) scanSecrets(path string, n ast.Node) {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, kv := range n.Values {
			sub := join(path, keyName(kv.Key))
			if isSecretKey(keyName(kv.Key)) {
				d.report(sub, nodePos(kv.Key), "a plan must not hold a password: %s", secretAdvice)
				continue
			}
			d.scanSecrets(sub, kv.Value)
		}
	case *ast.SequenceNode:
		for i, v := range n.Values {
			d.scanSecrets(index(path, i), v)
		}
	case *ast.AnchorNode:
		d.scanSecrets(path, n.Value)
	case *ast.TagNode:
		d.scanSecrets(path, n.Value)
	}
}

// isSecretKey says whether a key names a password, whatever its case:
// password, passphrase, pgpassword, repo_password and so on.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	return strings.HasSuffix(k, "password") || strings.HasSuffix(k, "passphrase")
}

// enter records where the value v of the field path is. It returns v when it
// holds something to decode, and nil when v is empty (the field counts as not
// given) or uses a YAML feature plans leave out (reported).
func (d *decoder) enter(path string, keyAt position, v ast.Node) ast.Node {
	if path != "" {
		d.keyAt[path] = keyAt
	}
	switch v.(type) {
	case nil, *ast.NullNode:
		d.pos[path] = keyAt
		return nil
	case *ast.AnchorNode, *ast.AliasNode:
		d.pos[path] = nodePos(v)
		d.bad(path, "YAML anchors and aliases are not supported in a plan")
		return nil
	case *ast.TagNode:
		d.pos[path] = nodePos(v)
		d.bad(path, "YAML tags are not supported in a plan; quote a value to make it a string")
		return nil
	}
	d.pos[path] = nodePos(v)
	return v
}

// mapping decodes the mapping n at path, handing the value of each key to its
// field. It reports keys that are unknown, repeated or merged in.
func (d *decoder) mapping(path string, n ast.Node, fields []field) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.wrongType(path, n, "a mapping")
		return
	}
	d.ok[path] = true
	seen := map[string]position{}
	for _, kv := range m.Values {
		at, name := nodePos(kv.Key), keyName(kv.Key)
		sub := join(path, name)
		_, merge := kv.Key.(*ast.MergeKeyNode)
		first, dup := seen[name]
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == name })
		switch {
		case merge:
			d.report(path, at, "YAML merge keys (<<) are not supported in a plan")
		case isSecretKey(name):
			// reported by scanSecrets
		case dup:
			d.report(sub, at, "duplicate key (first at line %d)", first.line)
		case i < 0:
			d.report(sub, at, "unknown field (%s)", suggest(name, fields))
		default:
			seen[name] = at
			if v := d.enter(sub, at, kv.Value); v != nil {
				fields[i].decode(sub, v)
			}
		}
	}
}

func (d *decoder) service(path string, v ast.Node, s *Service) {
	d.mapping(path, v, []field{
		{"name", func(path string, v ast.Node) { d.str(path, v, &s.Name) }},
		{"tier", func(path string, v ast.Node) { d.int(path, v, &s.Tier) }},
		{"rto", func(path string, v ast.Node) { d.duration(path, v, &s.RTO) }},
		{"rpo", func(path string, v ast.Node) { d.duration(path, v, &s.RPO) }},
		{"region", func(path string, v ast.Node) { d.str(path, v, &s.Region) }},
	})
}

func (d *decoder) postgres(path string, v ast.Node, pg *Postgres) {
	d.mapping(path, v, []field{
		{"pgdata", func(path string, v ast.Node) { d.str(path, v, &pg.PGData) }},
		{"db", func(path string, v ast.Node) { d.str(path, v, &pg.DB) }},
		{"bin_dir", func(path string, v ast.Node) { d.str(path, v, &pg.BinDir) }},
	})
}

// list decodes the list at path, handing each entry to entry, which must
// keep one element per entry (even a bad one) so that element i is the
// entry at path[i]. entry gets nil for an entry that is empty or could not
// be entered (both reported: an empty one with empty, which says what an
// entry needs).
func (d *decoder) list(path string, v ast.Node, what, empty string, entry func(path string, v ast.Node)) {
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		d.wrongType(path, v, "a list of "+what)
		return
	}
	d.ok[path] = true
	for i, e := range seq.Values {
		sub := index(path, i)
		at := nodePos(e) // a flow list has no "-"
		if i < len(seq.Entries) && seq.Entries[i] != nil && tokenPos(seq.Entries[i].Start).line > 0 {
			at = tokenPos(seq.Entries[i].Start)
		}
		e := d.enter(sub, at, e)
		if _, reported := d.ok[sub]; e == nil && !reported {
			d.bad(sub, "empty entry; "+empty)
		}
		entry(sub, e)
	}
}

func (d *decoder) repositories(path string, v ast.Node, rs *[]Repository) {
	d.list(path, v, "repositories", "a repository needs a name and a url", func(path string, v ast.Node) {
		var r Repository
		if v != nil {
			d.mapping(path, v, []field{
				{"name", func(path string, v ast.Node) { d.str(path, v, &r.Name) }},
				{"url", func(path string, v ast.Node) { d.str(path, v, &r.URL) }},
				{"password_file", func(path string, v ast.Node) { d.str(path, v, &r.PasswordFile) }},
				{"region", func(path string, v ast.Node) { d.str(path, v, &r.Region) }},
				{"offsite", func(path string, v ast.Node) {
					var b bool
					if d.boolean(path, v, &b); d.ok[path] {
						r.Offsite = &b
					}
				}},
				{"retention", func(path string, v ast.Node) { d.retention(path, v, &r.Retention) }},
			})
		}
		*rs = append(*rs, r)
	})
}

func (d *decoder) retention(path string, v ast.Node, r *Retention) {
	d.mapping(path, v, []field{
		{"full", func(path string, v ast.Node) { d.int(path, v, &r.Full) }},
		{"diff", func(path string, v ast.Node) { d.int(path, v, &r.Diff) }},
		{"within", func(path string, v ast.Node) { d.age(path, v, &r.Within) }},
		{"daily", func(path string, v ast.Node) { d.int(path, v, &r.Daily) }},
		{"weekly", func(path string, v ast.Node) { d.int(path, v, &r.Weekly) }},
		{"monthly", func(path string, v ast.Node) { d.int(path, v, &r.Monthly) }},
	})
}

func (d *decoder) archiving(path string, v ast.Node, a *Archiving) {
	d.mapping(path, v, []field{
		{"mode", func(path string, v ast.Node) {
			enum(d, path, v, &a.Mode, ArchiveNone, ArchiveCommand, ArchiveReceiver, ArchiveSyncReceiver)
		}},
		{"archive_timeout", func(path string, v ast.Node) { d.duration(path, v, &a.Timeout) }},
	})
}

func (d *decoder) replication(path string, v ast.Node, r *Replication) {
	d.mapping(path, v, []field{
		{"mode", func(path string, v ast.Node) {
			enum(d, path, v, &r.Mode, ReplicationNone, ReplicationAsync, ReplicationSync, ReplicationQuorum)
		}},
		{"sync_count", func(path string, v ast.Node) { d.int(path, v, &r.SyncCount) }},
		{"strict", func(path string, v ast.Node) { d.boolean(path, v, &r.Strict) }},
	})
}
