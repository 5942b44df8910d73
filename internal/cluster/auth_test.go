package cluster_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/testkit"
)

// signedAt is when test requests are signed: 2026-11-22 10:00:00 UTC.
var signedAt = time.Unix(1795341600, 0)

const window = 30 * time.Second

// received returns r as a server receives it: written to the wire by the
// client code, then read back by the server code.
func received(t testing.TB, r *http.Request) *http.Request {
	t.Helper()
	var wire bytes.Buffer
	if err := r.Write(&wire); err != nil {
		t.Fatal(err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// signed returns a peer request for url signed with kr by node, as the
// receiving server sees it.
func signed(t testing.TB, kr *cluster.Keyring, method, target, node string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	cluster.SignRequest(kr, r, node, signedAt)
	return received(t, r)
}

func authReason(err error) string {
	var ae *cluster.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

func TestSignVerify(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	for _, target := range []string{
		"http://10.0.0.2:8080/assets/app.js?v=3",
		"http://edge-b.internal/",
		"http://edge-b.internal/caf%C3%A9/a%2Fb;x=1?q=%20&&x",
		"http://[2001:db8::2]:9000/p",
	} {
		for _, method := range []string{"GET", "HEAD"} {
			r := signed(t, kr, method, target, "edge-a")
			node, err := cluster.VerifyRequest(kr, r, signedAt, window)
			if err != nil || node != "edge-a" {
				t.Errorf("%s %s: VerifyRequest = %q, %v; want edge-a, nil", method, target, node, err)
			}
		}
	}
}

// TestSignVerifyOverHTTP sends a signed request through a real client and
// server, over HTTP/1.1 and HTTP/2.
func TestSignVerifyOverHTTP(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, err := cluster.VerifyRequest(kr, r, time.Now(), window)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Write([]byte(node + " " + r.Proto))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	for _, h2 := range []bool{false, true} {
		client := srv.Client()
		tr := client.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = h2
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		client.Transport = tr
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/a/b%20c?x=1&y=%2F", nil)
		if err != nil {
			t.Fatal(err)
		}
		cluster.SignRequest(kr, req, "edge-a", time.Now())
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		want := "edge-a HTTP/1.1"
		if h2 {
			want = "edge-a HTTP/2.0"
		}
		if resp.StatusCode != http.StatusOK || body.String() != want {
			t.Errorf("h2=%v: %d %q, want 200 %q", h2, resp.StatusCode, body.String(), want)
		}
	}
}

// TestAuthHeaderKnownAnswer pins the header format and the signed message
// against a computation written from the AuthHeader documentation, so that
// a change that would break mixed-version clusters is noticed.
func TestAuthHeaderKnownAnswer(t *testing.T) {
	key := testKey("k20261122-3f9a", 1)
	kr := mustKeyring(t, key)
	r, err := http.NewRequest(http.MethodGet, "http://10.0.0.2:8080/assets/app.js?v=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "www.example.com"
	cluster.SignRequest(kr, r, "edge-a", signedAt)

	m := hmac.New(sha256.New, key.Derive("peer/v1"))
	m.Write([]byte("weir-peer-v1\nGET\nwww.example.com\n/assets/app.js?v=3\n1795341600\nedge-a"))
	want := "v1 k20261122-3f9a 1795341600 edge-a " + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if got := r.Header.Values(cluster.AuthHeader); len(got) != 1 || got[0] != want {
		t.Errorf("%s = %q, want %q", cluster.AuthHeader, got, want)
	}
}

func TestSignRequest(t *testing.T) {
	kr := mustKeyring(t, testKey("new", 2), testKey("old", 1))
	t.Run("primary key", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		cluster.SignRequest(kr, r, "edge-a", signedAt)
		if v := r.Header.Get(cluster.AuthHeader); !strings.HasPrefix(v, "v1 new 1795341600 edge-a ") {
			t.Errorf("header %q does not use the primary key", v)
		}
	})
	t.Run("replaces an earlier header", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Add(cluster.AuthHeader, "forged")
		r.Header.Add(cluster.AuthHeader, "forged")
		cluster.SignRequest(kr, r, "edge-a", signedAt)
		if v := r.Header.Values(cluster.AuthHeader); len(v) != 1 || v[0] == "forged" {
			t.Errorf("header values %q, want one signature", v)
		}
	})
	t.Run("nil header", func(t *testing.T) {
		r := &http.Request{Method: "GET", URL: mustURL(t, "http://h/p"), Host: "h"}
		cluster.SignRequest(kr, r, "edge-a", signedAt)
		if _, err := cluster.VerifyRequest(kr, received(t, r), signedAt, window); err != nil {
			t.Error(err)
		}
	})
	t.Run("URL host when Host is empty", func(t *testing.T) {
		r := &http.Request{URL: mustURL(t, "http://edge-b:8080/p?q"), Header: http.Header{}} // Method "" means GET
		cluster.SignRequest(kr, r, "edge-a", signedAt)
		if _, err := cluster.VerifyRequest(kr, received(t, r), signedAt, window); err != nil {
			t.Error(err)
		}
	})
	t.Run("invalid node names panic", func(t *testing.T) {
		for _, node := range []string{"", "edge a", "edge\ta", "édge", strings.Repeat("n", 129)} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("SignRequest with node %q did not panic", node)
					}
				}()
				cluster.SignRequest(kr, httptest.NewRequest(http.MethodGet, "/", nil), node, signedAt)
			}()
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestValidateNodeName(t *testing.T) {
	for _, name := range []string{"a", "edge-1.example.net", "10.0.0.1:7946", "node@dc1/rack_2", strings.Repeat("n", 128)} {
		if err := cluster.ValidateNodeName(name); err != nil {
			t.Errorf("ValidateNodeName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", " ", "a b", "a\nb", "a\x00", "é", strings.Repeat("n", 129)} {
		if err := cluster.ValidateNodeName(name); err == nil {
			t.Errorf("ValidateNodeName(%q) = nil, want an error", name)
		}
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1), testKey("k2", 2))
	// field returns the header with field i (0-based) replaced by v.
	field := func(r *http.Request, i int, v string) {
		f := strings.Split(r.Header.Get(cluster.AuthHeader), " ")
		f[i] = v
		r.Header.Set(cluster.AuthHeader, strings.Join(f, " "))
	}
	tests := []struct {
		name   string
		tamper func(r *http.Request)
	}{
		{"method", func(r *http.Request) { r.Method = "HEAD" }},
		{"host", func(r *http.Request) { r.Host = "edge-c.internal:8080" }},
		{"host case", func(r *http.Request) { r.Host = "EDGE-B.internal:8080" }},
		{"path", func(r *http.Request) { r.RequestURI = "/admin/purge?v=3" }},
		{"query", func(r *http.Request) { r.RequestURI = "/assets/app.js?v=4" }},
		{"query dropped", func(r *http.Request) { r.RequestURI = "/assets/app.js" }},
		{"timestamp", func(r *http.Request) { field(r, 2, "1795341601") }},
		{"timestamp with leading zero", func(r *http.Request) { field(r, 2, "01795341600") }},
		{"node", func(r *http.Request) { field(r, 3, "edge-c") }},
		{"other known key", func(r *http.Request) { field(r, 1, "k2") }},
		{"signature", func(r *http.Request) {
			sig := []byte(strings.Split(r.Header.Get(cluster.AuthHeader), " ")[4])
			if sig[5] == 'A' {
				sig[5] = 'B'
			} else {
				sig[5] = 'A'
			}
			field(r, 4, string(sig))
		}},
		{"signature of another request", func(r *http.Request) {
			other := signed(t, kr, "GET", "http://edge-b.internal:8080/other", "edge-a")
			field(r, 4, strings.Split(other.Header.Get(cluster.AuthHeader), " ")[4])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(t, kr, "GET", "http://edge-b.internal:8080/assets/app.js?v=3", "edge-a")
			tt.tamper(r)
			node, err := cluster.VerifyRequest(kr, r, signedAt, window)
			if got := authReason(err); got != "bad-signature" {
				t.Errorf("VerifyRequest = %q, %v; want reason bad-signature", node, err)
			}
		})
	}
}

func TestVerifyKeys(t *testing.T) {
	old, new, other := testKey("k20260101-aaaa", 1), testKey("k20261122-bbbb", 2), testKey("k20260101-cccc", 3)
	const target = "http://edge-b.internal/assets/app.js"
	tests := []struct {
		name           string
		signer, verify []cluster.Key
		reason         string // "" for success
	}{
		{"same key", []cluster.Key{old}, []cluster.Key{old}, ""},
		{"rotation: old signer, verifier holds new then old", []cluster.Key{old}, []cluster.Key{new, old}, ""},
		{"rotation: new signer, verifier holds old then new", []cluster.Key{new, old}, []cluster.Key{old, new}, ""},
		{"rotation: new signer, verifier holds new then old", []cluster.Key{new, old}, []cluster.Key{new, old}, ""},
		{"signer's key unknown", []cluster.Key{other, old}, []cluster.Key{new, old}, "unknown-key"},
		{"verifier dropped the old key too early", []cluster.Key{old}, []cluster.Key{new}, "unknown-key"},
		{"same ID, different secret", []cluster.Key{{ID: old.ID, Secret: secret(9)}}, []cluster.Key{old}, "bad-signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(t, mustKeyring(t, tt.signer...), "GET", target, "edge-a")
			node, err := cluster.VerifyRequest(mustKeyring(t, tt.verify...), r, signedAt, window)
			if got := authReason(err); got != tt.reason || (err == nil && node != "edge-a") {
				t.Errorf("VerifyRequest = %q, %v; want reason %q", node, err, tt.reason)
			}
			if err != nil {
				for _, k := range append(tt.signer, tt.verify...) {
					checkNoSecret(t, "error", err.Error(), k.Secret, k.Derive("peer/v1"))
				}
			}
		})
	}
}

func TestVerifyWindow(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	tests := []struct {
		now    time.Duration // after signedAt
		window time.Duration
		ok     bool
	}{
		{0, window, true},
		{window, window, true},
		{-window, window, true},
		{window + time.Second, window, false},  // signed too long ago, or the verifier's clock is ahead
		{-window - time.Second, window, false}, // signed in the future: the signer's clock is ahead
		{window + time.Millisecond, window, false},
		{time.Hour, window, false},
		{-24 * time.Hour, window, false},
		{0, 0, true},
		{time.Second, 0, false},
		{0, -time.Second, true}, // a negative window is no window
	}
	for _, tt := range tests {
		r := signed(t, kr, "GET", "http://edge-b/x", "edge-a")
		node, err := cluster.VerifyRequest(kr, r, signedAt.Add(tt.now), tt.window)
		if tt.ok && err != nil {
			t.Errorf("now %v, window %v: VerifyRequest error %v, want success", tt.now, tt.window, err)
		}
		if !tt.ok {
			if got := authReason(err); got != "expired" {
				t.Errorf("now %v, window %v: VerifyRequest = %q, %v; want reason expired", tt.now, tt.window, node, err)
			} else if !strings.Contains(err.Error(), "NTP") {
				t.Errorf("error %q does not suggest synchronising clocks", err)
			}
		}
	}
}

func TestVerifyMissing(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	node, err := cluster.VerifyRequest(kr, r, signedAt, window)
	if authReason(err) != "missing" || node != "" {
		t.Errorf("VerifyRequest = %q, %v; want reason missing", node, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	good := signed(t, kr, "GET", "http://edge-b/x", "edge-a").Header.Get(cluster.AuthHeader)
	f := strings.Split(good, " ")
	sig := f[4]
	join := func(fields ...string) string { return strings.Join(fields, " ") }
	tests := []struct {
		name   string
		values []string
	}{
		{"empty", []string{""}},
		{"two fields", []string{"", ""}},
		{"two headers", []string{good, good}},
		{"version v2", []string{join("v2", f[1], f[2], f[3], sig)}},
		{"version V1", []string{join("V1", f[1], f[2], f[3], sig)}},
		{"four fields", []string{join(f[0], f[1], f[2], sig)}},
		{"six fields", []string{good + " extra"}},
		{"double space", []string{join(f[0], f[1], f[2], "", f[3], sig)}},
		{"tab separated", []string{strings.ReplaceAll(good, " ", "\t")}},
		{"leading space", []string{" " + good}},
		{"trailing space", []string{good + " "}},
		{"empty key ID", []string{join(f[0], "", f[2], f[3], sig)}},
		{"bad key ID", []string{join(f[0], "k+1", f[2], f[3], sig)}},
		{"long key ID", []string{join(f[0], strings.Repeat("k", 65), f[2], f[3], sig)}},
		{"timestamp not a number", []string{join(f[0], f[1], "17953416OO", f[3], sig)}},
		{"negative timestamp", []string{join(f[0], f[1], "-1795341600", f[3], sig)}},
		{"signed timestamp", []string{join(f[0], f[1], "+1795341600", f[3], sig)}},
		{"13-digit timestamp", []string{join(f[0], f[1], "1795341600000", f[3], sig)}},
		{"bad node", []string{join(f[0], f[1], f[2], "édge", sig)}},
		{"short signature", []string{join(f[0], f[1], f[2], f[3], sig[:42])}},
		{"padded signature", []string{join(f[0], f[1], f[2], f[3], sig+"=")}},
		{"standard base64 signature", []string{join(f[0], f[1], f[2], f[3], "+"+sig[1:])}},
		{"non-canonical signature", []string{join(f[0], f[1], f[2], f[3], sig[:42]+"B")}},
		{"node too long", []string{join(f[0], f[1], f[2], strings.Repeat("n", 129), sig)}},
		{"too long", []string{join(f[0], strings.Repeat("k", 64), f[2], strings.Repeat("n", 200), sig)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://edge-b/x", nil)
			r.Header[cluster.AuthHeader] = tt.values
			node, err := cluster.VerifyRequest(kr, r, signedAt, window)
			if authReason(err) != "malformed" || node != "" {
				t.Errorf("header %q: VerifyRequest = %q, %v; want reason malformed", tt.values, node, err)
			}
		})
	}
}

func TestAuthHeaderLengthLimit(t *testing.T) {
	// The longest header SignRequest writes is within the limit, so every
	// valid node name and key ID can sign.
	kr := mustKeyring(t, testKey(strings.Repeat("k", 64), 1))
	node := strings.Repeat("n", 128)
	now := time.Unix(999_999_999_999, 0) // 12 digits
	r := signed(t, kr, "GET", "http://edge-b/x", node)
	if v := r.Header.Get(cluster.AuthHeader); len(v) > 256 {
		t.Errorf("header is %d bytes, more than 256", len(v))
	}
	r2, _ := http.NewRequest("GET", "http://edge-b/x", nil)
	cluster.SignRequest(kr, r2, node, now)
	if got, err := cluster.VerifyRequest(kr, received(t, r2), now, window); err != nil || got != node {
		t.Errorf("VerifyRequest of the longest header = %q, %v", got, err)
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	if testkit.RaceEnabled() {
		t.Skip("under the race detector, sync.Pool drops items at random")
	}
	kr := mustKeyring(t, testKey("k1", 1), testKey("k2", 2))
	r := signed(t, kr, "GET", "http://edge-b.internal:8080/assets/app.3f9a1c.js?v=3", "edge-a")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := cluster.VerifyRequest(kr, r, signedAt, window); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("VerifyRequest: %v allocations, want 0", allocs)
	}
}

// authHeaderRE is a reference grammar for the AuthHeader value, written
// from its documentation. The last signature character carries 4 bits and
// 2 zero bits, so it is one of the 16 characters whose value is a
// multiple of 4.
var authHeaderRE = regexp.MustCompile(`^v1 [A-Za-z0-9._-]{1,64} [0-9]{1,12} [!-~]{1,128} [A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$`)

func FuzzParseAuthHeader(f *testing.F) {
	kr := mustKeyring(f, testKey("k1", 1), testKey("k2", 2))
	const target = "http://edge-b.internal/x?y=1"
	genuine := signed(f, kr, "GET", target, "edge-a").Header.Get(cluster.AuthHeader)
	f.Add(genuine)
	f.Add(strings.Replace(genuine, "v1", "v2", 1))
	f.Add(strings.Replace(genuine, "k1", "k9", 1))
	f.Add(strings.Replace(genuine, "edge-a", "edge-b", 1))
	f.Add(genuine + " ")
	f.Add("v1 k1 0 n AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("v1  1 n x")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header[cluster.AuthHeader] = []string{v}
		node, err := cluster.VerifyRequest(kr, r, signedAt, window)
		if err == nil {
			if v != genuine {
				t.Fatalf("VerifyRequest accepted %q, which SignRequest did not write", v)
			}
			if node != "edge-a" {
				t.Fatalf("VerifyRequest = %q, want edge-a", node)
			}
			return
		}
		reason := authReason(err)
		wellFormed := len(v) <= 256 && authHeaderRE.MatchString(v)
		if wellFormed == (reason == "malformed") {
			t.Fatalf("header %q (well formed: %v): reason %q", v, wellFormed, reason)
		}
		if wellFormed {
			fields := strings.Fields(v)
			if (fields[1] == "k1" || fields[1] == "k2") != (reason != "unknown-key") {
				t.Fatalf("header %q: reason %q", v, reason)
			}
			if ts, _ := strconv.ParseInt(fields[2], 10, 64); reason == "expired" && time.Unix(ts, 0).Sub(signedAt).Abs() <= window {
				t.Fatalf("header %q: expired within the window", v)
			}
		}
		if reason == "" {
			t.Fatalf("error %v is not an *AuthError", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	kr := mustKeyring(b, testKey("k1", 1), testKey("k2", 2))
	r := signed(b, kr, "GET", "http://edge-b.internal:8080/assets/app.3f9a1c.js?v=3", "edge-a")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cluster.VerifyRequest(kr, r, signedAt, window); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	kr := mustKeyring(b, testKey("k1", 1))
	r := httptest.NewRequest(http.MethodGet, "http://edge-b.internal:8080/assets/app.3f9a1c.js?v=3", nil)
	b.ReportAllocs()
	for b.Loop() {
		cluster.SignRequest(kr, r, "edge-a", signedAt)
	}
}
