package sign_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/sign"
	"github.com/weir-cdn/weir/internal/testkit"
)

// signedAt is when test messages are signed: 2026-11-22 10:00:00 UTC.
var signedAt = time.Unix(1795341600, 0)

var scheme = sign.Scheme{Header: "Weir-Test-Sig", Label: "test/v1", Sep: 0, Body: true, What: "test message"}

func key(id string, seed byte) sign.Key {
	return sign.Key{ID: id, Secret: bytes.Repeat([]byte{seed}, 32)}
}

func reason(err error) string {
	var e *sign.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// message returns a message signed by keys at signedAt, as received.
func message(keys *sign.Keys) *sign.Signed {
	fields := []string{"batch", keys.Primary(), "edge-a", "42"}
	body := []byte(`{"entries":[]}`)
	return &sign.Signed{KeyID: keys.Primary(), From: "edge-a", At: signedAt, MAC: keys.Sign(fields, body), Fields: fields, Body: body}
}

// hints are what a refusal's detail tells the operator to do.
var hints = map[string]string{
	sign.Malformed:    "altered on the way",
	sign.UnknownKey:   "give every node the same key file",
	sign.BadSignature: "connect members directly",
	sign.Expired:      "synchronise them (NTP)",
}

func TestVerify(t *testing.T) {
	k1, k2, k3 := key("k1", 1), key("k2", 2), key("k3", 3)
	tests := []struct {
		name   string
		signer []sign.Key
		verify []sign.Key
		change func(m *sign.Signed)
		now    time.Duration // after signedAt
		reason string        // "" for success
	}{
		{"authentic", []sign.Key{k1}, []sign.Key{k1}, nil, 0, ""},
		{"signed with a second key the verifier holds", []sign.Key{k2}, []sign.Key{k1, k2}, nil, 0, ""},
		{"at the window's late edge", []sign.Key{k1}, []sign.Key{k1}, nil, sign.Window, ""},
		{"at the window's early edge", []sign.Key{k1}, []sign.Key{k1}, nil, -sign.Window, ""},

		{"tampered field", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Fields[3] = "43" }, 0, sign.BadSignature},
		{"field moved across a separator", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Fields[2], m.Fields[3] = "edge-a4", "2" }, 0, sign.BadSignature},
		{"field dropped", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Fields = m.Fields[:3] }, 0, sign.BadSignature},
		{"tampered body", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Body = []byte(`{"entries":[{}]}`) }, 0, sign.BadSignature},
		{"tampered MAC", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.MAC[0] ^= 1 }, 0, sign.BadSignature},
		{"other known key's ID", []sign.Key{k1}, []sign.Key{k1, k2}, func(m *sign.Signed) { m.KeyID = "k2" }, 0, sign.BadSignature},
		{"same ID, other secret", []sign.Key{{ID: "k1", Secret: k3.Secret}}, []sign.Key{k1}, nil, 0, sign.BadSignature},
		{"forged and late: the MAC is checked first", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Body = nil }, time.Hour, sign.BadSignature},

		{"wrong key ID", []sign.Key{k3}, []sign.Key{k1, k2}, nil, 0, sign.UnknownKey},
		{"empty key ID", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.KeyID = "" }, 0, sign.UnknownKey},

		{"late: signed before the window", []sign.Key{k1}, []sign.Key{k1}, nil, sign.Window + time.Millisecond, sign.Expired},
		{"early: signed after the window", []sign.Key{k1}, []sign.Key{k1}, nil, -sign.Window - time.Millisecond, sign.Expired},
		{"a day late", []sign.Key{k1}, []sign.Key{k1}, nil, 24 * time.Hour, sign.Expired},

		{"separator inside a field", []sign.Key{k1}, []sign.Key{k1}, func(m *sign.Signed) { m.Fields[2] = "edge-a\x0042" }, 0, sign.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message(sign.NewKeys(scheme, tt.signer...))
			if tt.change != nil {
				tt.change(m)
			}
			err := sign.NewKeys(scheme, tt.verify...).Verify(m, signedAt.Add(tt.now), sign.Window)
			if got := reason(err); got != tt.reason || (err != nil && got == "") {
				t.Fatalf("Verify = %v, want reason %q", err, tt.reason)
			}
			if err == nil {
				return
			}
			// The detail says what failed, about what, and what to do.
			detail := err.(*sign.Error).Detail
			for _, want := range []string{"test message", `"edge-a`} {
				if !strings.Contains(detail, want) {
					t.Errorf("detail %q does not name %s", detail, want)
				}
			}
			if hint := hints[tt.reason]; !strings.Contains(detail, hint) {
				t.Errorf("detail %q does not say what to do (%q)", detail, hint)
			}
			for _, k := range append(tt.signer, tt.verify...) {
				for _, secret := range [][]byte{k.Secret, sign.Derive(k.Secret, scheme.Label)} {
					if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), fmt.Sprintf("%x", secret)) {
						t.Errorf("error %q shows a secret", err)
					}
				}
			}
		})
	}
}

func TestVerifyExpiredSaysWhichWay(t *testing.T) {
	keys := sign.NewKeys(scheme, key("k1", 1))
	for _, tt := range []struct {
		now  time.Duration
		want string
	}{
		{time.Minute, "1m0s behind this node's clock"},
		{-90 * time.Second, "1m30s ahead of this node's clock"},
	} {
		err := keys.Verify(message(keys), signedAt.Add(tt.now), sign.Window)
		if reason(err) != sign.Expired || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "NTP") {
			t.Errorf("now %v: %v, want expired, %q and advice on NTP", tt.now, err, tt.want)
		}
	}
}

func TestVerifyWindowIsNeverNegative(t *testing.T) {
	keys := sign.NewKeys(scheme, key("k1", 1))
	if err := keys.Verify(message(keys), signedAt, -time.Second); err != nil {
		t.Errorf("at the signing time, window -1s: %v, want success", err)
	}
	if err := keys.Verify(message(keys), signedAt.Add(time.Millisecond), 0); reason(err) != sign.Expired {
		t.Errorf("1ms late, window 0: %v, want expired", err)
	}
}

// TestMACKnownAnswer pins the canonical form: fields joined by Sep, then
// Sep and the body's SHA-256 when the scheme signs bodies, under
// HMAC-SHA256(secret, "weir/" + Label).
func TestMACKnownAnswer(t *testing.T) {
	k := key("k1", 7)
	derived := hmac.New(sha256.New, k.Secret)
	derived.Write([]byte("weir/test/v1"))
	if got := sign.Derive(k.Secret, "test/v1"); !bytes.Equal(got, derived.Sum(nil)) {
		t.Fatalf("Derive = %x, want %x", got, derived.Sum(nil))
	}
	body := []byte("body")
	bodySum := sha256.Sum256(body)
	for _, tt := range []struct {
		scheme  sign.Scheme
		message string
	}{
		{sign.Scheme{Label: "test/v1", Sep: '\n'}, "a\nb\nc"},
		{sign.Scheme{Label: "test/v1", Sep: 0, Body: true}, "a\x00b\x00c\x00" + string(bodySum[:])},
	} {
		m := hmac.New(sha256.New, sign.Derive(k.Secret, "test/v1"))
		m.Write([]byte(tt.message))
		want := sign.MAC(m.Sum(nil))
		if got := sign.NewKeys(tt.scheme, k).Sign([]string{"a", "b", "c"}, body); got != want {
			t.Errorf("Sep %q, Body %v: MAC %s, want %s", tt.scheme.Sep, tt.scheme.Body, got, want)
		}
	}
}

func TestField(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		reason string
	}{
		{"one", []string{"v1 x"}, ""},
		{"none", nil, sign.Missing},
		{"two", []string{"v1 x", "v1 x"}, sign.Malformed},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.values != nil {
			h[scheme.Header] = tt.values
		}
		v, err := scheme.Field(h)
		if reason(err) != tt.reason || err == nil && v != tt.values[0] {
			t.Errorf("%s: Field = %q, %v; want reason %q", tt.name, v, err, tt.reason)
		}
		if err != nil && !strings.Contains(err.Error(), scheme.Header) {
			t.Errorf("%s: error %q does not name the field", tt.name, err)
		}
	}
	if e := scheme.Malformed("has no version"); e.Reason != sign.Malformed || e.Detail != "the test message's Weir-Test-Sig field has no version" {
		t.Errorf("Malformed = %+v", e)
	}
}

func TestParseMAC(t *testing.T) {
	m := sign.NewKeys(scheme, key("k1", 1)).Sign([]string{"x"}, nil)
	s := m.String()
	if len(s) != sign.MACLen {
		t.Fatalf("MAC text %q is %d characters, want %d", s, len(s), sign.MACLen)
	}
	if got, ok := sign.ParseMAC(s); !ok || got != m {
		t.Errorf("ParseMAC(%q) = %v, %v; want the MAC back", s, got, ok)
	}
	for _, bad := range []string{"", s[:42], s + "A", s + "=", "+" + s[1:], "/" + s[1:], s[:42] + "B", strings.Repeat("!", 43)} {
		if _, ok := sign.ParseMAC(bad); ok {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
	if b, _ := m.AppendText([]byte("x ")); string(b) != "x "+s {
		t.Errorf("AppendText = %q", b)
	}
}

func TestKeyNeverPrintsItsSecret(t *testing.T) {
	k := sign.Key{ID: "k1", Secret: []byte("very secret bytes, 32 of them!!!")}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if got := fmt.Sprintf(verb, k); strings.Contains(got, "secret") || strings.Contains(got, "76657279") {
			t.Errorf("%s prints %q", verb, got)
		}
	}
}

func TestSignAndVerifyDoNotAllocate(t *testing.T) {
	if testkit.RaceEnabled() {
		t.Skip("under the race detector, sync.Pool drops items at random")
	}
	keys := sign.NewKeys(scheme, key("k1", 1), key("k2", 2))
	m := message(keys)
	fields := m.Fields
	if n := testing.AllocsPerRun(100, func() { keys.Sign(fields, m.Body) }); n != 0 {
		t.Errorf("Sign: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := keys.Verify(m, signedAt, sign.Window); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Verify: %v allocations, want 0", n)
	}
}

// FuzzParseMAC: ParseMAC accepts exactly what String writes.
func FuzzParseMAC(f *testing.F) {
	f.Add(sign.NewKeys(scheme, key("k1", 1)).Sign([]string{"x"}, nil).String())
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("_", 42) + "B")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := sign.ParseMAC(s)
		if ok && m.String() != s {
			t.Fatalf("ParseMAC(%q) accepted a text that String writes as %q", s, m.String())
		}
		if b, err := base64.RawURLEncoding.DecodeString(s); !ok && err == nil && len(b) == len(m) && base64.RawURLEncoding.EncodeToString(b) == s {
			t.Fatalf("ParseMAC(%q) refused a MAC's text", s)
		}
	})
}

func ExampleKeys_Verify() {
	keys := sign.NewKeys(sign.Scheme{Header: "Weir-Example-Sig", Label: "example/v1", Sep: '\n', What: "example request"},
		sign.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)})
	now := time.Unix(1795341600, 0)
	fields := []string{"GET", "/a", "1795341600", "edge-a"}
	mac := keys.Sign(fields, nil)

	fields[1] = "/b" // changed on the way
	err := keys.Verify(&sign.Signed{KeyID: "k1", From: "edge-a", At: now, MAC: mac, Fields: fields}, now, sign.Window)
	fmt.Println(err.(*sign.Error).Reason)
	// Output: bad-signature
}
