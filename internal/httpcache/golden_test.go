package httpcache

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the expected sections of testdata/decisions/*.txt")

// TestDecisions runs the scripted cache decisions of testdata/decisions.
// Each case is a request, a response and a series of lookups; the part
// after "----" is what EvaluateResponse, CorrectedInitialAge, CurrentAge,
// Decide and, when the lookup forwards, StaleIfError make of them. Run with -update to regenerate the
// expected parts after a deliberate change, and review the diff.
//
// The format, one directive per line:
//
//	case NAME                   starts a case
//	rules KEY=VALUE...          default-ttl, heuristic-fraction, heuristic-max, swr, sie, store-set-cookie
//	request METHOD              then "> Name: value" lines
//	response STATUS [fetch=D]   then "< Name: value" lines; fetch is the request→response delay
//	lookup +D [DIRECTIVES]      a lookup D after the response was received,
//	                            with the request Cache-Control DIRECTIVES
//	----                        then the expected output, up to a blank line
//
// The request is sent at Mon, 01 Jan 2024 00:00:00 GMT; lines starting
// with '#' are comments.
func TestDecisions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "decisions", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/decisions/*.txt")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runDecisionFile(t, file) })
	}
}

// decisionCase is one scripted case of testdata/decisions.
type decisionCase struct {
	name      string
	line      int
	rules     Rules
	method    string
	reqHeader http.Header
	status    int
	fetch     time.Duration
	resp      http.Header
	lookups   []lookup
}

// lookup is one "lookup" line of a decisionCase.
type lookup struct {
	after      time.Duration
	directives string
}

func runDecisionFile(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out      strings.Builder
		c        *decisionCase
		expected []string
		inExpect bool
		actual   string
	)
	finish := func() {
		if c == nil {
			return
		}
		if got, want := actual, strings.Join(expected, "\n"); got != want && !*update {
			t.Errorf("%s:%d: case %q (-want +got):\n%s", file, c.line, c.name, cmp.Diff(want, got))
		}
		out.WriteString(actual + "\n")
		c, expected, inExpect = nil, nil, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if inExpect {
			if line != "" {
				expected = append(expected, line)
				continue
			}
			finish()
			out.WriteString("\n")
			continue
		}
		out.WriteString(line + "\n")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "case "):
			if c != nil {
				t.Fatalf("%s:%d: case %q has no ---- line", file, c.line, c.name)
			}
			c = &decisionCase{name: strings.TrimPrefix(line, "case "), line: n, method: "GET", status: 200,
				reqHeader: http.Header{}, resp: http.Header{}}
		case c == nil:
			t.Fatalf("%s:%d: %q outside a case", file, n, line)
		case line == "----":
			actual = c.run()
			inExpect = true
		default:
			if err := c.parse(line); err != nil {
				t.Fatalf("%s:%d: %v", file, n, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if c != nil && !inExpect {
		t.Fatalf("%s:%d: case %q has no ---- line", file, c.line, c.name)
	}
	finish()
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parse reads one input line of a case.
func (c *decisionCase) parse(line string) error {
	word, rest, _ := strings.Cut(line, " ")
	switch word {
	case "rules":
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "default-ttl":
				c.rules.DefaultTTL, err = time.ParseDuration(v)
			case "heuristic-fraction":
				c.rules.HeuristicFraction, err = strconv.ParseFloat(v, 64)
			case "heuristic-max":
				c.rules.HeuristicMax, err = time.ParseDuration(v)
			case "swr":
				c.rules.StaleWhileRevalidate, err = time.ParseDuration(v)
			case "sie":
				c.rules.StaleIfError, err = time.ParseDuration(v)
			case "store-set-cookie":
				c.rules.StoreSetCookie = true
			default:
				return fmt.Errorf("unknown rule %q", k)
			}
			if err != nil {
				return fmt.Errorf("rule %s: %w", k, err)
			}
		}
	case "request":
		c.method = rest
	case "response":
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return fmt.Errorf("response without status")
		}
		var err error
		if c.status, err = strconv.Atoi(fields[0]); err != nil {
			return fmt.Errorf("response status: %w", err)
		}
		for _, f := range fields[1:] {
			d, ok := strings.CutPrefix(f, "fetch=")
			if !ok {
				return fmt.Errorf("unknown response option %q", f)
			}
			if c.fetch, err = time.ParseDuration(d); err != nil {
				return fmt.Errorf("response fetch: %w", err)
			}
		}
	case ">", "<":
		name, value, ok := strings.Cut(rest, ":")
		if !ok {
			return fmt.Errorf("header line without colon: %q", line)
		}
		h := c.reqHeader
		if word == "<" {
			h = c.resp
		}
		h.Add(name, strings.TrimPrefix(value, " "))
	case "lookup":
		after, directives, _ := strings.Cut(rest, " ")
		d, err := time.ParseDuration(strings.TrimPrefix(after, "+"))
		if err != nil {
			return fmt.Errorf("lookup: %w", err)
		}
		c.lookups = append(c.lookups, lookup{after: d, directives: directives})
	default:
		return fmt.Errorf("unknown directive %q", word)
	}
	return nil
}

// goldenStart is when the request of every case is sent.
var goldenStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// run evaluates the case and renders the expected section.
func (c *decisionCase) run() string {
	requestTime := goldenStart
	responseTime := requestTime.Add(c.fetch)
	p := EvaluateResponse(c.method, c.reqHeader, c.status, c.resp, responseTime, c.rules)
	var b strings.Builder
	b.WriteString("policy: " + formatPolicy(p))
	if !p.Storable {
		return b.String()
	}
	initial := CorrectedInitialAge(c.resp, requestTime, responseTime)
	fmt.Fprintf(&b, "\ninitial-age: %v", initial)
	for _, l := range c.lookups {
		r := Reuse{
			Lifetime:             p.Lifetime,
			Age:                  CurrentAge(initial, responseTime, responseTime.Add(l.after)),
			NoCache:              p.NoCache,
			MustRevalidate:       p.MustRevalidate,
			StaleWhileRevalidate: p.StaleWhileRevalidate,
			StaleIfError:         p.StaleIfError,
		}
		req := ParseDirectives([]string{l.directives})
		fmt.Fprintf(&b, "\nlookup +%v", l.after)
		if l.directives != "" {
			fmt.Fprintf(&b, " [%s]", l.directives)
		}
		action := Decide(r, req)
		fmt.Fprintf(&b, ": age=%v ttl=%v -> %v", r.Age, r.TTL(), action)
		if action == Revalidate {
			if StaleIfError(r, req) {
				b.WriteString(" (on error: serve stored)")
			} else {
				b.WriteString(" (on error: fail)")
			}
		}
	}
	return b.String()
}

// formatPolicy renders a Policy on one line, leaving out zero fields.
func formatPolicy(p Policy) string {
	var f []string
	if !p.Storable {
		f = append(f, "not-storable", "reason="+p.Reason)
	} else {
		f = append(f, "storable", "lifetime="+p.Lifetime.String(), "source="+p.Source)
	}
	if p.NoCache {
		f = append(f, "no-cache")
	}
	if p.MustRevalidate {
		f = append(f, "must-revalidate")
	}
	if p.StaleWhileRevalidate != 0 {
		f = append(f, "swr="+p.StaleWhileRevalidate.String())
	}
	if p.StaleIfError != 0 {
		f = append(f, "sie="+p.StaleIfError.String())
	}
	if len(p.StripFields) > 0 {
		f = append(f, "strip="+strings.Join(p.StripFields, ","))
	}
	if p.Targeted != "" {
		f = append(f, "targeted="+p.Targeted)
	}
	return strings.Join(f, " ")
}
