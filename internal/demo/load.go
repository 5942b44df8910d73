package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/bench"
)

const (
	defaultConcurrency = 32
	defaultKeys        = 1000
	defaultZipfS       = 1.1
	defaultSeed        = 1
	defaultTimeout     = 10 * time.Second
	// errorBackoff is how long a worker waits after a request fails
	// without a response, so that a refused connection does not turn the
	// workers into a busy loop.
	errorBackoff = 10 * time.Millisecond
)

// LoadConfig configures RunLoad.
type LoadConfig struct {
	// BaseURL is the cache under test, such as "http://127.0.0.1:8080";
	// request paths are appended to it. Required.
	BaseURL string
	// Spread lists further caches that share the workload with BaseURL,
	// such as the other edges of a cluster: each worker sends its
	// requests to BaseURL and these in turn. Empty means BaseURL alone.
	Spread []string
	// Host, when set, is the Host header of every request, so that caches
	// at different addresses see the same site (the edges of a cluster
	// serve one site name). "" sends each base URL's own host.
	Host string
	// Duration is the longest the run lasts. Required, > 0.
	Duration time.Duration
	// MaxRequests is how many requests the run sends at most; 0 means no
	// bound but Duration.
	MaxRequests int64
	// Concurrency is the number of closed-loop workers, each with one
	// request in flight at a time; 0 means 32.
	Concurrency int
	// Keys is the number of distinct objects, ranked 0 (most popular) to
	// Keys-1; 0 means 1000.
	Keys int
	// ZipfS is the Zipf exponent s (> 1): the probability of rank k is
	// proportional to 1/(k+1)^s. 0 means 1.1.
	ZipfS float64
	// Seed seeds the workers' generators, worker i with (Seed, i), so that
	// each worker's sequence of keys is the same from run to run; 0 means
	// 1.
	Seed int64
	// PathFor maps a key rank to the request path and query; a "/" is
	// put in front when it has none. It is called concurrently from every
	// worker. nil means "/static/obj-<rank>".
	PathFor func(rank int) string
	// Client sends the requests. nil means a client of RunLoad's own with
	// keep-alive, Concurrency idle connections per host, a 10 s timeout,
	// no proxy, no transparent compression (no Accept-Encoding is added)
	// and no redirect following; RunLoad closes its idle connections
	// before returning.
	Client *http.Client
	// OriginRequests, when not nil, reads the origin's request counter
	// (such as (*Origin).Requests); RunLoad calls it once before and once
	// after the run, from its own goroutine, so that the Report can show
	// origin offload. nil means the origin's load is unknown.
	OriginRequests func() int64
}

// validate reports every problem with c at once.
func (c LoadConfig) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("LoadConfig.%s: "+format, append([]any{field}, args...)...))
	}
	if c.BaseURL == "" {
		bad("BaseURL", "required")
	} else if u, err := url.Parse(c.BaseURL); err != nil {
		bad("BaseURL", "%v", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("BaseURL", "%q is not an http or https URL with a host", c.BaseURL)
	}
	for i, u := range c.Spread {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("Spread", "[%d] %q is not an http or https URL with a host", i, u)
		}
	}
	if c.Duration <= 0 {
		bad("Duration", "must be > 0, got %v", c.Duration)
	}
	if c.MaxRequests < 0 {
		bad("MaxRequests", "must be ≥ 0, got %d", c.MaxRequests)
	}
	if c.Concurrency < 0 {
		bad("Concurrency", "must be ≥ 0, got %d", c.Concurrency)
	}
	if c.Keys < 0 {
		bad("Keys", "must be ≥ 0, got %d", c.Keys)
	}
	if c.ZipfS != 0 && !(c.ZipfS > 1) || math.IsInf(c.ZipfS, 0) {
		bad("ZipfS", "must be > 1 and finite, got %v", c.ZipfS)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields replaced by their defaults, and
// a function that releases what it built.
func (c LoadConfig) withDefaults() (LoadConfig, func()) {
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.Keys == 0 {
		c.Keys = defaultKeys
	}
	if c.ZipfS == 0 {
		c.ZipfS = defaultZipfS
	}
	if c.Seed == 0 {
		c.Seed = defaultSeed
	}
	if c.PathFor == nil {
		c.PathFor = func(rank int) string { return "/static/obj-" + strconv.Itoa(rank) }
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	bases := []string{c.BaseURL}
	for _, u := range c.Spread {
		bases = append(bases, strings.TrimSuffix(u, "/"))
	}
	c.Spread = bases
	release := func() {}
	if c.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.DisableCompression = true
		t.MaxIdleConns = c.Concurrency
		t.MaxIdleConnsPerHost = c.Concurrency
		c.Client = &http.Client{
			Transport: t,
			Timeout:   defaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		release = t.CloseIdleConnections
	}
	return c, release
}

// RunLoad sends GET requests for Zipf-distributed keys to cfg.BaseURL from
// cfg.Concurrency closed-loop workers and reports what the cache did. It
// blocks until the run ends, at cfg.Duration, after cfg.MaxRequests
// requests, or when ctx is done, whichever comes first, and returns only
// after every worker it started has stopped.
//
// Every response body is read to the end, so connections are reused, and
// latency runs from sending the request to reading the body's last byte.
// A request that fails without a complete response counts as an error;
// one cut short because the run ended counts as nothing.
//
// RunLoad returns an error without sending anything when cfg is invalid.
// When ctx is done before the run ends, it returns the Report of the
// requests completed so far together with ctx's error.
func RunLoad(ctx context.Context, cfg LoadConfig) (Report, error) {
	if err := cfg.validate(); err != nil {
		return Report{}, fmt.Errorf("demo: run load: %w", err)
	}
	cfg, release := cfg.withDefaults()
	defer release()

	originBefore := int64(-1)
	if cfg.OriginRequests != nil {
		originBefore = cfg.OriginRequests()
	}
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var (
		issued  atomic.Int64
		wg      sync.WaitGroup
		workers = make([]worker, cfg.Concurrency)
		lat     bench.Histogram // every worker records into it
	)
	for i := range workers {
		w := &workers[i]
		w.cfg = &cfg
		w.issued = &issued
		w.latency = &lat
		w.zipf = rand.NewZipf(rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i))), cfg.ZipfS, 1, uint64(cfg.Keys-1))
		w.seen = make([]bool, cfg.Keys)
		wg.Go(func() { w.run(runCtx) })
	}
	wg.Wait()

	r := Report{
		Elapsed:        time.Since(start),
		OriginRequests: -1,
		StatusCounts:   make(map[int]int64),
	}
	if cfg.OriginRequests != nil {
		r.OriginRequests = cfg.OriginRequests() - originBefore
	}
	seen := make([]bool, cfg.Keys)
	for i := range workers {
		w := &workers[i]
		for k, ok := range w.seen {
			seen[k] = seen[k] || ok
		}
		r.Requests += w.requests
		r.Errors += w.errors
		r.Hits += w.outcomes[outcomeHit]
		r.Misses += w.outcomes[outcomeMiss]
		r.Stale += w.outcomes[outcomeStale]
		r.Pass += w.outcomes[outcomePass]
		for code, n := range w.status {
			r.StatusCounts[code] += n
		}
	}
	for _, ok := range seen {
		if ok {
			r.DistinctKeys++
		}
	}
	r.P50, r.P90, r.P99, r.Max = lat.Quantile(0.50), lat.Quantile(0.90), lat.Quantile(0.99), lat.Max()
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("demo: run load against %s: %w", cfg.BaseURL, err)
	}
	return r, nil
}

// worker is one closed-loop client of RunLoad. Its counters are written
// only by its own goroutine and read after it has stopped.
type worker struct {
	cfg    *LoadConfig
	issued *atomic.Int64 // requests started by all workers
	zipf   *rand.Zipf

	requests, errors int64
	outcomes         [4]int64 // indexed by outcome
	status           map[int]int64
	latency          *bench.Histogram // shared by every worker
	// seen marks the key ranks this worker requested.
	seen []bool
}

// run sends requests one at a time until ctx is done or the run has
// issued cfg.MaxRequests.
func (w *worker) run(ctx context.Context) {
	w.status = make(map[int]int64)
	for ctx.Err() == nil {
		if limit := w.cfg.MaxRequests; limit > 0 && w.issued.Add(1) > limit {
			return
		}
		rank := int(w.zipf.Uint64())
		path := w.cfg.PathFor(rank)
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		base := w.cfg.Spread[w.requests%int64(len(w.cfg.Spread))]
		switch err := w.do(ctx, base+path); {
		case err == nil:
			w.seen[rank] = true
		case ctx.Err() != nil:
			return // Cut short by the end of the run: not counted.
		default:
			w.requests++
			w.errors++
			if sleep(ctx, errorBackoff) != nil {
				return
			}
		}
	}
}

// do sends one request, reads the whole response and records it.
func (w *worker) do(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	if w.cfg.Host != "" {
		req.Host = w.cfg.Host
	}
	start := time.Now()
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	w.latency.Record(time.Since(start))
	w.requests++
	w.outcomes[classify(resp.Header.Values("Cache-Status"))]++
	w.status[resp.StatusCode]++
	return nil
}
