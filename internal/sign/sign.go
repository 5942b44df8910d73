// Package sign authenticates the messages cluster members send each other:
// peer fills (cluster) and purge messages (purge). It owns what those
// protocols share: deriving a MAC key per purpose from each cluster key,
// the HMAC-SHA256 of a canonical list of fields and a body's hash, the
// clock window, and one vocabulary of refusal reasons.
//
// Each protocol keeps its own header layout, and describes what it signs
// with a [Scheme]. Nothing here reads a clock: signing and verifying take
// the time as an argument, so everything can be tested without a cluster.
package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Window is how far a signed message's timestamp may be from the
// receiver's clock, either way. It bounds both the clock skew between
// members and how long a captured message can be replayed.
const Window = 30 * time.Second

// Reasons a signed message is refused: the values of [Error.Reason]. They
// are stable: metrics count refusals by them, and peers send them back
// (Weir-Peer-Refused).
const (
	// Missing: the message has no signature field.
	Missing = "missing"
	// Malformed: the signature field does not parse, or there are several.
	Malformed = "malformed"
	// UnknownKey: the message is signed with a key ID this node does not
	// hold: the key files differ.
	UnknownKey = "unknown-key"
	// BadSignature: the MAC does not match the message: it was altered,
	// or signed with another secret under the same key ID.
	BadSignature = "bad-signature"
	// Expired: an authentic message whose timestamp is outside the
	// window: delayed, replayed later, or the clocks differ.
	Expired = "expired"
	// Replayed: an authentic, timely message seen before. Only protocols
	// with nonces tell (purge).
	Replayed = "replayed"
)

// Reasons returns every refusal reason, in the order of the constants:
// for metrics that export each one from the start.
func Reasons() []string {
	return []string{Missing, Malformed, UnknownKey, BadSignature, Expired, Replayed}
}

// Error is a refused message.
type Error struct {
	// Reason is one of the reasons above.
	Reason string

	// Detail says what failed, with what input and what to do, for logs.
	// It quotes no secret, and of the message only what identifies it
	// (key ID, node name).
	Detail string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Detail }

// Scheme is how one protocol signs its messages. Its values are part of
// the wire format: changing one breaks mixed-version clusters.
type Scheme struct {
	// Header is the request and response field that carries the
	// signature, in canonical form (as http.CanonicalHeaderKey writes it).
	Header string

	// Label derives the scheme's MAC key from each cluster key (see
	// [Derive]), so that one cluster key serves several protocols without
	// a signature of one being valid in another.
	Label string

	// Sep separates the signed fields. No signed field may contain it:
	// [Keys.Verify] refuses such a message as [Malformed].
	Sep byte

	// Body, when true, signs the SHA-256 of the message's body after the
	// fields, preceded by one more Sep.
	Body bool

	// What names one message in details, as in "peer request".
	What string
}

// Derive returns the 32-byte secret for one purpose, HMAC-SHA256(secret,
// "weir/" + label), so that one cluster key serves several purposes
// without one use weakening another (domain separation).
func Derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("weir/"))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Key is a cluster key as a signer needs it: the ID that names it in
// signatures, and its secret. A cluster.Key converts to it. Like
// cluster.Key, it never prints its secret.
type Key struct {
	ID     string
	Secret []byte
}

// String returns "Key(ID)", without the secret.
func (k Key) String() string { return "Key(" + k.ID + ")" }

// Format implements [fmt.Formatter] so that no verb prints the secret.
func (k Key) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// MAC is a message's HMAC-SHA256. On the wire it is unpadded URL-safe
// base64, 43 characters.
type MAC [sha256.Size]byte

// MACLen is the length of a MAC's text.
const MACLen = 43

// strictRawURL decodes MACs; it accepts one spelling per MAC.
var strictRawURL = base64.RawURLEncoding.Strict()

// AppendText appends the MAC's text to b.
func (m MAC) AppendText(b []byte) ([]byte, error) {
	return base64.RawURLEncoding.AppendEncode(b, m[:]), nil
}

// String returns the MAC's text.
func (m MAC) String() string { return base64.RawURLEncoding.EncodeToString(m[:]) }

// ParseMAC parses a MAC's text, and reports whether it is one: exactly
// the 43 characters [MAC.String] writes, nothing else. It does not
// allocate.
func ParseMAC(s string) (m MAC, ok bool) {
	if len(s) != MACLen {
		return m, false
	}
	// Copy the text to an array so that decoding does not allocate.
	var src [MACLen]byte
	copy(src[:], s)
	n, err := strictRawURL.Decode(m[:], src[:])
	return m, err == nil && n == len(m)
}

// Keys are a scheme's MAC keys, one per cluster key: the first (the
// primary) signs, any verifies. Keys are immutable and safe for
// concurrent use.
type Keys struct {
	scheme Scheme
	ids    []string
	macs   []macKey // macs[i] is derived from the key named ids[i]
}

// NewKeys derives the scheme's MAC key from each of keys, the first being
// the primary. It copies nothing it keeps but derived secrets. It panics
// when keys is empty: there is nothing to sign with.
func NewKeys(s Scheme, keys ...Key) *Keys {
	if len(keys) == 0 {
		panic("sign: NewKeys without keys")
	}
	k := &Keys{scheme: s, ids: make([]string, len(keys)), macs: make([]macKey, len(keys))}
	for i, key := range keys {
		k.ids[i] = key.ID
		k.macs[i].secret = Derive(key.Secret, s.Label)
		k.macs[i].scheme = &k.scheme
	}
	return k
}

// Primary returns the ID of the key that signs.
func (k *Keys) Primary() string { return k.ids[0] }

// Sign returns the MAC of fields (and of body's hash, if the scheme signs
// bodies) under the primary key. No field may contain the scheme's Sep.
// It does not allocate.
func (k *Keys) Sign(fields []string, body []byte) MAC {
	return k.macs[0].sum(fields, body)
}

// Signed is a message as received: what its signature field claims, and
// what the signature must cover.
type Signed struct {
	// KeyID names the key the message claims to be signed with.
	KeyID string
	// From is the node the message claims to come from, for details.
	From string
	// At is when the message claims to have been signed.
	At time.Time
	// MAC is the signature.
	MAC MAC
	// Fields and Body are what the signature covers, as the receiver
	// sees them; Body only if the scheme signs bodies.
	Fields []string
	Body   []byte
}

// Verify checks that m is signed with one of the keys over its fields
// (and body) at a time within window of now, either way; a negative
// window is no window. Otherwise it returns an [*Error]: [Malformed] when
// a field contains the scheme's separator, [UnknownKey], [BadSignature],
// or [Expired]. The MAC is checked before the time, so a forged message
// is refused as bad-signature whatever its timestamp, and "expired" means
// an authentic message that is late or early. MACs are compared in
// constant time. Verify does not allocate when m is authentic.
func (k *Keys) Verify(m *Signed, now time.Time, window time.Duration) error {
	s := &k.scheme
	for i, f := range m.Fields {
		if strings.IndexByte(f, s.Sep) >= 0 {
			return &Error{Malformed, fmt.Sprintf("field %d of what the %s from node %q signs contains the separator %q, which no signer writes: it was altered on the way", i+1, s.What, clip(m.From), s.Sep)}
		}
	}
	i := k.index(m.KeyID)
	if i < 0 {
		return &Error{UnknownKey, fmt.Sprintf("the %s from node %q is signed with key %q, which is not in this node's key file: give every node the same key file (finish the key rotation on every node)", s.What, clip(m.From), clip(m.KeyID))}
	}
	want := k.macs[i].sum(m.Fields, m.Body)
	if !hmac.Equal(want[:], m.MAC[:]) {
		return &Error{BadSignature, fmt.Sprintf("the signature of the %s from node %q by key %q does not match it: it was altered on the way (a proxy between the nodes?), or signed with another secret under the same key ID; connect members directly and give every node the same key file", s.What, clip(m.From), clip(m.KeyID))}
	}
	window = max(window, 0)
	if skew := now.Sub(m.At); skew > window || skew < -window {
		return &Error{Expired, expiredDetail(s.What, m.From, skew, window)}
	}
	return nil
}

func expiredDetail(what, from string, skew, window time.Duration) string {
	when := "behind"
	if skew < 0 {
		when, skew = "ahead of", -skew
	}
	return fmt.Sprintf("node %q signed the %s with a timestamp %v %s this node's clock, outside the ±%v window: it was delayed or replayed, or the clocks of the two nodes differ; synchronise them (NTP)", clip(from), what, skew.Round(time.Millisecond), when, window)
}

// Field returns the scheme's signature field of h, which must hold it
// once. Otherwise the error is an [*Error], [Missing] or [Malformed]. It
// does not allocate.
func (s Scheme) Field(h http.Header) (string, error) {
	switch v := h[s.Header]; len(v) {
	case 1:
		return v[0], nil
	case 0:
		return "", &Error{Missing, "the " + s.What + " has no " + s.Header + " field: only cluster members holding the cluster key file may send one; give the sender the key file (cluster.key_file), or keep it off the peer port"}
	default:
		return "", &Error{Malformed, fmt.Sprintf("the %s has %d %s fields, want 1: something between the nodes added one; connect members directly", s.What, len(v), s.Header)}
	}
}

// Malformed returns the [Malformed] refusal of a signature field, with
// problem saying what is wrong with it (without quoting it), as in "has a
// timestamp that is not a number".
func (s Scheme) Malformed(problem string) *Error {
	return &Error{Malformed, "the " + s.What + "'s " + s.Header + " field " + problem}
}

// index returns the index of the key named id, or -1.
func (k *Keys) index(id string) int {
	for i, v := range k.ids {
		if v == id {
			return i
		}
	}
	return -1
}

// clip returns a copy of what a detail quotes of a message, at most 128
// bytes of it. The copy keeps escape analysis from moving the message's
// fields to the heap on the path where it is authentic.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return strings.Clone(s)
}

// maxPooledBuf is the largest message buffer kept for reuse.
const maxPooledBuf = 4 << 10

// macKey signs and verifies with one derived secret. It must not be
// copied after first use.
type macKey struct {
	secret []byte
	scheme *Scheme
	pool   sync.Pool // of *macState, reused across messages
}

// macState is an HMAC keyed with a macKey's secret, a buffer to build the
// signed message in and one to receive the sum, kept together so that
// signing does not allocate.
type macState struct {
	mac hash.Hash
	buf []byte
	out MAC
}

// sum returns the MAC of fields and body: the fields joined by Sep, then,
// if the scheme signs bodies, Sep and the body's SHA-256.
func (k *macKey) sum(fields []string, body []byte) MAC {
	st, _ := k.pool.Get().(*macState)
	if st == nil {
		st = &macState{mac: hmac.New(sha256.New, k.secret), buf: make([]byte, 0, 256)}
	}
	sep := k.scheme.Sep
	b := st.buf[:0]
	for i, f := range fields {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, f...)
	}
	if k.scheme.Body {
		b = append(b, sep)
		h := sha256.Sum256(body)
		b = append(b, h[:]...)
	}
	st.mac.Reset()
	st.mac.Write(b)
	st.mac.Sum(st.out[:0])
	sum := st.out
	if cap(b) <= maxPooledBuf {
		st.buf = b[:0]
		k.pool.Put(st)
	}
	return sum
}
