package purge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
)

// TestSigHeaderKnownAnswer pins the SigHeader format and what its MAC
// covers against a computation written from the wire format's
// documentation, so that a change that would break mixed-version clusters
// (purges refused during a rolling upgrade) is noticed.
func TestSigHeaderKnownAnswer(t *testing.T) {
	key := cluster.Key{ID: "k20261122-3f9a", Secret: make([]byte, 32)}
	for i := range key.Secret {
		key.Secret[i] = byte(i + 1)
	}
	kr, err := cluster.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner("edge-a", 1795341600000000000, kr)
	s.nonce.Store(41)
	at := time.UnixMilli(1795341600123)
	body := []byte(`{"entries":[]}`)
	h := http.Header{}
	if nonce := s.sign(h, "resp:batch", 7, body, at); nonce != 42 {
		t.Fatalf("nonce %d, want 42", nonce)
	}

	m := hmac.New(sha256.New, key.Derive("weir purge v1"))
	m.Write([]byte("resp:batch\x00k20261122-3f9a\x00edge-a\x001795341600000000000\x0042\x001795341600123\x007\x00"))
	sum := sha256.Sum256(body)
	m.Write(sum[:])
	want := "v1 k20261122-3f9a edge-a 1795341600000000000 42 1795341600123 7 " + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if got := h.Values(SigHeader); len(got) != 1 || got[0] != want {
		t.Errorf("%s = %q, want %q", SigHeader, got, want)
	}
	info, err := s.verify(h, "resp:batch", body, at, false)
	if err != nil || info.sender != "edge-a" || info.nonce != 42 || info.re != 7 || !info.at.Equal(at) {
		t.Errorf("verify = %+v, %v", info, err)
	}
}
