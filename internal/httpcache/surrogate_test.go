package httpcache

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSurrogateKeys(t *testing.T) {
	long := strings.Repeat("k", MaxSurrogateKeyLen)
	var many []string
	for i := range MaxSurrogateKeys + 10 {
		many = append(many, "t"+strconv.Itoa(i))
	}
	tests := []struct {
		name   string
		values []string
		want   []string
	}{
		{"absent", nil, nil},
		{"empty", []string{"  "}, nil},
		{"space-separated", []string{"a b  c"}, []string{"a", "b", "c"}},
		{"tabs separate", []string{"a\tb"}, []string{"a", "b"}},
		{"several lines, order kept", []string{"b a", "c"}, []string{"b", "a", "c"}},
		{"deduplicated", []string{"a b a", "b c"}, []string{"a", "b", "c"}},
		{"case-sensitive", []string{"A a"}, []string{"A", "a"}},
		{"256 bytes kept", []string{long}, []string{long}},
		{"257 bytes dropped", []string{long + "k x"}, []string{"x"}},
		{"control characters dropped", []string{"a\x00b c\x7f d"}, []string{"d"}},
		{"non-ASCII kept", []string{"caf\xc3\xa9"}, []string{"caf\xc3\xa9"}},
		{"at most 128", []string{strings.Join(many, " ")}, many[:MaxSurrogateKeys]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseSurrogateKeys(tt.values)); diff != "" {
				t.Errorf("ParseSurrogateKeys mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
