package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path and parses it with Parse.
// It does not validate: apply flags, then call Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes the YAML document data on top of Default and applies
// defaults (see ApplyDefaults). name is the file name used in error
// messages. An empty document yields Default().
//
// Decoding is strict: an unknown key, a value of the wrong type or a
// repeated key is an error. Parse reports every such problem at once,
// joined with errors.Join, each as "name:line: problem", for example
//
//	weir.yaml:7: unknown key "max_sise" in cache (known keys: max_size, ...); did you mean "max_size"?
//
// Parse does not validate values: call Validate for that.
func Parse(data []byte, name string) (*Config, error) {
	if name == "" {
		name = "<config>"
	}
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return cfg, nil
	case err != nil:
		return nil, yamlError(name, err)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(name, err)
		}
		if root := documentRoot(&next); root != nil && !isNull(root) {
			return nil, fmt.Errorf("%s:%d: a second YAML document starts here, but a configuration file holds one document; remove the \"---\" separator and merge the two", name, root.Line)
		}
	}
	root := documentRoot(&doc)
	if root == nil || isNull(root) {
		return cfg, nil
	}

	c := checker{file: name, seen: make(map[seenKey]bool)}
	c.check(root, reflect.TypeFor[Config](), "")
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}

	// The checker found nothing, so this strict decode should not fail; if
	// it does, its error still names the file and line.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil {
		return nil, yamlError(name, err)
	}
	cfg.ApplyDefaults()
	return cfg, nil
}

// documentRoot returns the content of a document node, or nil if it is
// empty.
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode {
		return doc
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// yamlError turns an error from the YAML library into "file:line: msg"
// lines.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, errors.New(withFileLine(file, e)))
		}
		return errors.Join(errs...)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, rest, ok := cutLine(msg)
	if !ok {
		rest = msg
	}
	if parserProblems[rest] {
		// The YAML library numbers lines from 0 in parser (not scanner)
		// errors, and leaves the number out when it is 0.
		line, ok = line+1, true
	}
	if ok {
		return fmt.Errorf("%s:%d: invalid YAML: %s", file, line, rest)
	}
	return fmt.Errorf("%s: invalid YAML: %s", file, rest)
}

// parserProblems are the messages of the YAML library's parser errors,
// whose line numbers it counts from 0.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// withFileLine turns "line N: msg" into "file:N: msg".
func withFileLine(file, msg string) string {
	if line, rest, ok := cutLine(msg); ok {
		return fmt.Sprintf("%s:%d: %s", file, line, rest)
	}
	return file + ": " + msg
}

// cutLine splits "line N: rest" into N and rest.
func cutLine(msg string) (int, string, bool) {
	s, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(s, ": ")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", false
	}
	return n, rest, true
}

// checker walks a YAML node tree against the Go types it will be decoded
// into and records, with file, line and field path, every unknown or
// repeated key and every value of the wrong shape or type. It exists
// because the YAML library stops at the first error of some kinds and
// names Go types rather than the user's keys.
type checker struct {
	file string
	errs []error
	// seen holds the (node, type) pairs already checked, so that a node
	// reached again through YAML aliases is checked once and alias bombs
	// cannot make the walk exponential.
	seen map[seenKey]bool
}

type seenKey struct {
	node *yaml.Node
	typ  reflect.Type
}

func (c *checker) errorf(line int, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s:%d: %s", c.file, line, fmt.Sprintf(format, args...)))
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// check checks node n, to be decoded into a value of type t found at
// path ("" for the top level).
func (c *checker) check(n *yaml.Node, t reflect.Type, path string) {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return // Null keeps the default, as the decoder does.
	}
	if k := (seenKey{n, t}); c.seen[k] {
		return
	} else {
		c.seen[k] = true
	}

	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			c.errorf(n.Line, "%s: expected %s, found %s", path, describeType(t), describeNode(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.errorf(n.Line, "%s: %v", path, err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		c.checkMapping(n, t, path)
	case reflect.Map:
		c.checkMap(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("; write [%s] for a list of one", n.Value)
			}
			c.errorf(n.Line, "%s: expected a list, found %s%s", path, describeNode(n), hint)
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			c.errorf(n.Line, "%s: expected %s, found %s", path, describeType(t), describeNode(n))
			return
		}
		if t.Kind() == reflect.Bool && (n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 || n.Value != "true" && n.Value != "false") {
			// The YAML decoder also takes yes, no, on and off (YAML 1.1);
			// the docs say true or false, and one spelling leaves no doubt.
			c.errorf(n.Line, "%s: cannot use %s as true or false; write true or false", path, describeNode(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.errorf(n.Line, "%s: cannot use %s as %s", path, describeNode(n), describeType(t))
		}
	}
}

// checkMapping checks the mapping node n against struct type t.
func (c *checker) checkMapping(n *yaml.Node, t reflect.Type, path string) {
	where := "in " + path
	if path == "" {
		where = "at the top level"
	}
	if n.Kind != yaml.MappingNode {
		if path == "" {
			c.errorf(n.Line, "expected key: value pairs at the top level, found %s", describeNode(n))
		} else {
			c.errorf(n.Line, "%s: expected key: value pairs, found %s", path, describeNode(n))
		}
		return
	}
	fields := yamlFields(t)
	firstLine := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			c.errorf(n.Content[i].Line, "keys %s must be plain names, found %s", where, describeNode(n.Content[i]))
			continue
		}
		if isMergeKey(k) {
			c.checkMerge(v, t, path, where)
			continue
		}
		name := k.Value
		if line, dup := firstLine[name]; dup {
			c.errorf(k.Line, "key %q appears twice %s (first at line %d); keep one", name, where, line)
			continue
		}
		firstLine[name] = k.Line
		ft, ok := fields.typeOf(name)
		if !ok {
			hint := ""
			if s := fields.suggest(name); s != "" {
				hint = fmt.Sprintf("; did you mean %q?", s)
			}
			c.errorf(k.Line, "unknown key %q %s (known keys: %s)%s", name, where, strings.Join(fields.names, ", "), hint)
			continue
		}
		c.check(v, ft, joinPath(path, name))
	}
}

// checkMap checks the mapping node n against map type t, whose keys are
// strings: any plain key is allowed, once. Its messages never show a
// string value, which may be a secret.
func (c *checker) checkMap(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.errorf(n.Line, "%s: expected key: value pairs, found %s", path, describeNode(n))
		return
	}
	firstLine := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode || isNull(k) {
			c.errorf(n.Content[i].Line, "keys in %s must be plain names, found %s", path, describeNode(n.Content[i]))
			continue
		}
		if isMergeKey(k) {
			c.checkMerge(v, t, path, "in "+path)
			continue
		}
		if line, dup := firstLine[k.Value]; dup {
			c.errorf(k.Line, "key %q appears twice in %s (first at line %d); keep one", k.Value, path, line)
			continue
		}
		firstLine[k.Value] = k.Line
		p := joinPath(path, k.Value)
		if s := resolveAlias(v); s != nil && s.Kind == yaml.ScalarNode && !isNull(s) && t.Elem().Kind() == reflect.String {
			// Values may be secrets (tracing headers): never show one.
			if err := s.Decode(reflect.New(t.Elem()).Interface()); err != nil {
				c.errorf(s.Line, "%s: cannot use this value as a string; write it plain or quoted, without a tag (the value is not shown, as it may be a secret)", p)
			}
			continue
		}
		c.check(v, t.Elem(), p)
	}
}

// checkMerge checks the value of a YAML merge key ("<<: *base").
func (c *checker) checkMerge(v *yaml.Node, t reflect.Type, path, where string) {
	v = resolveAlias(v)
	switch {
	case v == nil:
	case v.Kind == yaml.MappingNode:
		c.check(v, t, path)
	case v.Kind == yaml.SequenceNode:
		for _, item := range v.Content {
			if m := resolveAlias(item); m == nil || m.Kind != yaml.MappingNode {
				c.errorf(item.Line, "merge (<<) %s needs mappings, found %s", where, describeNode(item))
				continue
			}
			c.check(item, t, path)
		}
	default:
		c.errorf(v.Line, "merge (<<) %s needs a mapping or a list of mappings, found %s", where, describeNode(v))
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// resolveAlias follows an alias to its anchored node.
func resolveAlias(n *yaml.Node) *yaml.Node {
	// An anchor cannot be an alias itself, but a bound keeps a malformed
	// tree from looping.
	for range 16 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}

// describeNode describes a node for an error message.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "key: value pairs"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (*" + n.Value + ")"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "an unknown YAML node"
}

// describeType names what a value of type t looks like, for an error
// message.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Size]():
		return "a size like 256MiB"
	case reflect.TypeFor[Duration]():
		return `a duration like "10s"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "key: value pairs"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// fieldSet lists a struct's YAML keys in declaration order.
type fieldSet struct {
	names []string
	types []reflect.Type
}

func yamlFields(t reflect.Type) fieldSet {
	var fs fieldSet
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.names = append(fs.names, name)
		fs.types = append(fs.types, f.Type)
	}
	return fs
}

func (fs fieldSet) typeOf(name string) (reflect.Type, bool) {
	for i, n := range fs.names {
		if n == name {
			return fs.types[i], true
		}
	}
	return nil, false
}

// suggest returns the known key closest to name, if it is close enough to
// be a likely typo, or "".
func (fs fieldSet) suggest(name string) string {
	best, bestDist := "", 3
	folded := strings.ReplaceAll(strings.ToLower(name), "-", "_")
	for _, n := range fs.names {
		if folded == n {
			return n
		}
		if d := editDistance(folded, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return best
	}
	// A key that extends or shortens a known one, such as "listen_addr"
	// for "listen" or "heuristic" for "heuristic_fraction".
	for _, n := range fs.names {
		if len(folded) >= 4 && len(n) >= 4 && (strings.HasPrefix(folded, n) || strings.HasPrefix(n, folded)) {
			return n
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
