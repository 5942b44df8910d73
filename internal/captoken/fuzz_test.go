package captoken

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to the parser and verifier: no
// panic, every refusal an *Error that does not echo the token, and
// anything accepted is a well-formed, in-time token of the trusted key.
func FuzzVerify(f *testing.F) {
	key := testKey(1)
	keys := keysOf(f, key.Public().(ed25519.PublicKey))
	good, err := Issue(key, claims())
	if err != nil {
		f.Fatal(err)
	}
	unscoped := claims()
	unscoped.Scope = Scope{}
	plain, _ := Issue(key, unscoped)
	for _, s := range []string{good, plain, "", "weir1.", "weir1..", "weir1.e30.", "weir1.e30." + strings.Repeat("A", 86),
		good[:len(good)-3], strings.Replace(good, ".", "..", 1), "weir1.eyJraWQiOiIifQ.x"} {
		f.Add(s)
	}
	now := t0.Add(time.Minute)
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(tok, keys, now)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Verify error %T %v, want *Error", err, err)
			}
			if len(tok) >= 24 && strings.Contains(e.Reason, tok[len(tok)-16:]) {
				t.Fatalf("error %q echoes the token's tail", e.Reason)
			}
			return
		}
		if c.check() != nil || c.KeyID != KeyID(key.Public().(ed25519.PublicKey)) || !Is(tok) {
			t.Fatalf("accepted claims %+v that are not valid", c)
		}
	})
}
