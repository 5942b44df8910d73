package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/config"
)

var docsDir = filepath.Join("..", "..", "docs")

// schemaKeys returns the dotted path of every YAML key in t, such as
// "cache.max_size" and "hosts.key.drop_params" (list indexes left out).
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		keys = append(keys, path)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(ft, path+".")...)
		}
	}
	return keys
}

// docSections maps the dotted path of every YAML key in t to the heading
// of the docs/configuration.md section whose table lists it: "Top level"
// for node, "`cache`" for cache.max_size, "`hosts[].key`" for
// hosts.key.drop_params. shown is the parent as the headings write it,
// with "[]" after lists.
func docSections(t reflect.Type, prefix, shown, heading string, sections map[string]string) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		sections[prefix+name] = heading
		ft, list := f.Type, ""
		if ft.Kind() == reflect.Slice {
			ft, list = ft.Elem(), "[]"
		}
		if ft.Kind() == reflect.Struct {
			docSections(ft, prefix+name+".", shown+name+list+".", "`"+shown+name+"`", sections)
		}
	}
}

// TestReferenceListsEveryKey keeps docs/configuration.md from drifting:
// every key of the schema must have a row in the table of its section,
// so that cluster.listen is not taken as documented by the top-level
// listen.
func TestReferenceListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(docsDir, "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	// bodies maps a "## " heading, up to its first space, to its section.
	bodies := map[string]string{}
	for _, section := range strings.Split(string(doc), "\n## ")[1:] {
		heading, body, _ := strings.Cut(section, "\n")
		if heading == "Top level" {
			bodies[heading] = body
			continue
		}
		heading, _, _ = strings.Cut(heading, " ")
		bodies[strings.TrimSuffix(heading, ":")] = body
	}
	sections := map[string]string{}
	docSections(reflect.TypeFor[config.Config](), "", "", "Top level", sections)
	for _, path := range schemaKeys(reflect.TypeFor[config.Config](), "") {
		name := path[strings.LastIndexByte(path, '.')+1:]
		heading := sections[path]
		body, ok := bodies[heading]
		if !ok {
			t.Errorf("docs/configuration.md has no section \"## %s\" for %s", heading, path)
			continue
		}
		if !strings.Contains(body, "\n| `"+name+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s under \"## %s\" (want a line starting \"| `%s` |\")", path, heading, name)
		}
	}
}

// TestReferenceExamplesParse checks every YAML block in
// docs/configuration.md, and validates the complete example.
func TestReferenceExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(docsDir, "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	complete := false
	rest := string(doc)
	for {
		start := strings.Index(rest, "\n```yaml\n")
		if start < 0 {
			break
		}
		heading := rest[:start]
		heading = heading[strings.LastIndex(heading, "\n## ")+1:]
		heading, _, _ = strings.Cut(heading, "\n")
		body := rest[start+len("\n```yaml\n"):]
		end := strings.Index(body, "\n```")
		if end < 0 {
			t.Fatal("unterminated yaml block in docs/configuration.md")
		}
		body, rest = body[:end+1], body[end:]
		blocks++

		c, err := config.Parse([]byte(body), "configuration.md block")
		if err != nil {
			t.Errorf("YAML block %d (under %q) does not parse:\n%s\nerror: %v", blocks, heading, body, err)
			continue
		}
		if heading == "## Complete example" {
			complete = true
			if err := c.Validate(); err != nil {
				t.Errorf("the complete example does not validate: %v", err)
			}
		}
	}
	if blocks == 0 || !complete {
		t.Errorf("found %d YAML blocks and complete example %v; the test no longer finds them", blocks, complete)
	}
}

// TestExampleFile checks that docs/weir.example.yaml loads and
// validates as a standalone plaintext node, that it still loads and
// validates with its commented-out cluster and tls sections uncommented,
// each alone and both, and that with both it sets every key, as it
// claims.
func TestExampleFile(t *testing.T) {
	path := filepath.Join(docsDir, "weir.example.yaml")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("%s does not validate:\n%v", path, err)
	}
	if c.Cluster.Enabled() || c.TLS.Enabled() {
		t.Errorf("%s enables the cluster (%v) or the TLS listener (%v); as shipped it should describe a standalone plaintext node, with the cluster and tls sections commented out (their files do not exist everywhere)",
			path, c.Cluster.Enabled(), c.TLS.Enabled())
	}

	shipped, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data := shipped
	for _, section := range []string{"cluster", "tls"} {
		one, ok := uncommentSection(shipped, section)
		if !ok {
			t.Fatalf("%s has no commented-out %s section (a line \"# %s:\")", path, section, section)
		}
		c, err := config.Parse(one, path+" with "+section+" uncommented")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s with its %s section uncommented does not validate:\n%v", path, section, err)
		}
		if enabled := map[string]bool{"cluster": c.Cluster.Enabled(), "tls": c.TLS.Enabled()}; !enabled[section] {
			t.Errorf("%s with its %s section uncommented does not enable it", path, section)
		}
		data, _ = uncommentSection(data, section)
	}
	c, err = config.Parse(data, path+" with cluster and tls uncommented")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("%s with its cluster and tls sections uncommented does not validate:\n%v", path, err)
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	collectKeys(&root, "", used)
	for _, key := range schemaKeys(reflect.TypeFor[config.Config](), "") {
		if !used[key] {
			t.Errorf("%s does not set %s", path, key)
		}
	}
}

// uncommentSection returns data with the commented-out top-level
// section key uncommented: the line "# key:" and the comment lines that
// follow it, up to the first line that is not a comment, lose their
// leading "# " (or "#"). It reports whether it found the section.
func uncommentSection(data []byte, key string) ([]byte, bool) {
	lines := strings.SplitAfter(string(data), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, "\r\n") == "# "+key+":" })
	if start < 0 {
		return data, false
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		l := strings.TrimPrefix(lines[i], "#")
		lines[i] = strings.TrimPrefix(l, " ")
	}
	return []byte(strings.Join(lines, "")), true
}

// collectKeys records the dotted path of every mapping key under n.
func collectKeys(n *yaml.Node, prefix string, used map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeys(c, prefix, used)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := prefix + n.Content[i].Value
			used[path] = true
			collectKeys(n.Content[i+1], path+".", used)
		}
	}
}

func TestSchemaKeys(t *testing.T) {
	keys := schemaKeys(reflect.TypeFor[config.Config](), "")
	for _, want := range []string{"node", "cache.max_size", "origins.url", "hosts.key.drop_params", "server.shutdown_timeout", "cluster.listen"} {
		if !slices.Contains(keys, want) {
			t.Errorf("schemaKeys misses %s; got %v", want, keys)
		}
	}

	sections := map[string]string{}
	docSections(reflect.TypeFor[config.Config](), "", "", "Top level", sections)
	for path, want := range map[string]string{
		"node":                  "Top level",
		"cluster":               "Top level",
		"cache.max_size":        "`cache`",
		"cluster.listen":        "`cluster`",
		"origins.url":           "`origins`",
		"hosts.key":             "`hosts`",
		"hosts.key.drop_params": "`hosts[].key`",
	} {
		if got := sections[path]; got != want {
			t.Errorf("docSections puts %s under %q, want %q", path, got, want)
		}
	}
}

func TestUncommentSection(t *testing.T) {
	in := "a: 1\n# b: old\n\n# note\n# cluster:\n#   # why\n#   listen: x  # inline\n#\n#   join: [y]\n\nc: 2\n# d: 3\n"
	want := "a: 1\n# b: old\n\n# note\ncluster:\n  # why\n  listen: x  # inline\n\n  join: [y]\n\nc: 2\n# d: 3\n"
	got, ok := uncommentSection([]byte(in), "cluster")
	if !ok || string(got) != want {
		t.Errorf("uncommentSection = %q, %v; want %q, true", got, ok, want)
	}
	if _, ok := uncommentSection([]byte(in), "server"); ok {
		t.Errorf("uncommentSection found a server section in %q", in)
	}
}
