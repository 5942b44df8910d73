package captoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey returns a deterministic key, so that fuzz seeds are stable.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func keysOf(t testing.TB, pubs ...ed25519.PublicKey) *Keys {
	t.Helper()
	var lines strings.Builder
	for _, p := range pubs {
		lines.WriteString(KeyLine(p) + "\n")
	}
	k, err := ParseKeys(strings.NewReader(lines.String()), "keys")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func claims() Claims {
	return Claims{Name: "ci", Role: "purge", IssuedAt: t0.Unix(), NotBefore: t0.Unix(), Expires: t0.Add(time.Hour).Unix(),
		Scope: Scope{Hosts: []string{"*.example.com"}, Tags: []string{"product-*"}}}
}

func TestIssueVerify(t *testing.T) {
	key := testKey(1)
	tok, err := Issue(key, claims())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "weir1.") || strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not weir1.PAYLOAD.SIGNATURE", tok)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			t.Fatalf("token has %q at %d: not an RFC 6750 b64token character", c, i)
		}
	}
	c, err := Verify(tok, keysOf(t, testKey(2).Public().(ed25519.PublicKey), key.Public().(ed25519.PublicKey)), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := claims()
	want.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("claims %s, want %s", gotJSON, wantJSON)
	}
}

// TestVerifyRefuses: every way a token can be wrong is refused with a
// message that says what failed, and never with the token in it.
func TestVerifyRefuses(t *testing.T) {
	key, other := testKey(1), testKey(2)
	keys := keysOf(t, key.Public().(ed25519.PublicKey))
	good, err := Issue(key, claims())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	// resign signs arbitrary payload bytes with key, as a key holder
	// with a buggy or hostile issuer could.
	resign := func(payload string) string {
		signed := Prefix + base64.RawURLEncoding.EncodeToString([]byte(payload))
		return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
	}
	withClaims := func(edit func(*Claims)) string {
		c := claims()
		c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
		edit(&c)
		b, _ := json.Marshal(c)
		return resign(string(b))
	}
	byOther, _ := Issue(other, claims())
	flipped := []byte(good)
	flipped[len(Prefix)+5] ^= 'A' ^ 'B'
	for _, tc := range []struct {
		name, token string
		now         time.Time
		want        string
		expired     bool
	}{
		{"not a capability token", "abc", t0, "does not start with", false},
		{"too long", Prefix + strings.Repeat("A", MaxTokenBytes), t0, "longer than the 8192", false},
		{"two parts", Prefix + parts[1], t0, "three parts", false},
		{"four parts", good + ".x", t0, "three parts", false},
		{"payload not base64url", Prefix + "a+b." + parts[2], t0, "not unpadded base64url", false},
		{"padded payload", Prefix + parts[1] + "==." + parts[2], t0, "not unpadded base64url", false},
		{"short signature", parts[0] + "." + parts[1] + ".AAAA", t0, "signature is not 64 bytes", false},
		{"payload not JSON", resign("not json"), t0, "claims do not decode", false},
		{"unknown field", resign(strings.Replace(string(payload), `{`, `{"admin":true,`, 1)), t0, `unknown field "admin"`, false},
		{"two documents", resign(string(payload) + "{}"), t0, "more than one JSON document", false},
		{"unknown key", byOther, t0, "not in the trusted token keys file", false},
		{"altered payload", string(flipped), t0, "", false},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(byOther, ".")[2], t0, "does not verify", false},
		{"no name", withClaims(func(c *Claims) { c.Name = "" }), t0, "no name", false},
		{"name with a space", withClaims(func(c *Claims) { c.Name = "a b" }), t0, "printable ASCII without spaces", false},
		{"no role", withClaims(func(c *Claims) { c.Role = "" }), t0, "no role", false},
		{"no expiry", withClaims(func(c *Claims) { c.Expires = 0 }), t0, "lacks its issued-at, not-before or expiry", false},
		{"expires before valid", withClaims(func(c *Claims) { c.Expires = c.NotBefore }), t0, "expires before it starts", false},
		{"lives too long", withClaims(func(c *Claims) { c.Expires = c.NotBefore + int64(MaxLifetime/time.Second) + 1 }), t0, "longer than the", false},
		{"bad scope", withClaims(func(c *Claims) { c.Scope.Hosts = []string{"*"} }), t0, "the token's scope: host pattern 1", false},
		{"not yet valid", good, t0.Add(-Skew - time.Second), "not valid before 2026-03-01T12:00:00Z", true},
		{"expired", good, t0.Add(time.Hour + Skew), "expired at 2026-03-01T13:00:00Z", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.token, keys, tc.now)
			var e *Error
			if err == nil || !asError(err, &e) {
				t.Fatalf("Verify = %v, want an *Error", err)
			}
			if !strings.Contains(e.Reason, tc.want) || e.Expired != tc.expired {
				t.Errorf("Verify error %q (expired %v), want one containing %q (expired %v)", e.Reason, e.Expired, tc.want, tc.expired)
			}
			if len(tc.token) > 12 && strings.Contains(e.Reason, tc.token[len(Prefix):len(Prefix)+8]) {
				t.Errorf("Verify error %q echoes the token", e.Reason)
			}
		})
	}
	// Within the skew either side the token is accepted.
	for _, now := range []time.Time{t0.Add(-Skew + time.Second), t0.Add(time.Hour + Skew - time.Second)} {
		if _, err := Verify(good, keys, now); err != nil {
			t.Errorf("at %v, within the skew: %v", now, err)
		}
	}
}

func asError(err error, e **Error) bool {
	var ok bool
	*e, ok = err.(*Error)
	return ok
}

func TestIssueRefuses(t *testing.T) {
	key := testKey(1)
	for _, tc := range []struct {
		edit func(*Claims)
		want string
	}{
		{func(c *Claims) { c.Name = "" }, "no name"},
		{func(c *Claims) { c.Expires = c.NotBefore - 1 }, "expires before"},
		{func(c *Claims) { c.Scope.Tags = []string{"a b"} }, "has a space"},
		{func(c *Claims) {
			for i := range MaxPatterns - 2 {
				c.Scope.Prefixes = append(c.Scope.Prefixes, "example.com/"+strings.Repeat("p", 200)+string(rune('a'+i%26)))
			}
		}, "at most 8192"},
	} {
		c := claims()
		tc.edit(&c)
		if _, err := Issue(key, c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Issue = %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestParseKeys(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	line := KeyLine(pub)
	k, err := ParseKeys(strings.NewReader("# rotation 2026\n\n  "+line+"\r\n"), "keys")
	if err != nil || k.Len() != 1 {
		t.Fatalf("ParseKeys = %v, %v", k, err)
	}
	if got, ok := k.Lookup(KeyID(pub)); !ok || !got.Equal(pub) {
		t.Error("the key is not found by its id")
	}
	id, _, _ := strings.Cut(line, " ")
	for _, tc := range []struct{ in, want string }{
		{"abc ed25519\n", "keys:1: want 3 fields"},
		{strings.Replace(line, "ed25519", "rsa", 1), "only \"ed25519\""},
		{id + " ed25519 AAAA", "not 32 bytes"},
		{"0000000000000000" + line[len(id):], "does not match the key, whose id is " + id},
		{line + "\n#\n" + line, "keys:3: key " + id + " is listed twice"},
	} {
		if _, err := ParseKeys(strings.NewReader(tc.in), "keys"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeys(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	if k, err := ParseKeys(strings.NewReader(""), "keys"); err != nil || k.Len() != 0 {
		t.Errorf("an empty file: %v, %v; want no keys and no error", k, err)
	}
}

func TestSigningKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	key := testKey(3)
	if err := WriteSigningKey(path, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := LoadSigningKey(path)
	if err != nil || !got.Equal(key) {
		t.Fatalf("LoadSigningKey = %v; want the key written", err)
	}
	if err := WriteSigningKey(path, testKey(4)); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("overwriting a signing key file: %v, want a refusal", err)
	}
	if again, _ := LoadSigningKey(path); !again.Equal(key) {
		t.Error("the refused write changed the file")
	}
	os.WriteFile(path+".pub", []byte(KeyLine(key.Public().(ed25519.PublicKey))), 0o600)
	if _, err := LoadSigningKey(path + ".pub"); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("loading a public key line as a signing key: %v", err)
	}
}
