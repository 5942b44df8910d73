package cluster

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/sign"
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

// peerScheme is how peer requests are signed; see AuthHeader.
var peerScheme = sign.Scheme{Header: AuthHeader, Label: "peer/v1", Sep: '\n', What: "peer request"}

const (
	authVersion        = "v1"
	peerMessageTag     = "weir-peer-v1" // the first signed field
	maxAuthHeaderLen   = 256
	maxNodeNameLen     = 128
	maxTimestampDigits = 12
)

// AuthError says why a request was refused. Its Reason is one of
// [sign.Missing], [sign.Malformed], [sign.UnknownKey], [sign.BadSignature]
// and [sign.Expired]; these values are stable, as they serve as metric
// labels. Its Detail says what was wrong and what to do about it, for
// logs. It quotes no secret, and of the header only the key ID and the
// node name, once they are known to be well formed.
type AuthError = sign.Error

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
	mac := kr.peer.Sign([]string{peerMessageTag, method, host, r.URL.RequestURI(), string(ts), node}, nil)

	id := kr.peer.Primary()
	b := make([]byte, 0, len(authVersion)+len(id)+len(ts)+len(node)+sign.MACLen+4)
	b = append(b, authVersion...)
	b = append(b, ' ')
	b = append(b, id...)
	b = append(b, ' ')
	b = append(b, ts...)
	b = append(b, ' ')
	b = append(b, node...)
	b = append(b, ' ')
	b, _ = mac.AppendText(b)
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
	v, err := peerScheme.Field(r.Header)
	if err != nil {
		return "", err
	}
	h, problem := parseAuthHeader(v)
	if problem != "" {
		return "", peerScheme.Malformed(problem)
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	m := sign.Signed{
		KeyID: h.keyID, From: h.node, At: time.Unix(h.unix, 0), MAC: h.mac,
		Fields: []string{peerMessageTag, method, r.Host, uri, h.timestamp, h.node},
	}
	if err := kr.peer.Verify(&m, now, window); err != nil {
		return "", err
	}
	return h.node, nil
}

// authHeader is a parsed AuthHeader value. Its strings point into the
// value.
type authHeader struct {
	keyID     string
	timestamp string // decimal digits
	unix      int64  // timestamp's value
	node      string
	mac       sign.MAC
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
	if len(sig) != sign.MACLen {
		return h, fmt.Sprintf("has a signature of %d characters, want %d", len(sig), sign.MACLen)
	}
	var ok bool
	if h.mac, ok = sign.ParseMAC(sig); !ok {
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
