package purge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"slices"
	"strings"
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
	s := newSigner("edge-a", 1795341600000000000, kr, nil)
	s.nonce.Store(41)
	at := time.UnixMilli(1795341600123)
	body := []byte(`{"entries":[]}`)
	h := http.Header{}
	if nonce := s.sign(h, "resp:batch", 7, body, at, false); nonce != 42 {
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

// FuzzParseSigHeader: the parser accepts exactly the values sign writes:
// whatever it accepts is written back unchanged, and it never panics.
func FuzzParseSigHeader(f *testing.F) {
	s := newSigner("edge-a", 1795341600000000000, nil, nil)
	h := http.Header{}
	s.sign(h, "batch", 0, []byte("x"), time.UnixMilli(1795341600123), false)
	genuine := h.Get(SigHeader)
	f.Add(genuine)
	f.Add(strings.Replace(genuine, " 1 ", " 01 ", 1))
	f.Add(strings.Replace(genuine, "v1", "v2", 1))
	f.Add(genuine + " ")
	f.Add("v1 k a 1 1 1 0 AAAA")
	f.Add("v1 k a 18446744073709551616 1 1 0 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sh, problem := parseSigHeader(v)
		if problem != "" {
			if strings.Contains(problem, v) && len(v) > 8 {
				t.Fatalf("problem %q quotes the value", problem)
			}
			return
		}
		if got := sh.String(); got != v {
			t.Fatalf("parseSigHeader accepted %q, which the signer writes as %q", v, got)
		}
	})
}

// TestRefusalReasonsDocumented keeps the operator docs' tables of refusal
// reasons equal to the reasons the metric exports.
func TestRefusalReasonsDocumented(t *testing.T) {
	want := slices.Sorted(slices.Values(rejectReasons))
	for _, doc := range []struct{ path, after string }{
		{"../../docs/runbooks/weir-purge-messages-rejected.md", "## What it means"},
		{"../../docs/operations.md", "**`rejected` counts grow**"},
	} {
		b, err := os.ReadFile(doc.path)
		if err != nil {
			t.Fatal(err)
		}
		_, text, ok := strings.Cut(string(b), doc.after)
		if !ok {
			t.Fatalf("%s: no %q", doc.path, doc.after)
		}
		var got []string
		for line := range strings.Lines(text) {
			if !strings.HasPrefix(line, "| `") {
				if len(got) > 0 {
					break // the end of the first table
				}
				continue
			}
			cell, _, _ := strings.Cut(line[2:], " |")
			for _, name := range strings.Split(cell, ", ") {
				got = append(got, strings.Trim(name, "`"))
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the table after %q names reasons %q, want %q", doc.path, doc.after, got, want)
		}
	}
}
