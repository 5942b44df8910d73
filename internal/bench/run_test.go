package bench

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// slowTransport answers every request after delay, with a Cache-Status
// hit, and counts them.
type slowTransport struct {
	delay time.Duration
	n     atomic.Int64
}

func (t *slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	select {
	case <-time.After(t.delay):
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Cache-Status": {"t; hit"}},
		Body: http.NoBody, Request: req}, nil
}

// TestRunOpenLoopSchedule checks, on a fake clock, that the schedule does
// not wait for responses and that a request's latency runs from its
// scheduled time: with 2 workers, a queue of 2 and a server taking 100 ms,
// requests due every 1 ms go: the first two at once, the next two after
// waiting in the queue (198 ms from their scheduled time), the last two
// dropped as overload_client.
func TestRunOpenLoopSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &slowTransport{delay: 100 * time.Millisecond}
		var progress []Progress
		res, err := Run(t.Context(), Config{
			Targets:       []string{"http://cache.test/base"},
			Rate:          1000,
			Duration:      time.Second,
			Requests:      6,
			Concurrency:   2,
			Mix:           Mix{KindHit: 1},
			Client:        &http.Client{Transport: tr},
			Progress:      func(p Progress) { progress = append(progress, p) },
			ProgressEvery: 45 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := struct {
			Scheduled, Sent, Answered, Served int64
			Overload, Errors                  int64
			Min, P50, Max, Elapsed            float64
		}{res.Scheduled, res.Sent, res.Answered, tr.n.Load(), res.Errors["overload_client"], res.Errors["total"],
			res.Latency.Min, res.Latency.P50, res.Latency.Max, res.ElapsedMS}
		want := got
		want.Scheduled, want.Sent, want.Answered, want.Served = 6, 4, 4, 4
		want.Overload, want.Errors = 2, 2
		want.Min, want.P50, want.Max, want.Elapsed = 100, 100, 198, 201
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("run (-want +got):\n%s", diff)
		}
		if res.Cache.Hit != 4 || res.Cache.HitRatio == nil || *res.Cache.HitRatio != 1 {
			t.Errorf("cache = %+v, want 4 hits and a ratio of 1", res.Cache)
		}
		var text strings.Builder
		if err := res.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"6 scheduled, 4 sent, 4 answered", "p50 100.0ms", "max 198.0ms", "hit ratio 100.0%: hit 4",
			"origin    unknown: give --admin", "status    200: 4", "errors    2: overload_client 2"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("report lacks %q:\n%s", want, text.String())
			}
		}
		// Ticks at 45, 90, 135 and 180 ms; none after Run returned.
		if len(progress) != 4 || progress[3].Sent != 4 || progress[3].Answered != 2 || progress[3].Errors != 2 || progress[3].P99 != 100*time.Millisecond {
			t.Errorf("progress = %+v, want 4 reports, the last with 4 sent, 2 answered, 2 errors and p99 100ms", progress)
		}
	})
}

// TestRunDurationBound: without --requests, the schedule ends at the
// duration: 1000/s for 50 ms is 50 requests.
func TestRunDurationBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &slowTransport{delay: time.Millisecond}
		res, err := Run(t.Context(), Config{Targets: []string{"http://cache.test/"}, Rate: 1000, Duration: 50 * time.Millisecond,
			Client: &http.Client{Transport: tr}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Scheduled != 50 || res.Answered != 50 || res.AchievedRate != 1000 {
			t.Errorf("scheduled %d answered %d at %v/s, want 50 and 50 in 50 ms (the last due at 49 ms)", res.Scheduled, res.Answered, res.AchievedRate)
		}
	})
}

// TestRunInterrupted: a context ending mid-run stops the schedule, cuts
// the requests in flight and returns what was measured with the error.
func TestRunInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
		defer cancel()
		tr := &slowTransport{delay: 200 * time.Millisecond}
		res, err := Run(ctx, Config{Targets: []string{"http://cache.test/"}, Rate: 10, Duration: 10 * time.Second,
			Client: &http.Client{Transport: tr}})
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("err = %v, want interrupted", err)
		}
		// Due at 0, 100, 200, 300 ms; answered at 200 and 300; cut at 350.
		if res.Scheduled != 4 || res.Answered != 2 || res.Canceled != 2 || res.Errors["total"] != 0 {
			t.Errorf("scheduled %d answered %d canceled %d errors %d, want 4 2 2 0", res.Scheduled, res.Answered, res.Canceled, res.Errors["total"])
		}
	})
}

// TestRunSlowServerLoopback runs against a real slow server on loopback:
// every latency includes the server's delay, and the last response's
// includes the wait of the requests that queued behind the first ones
// (a closed-loop generator timing from the send would report about one
// delay for all).
func TestRunSlowServerLoopback(t *testing.T) {
	const delay = 30 * time.Millisecond
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		select { // the slow server under test: it answers after delay
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.Header().Set("Cache-Status", "t; fwd=uri-miss")
	}))
	defer srv.Close()
	const n, workers, rate = 8, 2, 1000
	res, err := Run(t.Context(), Config{Targets: []string{srv.URL}, Rate: rate, Duration: time.Minute, Requests: n,
		Concurrency: workers, Mix: Mix{KindHit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	overload := res.Errors["overload_client"]
	if res.Scheduled != n || res.Sent+overload != n || res.Answered != res.Sent || served.Load() != res.Sent || res.Errors["total"] != overload {
		t.Fatalf("scheduled %d sent %d overload %d answered %d served %d errors %v", res.Scheduled, res.Sent, overload, res.Answered, served.Load(), res.Errors)
	}
	if res.Latency.Min < ms(delay) {
		t.Errorf("min latency %vms below the server's delay %v", res.Latency.Min, delay)
	}
	// The last of Sent requests on 2 workers ends no sooner than
	// ceil(Sent/2) delays after the start, and was due by (n-1)/rate.
	floor := time.Duration(math.Ceil(float64(res.Sent)/workers))*delay - (n-1)*time.Second/rate
	if res.Latency.Max < ms(floor) {
		t.Errorf("max latency %vms below %v: the queueing behind the first requests is not counted", res.Latency.Max, floor)
	}
	if res.Cache.Miss != res.Answered || res.Cache.Sources["cache-status"] != res.Answered {
		t.Errorf("cache = %+v, want every response a miss read from Cache-Status", res.Cache)
	}
}

// TestRunMix checks what each kind sends, where: the keys, methods and
// token, the {key} placeholder, round-robin over two targets and the
// Host header.
func TestRunMix(t *testing.T) {
	type seen struct{ method, path, auth, host, query string }
	var mu sync.Mutex // guards got
	var got []seen
	handler := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Host, r.URL.RawQuery})
		mu.Unlock()
		switch {
		case r.Method == "PURGE" && r.Header.Get("Authorization") != "Bearer tok":
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "miss-"):
			w.Header().Set("Cache-Status", "t; fwd=uri-miss")
		case r.Method == http.MethodGet:
			w.Header().Set("X-Cache", "HIT")
		}
	}
	a, b := httptest.NewServer(http.HandlerFunc(handler)), httptest.NewServer(http.HandlerFunc(handler))
	defer a.Close()
	defer b.Close()
	res, err := Run(t.Context(), Config{
		Targets:  []string{a.URL + "/static/", b.URL + "/obj/{key}.css?v=1"},
		Rate:     MaxRate,
		Duration: time.Minute,
		Requests: 400,
		Keys:     50,
		Mix:      Mix{KindHit: 5, KindMiss: 2, KindPass: 2, KindPurge: 1},
		Header:   http.Header{"Host": {"site.test"}},
		Token:    "tok",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent+res.Errors["overload_client"] != 400 || res.Answered != res.Sent || res.Errors["total"] != res.Errors["overload_client"] {
		t.Fatalf("sent %d answered %d errors %v", res.Sent, res.Answered, res.Errors)
	}
	key := regexp.MustCompile(`^(/static/k/|/obj/)(\d+|miss-[0-9a-f]{12}-\d+|pass-\d+)(\.css)?$`)
	var byKind [numKinds]int64
	misses := map[string]bool{}
	for _, s := range got {
		m := key.FindStringSubmatch(s.path)
		if m == nil || s.host != "site.test" || (m[1] == "/obj/") != (m[3] == ".css") || (m[1] == "/obj/") != (s.query == "v=1") {
			t.Fatalf("request %+v: not a key URL of a target with the Host header", s)
		}
		k := m[2]
		switch {
		case s.method == "PURGE" && s.auth == "Bearer tok" && !strings.Contains(k, "-"):
			byKind[KindPurge]++
		case s.auth != "":
			t.Fatalf("request %+v carries the token, which is for PURGE alone", s)
		case s.method == http.MethodPost && strings.HasPrefix(k, "pass-"):
			byKind[KindPass]++
		case s.method == http.MethodGet && strings.HasPrefix(k, "miss-"):
			if misses[k] {
				t.Fatalf("miss key %s asked twice", k)
			}
			misses[k] = true
			byKind[KindMiss]++
		case s.method == http.MethodGet:
			if n, _ := strconv.Atoi(k); n >= 50 {
				t.Fatalf("hit key %d outside the 50 keys", n)
			}
			byKind[KindHit]++
		default:
			t.Fatalf("request %+v matches no kind", s)
		}
	}
	wantKinds := map[string]int64{}
	for k, n := range byKind {
		wantKinds[Kind(k).String()] = n
	}
	if diff := cmp.Diff(wantKinds, res.SentByKind); diff != "" {
		t.Errorf("sent_by_kind (-what the servers saw +reported):\n%s", diff)
	}
	if byKind[KindHit] == 0 || byKind[KindMiss] == 0 || byKind[KindPass] == 0 || byKind[KindPurge] == 0 {
		t.Errorf("a kind was never sent: %v", byKind)
	}
	c := res.Cache
	if c.Hit != byKind[KindHit] || c.Miss != byKind[KindMiss] || c.Pass != 0 || c.Unknown != 0 || c.Sources["x-cache"] != c.Hit || c.Sources["cache-status"] != c.Miss {
		t.Errorf("cache = %+v, want the GETs alone: %d hits by X-Cache, %d misses by Cache-Status", c, byKind[KindHit], byKind[KindMiss])
	}
	if res.Origin.Known || res.Origin.Requests != nil || res.Origin.DistinctObjects < byKind[KindMiss]+1 {
		t.Errorf("origin = %+v, want unknown with at least the misses and one hit key as objects", res.Origin)
	}
}

// TestRunOriginRequests reads the origin counter of a fake Weir admin
// API before and after the run.
func TestRunOriginRequests(t *testing.T) {
	var origin atomic.Int64
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "miss-") {
			origin.Add(1)
		}
	}))
	defer edge.Close()
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "Bearer v" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("# TYPE weir_origin_requests_total counter\n" +
			`weir_origin_requests_total{origin="a",status_class="2xx"} ` + strconv.FormatInt(origin.Load()+100, 10) + "\n" +
			`weir_origin_requests_total{origin="a",status_class="5xx"} 7` + "\n"))
	}))
	defer admin.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	res, err := Run(t.Context(), Config{Targets: []string{edge.URL}, Rate: 1000, Duration: time.Minute, Requests: 20, Concurrency: 20,
		Mix: Mix{KindMiss: 1},
		OriginRequests: func(ctx context.Context) (float64, error) {
			return OriginRequests(ctx, hc, admin.URL, "v")
		}})
	if err != nil {
		t.Fatal(err)
	}
	o := res.Origin
	if !o.Known || o.Requests == nil || *o.Requests != res.Sent || o.DistinctObjects != res.Sent || o.RequestsPerObject == nil || *o.RequestsPerObject != 1 {
		t.Errorf("origin = %+v (sent %d), want one origin request per object", o, res.Sent)
	}
	// Without the token the run does not start, and says why.
	_, err = Run(t.Context(), Config{Targets: []string{edge.URL}, Rate: 1000, Duration: time.Minute, Requests: 1,
		OriginRequests: func(ctx context.Context) (float64, error) { return OriginRequests(ctx, hc, admin.URL, "") }})
	if err == nil || !strings.Contains(err.Error(), "status 401: set WEIR_TOKEN") {
		t.Errorf("err = %v, want the 401 and what to do", err)
	}
	if _, err := parseOriginRequests(strings.NewReader("up 1\n"), "x"); err == nil || !strings.Contains(err.Error(), "no weir_origin_requests_total") {
		t.Errorf("a page without the metric: %v", err)
	}
	if n, err := parseOriginRequests(strings.NewReader("weir_cache_objects 3\n"), "x"); err != nil || n != 0 {
		t.Errorf("a Weir page before any origin request: %v, %v; want 0", n, err)
	}
}

func TestConfigRefused(t *testing.T) {
	_, err := Run(t.Context(), Config{Targets: []string{"127.0.0.1:8080", "http://h/{key}/{key}"}, Rate: 0, Duration: -1,
		Requests: -1, Concurrency: MaxConcurrency + 1, Keys: -1, ZipfS: 0.9, Timeout: 2 * time.Hour})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`URL "127.0.0.1:8080": want an http:// or https:// URL`, "{key} more than once", "--rate 0", "--duration -1ns",
		"--requests -1", "--concurrency 10001", "--keys -1", "--zipf-s 0.9", "--timeout 2h0m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Run(t.Context(), Config{Rate: 1, Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "no URL") {
		t.Errorf("no targets: %v", err)
	}
}

func TestKeyURL(t *testing.T) {
	for _, c := range []struct{ target, want string }{
		{"http://h", "http://h/k/7"},
		{"http://h/", "http://h/k/7"},
		{"http://h/static", "http://h/static/k/7"},
		{"http://h/static/?a=b", "http://h/static/k/7?a=b"},
		{"http://h/img/{key}.png", "http://h/img/7.png"},
		{"http://h/p?id={key}", "http://h/p?id=7"},
	} {
		if got := keyURL(c.target, "7"); got != c.want {
			t.Errorf("keyURL(%q) = %q, want %q", c.target, got, c.want)
		}
	}
}
