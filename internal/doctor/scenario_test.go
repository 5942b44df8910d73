package doctor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/doctor"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig is a real node in front of a test origin, with a client for its
// edge and one for its admin API.
type rig struct {
	edge   string
	http   *http.Client
	admin  *status.Client
	status func() status.Node
}

// start starts a node in front of origin, its configuration adjusted by
// tune; everything stops when the test ends.
func start(t *testing.T, origin http.Handler, tune func(*config.Config)) *rig {
	t.Helper()
	o := httptest.NewServer(origin)
	t.Cleanup(o.Close)
	cfg := config.Default()
	cfg.Node = "doctor-test"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(o.URL)
	cfg.Server.ShutdownDelay = 0
	if tune != nil {
		tune(cfg)
	}
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	ac, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ac.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	r := &rig{edge: "http://" + n.EdgeAddr(), http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, admin: ac}
	r.status = func() status.Node {
		st, err := ac.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	return r
}

// get sends GET path through the edge and returns the status code.
func (r *rig) get(t *testing.T, path string) int {
	t.Helper()
	resp, err := r.http.Get(r.edge + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode
}

// drive sends GET for each of paths, workers at a time.
func (r *rig) drive(t *testing.T, paths []string, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(paths)); i = next.Add(1) - 1 {
				r.get(t, paths[i])
			}
		})
	}
	wg.Wait()
}

// diagnose runs the doctor on the node and returns its report.
func (r *rig) diagnose(t *testing.T) doctor.Report {
	t.Helper()
	nodes, err := doctor.Collect(context.Background(), []*status.Client{r.admin}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := doctor.Analyze(nodes, doctor.Thresholds{})
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("the doctor says:\n%s", b.String())
	if len(rep.Findings) == 0 {
		t.Fatal("the doctor found nothing")
	}
	return rep
}

// cacheable answers every path with a body of its own, cacheable for a
// minute.
func cacheable(size int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		body := strings.Repeat(r.URL.Path+"\n", size/(len(r.URL.Path)+1)+1)[:size]
		io.WriteString(w, body)
	}
}

// TestScenarioUTMFragmentsTheKey: links carry a utm_source with random
// values that the origin ignores; the doctor names the parameter first
// and proposes dropping it from the key.
func TestScenarioUTMFragmentsTheKey(t *testing.T) {
	r := start(t, cacheable(1000), nil)
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("/article/%d?utm_source=%x&page=1", i%5, rand.Uint64()))
	}
	r.drive(t, paths, 4)
	rep := r.diagnose(t)
	f := rep.Findings[0]
	if f.Kind != doctor.KindKeyVariation {
		t.Fatalf("first finding is %s (%s), want %s", f.Kind, f.What, doctor.KindKeyVariation)
	}
	if !strings.Contains(f.YAML, "drop_params: [utm_source]") || !strings.Contains(f.Change, "hosts[0].key.drop_params") {
		t.Errorf("the change does not drop utm_source in hosts[0]: %s\n%s", f.Change, f.YAML)
	}
	if strings.Contains(f.YAML, "page") {
		t.Errorf("page (the same value everywhere) is proposed too: %s", f.YAML)
	}
	// 50 fills of 5 bodies: 45 would have been hits.
	if f.Gain < 0.8 || f.Gain > 0.95 {
		t.Errorf("gain %.2f, want 45 of 50 fills (0.9) of requests that all missed", f.Gain)
	}
}

// TestScenarioVaryingParamIsKept: a parameter that does change the body
// is not proposed for dropping.
func TestScenarioVaryingParamIsKept(t *testing.T) {
	r := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page "+r.URL.Query().Get("page"))
	}), nil)
	var paths []string
	for i := range 30 {
		paths = append(paths, fmt.Sprintf("/list?page=%d", i))
	}
	r.drive(t, paths, 4)
	nodes, err := doctor.Collect(context.Background(), []*status.Client{r.admin}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range doctor.Analyze(nodes, doctor.Thresholds{}).Findings {
		if f.Kind == doctor.KindKeyVariation {
			t.Errorf("page changes the body, yet: %s", f.What)
		}
	}
}

// TestScenarioCookiesOnStaticAssets: the origin sets a cookie on every
// response under /static, which keeps them out of the cache.
func TestScenarioCookiesOnStaticAssets(t *testing.T) {
	r := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		if strings.HasPrefix(r.URL.Path, "/static/") {
			w.Header().Set("Set-Cookie", "session=abc; Path=/")
		}
		io.WriteString(w, "asset "+r.URL.Path)
	}), nil)
	var paths []string
	for i := range 60 {
		paths = append(paths, fmt.Sprintf("/static/app%d.js", i%10))
	}
	for range 10 {
		paths = append(paths, "/index.html")
	}
	r.drive(t, paths, 4)
	f := r.diagnose(t).Findings[0]
	if f.Kind != doctor.KindUncacheable || !strings.Contains(f.What, "/static") || !strings.Contains(f.What, "set-cookie") {
		t.Fatalf("first finding is %s: %s; want responses under /static uncacheable by set-cookie", f.Kind, f.What)
	}
	if !strings.Contains(f.YAML, "store_set_cookie: true") {
		t.Errorf("the change does not propose store_set_cookie: %s\n%s", f.Change, f.YAML)
	}
}

// TestScenarioSlowOrigin: every object is asked for once, and the
// origin takes 80 ms to answer: the origin's wait dominates the misses.
func TestScenarioSlowOrigin(t *testing.T) {
	const delay = 80 * time.Millisecond
	r := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scenario's planted cause: an origin this slow to answer.
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "slow "+r.URL.Path)
	}), nil)
	var paths []string
	for i := range 40 {
		paths = append(paths, fmt.Sprintf("/item/%d", i))
	}
	r.drive(t, paths, 8)
	f := r.diagnose(t).Findings[0]
	if f.Kind != doctor.KindMissTime || !strings.Contains(f.What, "origin's wait") {
		t.Fatalf("first finding is %s: %s; want the origin's wait dominating miss time", f.Kind, f.What)
	}
}

// TestScenarioCacheTooSmall: the working set is several times
// cache.max_size, and it is asked for in a loop: objects are evicted
// before they are asked for again.
func TestScenarioCacheTooSmall(t *testing.T) {
	r := start(t, cacheable(32<<10), func(c *config.Config) {
		c.Cache.MaxSize = config.MiB
		c.Cache.MaxObjectSize = 128 << 10
	})
	var paths []string
	for range 5 {
		for i := range 120 {
			paths = append(paths, fmt.Sprintf("/video/seg%d.ts", i))
		}
	}
	r.drive(t, paths, 1)
	f := r.diagnose(t).Findings[0]
	if f.Kind != doctor.KindCacheSize {
		t.Fatalf("first finding is %s: %s; want %s", f.Kind, f.What, doctor.KindCacheSize)
	}
	if !strings.Contains(f.YAML, "max_size: ") || strings.Contains(f.YAML, "max_size: 1MiB") {
		t.Errorf("the change does not raise max_size: %s", f.YAML)
	}
}

// TestScenarioShedding: a fixed concurrency limit of 2 before an origin
// that holds every request until released: the requests past the limit
// are shed.
func TestScenarioShedding(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	r := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "held "+r.URL.Path)
	}), func(c *config.Config) {
		c.Overload.Concurrency.Mode = "fixed"
		c.Overload.Concurrency.Initial = 2
	})
	const n = 20
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes <- r.get(t, fmt.Sprintf("/held/%d", i)) })
	}
	// Every request has either reached the origin or been shed.
	testkit.Eventually(t, "every request reaches the origin or is shed", func() bool {
		return arrived.Load()+r.status().Requests.Shed >= n
	})
	close(release)
	wg.Wait()
	close(codes)
	shed := 0
	for c := range codes {
		if c == http.StatusServiceUnavailable {
			shed++
		}
	}
	if shed < n/2 {
		t.Fatalf("%d of %d requests shed, want most of them", shed, n)
	}
	f := r.diagnose(t).Findings[0]
	if f.Kind != doctor.KindShedding || !strings.Contains(f.YAML, "concurrency:") {
		t.Fatalf("first finding is %s: %s; want shedding with a concurrency change", f.Kind, f.What)
	}
}

// TestScenarioKeyedHeaderNeverChangesTheBody: key.headers names a field
// the origin ignores; the doctor proposes the key without it.
func TestScenarioKeyedHeaderNeverChangesTheBody(t *testing.T) {
	r := start(t, cacheable(500), func(c *config.Config) {
		c.Hosts[0].Key.Headers = []string{"X-Device", "Accept-Language"}
	})
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodGet, r.edge+fmt.Sprintf("/home/%d", i%3), nil)
		req.Header.Set("X-Device", fmt.Sprintf("model-%d", i))
		resp, err := r.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	f := r.diagnose(t).Findings[0]
	if f.Kind != doctor.KindKeyVariation || !strings.Contains(f.What, "x-device") || !strings.Contains(f.YAML, "headers: [Accept-Language]") {
		t.Fatalf("first finding is %s: %s\n%s; want x-device out of key.headers", f.Kind, f.What, f.YAML)
	}
}
