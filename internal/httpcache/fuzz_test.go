package httpcache

import (
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/weir-cdn/weir/internal/httpsyntax"
)

func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{
		"public, max-age=3600", "no-cache", "max-age=0, must-revalidate", `no-cache="Set-Cookie, X-A"`,
		`private="a\"b"`, "s-maxage=99999999999999999999", `max-age="60`, "max-stale", "max-stale=5",
		"stale-while-revalidate=30, stale-if-error=x", "NO-STORE,,, ,", `a="\`, "=,=", "max-age =\t5",
	} {
		f.Add(s, "")
	}
	f.Add("max-age=5", "max-age=6")
	f.Fuzz(func(t *testing.T, a, b string) {
		parseDirectives([]string{a, b}, true) // Surrogate-Control's reading must not panic either
		d := ParseDirectives([]string{a, b})
		for _, delta := range []Delta{d.MaxAge, d.SMaxAge, d.MinFresh, d.MaxStale, d.StaleWhileRevalidate, d.StaleIfError} {
			if delta.Seconds < 0 || delta.Seconds > MaxDeltaSeconds || (!delta.Set && delta.Seconds != 0) {
				t.Fatalf("bad delta %+v", delta)
			}
		}
		for _, fields := range [][]string{d.NoCacheFields, d.PrivateFields} {
			if fields != nil && len(fields) == 0 {
				t.Fatalf("empty non-nil field list")
			}
			for i, name := range fields {
				if !httpsyntax.IsToken(name) || textproto.CanonicalMIMEHeaderKey(name) != name || slices.Contains(fields[:i], name) {
					t.Fatalf("bad field name %q in %q", name, fields)
				}
			}
		}
		// Field lines are a list: splitting one at a comma changes nothing
		// when no quoted-string can span the split.
		if !strings.Contains(a, `"`) && !strings.Contains(b, `"`) {
			joined := ParseDirectives([]string{a + "," + b})
			if !cmp.Equal(d, joined, cmpopts.EquateEmpty()) {
				t.Fatalf("lines %q, %q parse as %+v; joined as %+v", a, b, d, joined)
			}
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-0", "bytes=-0", "bytes=5-", "bytes=9999999999999999999999-", "bytes=1-2,3-4", "items=0-1",
		"bytes=10-5", "bytes=-9223372036854775808", "bytes=0-9223372036854775807", " bytes = 1-2", "BYTES=,,1-,",
	} {
		f.Add(s, int64(100))
	}
	f.Add("bytes=0-", int64(0))
	f.Add("bytes=-1", int64(1<<62))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		start, length, res := ParseRange(h, size)
		switch res {
		case RangeSatisfiable:
			if start < 0 || length <= 0 || start > size-length {
				t.Fatalf("ParseRange(%q, %d) = %d, %d: outside [0, size)", h, size, start, length)
			}
		case RangeNone, RangeUnsatisfiable:
			if start != 0 || length != 0 {
				t.Fatalf("ParseRange(%q, %d) = %d, %d, %v", h, size, start, length, res)
			}
		default:
			t.Fatalf("ParseRange(%q, %d): result %d", h, size, res)
		}
	})
}

func FuzzNormalizeAcceptEncoding(f *testing.F) {
	for _, s := range []string{
		"gzip, deflate, br, zstd", "gzip, deflate, br", "*;q=0", "*, br;q=0", "x-gzip;q=0.5", "gzip;q=1.001",
		"br;q=0.000, gzip;level=1;q=\"0;5\"", ";;;,,,", "GZIP;Q=0",
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got := NormalizeAcceptEncoding([]string{a, b})
		if !slices.Contains(normalizedEncodings[:], got) {
			t.Fatalf("NormalizeAcceptEncoding(%q, %q) = %q, not a normalized value", a, b, got)
		}
		if again := NormalizeAcceptEncoding([]string{got}); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}

// FuzzAcceptEncodingWeights checks the weights against the normalized
// set the variant keys use: a coding has a positive weight exactly when
// NormalizeAcceptEncoding keeps it, and every weight is a qvalue.
func FuzzAcceptEncodingWeights(f *testing.F) {
	for _, s := range []string{
		"gzip, deflate, br, zstd", "br;q=0.5, gzip;q=0.8", "*;q=0", "identity;q=0", "*;q=0.3, gzip;q=0",
		"x-gzip;q=0.5", "gzip;q=1.001", `br;q="1"`, "identity;q=1, *;q=0", ";;;,,,", "GZIP;Q=0, Br",
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a, b}
		w := AcceptEncodingWeights(in)
		set := NormalizeAcceptEncoding(in)
		for _, c := range []struct {
			name string
			q    int
		}{{"br", w.Br}, {"gzip", w.Gzip}, {"zstd", w.Zstd}, {"identity", w.Identity}} {
			if c.q < 0 || c.q > 1000 {
				t.Fatalf("AcceptEncodingWeights(%q): %s weight %d is not a qvalue", in, c.name, c.q)
			}
			if c.name == "identity" {
				continue
			}
			if kept := slices.Contains(strings.Split(set, ", "), c.name); kept != (c.q > 0) {
				t.Fatalf("AcceptEncodingWeights(%q): %s weight %d, but NormalizeAcceptEncoding = %q", in, c.name, c.q, set)
			}
		}
		if !w.IdentityListed && w.Identity == 0 && !strings.Contains(a+b, "*") {
			t.Fatalf("AcceptEncodingWeights(%q): identity refused without being listed or a *", in)
		}
	})
}

func FuzzVaryAndSecondaryKey(f *testing.F) {
	f.Add("Accept-Encoding, accept-language", "gzip, br", "en,  fr")
	f.Add("*, Origin", "", "\x00\x01\x02")
	f.Add(`X-A, "quoted", X-A`, `"a,b"`, ",,")
	f.Fuzz(func(t *testing.T, vary, v1, v2 string) {
		fields, _ := VaryFields(http.Header{"Vary": {vary}})
		if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
			t.Fatalf("VaryFields(%q) = %q: not sorted and unique", vary, fields)
		}
		for _, name := range fields {
			if !httpsyntax.IsToken(name) || textproto.CanonicalMIMEHeaderKey(name) != name {
				t.Fatalf("VaryFields(%q): bad name %q", vary, name)
			}
		}
		fields = append(fields, "X-Extra", "Accept-Encoding")
		req := http.Header{}
		for i, name := range fields {
			if i%2 == 0 {
				req[name] = []string{v1, v2}
			} else {
				req[name] = []string{v2}
			}
		}
		key := AppendSecondaryKey(nil, fields, req)
		// Every value byte 0x00 is escaped, so the separators count the fields.
		if n := bytes.Count(key, []byte{keyEnd}); n != len(fields) {
			t.Fatalf("key %q has %d separators for %d fields", key, n, len(fields))
		}
		// Whitespace around members does not change the key.
		for name, vals := range req {
			spaced := make([]string, len(vals))
			for i, v := range vals {
				if !strings.Contains(v, `"`) {
					v = " " + strings.ReplaceAll(v, ",", " , ") + "\t"
				}
				spaced[i] = v
			}
			req[name] = spaced
		}
		if again := AppendSecondaryKey(nil, fields, req); !bytes.Equal(key, again) {
			t.Fatalf("OWS changed the key: %q vs %q", key, again)
		}
	})
}

func FuzzStatusAppendValue(f *testing.F) {
	f.Add("weir", true, "uri-miss", 200, int64(30e9), true, true, false, "detail")
	f.Add("Weir Edge", false, "not a token", -5, int64(-1), true, false, true, "a \"quoted\" \\ detail\n")
	f.Add("", false, "", 0, int64(0), false, false, false, "")
	f.Fuzz(func(t *testing.T, name string, hit bool, fwd string, fwdStatus int, ttl int64, hasTTL, stored, collapsed bool, detail string) {
		s := Status{Hit: hit, Fwd: fwd, FwdStatus: fwdStatus, TTL: time.Duration(ttl), HasTTL: hasTTL, Stored: stored, Collapsed: collapsed, Detail: detail}
		out := string(s.AppendValue(nil, name))
		keys, err := parseSFListMember(out)
		if err != "" {
			t.Fatalf("AppendValue = %q: %s", out, err)
		}
		var want []string
		for _, p := range []struct {
			key string
			on  bool
		}{
			{"hit", hit}, {"fwd", fwd != "" && isSFToken(fwd)}, {"fwd-status", fwdStatus != 0}, {"ttl", hasTTL},
			{"stored", stored}, {"collapsed", collapsed}, {"detail", detail != ""},
		} {
			if p.on {
				want = append(want, p.key)
			}
		}
		if !slices.Equal(keys, want) {
			t.Fatalf("AppendValue = %q: parameters %q, want %q", out, keys, want)
		}
	})
}

// parseSFListMember checks that s is one member of an RFC 8941 §3.1 List:
// a token or string bare item followed by parameters. It returns the
// parameter keys, or a description of the first error.
func parseSFListMember(s string) (keys []string, err string) {
	if s == "" || (s[0] != '"' && !isSFTokenStart(s[0])) {
		return nil, "bare item is neither token nor string"
	}
	s, err = parseSFBareItem(s)
	if err != "" {
		return nil, err
	}
	for s != "" {
		if s[0] != ';' {
			return nil, "expected ';'"
		}
		s = strings.TrimLeft(s[1:], " ")
		j := 0
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9' || strings.IndexByte("_-.*", s[j]) >= 0) {
			j++
		}
		if j == 0 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '*') {
			return nil, "bad key"
		}
		keys, s = append(keys, s[:j]), s[j:]
		if s != "" && s[0] == '=' {
			if s, err = parseSFBareItem(s[1:]); err != "" {
				return nil, err
			}
		}
	}
	return keys, ""
}

// isSFTokenStart reports whether c may start an sf-token.
func isSFTokenStart(c byte) bool { return c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// parseSFBareItem consumes an integer, string or token bare item
// (RFC 8941 §4.2.3) from the start of s.
func parseSFBareItem(s string) (rest, err string) {
	switch {
	case s == "":
		return "", "missing value"
	case s[0] == '-' || (s[0] >= '0' && s[0] <= '9'):
		i := 0
		if s[0] == '-' {
			i++
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j-i > 15 {
			return "", "bad integer"
		}
		return s[j:], ""
	case s[0] == '"':
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\':
				if i+1 >= len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
					return "", "bad escape"
				}
				i++
			case c == '"':
				return s[i+1:], ""
			case c < 0x20 || c > 0x7e:
				return "", "bad byte in string"
			}
		}
		return "", "unterminated string"
	case isSFTokenStart(s[0]):
		j := 1
		for j < len(s) && (httpsyntax.IsTchar(s[j]) || s[j] == ':' || s[j] == '/') {
			j++
		}
		return s[j:], ""
	}
	return "", "bad bare item"
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Mon, 01 Jan 2024 00:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Sun Nov 6 8:49:37 1994", "Thu, 29 Feb 2024 23:59:59 GMT", "Fri, 30 Feb 2024 00:00:00 GMT",
		"mon, 01 jan 2024 00:00:00 GMT", "Mon, 01 Jan 2024 24:00:00 GMT", "0", "", "Thu,  01 Jan 2037 00:00:00 GMT",
		"Thu, 01 Jan 2037 0:00:00 GMT", "Sunday, 06-Nov-94 08:49:37 PST", "Sun, 06 Nov 1994 23:59:60 gmt",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s)
		if !ok {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseHTTPDate(%q) = %v: not UTC", s, got)
		}
		// The strict parser accepts a subset of what the lenient
		// http.ParseTime accepts, with the same result, except for what
		// ParseTime refuses wrongly: a leap second, and a zone in lower
		// case (RFC 9111 §4.2).
		if strings.Contains(s, ":60") {
			return
		}
		norm := s
		if n := len(s); n > 3 && strings.EqualFold(s[n-3:], "GMT") {
			norm = s[:n-3] + "GMT"
		}
		want, err := http.ParseTime(norm)
		if err != nil || !got.Equal(want) {
			t.Fatalf("parseHTTPDate(%q) = %v; http.ParseTime = %v, %v", s, got, want, err)
		}
	})
}

// FuzzHTTPDateRoundTrip checks that every instant, formatted in each of
// the three HTTP-date forms (RFC 9110 §5.6.7), parses back.
func FuzzHTTPDateRoundTrip(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(784111777))    // Sun, 06 Nov 1994 08:49:37 GMT
	f.Add(int64(-62135596800)) // year 1
	f.Add(int64(253402300799)) // 9999-12-31 23:59:59
	f.Fuzz(func(t *testing.T, sec int64) {
		const first, last = -62135596800, 253402300799 // years 1 to 9999
		tm := time.Unix(first+(sec%(last-first)+(last-first))%(last-first), 0).UTC()
		for _, layout := range []string{http.TimeFormat, "Monday, 02-Jan-06 15:04:05 GMT", time.ANSIC} {
			s := tm.Format(layout)
			want := tm
			if layout[0] == 'M' && layout[6] == ',' { // two-digit year: 1969 to 2068
				yy := tm.Year() % 100
				year := 2000 + yy
				if yy >= 69 {
					year = 1900 + yy
				}
				want = want.AddDate(year-tm.Year(), 0, 0)
				if want.Day() != tm.Day() { // 29 February of a common year
					continue
				}
			}
			got, ok := parseHTTPDate(s)
			if !ok || !got.Equal(want) {
				t.Fatalf("parseHTTPDate(%q) = %v, %v; want %v", s, got, ok, want)
			}
		}
	})
}

// FuzzParseSFDictionary checks the Structured Field Dictionary parser
// (RFC 8941 §4.2.2): it never panics, what it accepts serializes (§4.1.2)
// to text that parses to the same members, and field lines combine as
// one comma-separated value.
func FuzzParseSFDictionary(f *testing.F) {
	for _, s := range []string{
		`en="Applepie", da=:w4ZibGV0w6ZydGUK:`, "a=?0, b, c; foo=bar", "rating=1.5, feelings=(joy sadness)",
		"a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid", `a=("foo"; a=1;b=2);lvl=5, b=("bar" "baz");lvl=1`,
		"max-age=60, s-maxage=3600, stale-while-revalidate=30, no-store=?0", `no-cache="set-cookie", private`,
		"a=999999999999999, b=-999999999999.999", "a=1,", "A=1", "a =1", `a="\"`, "a=:iZ==:", "a=()", "a=(", "",
	} {
		f.Add(s, "")
	}
	f.Add("max-age=60", "private")
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a}
		if b != "" {
			lines = append(lines, b)
		}
		got, ok := parseSFDictionaryForTest(lines...)
		d, tok := parseTargeted(lines)
		if tok != (ok && len(got) > 0) {
			t.Fatalf("parseTargeted(%q) ok = %v; dictionary parsed %v with %d members", lines, tok, ok, len(got))
		}
		if !tok && !cmp.Equal(d, Directives{}) {
			t.Fatalf("parseTargeted(%q) ignored the field but returned %+v", lines, d)
		}
		if !ok {
			return
		}
		text := serializeSFDictionary(got)
		again, ok := parseSFDictionaryForTest(text)
		if !ok {
			t.Fatalf("%q parses, but its serialization %q does not", lines, text)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("%q and its serialization %q differ (-first +second):\n%s", lines, text, diff)
		}
	})
}

// FuzzCorrectedInitialAge checks that the corrected initial age is in
// [0, 2^31 seconds] and is at least the Age's first member when that is
// valid (RFC 9111 §5.1, §1.2.2).
func FuzzCorrectedInitialAge(f *testing.F) {
	f.Add("100", "", "Mon, 01 Jan 2024 00:00:00 GMT", int64(0), int64(1e9))
	f.Add("7200, 0", "", "", int64(0), int64(0))
	f.Add("0", "7200", "", int64(0), int64(0))
	f.Add("99999999999999999999", "", "Mon, 01 Jan 0001 00:00:00 GMT", int64(-1), int64(1<<62))
	f.Fuzz(func(t *testing.T, age, age2, date string, request, response int64) {
		h := http.Header{"Age": {age}}
		if age2 != "" {
			h["Age"] = append(h["Age"], age2)
		}
		if date != "" {
			h["Date"] = []string{date}
		}
		got := CorrectedInitialAge(h, time.Unix(0, request), time.Unix(0, response))
		if got < 0 || got > maxDelta {
			t.Fatalf("CorrectedInitialAge(%v) = %v, outside [0, 2^31 s]", h, got)
		}
		first, _, _ := strings.Cut(age, ",")
		if n, digits := parseDigits(trimOWS(first), MaxDeltaSeconds); digits && got < min(time.Duration(n)*time.Second, maxDelta) {
			t.Fatalf("CorrectedInitialAge(%v) = %v, less than the Age's first member", h, got)
		}
	})
}

func FuzzConditionals(f *testing.F) {
	f.Add(`W/"a", "b"`, "Mon, 01 Jan 2024 00:00:00 GMT", `"b"`, "Mon, 01 Jan 2024 00:00:00 GMT")
	f.Add("*", "", "", "")
	f.Add(`"a,b`, "x", `W/"`, "W/")
	f.Fuzz(func(t *testing.T, inm, ims, etag, lm string) {
		req := http.Header{"If-Modified-Since": {ims}}
		if inm != "" {
			req["If-None-Match"] = []string{inm}
		}
		NotModified(req, etag, lm)
		if IfRangeAllows(inm, etag, lm) && strings.HasPrefix(trimOWS(inm), "W/") {
			t.Fatalf("IfRangeAllows(%q, %q, %q): a weak tag matched", inm, etag, lm)
		}
		// RFC 9110 §8.8.3.2: weak comparison matches whenever strong does.
		if _, _, ok := parseETag(trimOWS(inm)); ok && IfRangeAllows(inm, etag, lm) && !NotModified(http.Header{"If-None-Match": {inm}}, etag, lm) {
			t.Fatalf("strong match of %q and %q is not a weak match", inm, etag)
		}
	})
}

func FuzzParseSurrogateKeys(f *testing.F) {
	f.Add("a b  c\ta", "")
	f.Add("\x00 \x7f x", strings.Repeat("k", 300))
	f.Fuzz(func(t *testing.T, a, b string) {
		keys := ParseSurrogateKeys([]string{a, b})
		if len(keys) > MaxSurrogateKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for i, k := range keys {
			if k == "" || len(k) > MaxSurrogateKeyLen || strings.ContainsAny(k, " \t") || !ValidHeaderValue(k) || slices.Contains(keys[:i], k) {
				t.Fatalf("bad key %q in %q", k, keys)
			}
		}
	})
}

func FuzzEvaluateResponse(f *testing.F) {
	f.Add("public, max-age=3600", "", "", "Mon, 01 Jan 2024 00:00:00 GMT", "0", "Sun, 31 Dec 2023 00:00:00 GMT", 200)
	f.Add("private", "max-age=60", "", "garbage", "garbage", "garbage", 404)
	f.Add("s-maxage=1, must-understand, no-store", "", "no-cache", "", "", "", 302)
	f.Fuzz(func(t *testing.T, cc, cdn, sc, date, expires, lm string, status int) {
		h := http.Header{"Cache-Control": {cc}, "Date": {date}, "Expires": {expires}, "Last-Modified": {lm}}
		if cdn != "" {
			h["Cdn-Cache-Control"] = []string{cdn}
		}
		if sc != "" {
			h["Surrogate-Control"] = []string{sc}
		}
		p := EvaluateResponse("GET", nil, status, h, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Rules{DefaultTTL: time.Minute})
		if p.Storable == (p.Reason != "") {
			t.Fatalf("Storable %v with Reason %q", p.Storable, p.Reason)
		}
		if p.Lifetime < 0 || p.StaleWhileRevalidate < 0 || p.StaleIfError < 0 {
			t.Fatalf("negative durations in %+v", p)
		}
		if p.MustRevalidate && (p.StaleWhileRevalidate != 0 || p.StaleIfError != 0) {
			t.Fatalf("stale windows with MustRevalidate: %+v", p)
		}
		if p.NoCache && (p.StaleWhileRevalidate != 0 || p.StaleIfError != 0) {
			t.Fatalf("stale windows with NoCache: %+v", p)
		}
		if p.Lifetime > maxDelta || p.StaleWhileRevalidate > maxDelta || p.StaleIfError > maxDelta {
			t.Fatalf("durations beyond 2^31 seconds in %+v", p)
		}
		// RFC 9213 §2.2: a valid, non-empty CDN-Cache-Control decides.
		if _, ok := parseTargeted(h["Cdn-Cache-Control"]); ok && p.Reason != ReasonStatus && p.Reason != ReasonPartial && p.Targeted != TargetCDNCacheControl {
			t.Fatalf("valid CDN-Cache-Control %q not used: %+v", cdn, p)
		}
		if p.Storable && p.Source == "" {
			t.Fatalf("storable without source: %+v", p)
		}
	})
}
