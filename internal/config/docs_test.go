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

// TestReferenceListsEveryKey keeps docs/configuration.md from drifting:
// every key of the schema must have a row in one of its tables.
func TestReferenceListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(docsDir, "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range schemaKeys(reflect.TypeFor[config.Config](), "") {
		name := path[strings.LastIndexByte(path, '.')+1:]
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s (want a line starting \"| `%s` |\")", path, name)
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

// TestExampleFile checks that docs/weir.example.yaml loads, validates and
// sets every key, as it claims.
func TestExampleFile(t *testing.T) {
	path := filepath.Join(docsDir, "weir.example.yaml")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("%s does not validate:\n%v", path, err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
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
	for _, want := range []string{"node", "cache.max_size", "origins.url", "hosts.key.drop_params", "server.shutdown_timeout"} {
		if !slices.Contains(keys, want) {
			t.Errorf("schemaKeys misses %s; got %v", want, keys)
		}
	}
}
