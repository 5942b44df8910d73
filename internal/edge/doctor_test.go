package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestFirstSegment(t *testing.T) {
	for path, want := range map[string]string{
		"":                "/",
		"/":               "/",
		"/index.html":     "/",
		"/static/app.js":  "/static",
		"/static/":        "/static",
		"/a/b/c":          "/a",
		"//double":        "/",
		"/api/v1/users/7": "/api",
	} {
		if got := firstSegment(path); got != want {
			t.Errorf("firstSegment(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestExtraFields(t *testing.T) {
	n, err := cachekey.Compile(cachekey.Rules{Headers: []string{"X-Device", "X-Absent"}, Cookies: []string{"lang"}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Device": {"mobile"}, "Cookie": {"lang=fr; other=1"}}
	got := extraFields(string(n.AppendExtra(nil, h)))
	want := []string{"x-device=mobile", "x-absent (absent)", "lang=fr"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("extraFields (-want +got):\n%s", diff)
	}
}

// TestDoctorBounds: the ring of fills keeps the latest doctorFills,
// oldest first; the uncacheable counters stop at doctorUncacheable
// triples and count the rest under (other); the ghost keys stay within
// doctorGhost.
func TestDoctorBounds(t *testing.T) {
	var d doctor
	n, _ := cachekey.Compile(cachekey.Rules{})
	s := &site.Site{Name: "shop", Key: n}
	for i := range doctorFills + 10 {
		r := &http.Request{Host: "shop.example", URL: &url.URL{Path: fmt.Sprintf("/p/%d", i)}}
		d.stored(s, r, nil, fmt.Sprintf("k%d", i), []byte("body"), time.Now().Add(time.Hour))
	}
	got := d.sample()
	if len(got.Fills) != doctorFills || got.Fills[0].Path != "/p/10" || got.Fills[doctorFills-1].Path != fmt.Sprintf("/p/%d", doctorFills+9) {
		t.Errorf("ring holds %d fills from %s to %s, want the latest %d oldest first", len(got.Fills), got.Fills[0].Path, got.Fills[len(got.Fills)-1].Path, doctorFills)
	}
	if got.Ghost.Inserts != doctorFills+10 || got.Ghost.FreshBytes != 4*(doctorFills+10) {
		t.Errorf("ghost %+v, want every insert counted and remembered", got.Ghost)
	}
	for i := range doctorUncacheable + 50 {
		d.uncacheable("shop", fmt.Sprintf("/p%d/x", i), "no-store")
	}
	got = d.sample()
	if len(got.Uncacheable) != doctorUncacheable+1 {
		t.Fatalf("%d uncacheable counters, want the bound %d and one (other)", len(got.Uncacheable), doctorUncacheable)
	}
	if top := got.Uncacheable[0]; top.Prefix != OtherPrefix || top.Count != 50 {
		t.Errorf("largest counter %+v, want the 50 past the bound under %s", top, OtherPrefix)
	}
	// The ghost keys stay bounded.
	for i := range doctorGhost + 100 {
		d.stored(s, &http.Request{URL: &url.URL{Path: "/"}}, nil, fmt.Sprintf("g%d", i), nil, time.Now().Add(time.Hour))
	}
	if k := d.sample().Ghost.Keys; k > doctorGhost {
		t.Errorf("%d ghost keys, want at most %d", k, doctorGhost)
	}
}

// TestDoctorRecordsFills: through the edge, a stored fill is sampled
// with its query and body hash, a second miss on an evicted key counts
// as a ghost hit, an uncacheable response is counted by reason and
// prefix (and the pass its marker causes), and the fill's time is split.
func TestDoctorRecordsFills(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/private/me" {
			w.Header().Set("Cache-Control", "private")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "body of "+r.URL.Path)
	}, func(c *config.Config) {})
	n0, _ := cachekey.Compile(cachekey.Rules{})
	e.get("/a?utm_source=x")
	e.get("/private/me")
	e.get("/private/me")
	u, _ := url.Parse(e.URL)
	key := n0.AppendPrimary(nil, "http", u.Host, "/a", "utm_source=x")
	// The fill's goroutine stores the object and then records it, and
	// may do both after the client has read the whole response.
	testkit.Eventually(t, "the fill recorded", func() bool { return len(e.h.Doctor().Fills) == 1 })
	if !e.store.Delete(string(key)) {
		t.Fatalf("key %q not stored", key)
	}
	got := e.h.Doctor()
	if len(got.Fills) != 1 || got.Fills[0].Path != "/a" || got.Fills[0].Query != "utm_source=x" || got.Fills[0].BodyHash == 0 {
		t.Fatalf("fills %+v, want the one stored", got.Fills)
	}
	want := map[string]int64{"/private private": 1, "/private hit-for-pass": 1}
	for _, u := range got.Uncacheable {
		if want[u.Prefix+" "+u.Reason] != u.Count {
			t.Errorf("uncacheable %+v not expected (want %v)", u, want)
		}
		delete(want, u.Prefix+" "+u.Reason)
	}
	if len(want) > 0 {
		t.Errorf("uncacheable missing %v", want)
	}
	testkit.Until(t, testkit.EventuallyTimeout, func() string {
		if m := e.h.Doctor().Misses; m.Origin.Count != 2 || m.FillTotal.Count != 2 || m.Body.Count != 1 {
			return fmt.Sprintf("miss times %+v, want two origin fetches and one body stored", m)
		}
		return ""
	})
	e.get("/a?utm_source=x")
	if g := e.h.Doctor().Ghost; g.GhostHits != 1 {
		t.Errorf("ghost %+v, want the miss on the removed fresh key counted", g)
	}
}
