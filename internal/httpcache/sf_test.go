package httpcache

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Test representations of Structured Field values (RFC 8941 §3): a bare
// item is an int64 (Integer), sfDec (Decimal), string (String), sfTok
// (Token), []byte (Byte Sequence) or bool (Boolean); an Inner List is a
// []sfItem.
type (
	sfDec   float64
	sfTok   string
	sfParam struct {
		Key   string
		Value any
	}
	sfItem struct {
		Value  any
		Params []sfParam
	}
	sfMember struct {
		Key    string
		Value  any
		Params []sfParam
	}
)

// bare converts a parsed bare item.
func (v sfValue) bare() any {
	switch v.kind {
	case sfInteger:
		return v.num
	case sfDecimal:
		return sfDec(float64(v.num) / 1000)
	case sfString:
		return unquote(v.text)
	case sfToken:
		return sfTok(v.text)
	case sfByteSequence:
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v.text, "="))
		if err != nil {
			panic(fmt.Sprintf("validated byte sequence %q: %v", v.text, err))
		}
		return b
	case sfBoolean:
		return v.num == 1
	}
	panic(fmt.Sprintf("bare item of kind %d", v.kind))
}

// toItem converts a parsed item or inner list, with its parameters, the
// last of duplicate parameter keys winning in the place of the first.
func (v sfValue) toItem() sfItem {
	var it sfItem
	if v.kind == sfInnerList {
		list := []sfItem{}
		items := sfInnerListItems{p: sfParser{s: v.text}}
		for {
			x, ok := items.next()
			if !ok {
				break
			}
			list = append(list, x.toItem())
		}
		it.Value = list
	} else {
		it.Value = v.bare()
	}
	params := sfParams{p: sfParser{s: v.params}}
	for {
		k, pv, ok := params.next()
		if !ok {
			break
		}
		found := false
		for i := range it.Params {
			if it.Params[i].Key == k {
				it.Params[i].Value, found = pv.bare(), true
			}
		}
		if !found {
			it.Params = append(it.Params, sfParam{k, pv.bare()})
		}
	}
	return it
}

// parseSFDictionaryForTest parses combined field lines into the ordered
// map of RFC 8941 §4.2.2, or reports failure.
func parseSFDictionaryForTest(lines ...string) ([]sfMember, bool) {
	d := newSFDictionary(strings.Join(lines, ", "))
	out := []sfMember{}
	for {
		k, v, ok := d.next()
		if !ok {
			break
		}
		it := v.toItem()
		found := false
		for i := range out {
			if out[i].Key == k {
				out[i].Value, out[i].Params, found = it.Value, it.Params, true
			}
		}
		if !found {
			out = append(out, sfMember{k, it.Value, it.Params})
		}
	}
	if d.failed() {
		return nil, false
	}
	return out, true
}

// m builds a member; params alternate keys and values.
func m(key string, value any, params ...any) sfMember {
	return sfMember{key, value, mkParams(params)}
}

// it builds an item of an Inner List.
func it(value any, params ...any) sfItem { return sfItem{value, mkParams(params)} }

func mkParams(kv []any) []sfParam {
	var out []sfParam
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, sfParam{kv[i].(string), kv[i+1]})
	}
	return out
}

func TestSFDictionary(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []sfMember // nil: parsing fails
	}{
		// Examples of RFC 8941 §3.2, Dictionaries.
		{"RFC 8941 §3.2 strings and byte sequences", []string{`en="Applepie", da=:w4ZibGV0w6ZydGUK:`},
			[]sfMember{m("en", "Applepie"), m("da", []byte("Æbletærte\n"))}},
		{"RFC 8941 §3.2 Boolean true omitted, with parameters", []string{"a=?0, b, c; foo=bar"},
			[]sfMember{m("a", false), m("b", true), m("c", true, "foo", sfTok("bar"))}},
		{"RFC 8941 §3.2 inner list of tokens", []string{"rating=1.5, feelings=(joy sadness)"},
			[]sfMember{m("rating", sfDec(1.5)), m("feelings", []sfItem{it(sfTok("joy")), it(sfTok("sadness"))})}},
		{"RFC 8941 §3.2 items and inner lists with parameters", []string{"a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid"},
			[]sfMember{m("a", []sfItem{it(int64(1)), it(int64(2))}), m("b", int64(3)), m("c", int64(4), "aa", sfTok("bb")),
				m("d", []sfItem{it(int64(5)), it(int64(6))}, "valid", true)}},
		{"RFC 8941 §3.2 members split across field lines", []string{"foo=1", "bar=2"},
			[]sfMember{m("foo", int64(1)), m("bar", int64(2))}},
		// Examples of RFC 8941 §3.1.1, §3.1.2 and §3.3, as dictionary members.
		{"RFC 8941 §3.1.1 inner lists of strings, one empty", []string{`a=("foo" "bar"), b=("baz"), c=("bat" "one"), d=()`},
			[]sfMember{m("a", []sfItem{it("foo"), it("bar")}), m("b", []sfItem{it("baz")}), m("c", []sfItem{it("bat"), it("one")}), m("d", []sfItem{})}},
		{"RFC 8941 §3.1.1 parameters at both levels", []string{`a=("foo"; a=1;b=2);lvl=5, b=("bar" "baz");lvl=1`},
			[]sfMember{m("a", []sfItem{it("foo", "a", int64(1), "b", int64(2))}, "lvl", int64(5)), m("b", []sfItem{it("bar"), it("baz")}, "lvl", int64(1))}},
		{"RFC 8941 §3.1.2 parameters", []string{`x=abc;a=1;b=2; cde_456, y=(ghi;jk=4 l);q="9";r=w`},
			[]sfMember{m("x", sfTok("abc"), "a", int64(1), "b", int64(2), "cde_456", true),
				m("y", []sfItem{it(sfTok("ghi"), "jk", int64(4)), it(sfTok("l"))}, "q", "9", "r", sfTok("w"))}},
		{"RFC 8941 §3.1.2 Boolean parameters", []string{"x=1; a; b=?0"}, []sfMember{m("x", int64(1), "a", true, "b", false)}},
		{"RFC 8941 §3.3 item with parameters", []string{"x=5; foo=bar"}, []sfMember{m("x", int64(5), "foo", sfTok("bar"))}},
		{"RFC 8941 §3.3.1 integer", []string{"x=42"}, []sfMember{m("x", int64(42))}},
		{"RFC 8941 §3.3.2 decimal", []string{"x=4.5"}, []sfMember{m("x", sfDec(4.5))}},
		{"RFC 8941 §3.3.3 string", []string{`x="hello world"`}, []sfMember{m("x", "hello world")}},
		{"RFC 8941 §3.3.4 token", []string{"x=foo123/456"}, []sfMember{m("x", sfTok("foo123/456"))}},
		{"RFC 8941 §3.3.5 byte sequence", []string{"x=:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:"}, []sfMember{m("x", []byte("pretend this is binary content."))}},
		{"RFC 8941 §3.3.6 boolean", []string{"x=?1"}, []sfMember{m("x", true)}},

		// RFC 8941 §4.2.2, Parsing a Dictionary.
		{"RFC 8941 §4.2 empty field is an empty dictionary", []string{""}, []sfMember{}},
		{"RFC 8941 §4.2 leading SP discarded", []string{"   a=1"}, []sfMember{m("a", int64(1))}},
		{"RFC 8941 §4.2 leading HTAB is not", []string{"\ta=1"}, nil},
		{"RFC 8941 §4.2.2 OWS around commas", []string{"a=1 \t,\t  b=2 \t"}, []sfMember{m("a", int64(1)), m("b", int64(2))}},
		{"RFC 8941 §4.2.2 no whitespace", []string{"a=1,b=2"}, []sfMember{m("a", int64(1)), m("b", int64(2))}},
		{"RFC 8941 §4.2.2 duplicate key: the last wins, in the first's place", []string{"a=1, b=2, a=3"}, []sfMember{m("a", int64(3)), m("b", int64(2))}},
		{"RFC 8941 §4.2.2 duplicate key across field lines", []string{"a=1", "a=?0"}, []sfMember{m("a", false)}},
		{"RFC 8941 §4.2.2 trailing comma", []string{"a=1,"}, nil},
		{"RFC 8941 §4.2.2 empty member", []string{"a=1,,b=2"}, nil},
		{"RFC 8941 §4.2.2 empty field line beside another", []string{"a=1", ""}, nil},
		{"RFC 8941 §4.2.2 member split across field lines", []string{`a="x`, `y"`}, []sfMember{m("a", "x, y")}},
		{"RFC 8941 §4.2.2 OWS before =", []string{"a =1"}, nil},
		{"RFC 8941 §4.2.2 OWS after =", []string{"a= 1"}, nil},
		{"RFC 8941 §4.2.2 semicolon between members", []string{"a=1; b=2; c"}, []sfMember{m("a", int64(1), "b", int64(2), "c", true)}},
		{"RFC 8941 §4.2.2 stray character after a member", []string{"a=1 b=2"}, nil},
		{"RFC 8941 §4.2.2 stray characters", []string{"max-age=10000, &&&&&"}, nil},
		// RFC 8941 §4.2.3.3, Parsing a Key.
		{"RFC 8941 §4.2.3.3 key characters", []string{"*a_b-c.d*9=1"}, []sfMember{m("*a_b-c.d*9", int64(1))}},
		{"RFC 8941 §4.2.3.3 upper-case key", []string{"Max-Age=1"}, nil},
		{"RFC 8941 §4.2.3.3 upper case inside a key", []string{"max-Age=1"}, nil},
		{"RFC 8941 §4.2.3.3 key starting with a digit", []string{"1a=1"}, nil},
		{"RFC 8941 §4.2.3.3 key with a bad character", []string{"a!=1"}, nil},
		// RFC 8941 §4.2.3.2, Parsing Parameters.
		{"RFC 8941 §4.2.3.2 SP after ;", []string{"a=b;  q=1"}, []sfMember{m("a", sfTok("b"), "q", int64(1))}},
		{"RFC 8941 §4.2.3.2 SP before ;", []string{"a=b ;q=1"}, nil},
		{"RFC 8941 §4.2.3.2 OWS before = in a parameter", []string{"a=b;q =1"}, nil},
		{"RFC 8941 §4.2.3.2 duplicate parameter: the last wins", []string{"a=1;q=1;r;q=2"}, []sfMember{m("a", int64(1), "q", int64(2), "r", true)}},
		{"RFC 8941 §4.2.3.2 parameter values are bare items only", []string{"a=1;q=(1)"}, nil},
		{"RFC 8941 §4.2.3.2 parameter without a key", []string{"a=1;=2"}, nil},
		// RFC 8941 §4.2.1.2, Parsing an Inner List.
		{"RFC 8941 §4.2.1.2 SP inside the parentheses", []string{"a=(  1   2  )"}, []sfMember{m("a", []sfItem{it(int64(1)), it(int64(2))})}},
		{"RFC 8941 §4.2.1.2 HTAB inside the parentheses", []string{"a=(1\t2)"}, nil},
		{"RFC 8941 §4.2.1.2 items without SP between them", []string{`a=(1"x")`}, nil},
		{"RFC 8941 §4.2.1.2 comma inside", []string{"a=(1, 2)"}, nil},
		{"RFC 8941 §4.2.1.2 unterminated", []string{"a=(1 2"}, nil},
		{"RFC 8941 §4.2.1.2 nested", []string{"a=((1))"}, nil},
		// RFC 8941 §4.2.4, Parsing an Integer or Decimal.
		{"RFC 8941 §4.2.4 negative and zero", []string{"a=-42, b=-0, c=007"}, []sfMember{m("a", int64(-42)), m("b", int64(0)), m("c", int64(7))}},
		{"RFC 8941 §4.2.4 fifteen digits", []string{"a=999999999999999, b=-999999999999999"}, []sfMember{m("a", int64(999999999999999)), m("b", int64(-999999999999999))}},
		{"RFC 8941 §4.2.4 sixteen digits", []string{"a=1000000000000000"}, nil},
		{"RFC 8941 §4.2.4 sign alone", []string{"a=-"}, nil},
		{"RFC 8941 §4.2.4 double sign", []string{"a=--1"}, nil},
		{"RFC 8941 §4.2.4 decimals", []string{"a=1.123, b=-0.5, c=123456789012.1"}, []sfMember{m("a", sfDec(1.123)), m("b", sfDec(-0.5)), m("c", sfDec(123456789012.1))}},
		{"RFC 8941 §4.2.4 decimal without fraction", []string{"a=1."}, nil},
		{"RFC 8941 §4.2.4 decimal with four fractional digits", []string{"a=1.1234"}, nil},
		{"RFC 8941 §4.2.4 decimal with thirteen integer digits", []string{"a=1234567890123.0"}, nil},
		{"RFC 8941 §4.2.4 two points", []string{"a=1.2.3"}, nil},
		// RFC 8941 §4.2.5, Parsing a String.
		{"RFC 8941 §4.2.5 escapes", []string{`a="q \"x\" \\ y"`}, []sfMember{m("a", `q "x" \ y`)}},
		{"RFC 8941 §4.2.5 other escapes fail", []string{`a="\n"`}, nil},
		{"RFC 8941 §4.2.5 escape at the end", []string{`a="\`}, nil},
		{"RFC 8941 §4.2.5 unterminated", []string{`a="abc`}, nil},
		{"RFC 8941 §4.2.5 HTAB inside", []string{"a=\"\t\""}, nil},
		{"RFC 8941 §4.2.5 non-ASCII inside", []string{`a="füü"`}, nil},
		{"RFC 8941 §4.2.5 single quotes are not a string", []string{"a='x'"}, nil},
		// RFC 8941 §4.2.6, Parsing a Token.
		{"RFC 8941 §4.2.6 token characters", []string{"a=A_b-c.d3:f%00/*"}, []sfMember{m("a", sfTok("A_b-c.d3:f%00/*"))}},
		{"RFC 8941 §4.2.6 token starting with *", []string{"a=*"}, []sfMember{m("a", sfTok("*"))}},
		// RFC 8941 §4.2.7, Parsing a Byte Sequence.
		{"RFC 8941 §4.2.7 empty", []string{"a=::"}, []sfMember{m("a", []byte{})}},
		{"RFC 8941 §4.2.7 missing padding synthesized", []string{"a=:aGVsbG8:"}, []sfMember{m("a", []byte("hello"))}},
		{"RFC 8941 §4.2.7 non-zero pad bits accepted", []string{"a=:iZ==:"}, []sfMember{m("a", []byte{0x89})}},
		{"RFC 8941 §4.2.7 padding in the middle", []string{"a=:a=GVsbG8=:"}, nil},
		{"RFC 8941 §4.2.7 too much padding", []string{"a=:aGVsbG8==:"}, nil},
		{"RFC 8941 §4.2.7 base64url alphabet", []string{"a=:_-Ah:"}, nil},
		{"RFC 8941 §4.2.7 whitespace inside", []string{"a=:aGVs bG8=:"}, nil},
		{"RFC 8941 §4.2.7 impossible length", []string{"a=:aGVsb:"}, nil},
		{"RFC 8941 §4.2.7 no closing colon", []string{"a=:aGVsbG8="}, nil},
		// RFC 8941 §4.2.8, Parsing a Boolean.
		{"RFC 8941 §4.2.8 other digit", []string{"a=?2"}, nil},
		{"RFC 8941 §4.2.8 question mark alone", []string{"a=?"}, nil},
		// RFC 8941 §4.2.3.1: RFC 8941 has no Date or Display String.
		{"RFC 8941 §4.2.3.1 unknown item type", []string{"a=@1659578233"}, nil},
		{"RFC 8941 §4.2.3.1 value missing", []string{"a="}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseSFDictionaryForTest(tt.lines...)
			if tt.want == nil {
				if ok {
					t.Fatalf("parse(%q) = %v, want failure", tt.lines, got)
				}
				return
			}
			if !ok {
				t.Fatalf("parse(%q) failed", tt.lines)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parse(%q) mismatch (-want +got):\n%s", tt.lines, diff)
			}
		})
	}
}

func TestParseTargeted(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   Directives
		ok     bool
	}{
		{"RFC 9213 §2.1 empty field is ignored", []string{""}, Directives{}, false},
		{"RFC 9213 §2.1 field of spaces is ignored", []string{"   "}, Directives{}, false},
		{"RFC 9213 §2.1 parse error ignores the whole field", []string{"max-age=60, no-store, @"}, Directives{}, false},
		{"RFC 9213 §2.1 common field", []string{"max-age=600, stale-while-revalidate=30, stale-if-error=86400"},
			Directives{MaxAge: sec(600), StaleWhileRevalidate: sec(30), StaleIfError: sec(86400)}, true},
		{"RFC 9213 §2.1 all booleans", []string{"no-store, must-revalidate, proxy-revalidate, no-transform, public, must-understand, immutable"},
			Directives{NoStore: true, MustRevalidate: true, ProxyRevalidate: true, NoTransform: true, Public: true, MustUnderstand: true, Immutable: true}, true},
		{"RFC 9213 §2.1 booleans false", []string{"no-store=?0, must-revalidate=?0, public=?0, no-cache=?0, private=?0"}, Directives{}, true},
		{"RFC 9213 §2.1 restricting booleans of another type still apply", []string{`no-store=1, must-revalidate="x", proxy-revalidate=a, no-transform=(1)`},
			Directives{NoStore: true, MustRevalidate: true, ProxyRevalidate: true, NoTransform: true}, true},
		{"RFC 9213 §2.1 granting booleans of another type are ignored", []string{`public=1, must-understand="x", immutable=a`}, Directives{}, true},
		{"RFC 9213 §2.1 qualified no-cache and private", []string{`no-cache="set-cookie, x-a", private="Authorization"`},
			Directives{NoCacheFields: []string{"Set-Cookie", "X-A"}, PrivateFields: []string{"Authorization"}}, true},
		{"RFC 9213 §2.1 qualified no-cache naming no valid field is unqualified", []string{`no-cache="@"`}, Directives{NoCache: true}, true},
		{"RFC 9213 §2.1 no-cache of another type is unqualified", []string{"no-cache=Set-Cookie, private=:AAAA:"}, Directives{NoCache: true, Private: true}, true},
		{"RFC 9213 §2.1 later unqualified no-cache replaces a qualified one", []string{`no-cache="A", no-cache`}, Directives{NoCache: true}, true},
		{"RFC 9213 §2.1 later qualified no-cache replaces an unqualified one", []string{`no-cache, no-cache="A"`}, Directives{NoCacheFields: []string{"A"}}, true},
		{"RFC 9213 §2.1 delta of another type is invalid", []string{`max-age="60", s-maxage=1.5, stale-while-revalidate=-1, stale-if-error=x`},
			Directives{MaxAge: sec(0), SMaxAge: sec(0), StaleWhileRevalidate: sec(0), StaleIfError: sec(0)}, true},
		{"RFC 9213 §2.1 delta without a value is invalid", []string{"max-age"}, Directives{MaxAge: sec(0)}, true},
		{"RFC 9111 §1.2.2 delta clamped", []string{"s-maxage=999999999999999"}, Directives{SMaxAge: sec(MaxDeltaSeconds)}, true},
		{"RFC 9213 §2.1 duplicate delta: the last wins", []string{"max-age=60", "max-age=10"}, Directives{MaxAge: sec(10)}, true},
		{"RFC 9213 §2.1 parameters ignored", []string{"max-age=60;a=1, no-store;x"}, Directives{MaxAge: sec(60), NoStore: true}, true},
		{"RFC 9213 §2.2 request directives and unknown ones ignored", []string{"max-stale=5, min-fresh=1, only-if-cached, none"}, Directives{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseTargeted(tt.values)
			if ok != tt.ok {
				t.Fatalf("parseTargeted(%q) ok = %v, want %v", tt.values, ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseTargeted(%q) mismatch (-want +got):\n%s", tt.values, diff)
			}
		})
	}
}

// serializeSFDictionary serializes members as RFC 8941 §4.1.2 does, for
// round-trip tests.
func serializeSFDictionary(members []sfMember) string {
	var b strings.Builder
	for i, mem := range members {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(mem.Key)
		if v, ok := mem.Value.(bool); !ok || !v {
			b.WriteByte('=')
			serializeSFValue(&b, mem.Value)
		}
		serializeSFParams(&b, mem.Params)
	}
	return b.String()
}

func serializeSFValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case []sfItem:
		b.WriteByte('(')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(' ')
			}
			serializeSFValue(b, x.Value)
			serializeSFParams(b, x.Params)
		}
		b.WriteByte(')')
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case sfDec:
		b.WriteString(strconv.FormatFloat(float64(v), 'f', -1, 64))
		if float64(v) == float64(int64(v)) {
			b.WriteString(".0")
		}
	case string:
		b.WriteString(strconv.Quote(v)) // printable ASCII: the same escapes as RFC 8941 §4.1.6
	case sfTok:
		b.WriteString(string(v))
	case []byte:
		b.WriteString(":" + base64.StdEncoding.EncodeToString(v) + ":")
	case bool:
		if v {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	}
}

func serializeSFParams(b *strings.Builder, params []sfParam) {
	for _, p := range params {
		b.WriteString(";" + p.Key)
		if v, ok := p.Value.(bool); !ok || !v {
			b.WriteByte('=')
			serializeSFValue(b, p.Value)
		}
	}
}
