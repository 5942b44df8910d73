package purge

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/sign"
)

// Wire format. Every message between nodes, request or response, is a
// JSON document compressed with zstd and signed with HMAC-SHA256 in the
// SigHeader field:
//
//	Weir-Purge-Sig: v1 KEY-ID SENDER INCARNATION NONCE UNIX-MS RE MAC
//
// MAC is the unpadded URL-safe base64 of HMAC-SHA256 under the cluster
// key's Derive("weir purge v1") over the message kind (the request path's
// last element, or "resp:" and it for a response) and every other field
// but the version, each followed by a zero byte, then the SHA-256 of the
// body. Numbers are decimal without leading zeros. KEY-ID names the cluster key the MAC key is derived from, so
// keys can rotate. NONCE is unique per sender incarnation; a receiver
// refuses a message outside ±AuthWindow of its clock, or whose (sender,
// incarnation, nonce) it has seen within the window. RE is 0 on requests
// and the request's nonce on responses, which binds a response to its
// request.
//
// A node with an identity (see cluster.Identity) writes version v2, which
// adds a ninth field, IDSIG: the unpadded URL-safe base64 of the sender's
// Ed25519 signature over "weir purge id v1", a zero byte, and what the
// MAC covers (the fields, each followed by a zero byte, then the SHA-256
// of the body). The MAC proves the sender holds the cluster key; IDSIG
// proves which member it is, so no member can speak, or acknowledge, in
// another's name. A receiver checks IDSIG against the certificate the
// sender announced through membership. It accepts v1 only from a member
// that announces no identity (a node older than identities, during a
// rolling upgrade), and answers a message in the version it came in.
const (
	SigHeader = "Weir-Purge-Sig"
	// PathPrefix is where the purge endpoints live on the peer listener.
	PathPrefix = "/_weir/purge/"
	// AuthWindow bounds the clock difference between nodes, [sign.Window].
	AuthWindow = sign.Window
	// maxWireBytes bounds a message body, compressed and decompressed.
	maxWireBytes = 32 << 20
	sigVersion   = "v1"
	sigVersionID = "v2"
	// maxSigHeaderLen bounds a SigHeader value; the longest a node writes
	// (64-byte key ID, 128-byte node name, the largest numbers, IDSIG) is
	// 410 bytes.
	maxSigHeaderLen = 512
	idSigLabel      = "weir purge id v1"
	idSigLen        = 86 // unpadded base64 of 64 bytes
)

// Refusal reasons of identity signatures, beside sign's and
// rejectBadBody.
const (
	// rejectBadIdentity: IDSIG is missing where the sender announces an
	// identity, or does not verify with its key; or a seal does not.
	rejectBadIdentity = "bad-identity"
	// rejectUnknownIdentity: the sender is no member here (yet), so its
	// key is unknown; anti-entropy repairs what is refused.
	rejectUnknownIdentity = "unknown-identity"
)

// purgeScheme is how purge messages are signed: the fields, each followed
// by a zero byte, then the SHA-256 of the body.
var purgeScheme = sign.Scheme{Header: SigHeader, Label: "weir purge v1", Sep: 0, Body: true, What: "purge message"}

// insecureKey signs messages in a cluster run without keys
// (--insecure-cluster). It is public, so it protects against nothing but
// accidents; the code path stays the same.
var insecureKey = cluster.Key{ID: "insecure", Secret: []byte("weir insecure cluster: no purge authentication")}

// signer signs and verifies messages with the cluster keys.
type signer struct {
	node  string
	inc   uint64
	keys  atomic.Pointer[sign.Keys]
	nonce atomic.Uint64
	seen  replayCache
	// ids, when set, signs messages in this node's name (v2) and checks
	// the senders'.
	ids Identities
	// verified maps each sender to the incarnation whose identity
	// signature last verified: a failure from another incarnation is a
	// node that restarted with a new key this node has not learnt yet,
	// not a forgery.
	verifiedMu sync.Mutex
	verified   map[string]uint64
}

func newSigner(node string, inc uint64, kr *cluster.Keyring, ids Identities) *signer {
	s := &signer{node: node, inc: inc, ids: ids, verified: make(map[string]uint64)}
	s.setKeys(kr)
	s.seen.init()
	return s
}

// setKeys makes kr's keys the ones messages are signed (primary) and
// verified (any) with; nil means the public insecure key.
func (s *signer) setKeys(kr *cluster.Keyring) {
	keys := []cluster.Key{insecureKey}
	if kr != nil {
		keys = kr.Keys()
	}
	sk := make([]sign.Key, len(keys))
	for i, k := range keys {
		sk[i] = sign.Key(k)
	}
	s.keys.Store(sign.NewKeys(purgeScheme, sk...))
}

// sign sets SigHeader on h for a message of kind with body, and returns
// the nonce used. It writes v2 (signed with this node's identity too)
// unless v1 is set: for a peer older than identities.
func (s *signer) sign(h http.Header, kind string, re uint64, body []byte, now time.Time, v1 bool) uint64 {
	nonce := s.nonce.Add(1)
	keys := s.keys.Load()
	sh := sigHeader{keyID: keys.Primary(), sender: s.node, inc: s.inc, nonce: nonce, ms: now.UnixMilli(), re: re}
	fields := sh.fields(kind)
	sh.mac = keys.Sign(fields, body)
	if s.ids != nil && !v1 {
		sh.idSig = s.ids.Identity().Sign(idMessage(fields, body))
	}
	h.Set(SigHeader, sh.String())
	return nonce
}

// idMessage returns what IDSIG covers.
func idMessage(fields []string, body []byte) []byte {
	n := len(idSigLabel) + 1 + sha256.Size
	for _, f := range fields {
		n += len(f) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, idSigLabel...)
	b = append(b, 0)
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(body)
	return append(b, sum[:]...)
}

// oldPeer reports whether the member called name announces no identity,
// so messages to it go in v1.
func (s *signer) oldPeer(name string) bool {
	if s.ids == nil {
		return true
	}
	c, member := s.ids.Cert(name)
	return member && c == nil
}

// sigHeader is a parsed SigHeader value.
type sigHeader struct {
	keyID, sender  string
	inc, nonce, re uint64
	ms             int64 // when it was signed, Unix milliseconds
	mac            sign.MAC
	idSig          []byte // v2 only
}

// fields returns what the MAC covers for a message of kind: kind, then
// every field of the header but the version and the MAC, as the header
// spells them.
func (h *sigHeader) fields(kind string) []string {
	return []string{kind, h.keyID, h.sender, strconv.FormatUint(h.inc, 10), strconv.FormatUint(h.nonce, 10),
		strconv.FormatInt(h.ms, 10), strconv.FormatUint(h.re, 10)}
}

// String returns the SigHeader value.
func (h *sigHeader) String() string {
	f := []string{sigVersion, h.keyID, h.sender, strconv.FormatUint(h.inc, 10), strconv.FormatUint(h.nonce, 10),
		strconv.FormatInt(h.ms, 10), strconv.FormatUint(h.re, 10), h.mac.String()}
	if h.idSig != nil {
		f[0] = sigVersionID
		f = append(f, base64.RawURLEncoding.EncodeToString(h.idSig))
	}
	return strings.Join(f, " ")
}

// parseSigHeader parses a SigHeader value, or says what is wrong with it
// (without quoting it). Only values that [signer.sign] could have written
// are accepted: numbers in their shortest decimal form.
func parseSigHeader(v string) (h sigHeader, problem string) {
	if len(v) > maxSigHeaderLen {
		return h, fmt.Sprintf("is %d bytes long, at most %d are allowed", len(v), maxSigHeaderLen)
	}
	f := strings.Split(v, " ")
	switch {
	case len(f) == 8 && f[0] == sigVersion:
	case len(f) == 9 && f[0] == sigVersionID:
		if len(f[8]) != idSigLen {
			return h, fmt.Sprintf("has an IDSIG that is not %d characters of unpadded URL-safe base64", idSigLen)
		}
		sig, err := base64.RawURLEncoding.Strict().DecodeString(f[8])
		if err != nil {
			return h, fmt.Sprintf("has an IDSIG that is not %d characters of unpadded URL-safe base64", idSigLen)
		}
		h.idSig = sig
	case f[0] != sigVersion && f[0] != sigVersionID:
		return h, "has an unknown version, want v1 or v2: this node may be older than the sender; upgrade it"
	default:
		return h, "does not have 8 (v1) or 9 (v2) fields separated by single spaces: want \"v2 KEY-ID SENDER INCARNATION NONCE UNIX-MS RE MAC IDSIG\""
	}
	if f[1] == "" {
		return h, "has an empty key ID"
	}
	if cluster.ValidateNodeName(f[2]) != nil {
		return h, "has a sender that is not 1 to 128 bytes of printable ASCII"
	}
	var err1, err2, err3, err4 error
	h.inc, err1 = parseUint(f[3])
	h.nonce, err2 = parseUint(f[4])
	var ms uint64
	ms, err3 = parseUint(f[5])
	h.re, err4 = parseUint(f[6])
	if errors.Join(err1, err2, err3, err4) != nil || ms > math.MaxInt64 {
		return h, "has an incarnation, nonce, time or RE that is not a decimal number of at most 20 digits without leading zeros"
	}
	var ok bool
	if h.mac, ok = sign.ParseMAC(f[7]); !ok {
		return h, fmt.Sprintf("has a MAC that is not %d characters of unpadded URL-safe base64", sign.MACLen)
	}
	h.ms = int64(ms)
	h.keyID, h.sender = f[1], f[2]
	return h, ""
}

// errNotCanonical is a number spelled otherwise than strconv writes it.
var errNotCanonical = errors.New("not in canonical form")

// parseUint parses a decimal number as strconv.FormatUint writes it.
func parseUint(s string) (uint64, error) {
	if len(s) > 1 && s[0] == '0' || s != "" && s[0] == '+' {
		return 0, errNotCanonical
	}
	return strconv.ParseUint(s, 10, 64)
}

// sigInfo is what a verified signature says.
type sigInfo struct {
	sender     string
	inc, nonce uint64
	re         uint64
	at         time.Time
	// v1 is set for a message without IDSIG, from a member older than
	// identities: answer it in v1.
	v1 bool
}

// rejectBadBody is the refusal of a message that is authentic but not a
// valid purge message; every other reason is one of sign's.
const rejectBadBody = "bad-body"

// verify checks h's signature for a message of kind with body. checkReplay
// records the nonce and refuses one seen before (requests); responses are
// bound to their request by re instead. The error is a *sign.Error.
func (s *signer) verify(h http.Header, kind string, body []byte, now time.Time, checkReplay bool) (sigInfo, error) {
	v, err := purgeScheme.Field(h)
	if err != nil {
		return sigInfo{}, err
	}
	sh, problem := parseSigHeader(v)
	if problem != "" {
		return sigInfo{}, purgeScheme.Malformed(problem)
	}
	at := time.UnixMilli(sh.ms)
	fields := sh.fields(kind)
	m := sign.Signed{KeyID: sh.keyID, From: sh.sender, At: at, MAC: sh.mac, Fields: fields, Body: body}
	if err := s.keys.Load().Verify(&m, now, AuthWindow); err != nil {
		return sigInfo{}, err
	}
	info := sigInfo{sender: sh.sender, inc: sh.inc, nonce: sh.nonce, re: sh.re, at: at, v1: sh.idSig == nil}
	if s.ids != nil {
		if err := s.verifyIdentity(&sh, fields, body); err != nil {
			return sigInfo{}, err
		}
	}
	if checkReplay && !s.seen.add(info, now) {
		return sigInfo{}, &sign.Error{Reason: sign.Replayed, Detail: fmt.Sprintf("purge message %d of node %q (incarnation %d) was seen before, and nothing was applied twice: if it keeps happening, find who resends captured messages from remote_addr", info.nonce, info.sender, info.inc)}
	}
	return info, nil
}

// verifyIdentity checks a message's IDSIG against the certificate its
// sender announced. The error is a *sign.Error with reason
// rejectBadIdentity or rejectUnknownIdentity.
func (s *signer) verifyIdentity(sh *sigHeader, fields []string, body []byte) error {
	cert, member := s.ids.Cert(sh.sender)
	switch {
	case !member:
		return &sign.Error{Reason: rejectUnknownIdentity, Detail: fmt.Sprintf("purge message of %q, which is no member here, so its identity is unknown: if it just joined, gossip brings it within a second", sh.sender)}
	case cert == nil && sh.idSig != nil:
		return &sign.Error{Reason: rejectBadIdentity, Detail: fmt.Sprintf("purge message of %q signed v2, and %q announced no identity", sh.sender, sh.sender)}
	case cert == nil:
		return nil // a member older than identities: v1
	case sh.idSig == nil:
		return &sign.Error{Reason: rejectBadIdentity, Detail: fmt.Sprintf("purge message of %q is not signed with its identity (v1), and %q announced identity %s: someone holding the cluster key speaks in its name", sh.sender, sh.sender, cert.Fingerprint())}
	case !cert.VerifySig(idMessage(fields, body), sh.idSig):
		s.verifiedMu.Lock()
		inc, seen := s.verified[sh.sender]
		s.verifiedMu.Unlock()
		if !seen || inc != sh.inc {
			return &sign.Error{Reason: rejectUnknownIdentity, Detail: fmt.Sprintf("purge message of %q (incarnation %d) does not verify with the identity %s it announced: most likely it restarted with a new key that gossip has not brought yet", sh.sender, sh.inc, cert.Fingerprint())}
		}
		return &sign.Error{Reason: rejectBadIdentity, Detail: fmt.Sprintf("purge message of %q does not verify with its identity %s, which its incarnation %d signed with before: forged in its name by someone holding the cluster key, or altered", sh.sender, cert.Fingerprint(), sh.inc)}
	}
	if sh.idSig != nil {
		s.verifiedMu.Lock()
		if _, ok := s.verified[sh.sender]; !ok && len(s.verified) >= maxVerified {
			clear(s.verified)
		}
		s.verified[sh.sender] = sh.inc
		s.verifiedMu.Unlock()
	}
	return nil
}

// maxVerified bounds signer.verified.
const maxVerified = 4096

// replayCache remembers the nonces seen within twice the window; older
// messages are refused by their timestamp anyway.
type replayCache struct {
	mu   sync.Mutex
	seen map[replayKey]int64 // → expiry, Unix nanoseconds
}

type replayKey struct {
	sender     string
	inc, nonce uint64
}

// maxReplayEntries bounds the replay cache; when it is full of live
// entries, new messages are refused (as replays) until some expire: safe,
// since anti-entropy repairs anything refused.
const maxReplayEntries = 1 << 20

func (c *replayCache) init() { c.seen = make(map[replayKey]int64) }

func (c *replayCache) add(info sigInfo, now time.Time) bool {
	k := replayKey{info.sender, info.inc, info.nonce}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.seen[k]; dup {
		return false
	}
	if len(c.seen) >= maxReplayEntries {
		c.pruneLocked(now)
		if len(c.seen) >= maxReplayEntries {
			return false
		}
	}
	c.seen[k] = info.at.Add(2 * AuthWindow).UnixNano()
	return true
}

// prune forgets expired nonces.
func (c *replayCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
}

func (c *replayCache) pruneLocked(now time.Time) {
	n := now.UnixNano()
	for k, exp := range c.seen {
		if exp < n {
			delete(c.seen, k)
		}
	}
}

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxWireBytes), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderConcurrency(0))
)

// encode marshals v and compresses it unless raw.
func encode(v any, raw bool) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if raw {
		return b, nil
	}
	return zenc.EncodeAll(b, make([]byte, 0, len(b)/3+64)), nil
}

// Content-Encoding values of purge messages.
const (
	encZstd = "zstd"
	encNone = "identity"
)

// decode decompresses (per the Content-Encoding enc) and unmarshals body
// into v, refusing unknown fields.
func decode(body []byte, enc string, v any) error {
	switch enc {
	case encZstd:
		b, err := zdec.DecodeAll(body, nil)
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		body = b
	case encNone, "":
	default:
		return fmt.Errorf("content encoding %q is neither zstd nor identity", clip(enc))
	}
	if len(body) > maxWireBytes {
		return fmt.Errorf("message is %d bytes, more than %d", len(body), maxWireBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}

// Payloads.

// batchMsg carries purges an issuing node pushes to the others, or a
// member relays, with their issuers' seals.
type batchMsg struct {
	Entries []Entry `json:"entries"`
	Seals   []Seal  `json:"seals,omitempty"`
}

// batchAck answers a batch: how far the receiver has applied the
// sender's stream.
type batchAck struct {
	HW uint64 `json:"hw"`
}

// ackMsg tells the node that issued purges how far the sender has
// applied its stream Inc, as soon as a batch brought it new entries of
// that stream: a second path for the acknowledgement, besides the
// batch's reply (see Service.spread).
type ackMsg struct {
	Inc uint64 `json:"inc"`
	HW  uint64 `json:"hw"`
}

// syncMsg asks a node for what the sender misses: it lists the sender's
// marks, which also tell the receiver how far the sender has applied.
type syncMsg struct {
	Marks []Mark `json:"marks"`
	Limit int    `json:"limit"`
}

// syncReply answers a syncMsg.
type syncReply struct {
	Marks   []Mark  `json:"marks"`
	Entries []Entry `json:"entries"`
	Seals   []Seal  `json:"seals,omitempty"`
	// Resumed are streams whose marks the replier claims without their
	// entries (Log.Unretained): not a gap, another member has them.
	Resumed []Mark `json:"resumed,omitempty"`
	Gaps    []Mark `json:"gaps"`
	More    bool   `json:"more"`
}

// statusMsg asks the node that issued a purge for its status.
type statusMsg struct {
	ID string `json:"id"`
}

// statusReply answers a statusMsg.
type statusReply struct {
	Found bool      `json:"found"`
	Doc   StatusDoc `json:"doc"`
}
