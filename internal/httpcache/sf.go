package httpcache

import (
	"strings"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// This file parses Structured Field values (RFC 8941): the Dictionary that
// a targeted field such as CDN-Cache-Control is (RFC 9213 §2.1), and the
// Items, Inner Lists and Parameters it holds. Each method follows one
// algorithm of RFC 8941 §4.2, step by step; parsing is strict by design
// (RFC 8941 §1.1), so any deviation fails the whole field. Nothing here
// allocates: values refer into the text parsed, and unescaping a String or
// decoding a Byte Sequence is left to the caller.

// sfKind is the type of a parsed value (RFC 8941 §3).
type sfKind uint8

const (
	sfInteger      sfKind = iota + 1 // RFC 8941 §3.3.1
	sfDecimal                        // §3.3.2
	sfString                         // §3.3.3
	sfToken                          // §3.3.4
	sfByteSequence                   // §3.3.5
	sfBoolean                        // §3.3.6
	sfInnerList                      // §3.1.1
)

// sfValue is an Item (a bare item and its Parameters) or an Inner List
// and its Parameters, or, with no Parameters, a bare item.
type sfValue struct {
	kind sfKind
	// num is the Integer, the Decimal in thousandths (a Decimal has at most
	// three fractional digits), or 1 for Boolean true and 0 for false.
	num int64
	// text is, as sent, the inside of a String with its escapes left in,
	// the Token, the base64 text of a Byte Sequence, or what lies between
	// the parentheses of an Inner List.
	text string
	// params is the text of the Parameters from their first ";", as sent
	// and already validated; "" when there are none.
	params string
}

// isTrue reports whether v is the Boolean true.
func (v sfValue) isTrue() bool { return v.kind == sfBoolean && v.num == 1 }

// sfParser consumes a Structured Field value from the front of s, as the
// algorithms of RFC 8941 §4.2 consume input_string. A failure sets bad
// and empties s, so that every loop ends and later calls return zero
// values.
type sfParser struct {
	s   string
	bad bool
}

// fail records that parsing failed.
func (p *sfParser) fail() {
	p.bad = true
	p.s = ""
}

// skipSP discards leading SP characters.
func (p *sfParser) skipSP() {
	for p.s != "" && p.s[0] == ' ' {
		p.s = p.s[1:]
	}
}

// skipOWS discards leading SP and HTAB characters.
func (p *sfParser) skipOWS() {
	for p.s != "" && isOWS(p.s[0]) {
		p.s = p.s[1:]
	}
}

// sfDictionary iterates over the members of a Dictionary (RFC 8941
// §4.2.2) without building it. A caller that needs the Dictionary's
// meaning must read every member and then check failed: a failure at
// any point means the field must be ignored as a whole (RFC 8941 §4.2).
// Duplicate keys are all returned, in order; the last one wins (§4.2.2
// step 2.4), which a caller gets by letting each member overwrite what
// an earlier one with the same key set.
type sfDictionary struct {
	p       sfParser
	started bool
}

// newSFDictionary starts parsing s, a field value whose field lines are
// already combined (RFC 8941 §4.2: "Discard any leading SP characters").
func newSFDictionary(s string) sfDictionary {
	d := sfDictionary{p: sfParser{s: s}}
	d.p.skipSP()
	return d
}

// next returns the next member, or ok false at the end of the Dictionary
// or when parsing failed.
func (d *sfDictionary) next() (key string, v sfValue, ok bool) {
	p := &d.p
	if d.started {
		// §4.2.2 steps 2.6 to 2.10: OWS, a comma, OWS, and no trailing comma.
		p.skipOWS()
		if p.s == "" {
			return "", sfValue{}, false
		}
		if p.s[0] != ',' {
			p.fail()
			return "", sfValue{}, false
		}
		p.s = p.s[1:]
		p.skipOWS()
		if p.s == "" {
			p.fail()
			return "", sfValue{}, false
		}
	}
	if p.s == "" {
		return "", sfValue{}, false
	}
	d.started = true
	key = p.key()
	if p.s != "" && p.s[0] == '=' {
		p.s = p.s[1:]
		v = p.itemOrInnerList()
	} else {
		v = sfValue{kind: sfBoolean, num: 1, params: p.params()}
	}
	if p.bad {
		return "", sfValue{}, false
	}
	return key, v, true
}

// failed reports whether the Dictionary failed to parse.
func (d *sfDictionary) failed() bool { return d.p.bad }

// itemOrInnerList is RFC 8941 §4.2.1.1.
func (p *sfParser) itemOrInnerList() sfValue {
	if p.s != "" && p.s[0] == '(' {
		return p.innerList()
	}
	return p.item()
}

// innerList is RFC 8941 §4.2.1.2. The items are validated here and can be
// read again with sfInnerListItems.
func (p *sfParser) innerList() sfValue {
	s := p.s
	p.s = p.s[1:] // "("
	for p.s != "" {
		p.skipSP()
		if p.s != "" && p.s[0] == ')' {
			text := s[1 : len(s)-len(p.s)]
			p.s = p.s[1:]
			return sfValue{kind: sfInnerList, text: text, params: p.params()}
		}
		p.item()
		if p.s == "" || (p.s[0] != ' ' && p.s[0] != ')') {
			p.fail()
		}
	}
	p.fail() // the end of the Inner List was not found
	return sfValue{}
}

// sfInnerListItems iterates over the items of an Inner List that
// innerList has validated.
type sfInnerListItems struct{ p sfParser }

// next returns the next item, or ok false after the last.
func (it *sfInnerListItems) next() (v sfValue, ok bool) {
	it.p.skipSP()
	if it.p.s == "" {
		return sfValue{}, false
	}
	v = it.p.item()
	return v, !it.p.bad
}

// item is RFC 8941 §4.2.3.
func (p *sfParser) item() sfValue {
	v := p.bareItem()
	v.params = p.params()
	return v
}

// bareItem is RFC 8941 §4.2.3.1.
func (p *sfParser) bareItem() sfValue {
	if p.s == "" {
		p.fail()
		return sfValue{}
	}
	switch c := p.s[0]; {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.sfString()
	case isAlpha(c) || c == '*':
		return p.token()
	case c == ':':
		return p.byteSequence()
	case c == '?':
		return p.boolean()
	}
	p.fail()
	return sfValue{}
}

// params is RFC 8941 §4.2.3.2. It validates the Parameters and returns
// their text, which sfParams reads again.
func (p *sfParser) params() string {
	s := p.s
	for p.s != "" && p.s[0] == ';' {
		p.s = p.s[1:]
		p.skipSP()
		p.key()
		if p.s != "" && p.s[0] == '=' {
			p.s = p.s[1:]
			p.bareItem()
		}
	}
	if p.bad {
		return ""
	}
	return s[:len(s)-len(p.s)]
}

// sfParams iterates over Parameters that params has validated. Duplicate
// keys are all returned, in order; the last one wins (RFC 8941 §4.2.3.2).
type sfParams struct{ p sfParser }

// next returns the next parameter, or ok false after the last.
func (it *sfParams) next() (key string, v sfValue, ok bool) {
	p := &it.p
	if p.s == "" || p.s[0] != ';' {
		return "", sfValue{}, false
	}
	p.s = p.s[1:]
	p.skipSP()
	key = p.key()
	v = sfValue{kind: sfBoolean, num: 1}
	if p.s != "" && p.s[0] == '=' {
		p.s = p.s[1:]
		v = p.bareItem()
	}
	return key, v, !p.bad
}

// key is RFC 8941 §4.2.3.3: ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" /
// "-" / "." / "*" ).
func (p *sfParser) key() string {
	if p.s == "" || !(isLCAlpha(p.s[0]) || p.s[0] == '*') {
		p.fail()
		return ""
	}
	i := 1
	for i < len(p.s) && isKeyChar(p.s[i]) {
		i++
	}
	k := p.s[:i]
	p.s = p.s[i:]
	return k
}

// number is RFC 8941 §4.2.4: at most 15 digits for an Integer; at most 12
// before and 1 to 3 after the point for a Decimal.
func (p *sfParser) number() sfValue {
	s := p.s
	i := 0
	sign := int64(1)
	if s[0] == '-' {
		sign = -1
		i++
	}
	if i == len(s) || !isDigit(s[i]) {
		p.fail()
		return sfValue{}
	}
	start, dot := i, -1
	var n int64
digits:
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			n = n*10 + int64(c-'0')
		case dot < 0 && c == '.':
			if i-start > 12 {
				p.fail()
				return sfValue{}
			}
			dot = i
		default:
			break digits
		}
		if l := i - start + 1; (dot < 0 && l > 15) || (dot >= 0 && l > 16) {
			p.fail()
			return sfValue{}
		}
	}
	p.s = s[i:]
	if dot < 0 {
		return sfValue{kind: sfInteger, num: sign * n}
	}
	frac := i - dot - 1
	if frac == 0 || frac > 3 {
		p.fail()
		return sfValue{}
	}
	for ; frac < 3; frac++ {
		n *= 10
	}
	return sfValue{kind: sfDecimal, num: sign * n}
}

// sfString is RFC 8941 §4.2.5: printable ASCII, with only \" and \\ as
// escapes.
func (p *sfParser) sfString() sfValue {
	s := p.s
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
			if i == len(s) || (s[i] != '"' && s[i] != '\\') {
				p.fail()
				return sfValue{}
			}
		case c == '"':
			p.s = s[i+1:]
			return sfValue{kind: sfString, text: s[1:i]}
		case c < 0x20 || c > 0x7e:
			p.fail()
			return sfValue{}
		}
	}
	p.fail() // no closing DQUOTE
	return sfValue{}
}

// token is RFC 8941 §4.2.6: ( ALPHA / "*" ) *( tchar / ":" / "/" ).
func (p *sfParser) token() sfValue {
	s := p.s
	i := 1
	for i < len(s) && (httpsyntax.IsTchar(s[i]) || s[i] == ':' || s[i] == '/') {
		i++
	}
	p.s = s[i:]
	return sfValue{kind: sfToken, text: s[:i]}
}

// byteSequence is RFC 8941 §4.2.7.
func (p *sfParser) byteSequence() sfValue {
	end := strings.IndexByte(p.s[1:], ':')
	if end < 0 {
		p.fail()
		return sfValue{}
	}
	b64 := p.s[1 : 1+end]
	p.s = p.s[2+end:]
	if !validSFBase64(b64) {
		p.fail()
		return sfValue{}
	}
	return sfValue{kind: sfByteSequence, text: b64}
}

// validSFBase64 reports whether s decodes as base64 (RFC 4648 §4) in the
// way RFC 8941 §4.2.7 asks: only the base64 alphabet and "=", padding
// only at the end, missing padding synthesized and non-zero pad bits
// accepted (both SHOULD NOT fail).
func validSFBase64(s string) bool {
	core := strings.TrimRight(s, "=")
	pad := len(s) - len(core)
	for i := 0; i < len(core); i++ {
		c := core[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' {
			return false
		}
	}
	r := len(core) % 4
	return r != 1 && (pad == 0 || (r != 0 && r+pad <= 4))
}

// boolean is RFC 8941 §4.2.8: "?1" or "?0".
func (p *sfParser) boolean() sfValue {
	if len(p.s) < 2 || (p.s[1] != '0' && p.s[1] != '1') {
		p.fail()
		return sfValue{}
	}
	v := sfValue{kind: sfBoolean, num: int64(p.s[1] - '0')}
	p.s = p.s[2:]
	return v
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isAlpha reports whether c is an ASCII letter (RFC 5234 ALPHA).
func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// isLCAlpha reports whether c is a lower-case ASCII letter (RFC 8941 lcalpha).
func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }

// isKeyChar reports whether c may follow the first character of a key
// (RFC 8941 §3.1.2): lcalpha, DIGIT, "_", "-", "." or "*".
func isKeyChar(c byte) bool {
	return isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'
}
