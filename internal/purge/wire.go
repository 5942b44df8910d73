package purge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/weir-cdn/weir/internal/cluster"
)

// Wire format. Every message between nodes, request or response, is a
// JSON document compressed with zstd and signed with HMAC-SHA256 in the
// SigHeader field:
//
//	Weir-Purge-Sig: v1 KEY-ID SENDER INCARNATION NONCE UNIX-MS RE MAC
//
// MAC covers the message kind (the request path's last element, or
// "resp:" and it for a response), every other field and the SHA-256 of
// the body. KEY-ID names the cluster key the MAC key is derived from, so
// keys can rotate. NONCE is unique per sender incarnation; a receiver
// refuses a message outside ±AuthWindow of its clock, or whose (sender,
// incarnation, nonce) it has seen within the window. RE is 0 on requests
// and the request's nonce on responses, which binds a response to its
// request.
const (
	SigHeader = "Weir-Purge-Sig"
	// PathPrefix is where the purge endpoints live on the peer listener.
	PathPrefix = "/_weir/purge/"
	// AuthWindow bounds the clock difference between nodes.
	AuthWindow = 30 * time.Second
	// maxWireBytes bounds a message body, compressed and decompressed.
	maxWireBytes = 32 << 20
	sigVersion   = "v1"
	macLabel     = "weir purge v1"
)

// insecureKey signs messages in a cluster run without keys
// (--insecure-cluster). It is public, so it protects against nothing but
// accidents; the code path stays the same.
var insecureKey = cluster.Key{ID: "insecure", Secret: []byte("weir insecure cluster: no purge authentication")}

// signer signs and verifies messages with the cluster keys.
type signer struct {
	node  string
	inc   uint64
	keys  atomic.Pointer[macKeys]
	nonce atomic.Uint64
	seen  replayCache
}

// macKeys are the MAC keys derived from a keyring.
type macKeys struct {
	primary string
	byID    map[string][]byte // key id → derived MAC key
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
	mk := &macKeys{primary: keys[0].ID, byID: make(map[string][]byte, len(keys))}
	for _, k := range keys {
		mk.byID[k.ID] = k.Derive(macLabel)
	}
	s.keys.Store(mk)
}

func (s *signer) mac(key []byte, kind, keyID, sender, inc, nonce, ts, re string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	for _, f := range []string{kind, keyID, sender, inc, nonce, ts, re} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	m.Write(sum[:])
	return m.Sum(nil)
}

// sign sets SigHeader on h for a message of kind with body, and returns
// the nonce used.
func (s *signer) sign(h http.Header, kind string, re uint64, body []byte, now time.Time) uint64 {
	nonce := s.nonce.Add(1)
	inc, n, ts, r := strconv.FormatUint(s.inc, 10), strconv.FormatUint(nonce, 10), strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatUint(re, 10)
	mk := s.keys.Load()
	mac := s.mac(mk.byID[mk.primary], kind, mk.primary, s.node, inc, n, ts, r, body)
	h.Set(SigHeader, strings.Join([]string{sigVersion, mk.primary, s.node, inc, n, ts, r, base64.RawURLEncoding.EncodeToString(mac)}, " "))
	return nonce
}

// sigInfo is what a verified signature says.
type sigInfo struct {
	sender     string
	inc, nonce uint64
	re         uint64
	at         time.Time
}

// Rejection reasons, counted and shown in stats.
const (
	rejectUnsigned  = "unsigned"
	rejectMalformed = "malformed"
	rejectUnknowKey = "unknown-key"
	rejectForged    = "forged"
	rejectExpired   = "expired"
	rejectReplayed  = "replayed"
	rejectBadBody   = "bad-body"
)

// verifyError is a refused message.
type verifyError struct{ reason, detail string }

func (e *verifyError) Error() string { return e.reason + ": " + e.detail }

// verify checks h's signature for a message of kind with body. checkReplay
// records the nonce and refuses one seen before (requests); responses are
// bound to their request by re instead.
func (s *signer) verify(h http.Header, kind string, body []byte, now time.Time, checkReplay bool) (sigInfo, error) {
	vals := h.Values(SigHeader)
	if len(vals) == 0 {
		return sigInfo{}, &verifyError{rejectUnsigned, "no " + SigHeader + " field"}
	}
	if len(vals) > 1 {
		return sigInfo{}, &verifyError{rejectMalformed, "several " + SigHeader + " fields"}
	}
	f := strings.Split(vals[0], " ")
	if len(f) != 8 || f[0] != sigVersion {
		return sigInfo{}, &verifyError{rejectMalformed, SigHeader + " is not \"v1 KEY-ID SENDER INCARNATION NONCE UNIX-MS RE MAC\""}
	}
	var info sigInfo
	var err1, err2, err3, err4 error
	info.sender = f[2]
	info.inc, err1 = strconv.ParseUint(f[3], 10, 64)
	info.nonce, err2 = strconv.ParseUint(f[4], 10, 64)
	ms, err3 := strconv.ParseInt(f[5], 10, 64)
	info.re, err4 = strconv.ParseUint(f[6], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || cluster.ValidateNodeName(info.sender) != nil {
		return sigInfo{}, &verifyError{rejectMalformed, "bad number or sender in " + SigHeader}
	}
	key, ok := s.keys.Load().byID[f[1]]
	if !ok {
		return sigInfo{}, &verifyError{rejectUnknowKey, fmt.Sprintf("key id %q is not in this node's key file; roll the new key file out to every node", clip(f[1]))}
	}
	got, err := base64.RawURLEncoding.DecodeString(f[7])
	if err != nil {
		return sigInfo{}, &verifyError{rejectMalformed, "MAC is not base64url"}
	}
	want := s.mac(key, kind, f[1], f[2], f[3], f[4], f[5], f[6], body)
	if !hmac.Equal(got, want) {
		return sigInfo{}, &verifyError{rejectForged, "MAC does not match the message (wrong key or altered message) from " + info.sender}
	}
	info.at = time.UnixMilli(ms)
	if d := now.Sub(info.at); d > AuthWindow || d < -AuthWindow {
		return sigInfo{}, &verifyError{rejectExpired, fmt.Sprintf("message from %s is %s off this node's clock, more than %s; check NTP on both", info.sender, d.Round(time.Millisecond), AuthWindow)}
	}
	if checkReplay && !s.seen.add(info, now) {
		return sigInfo{}, &verifyError{rejectReplayed, fmt.Sprintf("message %d from %s was seen before", info.nonce, info.sender)}
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
