package faults_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/faults"
)

// TestLenientFramingIsRefused: answers whose framing RFC 9112 forbids,
// though net/http's client reads them (it drops the Content-Length of a
// chunked answer, joins obs-fold lines, takes bare LFs), are malformed:
// the edge answers 502 with the Cache-Status it gives every malformed
// response and stores nothing, however cacheable the answer says it is.
func TestLenientFramingIsRefused(t *testing.T) {
	for _, lenient := range []faults.Leniency{faults.LenientTEWithCL, faults.LenientObsFold, faults.LenientBareLF} {
		t.Run(string(lenient), func(t *testing.T) {
			r := start(t, nil)
			const path = "/lenient"
			r.origin.Set(path, faults.Fault{Lenient: lenient}) // with max-age=60
			for i := 1; i <= 2; i++ {
				res := r.get(path)
				t.Logf("request %d: %v", i, res)
				if res.err != nil || res.status != http.StatusBadGateway {
					t.Fatalf("request %d: %v; want 502", i, res)
				}
				if cs := res.header.Get("Cache-Status"); !strings.HasPrefix(cs, "weir; fwd=") || !strings.Contains(cs, "; detail=origin-error") {
					t.Errorf("request %d: Cache-Status %q, want a forward with detail=origin-error", i, cs)
				}
				if b := string(res.body); !strings.Contains(b, "origin default sent a malformed response") {
					t.Errorf("request %d: 502 body %q does not say the origin's response was malformed", i, b)
				}
				// Nothing was stored: each request went to the origin.
				if n := r.origin.Requests(path); n != i {
					t.Fatalf("after request %d the origin saw %d requests for %s, want %d", i, n, path, i)
				}
			}
			r.origin.Clear(path)
			r.wantFromOrigin(r.get(path), path, faults.DefaultBody)
			r.settled()
		})
	}
}

// TestLenientAnswersAreReadByNetHTTP: the premise of the test above,
// that net/http's client takes each lenient answer as a good one.
func TestLenientAnswersAreReadByNetHTTP(t *testing.T) {
	s, err := faults.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, lenient := range []faults.Leniency{faults.LenientTEWithCL, faults.LenientObsFold, faults.LenientBareLF} {
		path := "/" + string(lenient)
		s.Set(path, faults.Fault{Lenient: lenient})
		resp, err := (&http.Client{Transport: tr}).Get(s.URL() + path)
		if err != nil {
			t.Fatalf("%s: %v", lenient, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, faults.Body(path, faults.DefaultBody)) {
			t.Errorf("%s: %d %q, %v; want net/http to read the whole answer", lenient, resp.StatusCode, b, err)
		}
	}
}
