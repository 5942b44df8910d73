package purge

import (
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
const (
	SigHeader = "Weir-Purge-Sig"
	// PathPrefix is where the purge endpoints live on the peer listener.
	PathPrefix = "/_weir/purge/"
	// AuthWindow bounds the clock difference between nodes, [sign.Window].
	AuthWindow = sign.Window
	// maxWireBytes bounds a message body, compressed and decompressed.
	maxWireBytes = 32 << 20
	sigVersion   = "v1"
	// maxSigHeaderLen bounds a SigHeader value; the longest a node writes
	// (64-byte key ID, 128-byte node name, the largest numbers) is 323
	// bytes.
	maxSigHeaderLen = 512
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
}

func newSigner(node string, inc uint64, kr *cluster.Keyring) *signer {
	s := &signer{node: node, inc: inc}
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
// the nonce used.
func (s *signer) sign(h http.Header, kind string, re uint64, body []byte, now time.Time) uint64 {
	nonce := s.nonce.Add(1)
	keys := s.keys.Load()
	sh := sigHeader{keyID: keys.Primary(), sender: s.node, inc: s.inc, nonce: nonce, ms: now.UnixMilli(), re: re}
	sh.mac = keys.Sign(sh.fields(kind), body)
	h.Set(SigHeader, sh.String())
	return nonce
}

// sigHeader is a parsed SigHeader value.
type sigHeader struct {
	keyID, sender  string
	inc, nonce, re uint64
	ms             int64 // when it was signed, Unix milliseconds
	mac            sign.MAC
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
	return strings.Join([]string{sigVersion, h.keyID, h.sender, strconv.FormatUint(h.inc, 10), strconv.FormatUint(h.nonce, 10),
		strconv.FormatInt(h.ms, 10), strconv.FormatUint(h.re, 10), h.mac.String()}, " ")
}

// parseSigHeader parses a SigHeader value, or says what is wrong with it
// (without quoting it). Only values that [signer.sign] could have written
// are accepted: numbers in their shortest decimal form.
func parseSigHeader(v string) (h sigHeader, problem string) {
	if len(v) > maxSigHeaderLen {
		return h, fmt.Sprintf("is %d bytes long, at most %d are allowed", len(v), maxSigHeaderLen)
	}
	f := strings.Split(v, " ")
	if len(f) != 8 {
		return h, "does not have 8 fields separated by single spaces: want \"v1 KEY-ID SENDER INCARNATION NONCE UNIX-MS RE MAC\""
	}
	if f[0] != sigVersion {
		return h, "has an unknown version, want v1: this node may be older than the sender; upgrade it"
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
	m := sign.Signed{KeyID: sh.keyID, From: sh.sender, At: at, MAC: sh.mac, Fields: sh.fields(kind), Body: body}
	if err := s.keys.Load().Verify(&m, now, AuthWindow); err != nil {
		return sigInfo{}, err
	}
	info := sigInfo{sender: sh.sender, inc: sh.inc, nonce: sh.nonce, re: sh.re, at: at}
	if checkReplay && !s.seen.add(info, now) {
		return sigInfo{}, &sign.Error{Reason: sign.Replayed, Detail: fmt.Sprintf("purge message %d of node %q (incarnation %d) was seen before, and nothing was applied twice: if it keeps happening, find who resends captured messages from remote_addr", info.nonce, info.sender, info.inc)}
	}
	return info, nil
}

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

// batchMsg carries purges an issuing node pushes to the others.
type batchMsg struct {
	Entries []Entry `json:"entries"`
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
	Gaps    []Mark  `json:"gaps"`
	More    bool    `json:"more"`
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
