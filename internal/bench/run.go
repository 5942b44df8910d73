package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config, and of the flags of `weir bench`.
const (
	// DefaultRate is a rate any cache and loopback sustain.
	DefaultRate = 1000
	// DefaultDuration is long enough for a p99.9 of 10,000 samples.
	DefaultDuration = 10 * time.Second
	// DefaultConcurrency caps the requests in flight: at the default
	// rate, room for responses of up to 256 ms before requests are
	// dropped as overload_client.
	DefaultConcurrency = 256
	// DefaultKeys is the number of distinct cacheable objects.
	DefaultKeys = 10000
	// DefaultZipfS is the skew of key popularity: with 10,000 keys, the
	// top 1% of keys take about 60% of requests, as on a typical site.
	DefaultZipfS = 1.1
	// DefaultTimeout bounds each request, from its send to its last byte.
	DefaultTimeout = 10 * time.Second
	// DefaultSeed seeds the key and mix draws.
	DefaultSeed = 1
)

// Limits of Config: beyond them a run is a mistake, not a benchmark.
const (
	MaxRate        = 1_000_000
	MaxDuration    = 24 * time.Hour
	MaxRequests    = 1_000_000_000
	MaxConcurrency = 10_000
	// MaxKeys bounds the key space; the run keeps one bit per key to
	// count distinct objects.
	MaxKeys    = 10_000_000
	MaxTimeout = time.Minute
	// MaxTargets bounds the URLs a run round-robins over.
	MaxTargets = 1000
)

// KeyPlaceholder in a target URL is replaced by each request's key;
// without one, "/k/<key>" is appended to the URL's path.
const KeyPlaceholder = "{key}"

// Config is one run. Its fields mirror the flags of `weir bench`, and
// validation errors name those flags.
type Config struct {
	// Targets are the URLs requests go to, in turn (round-robin): the
	// edges of a cluster, or one cache. Each is http or https, with
	// KeyPlaceholder where the key goes, or else "/k/<key>" is appended
	// to its path. Required.
	Targets []string
	// Rate is the arrival rate in requests per second: request i is due
	// at start + i/Rate. Required, in (0, MaxRate].
	Rate float64
	// Duration bounds the schedule: no request is due at or after start
	// + Duration. Required, in (0, MaxDuration].
	Duration time.Duration
	// Requests bounds the number of requests scheduled; 0 means no bound
	// but Duration.
	Requests int64
	// Concurrency is the number of workers, the cap on requests in
	// flight; as many more may wait in the queue in front of them (their
	// wait counts in their latency), and a request due when the queue is
	// full is dropped as ErrOverloadClient. 0 means DefaultConcurrency.
	Concurrency int
	// Keys is the number of Zipf-drawn keys, ranked 0 (most popular) to
	// Keys-1. 0 means DefaultKeys.
	Keys int
	// ZipfS is the Zipf exponent, > 1. 0 means DefaultZipfS.
	ZipfS float64
	// Mix weighs the kinds of request. The zero Mix means DefaultMix.
	Mix Mix
	// Seed seeds the key and kind draws, so that runs with the same
	// Config ask for the same keys in the same order (the keys of
	// KindMiss differ from run to run by design). 0 means DefaultSeed.
	Seed uint64
	// Timeout bounds each request from its send to its last byte. 0
	// means DefaultTimeout.
	Timeout time.Duration
	// Header is added to every request; a Host entry sets the Host
	// header (the site name, when Targets are addresses). nil adds none.
	Header http.Header
	// Token, when not "", is sent as "Authorization: Bearer <Token>" with
	// the PURGE requests alone.
	Token string
	// Client sends the requests. nil means a client of Run's own:
	// keep-alive with Concurrency idle connections per host, no proxy, no
	// transparent compression, no redirects followed, Timeout per
	// request; Run closes its idle connections before returning.
	Client *http.Client
	// Progress, when not nil, is called from a goroutine of Run's own
	// every ProgressEvery while the run lasts, and not after Run returns.
	Progress func(Progress)
	// ProgressEvery is the period of Progress; 0 means one second.
	ProgressEvery time.Duration
	// OriginRequests, when not nil, reads the number of requests the
	// target's origins have served so far (such as OriginRequests of the
	// Weir admin APIs). Run calls it once before the schedule starts (an
	// error then fails the run before it sends anything) and once after
	// the last response (an error then leaves the origin unknown in the
	// Result, with the error in Result.Origin.Error). nil means unknown.
	OriginRequests func(context.Context) (float64, error)
}

// Progress is a run's state while it lasts.
type Progress struct {
	Elapsed time.Duration
	// Sent counts the requests sent so far.
	Sent int64
	// Answered counts the complete responses so far.
	Answered int64
	// Errors counts the failures so far, of every kind.
	Errors int64
	// P99 is the 99th percentile of the latencies so far.
	P99 time.Duration
}

// Rate returns the requests sent per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Sent) / p.Elapsed.Seconds()
}

// Validate reports every problem with c at once, naming the flags of
// `weir bench`; Run calls it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Targets) == 0 {
		bad("no URL: give the cache's URL, such as http://127.0.0.1:8080/static (requests go to URL/k/<key>, or put %s in the URL)", KeyPlaceholder)
	}
	if len(c.Targets) > MaxTargets {
		bad("%d URLs: at most %d", len(c.Targets), MaxTargets)
	}
	for _, t := range c.Targets {
		u, err := url.Parse(strings.ReplaceAll(t, KeyPlaceholder, "0"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("URL %q: want an http:// or https:// URL with a host, such as http://127.0.0.1:8080/static", t)
			continue
		}
		if strings.Count(t, KeyPlaceholder) > 1 {
			bad("URL %q: %s more than once: put it where the key goes, once", t, KeyPlaceholder)
		}
	}
	if !(c.Rate > 0 && c.Rate <= MaxRate) {
		bad("--rate %v: want requests per second above 0 and at most %d", c.Rate, MaxRate)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		bad("--duration %v: want above 0 and at most %v", c.Duration, MaxDuration)
	}
	if c.Requests < 0 || c.Requests > MaxRequests {
		bad("--requests %d: want 0 (no bound but --duration) to %d", c.Requests, MaxRequests)
	}
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		bad("--concurrency %d: want 1 to %d requests in flight", c.Concurrency, MaxConcurrency)
	}
	if c.Keys < 0 || c.Keys > MaxKeys {
		bad("--keys %d: want 1 to %d", c.Keys, MaxKeys)
	}
	if c.ZipfS != 0 && (!(c.ZipfS > 1) || math.IsInf(c.ZipfS, 0)) {
		bad("--zipf-s %v: want a finite exponent above 1, such as 1.1 (1.01 is nearly flat, 2 very skewed)", c.ZipfS)
	}
	for k, w := range c.Mix {
		if w < 0 || w > maxWeight {
			bad("--mix: %s=%d: want a weight from 0 to %d", Kind(k), w, maxWeight)
		}
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		bad("--timeout %v: want above 0 and at most %v", c.Timeout, MaxTimeout)
	}
	if c.ProgressEvery < 0 {
		bad("progress period %v: want 0 (one second) or more", c.ProgressEvery)
	}
	return errors.Join(errs...)
}

// withDefaults fills c's zero fields and returns what releases what it
// built.
func (c *Config) withDefaults() (release func()) {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.ZipfS == 0 {
		c.ZipfS = DefaultZipfS
	}
	if c.Mix.total() == 0 {
		c.Mix = DefaultMix
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Client != nil {
		return func() {}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableCompression = true
	t.MaxIdleConns = c.Concurrency
	t.MaxIdleConnsPerHost = c.Concurrency
	c.Client = &http.Client{
		Transport:     t,
		Timeout:       c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return t.CloseIdleConnections
}

// job is one scheduled request.
type job struct {
	due    time.Time
	kind   Kind
	method string
	url    string
}

// run is the state of one Run: the counters the workers add to, all
// atomic, and the histogram.
type run struct {
	cfg *Config

	sent, answered, canceled, bytes atomic.Int64
	errors                          [numErrorKinds]atomic.Int64
	outcomes                        [numOutcomes]atomic.Int64
	sources                         [numSources]atomic.Int64
	status                          [600]atomic.Int64 // by code; 1xx to 5xx
	latency                         Histogram
}

func (r *run) errorsTotal() int64 {
	var n int64
	for i := range r.errors {
		n += r.errors[i].Load()
	}
	return n
}

// Run sends cfg's schedule of requests and returns what it measured. It
// blocks until the schedule is over (cfg.Duration or cfg.Requests,
// whichever comes first) and every request sent has been answered or has
// failed, or until ctx is done; it returns only after every goroutine it
// started has stopped.
//
// Every response body is read to its end, so connections are reused. A
// request that fails without a complete response counts in the errors
// by kind; a complete response counts in the latency histogram and by
// status code, and, with a status of 400 or more, in the errors too.
// Only the responses to GETs (KindHit and KindMiss) are classified for
// the hit ratio: a POST or a PURGE is no question to the cache's store.
//
// Run returns an error without sending anything when cfg is invalid or
// cfg.OriginRequests fails. When ctx is done first, the requests in
// flight are cancelled (counted in Result.Canceled) and Run returns the
// Result so far with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	release := cfg.withDefaults()
	defer release()
	zipf, err := NewZipf(cfg.Seed, cfg.Keys, cfg.ZipfS)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	runID, err := newRunID()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	res := &Result{Targets: cfg.Targets, Config: resultConfig(&cfg)}
	originBefore := math.NaN()
	if cfg.OriginRequests != nil {
		if originBefore, err = cfg.OriginRequests(ctx); err != nil {
			return nil, fmt.Errorf("origin requests before the run: %w", err)
		}
	}

	r := &run{cfg: &cfg}
	reqCtx, cancelReqs := context.WithCancel(ctx)
	defer cancelReqs()
	jobs := make(chan job, cfg.Concurrency)
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for j := range jobs {
				r.do(reqCtx, j)
			}
		})
	}
	start := time.Now()
	stopProgress := r.progress(start)

	kindRNG := mrand.New(mrand.NewPCG(cfg.Seed, 0x6d6978))
	total := cfg.Mix.total()
	seen := make([]uint64, (cfg.Keys+63)/64)
	var distinct, misses int64
	var scheduled int64
	var byKind [numKinds]int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
schedule:
	for i := int64(0); cfg.Requests == 0 || i < cfg.Requests; i++ {
		offset := time.Duration(float64(i) * float64(time.Second) / cfg.Rate)
		if offset >= cfg.Duration {
			break
		}
		due := start.Add(offset)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				break schedule
			}
		} else if ctx.Err() != nil {
			break
		}
		scheduled++
		kind := cfg.Mix.pick(kindRNG.IntN(total))
		var key, method string
		rank := -1
		switch kind {
		case KindHit:
			rank = zipf.Rank()
			key, method = strconv.Itoa(rank), http.MethodGet
		case KindMiss:
			key, method = "miss-"+runID+"-"+strconv.FormatInt(misses, 10), http.MethodGet
		case KindPass:
			key, method = "pass-"+strconv.Itoa(zipf.Rank()), http.MethodPost
		case KindPurge:
			key, method = strconv.Itoa(zipf.Rank()), "PURGE"
		}
		target := cfg.Targets[int(i%int64(len(cfg.Targets)))]
		select {
		case jobs <- job{due: due, kind: kind, method: method, url: keyURL(target, key)}:
			r.sent.Add(1)
			byKind[kind]++
			switch {
			case kind == KindMiss:
				misses++
				distinct++
			case rank >= 0 && seen[rank/64]&(1<<(rank%64)) == 0:
				seen[rank/64] |= 1 << (rank % 64)
				distinct++
			}
		default:
			r.errors[ErrOverloadClient].Add(1)
		}
	}
	close(jobs)
	interrupted := ctx.Err()
	if interrupted != nil {
		cancelReqs()
	}
	workers.Wait()
	elapsed := time.Since(start)
	stopProgress()

	res.fill(r, elapsed, scheduled, byKind, distinct)
	if cfg.OriginRequests != nil {
		res.Origin.Known = true
		octx := ctx
		if interrupted != nil {
			// One last read of the counters, even after an interrupt.
			var cancel context.CancelFunc
			octx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
		}
		after, err := cfg.OriginRequests(octx)
		if err != nil {
			res.Origin.Known = false
			res.Origin.Error = fmt.Sprintf("origin requests after the run: %v", err)
		} else {
			n := int64(math.Round(after - originBefore))
			res.Origin.Requests = &n
			if distinct > 0 {
				per := float64(n) / float64(distinct)
				res.Origin.RequestsPerObject = &per
			}
		}
	}
	if interrupted != nil {
		return res, fmt.Errorf("interrupted after %v: %w", elapsed.Round(time.Millisecond), interrupted)
	}
	return res, nil
}

// newRunID returns a random name for this run's miss keys, so that they
// are new to the cache whatever ran before.
func newRunID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// keyURL returns the URL of key at target: KeyPlaceholder replaced, or
// else "/k/<key>" appended to the path, before any query.
func keyURL(target, key string) string {
	if strings.Contains(target, KeyPlaceholder) {
		return strings.Replace(target, KeyPlaceholder, key, 1)
	}
	path, query, hasQuery := strings.Cut(target, "?")
	path = strings.TrimSuffix(path, "/") + "/k/" + key
	if hasQuery {
		return path + "?" + query
	}
	return path
}

// do sends one request and records its outcome.
func (r *run) do(ctx context.Context, j job) {
	if ctx.Err() != nil {
		r.canceled.Add(1)
		return
	}
	req, err := http.NewRequestWithContext(ctx, j.method, j.url, nil)
	if err != nil {
		r.errors[ErrOther].Add(1)
		return
	}
	for k, v := range r.cfg.Header {
		if strings.EqualFold(k, "Host") {
			req.Host = v[len(v)-1]
			continue
		}
		req.Header[k] = v
	}
	if j.kind == KindPurge && r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	resp, err := r.cfg.Client.Do(req)
	if err == nil {
		var n int64
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.bytes.Add(n)
	}
	if err != nil {
		if ctx.Err() != nil {
			r.canceled.Add(1)
		} else {
			r.errors[classifyError(err)].Add(1)
		}
		return
	}
	r.latency.Record(time.Since(j.due))
	r.answered.Add(1)
	if c := resp.StatusCode; c >= 100 && c < len(r.status) {
		r.status[c].Add(1)
	}
	switch {
	case resp.StatusCode >= 500:
		r.errors[ErrStatus5xx].Add(1)
	case resp.StatusCode >= 400:
		r.errors[ErrStatus4xx].Add(1)
	}
	if j.method == http.MethodGet {
		o, s := Classify(resp.Header)
		r.outcomes[o].Add(1)
		r.sources[s].Add(1)
	}
}

// progress calls cfg.Progress every cfg.ProgressEvery from a goroutine
// that stop ends and waits for.
func (r *run) progress(start time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.cfg.Progress(Progress{
					Elapsed:  time.Since(start),
					Sent:     r.sent.Load(),
					Answered: r.answered.Load(),
					Errors:   r.errorsTotal(),
					P99:      r.latency.Quantile(0.99),
				})
			}
		}
	}()
	return func() { close(done); <-exited }
}
