package rules

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDocsRulesAreValid keeps docs/rules.md and the README honest:
// every rule in their YAML examples and every rule in the migration
// table's Weir column parses and validates.
func TestDocsRulesAreValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Origins: []string{"web", "app", "canary"}}
	check := func(where, src string) {
		t.Helper()
		var list []Rule
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		if err := dec.Decode(&list); err != nil {
			t.Errorf("%s: %v\n%s", where, err, src)
			return
		}
		if err := Validate(list, env); err != nil {
			t.Errorf("%s: %v\n%s", where, err, src)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc)+string(readme), -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d YAML examples, want at least 2", len(blocks))
	}
	for i, b := range blocks {
		var v struct {
			Hosts []struct {
				Rules yaml.Node `yaml:"rules"`
			} `yaml:"hosts"`
			Rules yaml.Node `yaml:"rules"`
		}
		if err := yaml.Unmarshal([]byte(b[1]), &v); err != nil {
			t.Errorf("example %d: %v", i, err)
			continue
		}
		nodes := []yaml.Node{v.Rules}
		for _, h := range v.Hosts {
			nodes = append(nodes, h.Rules)
		}
		for _, n := range nodes {
			if n.Kind == 0 {
				continue
			}
			out, _ := yaml.Marshal(&n)
			check("example "+string(rune('0'+i)), string(out))
		}
	}
	// The migration table: the Weir column's rules and rule fragments.
	fragment := regexp.MustCompile(`^(match|route|request_headers|response_headers|redirect|respond|cache): `)
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) < 4 || strings.Trim(cells[0], "| ") == "#" || strings.HasPrefix(cells[0], "|---") {
			continue
		}
		rows++
		weir := cells[len(cells)-1]
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(weir, -1) {
			span := m[1]
			switch {
			case strings.HasPrefix(span, "{match:"):
				check("table row "+cells[0], "["+span+"]")
			case fragment.MatchString(span) && !strings.HasPrefix(span, "match:"):
				check("table row "+cells[0], "[{"+span+"}]")
			}
		}
	}
	if rows < 15 {
		t.Fatalf("the migration table has %d rows, want at least 15", rows)
	}
}
