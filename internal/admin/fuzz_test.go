package admin

import (
	"strings"
	"testing"
)

// FuzzParseTokens checks that ParseTokens never panics, that what it
// accepts is what the format says, and that its errors never echo a hash.
func FuzzParseTokens(f *testing.F) {
	h1, h2 := HashToken("one"), HashToken("two")
	for _, seed := range []string{
		"",
		"\n\n# comment\n",
		"alice admin " + h1 + "\n",
		"alice admin " + h1 + "\r\nbob\tviewer\t" + strings.ToUpper(h2) + "\n",
		"  # indented comment\n\t\nalice purge " + h1,
		"alice admin " + h1 + "\nalice admin " + h2 + "\n",
		"alice admin " + h1 + "\nbob admin " + h1 + "\n",
		"alice root " + h1 + "\n",
		"alice " + h1 + " admin\n",
		"alice admin " + h1[:63] + "g\n",
		h1 + " admin " + h2 + "\n" + h1 + " viewer " + h1 + "\n",
		"al\x00ice admin " + h1 + "\n",
		"\r\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := ParseTokens(strings.NewReader(in), "fuzz")
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz:") {
				t.Errorf("error %q does not start with the source", msg)
			}
			if longestHexRun(msg) >= 64 {
				t.Errorf("error %q echoes something hash-sized", msg)
			}
			return
		}
		tokenLines := 0
		for _, line := range strings.Split(in, "\n") {
			line = strings.TrimSuffix(line, "\r")
			if rest := strings.TrimLeft(line, " \t"); rest != "" && rest[0] != '#' {
				tokenLines++
			}
		}
		if tok.Len() != tokenLines {
			t.Errorf("Len() = %d, want %d: the number of non-blank, non-comment lines", tok.Len(), tokenLines)
		}
		names := make(map[string]bool)
		for _, e := range tok.byHash {
			if e.name == "" || len(e.name) > MaxTokenNameBytes || strings.ContainsAny(e.name, " \t\r\n") || !e.role.valid() {
				t.Errorf("accepted token %+v", e)
			}
			if names[e.name] {
				t.Errorf("name %q accepted twice", e.name)
			}
			names[e.name] = true
		}
	})
}

func longestHexRun(s string) int {
	run, longest := 0, 0
	for i := 0; i < len(s); i++ {
		if isHexDigit(s[i]) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}
