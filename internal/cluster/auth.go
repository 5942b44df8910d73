package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AuthHeader is the request field that authenticates a peer request:
//
//	Weir-Peer-Auth: v1 KEYID UNIXSECONDS NODE SIGNATURE
//
// KEYID names the signing key, UNIXSECONDS is when the request was signed,
// NODE is the sending node's name, and SIGNATURE is the unpadded URL-safe
// base64 of HMAC-SHA256(key.Derive("peer/v1"), message), where message
// joins with "\n" the lines "weir-peer-v1", the method, the host, the
// request URI (the request target, as in "/a/b?c=d"), UNIXSECONDS and
// NODE. The fields are separated by single spaces, and the whole value is
// at most 256 bytes.
//
// The signature covers neither the other fields nor a body: peer requests
// are reads (GET, HEAD), and a request captured on the wire can be
// replayed, with other fields, while its timestamp is within the
// receiver's window.
const AuthHeader = "Weir-Peer-Auth"

const (
	peerLabel          = "peer/v1"
	authVersion        = "v1"
	maxAuthHeaderLen   = 256
	maxNodeNameLen     = 128
	maxTimestampDigits = 12
	signatureLen       = 43 // unpadded base64 of a SHA-256 sum
	// maxPooledBuf is the largest message buffer kept for reuse.
	maxPooledBuf = 4 << 10
)

// strictRawURL decodes signatures; it accepts one spelling per signature.
var strictRawURL = base64.RawURLEncoding.Strict()

// Reasons for refusing a peer request, the values of AuthError.Reason.
const (
	reasonMissing      = "missing"
	reasonMalformed    = "malformed"
	reasonUnknownKey   = "unknown-key"
	reasonExpired      = "expired"
	reasonBadSignature = "bad-signature"
)

// AuthError says why a request was refused.
type AuthError struct {
	// Reason is one of "missing", "malformed", "unknown-key", "expired"
	// and "bad-signature". These values are stable: they serve as metric
	// labels.
	Reason string

	// Detail says what was wrong and what to do about it, for logs. It
	// quotes no secret, and of the header only the key ID and the node
	// name, once they are known to be well formed.
	Detail string
}

func (e *AuthError) Error() string { return e.Reason + ": " + e.Detail }

// ValidateNodeName reports whether name can sign peer requests: 1 to 128
// bytes of printable ASCII, without spaces.
func ValidateNodeName(name string) error {
	if name == "" {
		return fmt.Errorf("node name is empty")
	}
	if len(name) > maxNodeNameLen {
		return fmt.Errorf("node name is %d bytes long, at most %d are allowed", len(name), maxNodeNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !isNodeByte(name[i]) {
			return fmt.Errorf("node name has a space, control or non-ASCII character at byte %d: use printable ASCII without spaces", i+1)
		}
	}
	return nil
}

func isNodeByte(c byte) bool { return '!' <= c && c <= '~' }

// SignRequest sets [AuthHeader] on r, signed with the keyring's primary
// key at time now, on behalf of node. It signs r.Method ("" meaning GET),
// r.Host (or r.URL.Host when r.Host is empty) and r.URL.RequestURI(), so
// it must be called after they are final, and r must reach the peer
// directly, not through an HTTP proxy, which would change the request URI.
// It panics if node fails [ValidateNodeName]: node names are checked when
// the configuration is loaded.
func SignRequest(kr *Keyring, r *http.Request, node string, now time.Time) {
	if err := ValidateNodeName(node); err != nil {
		panic("cluster: SignRequest: " + err.Error())
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	var tsBuf [20]byte
	ts := strconv.AppendInt(tsBuf[:0], now.Unix(), 10)
	sig := kr.peer[0].sum(method, host, r.URL.RequestURI(), string(ts), node)

	id := kr.keys[0].ID
	b := make([]byte, 0, len(authVersion)+len(id)+len(ts)+len(node)+signatureLen+4)
	b = append(b, authVersion...)
	b = append(b, ' ')
	b = append(b, id...)
	b = append(b, ' ')
	b = append(b, ts...)
	b = append(b, ' ')
	b = append(b, node...)
	b = append(b, ' ')
	b = base64.RawURLEncoding.AppendEncode(b, sig[:])
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header[AuthHeader] = []string{string(b)}
}

// VerifyRequest checks [AuthHeader] on a request received by a server and
// returns the name of the node that signed it. The header must be signed
// with one of the keyring's keys over r.Method, r.Host and r.RequestURI
// (r.URL.RequestURI() when r.RequestURI is empty), and its timestamp must
// be within window of now, either way. Otherwise the error is an
// [*AuthError]. The signature is checked before the timestamp, so a forged
// request is refused as "bad-signature" whatever its timestamp, and
// "expired" means an authentic request that is late or early: replayed,
// delayed, or sent by a node whose clock is off. Signatures are compared
// in constant time. VerifyRequest does not allocate when the request is
// authentic.
func VerifyRequest(kr *Keyring, r *http.Request, now time.Time, window time.Duration) (node string, err error) {
	values := r.Header[AuthHeader]
	switch {
	case len(values) == 0:
		return "", &AuthError{reasonMissing, "the request has no " + AuthHeader + " field: only cluster members with the cluster keys may fill from this node"}
	case len(values) > 1:
		return "", &AuthError{reasonMalformed, fmt.Sprintf("the request has %d %s fields, want 1", len(values), AuthHeader)}
	}
	h, problem := parseAuthHeader(values[0])
	if problem != "" {
		return "", &AuthError{reasonMalformed, AuthHeader + " " + problem}
	}
	i := kr.index(h.keyID)
	if i < 0 {
		return "", &AuthError{reasonUnknownKey, fmt.Sprintf("the request claims to come from node %q and is signed with key %s, which is not in this node's key file: give every node the same key file", h.node, h.keyID)}
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	want := kr.peer[i].sum(method, r.Host, uri, h.timestamp, h.node)
	if !hmac.Equal(want[:], h.signature[:]) {
		return "", &AuthError{reasonBadSignature, fmt.Sprintf("the signature by key %s does not match the request: it was changed on the way, or signed with another secret under the same key ID", h.keyID)}
	}
	window = max(window, 0)
	if skew := now.Sub(time.Unix(h.unix, 0)); skew > window || skew < -window {
		return "", &AuthError{reasonExpired, expiredDetail(h.node, skew, window)}
	}
	return h.node, nil
}

func expiredDetail(node string, skew, window time.Duration) string {
	when := "behind"
	if skew < 0 {
		when, skew = "ahead of", -skew
	}
	return fmt.Sprintf("node %q signed the request with a timestamp %v %s this node's clock, outside the ±%v window: the request was delayed or replayed, or the clocks of the two nodes differ; synchronise them (NTP)", node, skew.Truncate(time.Second), when, window)
}

// authHeader is a parsed AuthHeader value. Its strings point into the
// value.
type authHeader struct {
	keyID     string
	timestamp string // decimal digits
	unix      int64  // timestamp's value
	node      string
	signature [sha256.Size]byte
}

// parseAuthHeader parses an AuthHeader value, or says what is wrong with
// it (without quoting it). Only values that [SignRequest] could have
// written are accepted.
func parseAuthHeader(v string) (h authHeader, problem string) {
	if len(v) > maxAuthHeaderLen {
		return h, fmt.Sprintf("is %d bytes long, at most %d are allowed", len(v), maxAuthHeaderLen)
	}
	version, rest, ok1 := strings.Cut(v, " ")
	keyID, rest, ok2 := strings.Cut(rest, " ")
	ts, rest, ok3 := strings.Cut(rest, " ")
	node, sig, ok4 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !ok3 || !ok4 || strings.Contains(sig, " ") {
		return h, "does not have 5 fields separated by single spaces: want \"v1 KEYID UNIXSECONDS NODE SIGNATURE\""
	}
	if version != authVersion {
		return h, "has an unknown version, want v1: this node may be older than the sender; upgrade it"
	}
	if idProblem(keyID) != "" {
		return h, "has a key ID that is not 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
	}
	if ts == "" || len(ts) > maxTimestampDigits || !allDigits(ts) {
		return h, fmt.Sprintf("has a timestamp that is not 1 to %d decimal digits", maxTimestampDigits)
	}
	if ValidateNodeName(node) != nil {
		return h, fmt.Sprintf("has a node name that is not 1 to %d bytes of printable ASCII", maxNodeNameLen)
	}
	if len(sig) != signatureLen {
		return h, fmt.Sprintf("has a signature of %d characters, want %d", len(sig), signatureLen)
	}
	// Copy the signature to an array so that decoding does not allocate.
	var src [signatureLen]byte
	copy(src[:], sig)
	if n, err := strictRawURL.Decode(h.signature[:], src[:]); err != nil || n != sha256.Size {
		return h, "has a signature that is not unpadded URL-safe base64"
	}
	h.unix, _ = strconv.ParseInt(ts, 10, 64) // at most 12 digits: cannot fail
	h.keyID, h.timestamp, h.node = keyID, ts, node
	return h, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// peerMAC signs and verifies peer requests with one key. It must not be
// copied after first use.
type peerMAC struct {
	secret []byte    // the key's Derive(peerLabel)
	pool   sync.Pool // of *macState, reused across requests
}

// macState is an HMAC keyed with a peerMAC's secret, a buffer to build the
// signed message in and one to receive the sum, kept together so that
// signing does not allocate.
type macState struct {
	mac hash.Hash
	buf []byte
	out [sha256.Size]byte
}

// sum returns the signature of a peer request.
func (p *peerMAC) sum(method, host, uri, ts, node string) [sha256.Size]byte {
	st, _ := p.pool.Get().(*macState)
	if st == nil {
		st = &macState{mac: hmac.New(sha256.New, p.secret), buf: make([]byte, 0, 256)}
	}
	b := append(st.buf[:0], "weir-peer-v1\n"...)
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, host...)
	b = append(b, '\n')
	b = append(b, uri...)
	b = append(b, '\n')
	b = append(b, ts...)
	b = append(b, '\n')
	b = append(b, node...)
	st.mac.Reset()
	st.mac.Write(b)
	st.mac.Sum(st.out[:0])
	sum := st.out
	if cap(b) <= maxPooledBuf {
		st.buf = b[:0]
		p.pool.Put(st)
	}
	return sum
}
