package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Encode returns c as a YAML document with every setting spelled out at
// its effective value, defaults included: what `weir check` prints, and
// what Hash hashes. Parsing the document gives c back.
func (c *Config) Encode() []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		// Every field of Config is a string, number, bool, list, map,
		// or a Size or Duration, which marshal as text.
		panic(fmt.Sprintf("config: encoding a configuration: %v", err))
	}
	_ = enc.Close()
	return buf.Bytes()
}

// Hash identifies c's effective settings: "sha256:" and the hex SHA-256
// of Encode. Two files that differ only in comments, order or settings
// spelled at their default have the same hash.
func (c *Config) Hash() string {
	sum := sha256.Sum256(c.Encode())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// maxDiffLines bounds what Diff returns: a reload that rewrote the whole
// file is summed up, not logged line by line.
const maxDiffLines = 200

// Diff lists the settings whose effective value differs from old to new,
// one line each, in the file's order:
//
//	cache.max_size: 256MiB -> 1GiB
//	hosts[1].match[0]: added "api.example.com"
//	origins[1].url: removed (was "http://10.0.0.9")
//
// Values that may hold secrets (tracing header values, the user and
// password of an origin URL) are shown as "<redacted>". Past
// maxDiffLines it says how many more lines there were.
func Diff(old, new *Config) []string {
	a, b := flatten(old), flatten(new)
	av := make(map[string]string, len(a))
	for _, kv := range a {
		av[kv.path] = kv.value
	}
	bv := make(map[string]bool, len(b))
	var out []string
	for _, kv := range b {
		bv[kv.path] = true
		was, ok := av[kv.path]
		switch {
		case !ok:
			out = append(out, kv.path+": added "+kv.value)
		case was != kv.value:
			out = append(out, kv.path+": "+was+" -> "+kv.value)
		}
	}
	for _, kv := range a {
		if !bv[kv.path] {
			out = append(out, kv.path+": removed (was "+kv.value+")")
		}
	}
	if len(out) > maxDiffLines {
		more := len(out) - maxDiffLines
		out = append(out[:maxDiffLines], fmt.Sprintf("... and %d more changed settings", more))
	}
	return out
}

// setting is one scalar of an encoded configuration.
type setting struct{ path, value string }

// flatten lists c's scalars with their paths, as Diff names them.
func flatten(c *Config) []setting {
	var doc yaml.Node
	if err := yaml.Unmarshal(c.Encode(), &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []setting
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], joinPath(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				walk(e, path+"["+strconv.Itoa(i)+"]")
			}
		case yaml.ScalarNode:
			out = append(out, setting{path, shownValue(path, n.Value)})
		}
	}
	walk(doc.Content[0], "")
	return out
}

// shownValue quotes a setting's value for Diff, redacting secrets.
func shownValue(path, v string) string {
	switch {
	case strings.HasPrefix(path, "telemetry.tracing.headers."):
		return "<redacted>"
	case strings.HasPrefix(path, "origins[") && (strings.HasSuffix(path, ".url") || strings.Contains(path, ".servers[")):
		v = redactURL(v)
	}
	return strconv.Quote(v)
}
