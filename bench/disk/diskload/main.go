// Command diskload is the load generator of the disk benchmark: a closed
// loop of -conns connections, each sending its next request as soon as
// the previous one's body has arrived, for keys /o/SIZE/N of diskorigin
// drawn from a Zipf distribution. It prints one JSON line of what it
// measured.
//
//	diskload -url http://127.0.0.1:9301 -keys 32768 -size 16k -verify           # hits
//	diskload -url http://127.0.0.1:9301 -keys 32768 -size 16k -warm             # every key once
//	diskload -url http://127.0.0.1:9301 -keys 32768 -size 16k -fill-storm -rate 500
//	diskload -scrape http://127.0.0.1:9303      # a Weir node's disk and origin counters
//	diskload -count http://127.0.0.1:9300       # diskorigin's totals
//
// Modes:
//
//   - The default, hits: keys 0 to -keys-1 drawn from Zipf(-s) for
//     -duration. Latency is from sending a request to the last byte of
//     its body; with -pace R the connections share a schedule of R
//     requests a second and latency counts from each request's scheduled
//     time, so that a slow server is not excused by sending less.
//   - -warm: every key once, in a seeded shuffled order, -conns at a
//     time, bounded by -max-time.
//   - -fill-storm: the hit loop in the foreground while, in the
//     background, keys never asked before (from -storm-first up) are
//     requested at -rate a second by at most -storm-conns connections
//     of their own; a request due while all of them are busy is not sent
//     and counts as dropped. -rate 0 runs the foreground alone, the
//     idle baseline with the same parameters.
//
// Every response is classified by bench.Classify (Cache-Status, else
// X-Cache-Status as nginx is configured to send it); with -verify every
// body is compared with the content diskorigin derives from the path.
// Every request has the -timeout of its client; every loop ends by
// -duration or -max-time.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weir-cdn/weir/bench/disk/internal/body"
	"github.com/weir-cdn/weir/internal/bench"
)

// readChunk is the size of the reads a body is received (and checked) in.
const readChunk = 64 << 10

// scraped are the metrics -scrape reports, each summed over its series.
var scraped = []string{
	"weir_disk_objects",
	"weir_disk_bytes",
	"weir_disk_written_bytes_total",
	"weir_disk_admitted_bytes_total",
	bench.OriginMetric,
}

type config struct {
	base       string
	sizeText   string
	size       int64
	keys       int
	s          float64
	conns      int
	duration   time.Duration
	seed       uint64
	verify     bool
	timeout    time.Duration
	pace       float64
	maxTime    time.Duration
	rate       float64
	stormConns int
	stormFirst int64
	label      string
}

// stats accumulates what one stream of requests measured. It is safe for
// concurrent use.
type stats struct {
	hist     bench.Histogram
	requests atomic.Int64 // responses received and read, or failed
	errs     atomic.Int64 // transport errors, statuses other than 200, short bodies
	shed     atomic.Int64 // of errs, 503 responses (a cache shedding load)
	corrupt  atomic.Int64 // bodies whose bytes differ from the expected ones
	bytes    atomic.Int64 // body bytes received
	outcomes [8]atomic.Int64
	errOnce  sync.Once
	firstErr string
}

func (st *stats) fail(err error) {
	st.errs.Add(1)
	st.errOnce.Do(func() { st.firstErr = err.Error() })
}

// worker is one connection's state: its buffers, so that checking a body
// allocates nothing.
type worker struct {
	cfg      *config
	client   *http.Client
	buf, exp []byte
}

func newWorker(cfg *config, client *http.Client) *worker {
	return &worker{cfg: cfg, client: client, buf: make([]byte, readChunk), exp: make([]byte, readChunk)}
}

// fetch GETs key n, reads (and with -verify checks) its body and records
// the outcome in st, with the latency measured from since.
func (w *worker) fetch(ctx context.Context, n int64, st *stats, since time.Time) {
	path := body.Path(w.cfg.sizeText, n)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.base+path, nil)
	if err != nil {
		st.requests.Add(1)
		st.fail(err)
		return
	}
	resp, err := w.client.Do(req)
	if err != nil {
		st.requests.Add(1)
		st.fail(err)
		return
	}
	defer resp.Body.Close()
	seed := body.Seed(path)
	var got int64
	bad := false
	for {
		k, rerr := resp.Body.Read(w.buf)
		if k > 0 {
			if w.cfg.verify && !bad {
				if got+int64(k) > w.cfg.size {
					bad = true
				} else {
					body.Fill(w.exp[:k], seed, got)
					bad = !bytes.Equal(w.buf[:k], w.exp[:k])
				}
			}
			got += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	st.hist.Record(time.Since(since))
	st.requests.Add(1)
	st.bytes.Add(got)
	o, _ := bench.Classify(resp.Header)
	switch {
	case err != nil:
		st.fail(fmt.Errorf("GET %s: reading the body: %w", path, err))
	case resp.StatusCode != http.StatusOK:
		if resp.StatusCode == http.StatusServiceUnavailable {
			st.shed.Add(1)
		}
		st.fail(fmt.Errorf("GET %s: status %d", path, resp.StatusCode))
	case got != w.cfg.size:
		st.fail(fmt.Errorf("GET %s: %d body bytes, want %d", path, got, w.cfg.size))
	case bad:
		st.corrupt.Add(1)
		st.errOnce.Do(func() { st.firstErr = fmt.Sprintf("GET %s: the body differs from the origin's content", path) })
	default:
		if int(o) < len(st.outcomes) {
			st.outcomes[o].Add(1)
		}
	}
}

// newClient returns a client of at most conns connections to one server,
// every request bounded by timeout.
func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:          conns,
			MaxIdleConnsPerHost:   conns,
			MaxConnsPerHost:       conns,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: timeout,
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// hits runs the foreground loop: -conns workers drawing Zipf keys until
// -duration has passed (or ctx ends), and returns how long it ran.
func hits(ctx context.Context, cfg *config, st *stats) (time.Duration, error) {
	client := newClient(cfg.conns, cfg.timeout)
	defer client.CloseIdleConnections()
	zipfs := make([]*bench.Zipf, cfg.conns)
	for i := range zipfs {
		z, err := bench.NewZipf(cfg.seed+uint64(i)*7919, cfg.keys, cfg.s)
		if err != nil {
			return 0, err
		}
		zipfs[i] = z
	}
	start := time.Now()
	end := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for i := range cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(cfg, client)
			for j := int64(0); ctx.Err() == nil; j++ {
				since := time.Now()
				if cfg.pace > 0 {
					// Request j of worker i is the (j*conns+i)-th of the
					// shared schedule.
					due := start.Add(time.Duration(float64(j*int64(cfg.conns)+int64(i)) / cfg.pace * float64(time.Second)))
					if !due.Before(end) || !sleepUntil(ctx, due) {
						return
					}
					since = due
				} else if !since.Before(end) {
					return
				}
				w.fetch(ctx, int64(zipfs[i].Rank()), st, since)
			}
		}()
	}
	wg.Wait()
	return time.Since(start), nil
}

// warm fetches every key once, -conns at a time, in a shuffled order. It
// reports whether every key was fetched before -max-time.
func warm(ctx context.Context, cfg *config, st *stats) (time.Duration, bool) {
	client := newClient(cfg.conns, cfg.timeout)
	defer client.CloseIdleConnections()
	order := rand.New(rand.NewPCG(cfg.seed, 0x7761726d)).Perm(cfg.keys)
	var next atomic.Int64
	start := time.Now()
	end := start.Add(cfg.maxTime)
	var wg sync.WaitGroup
	for range min(cfg.conns, cfg.keys) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(cfg, client)
			for ctx.Err() == nil && time.Now().Before(end) {
				i := next.Add(1) - 1
				if i >= int64(len(order)) {
					return
				}
				w.fetch(ctx, int64(order[i]), st, time.Now())
			}
		}()
	}
	wg.Wait()
	return time.Since(start), next.Load() >= int64(len(order))
}

// storm requests keys never asked before at -rate a second, by at most
// -storm-conns connections, until stop is closed or ctx ends. It returns
// how many requests were due but not sent because every connection was
// busy and as many were already waiting.
func storm(ctx context.Context, cfg *config, st *stats, stop <-chan struct{}) int64 {
	client := newClient(cfg.stormConns, cfg.timeout)
	defer client.CloseIdleConnections()
	// A queue as long as the pool, so that a request that falls due while the
	// workers are between two requests is not dropped.
	jobs := make(chan int64, cfg.stormConns)
	var wg sync.WaitGroup
	for range cfg.stormConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(cfg, client)
			for n := range jobs {
				w.fetch(ctx, n, st, time.Now())
			}
		}()
	}
	var dropped int64
	start := time.Now()
	// The bound on i keeps the loop finite whatever stop and ctx do.
	limit := int64(cfg.rate*(cfg.duration.Seconds()+cfg.timeout.Seconds())) + 1
loop:
	for i := int64(0); i < limit; i++ {
		due := start.Add(time.Duration(float64(i) / cfg.rate * float64(time.Second)))
		t := time.NewTimer(time.Until(due))
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			break loop
		case <-ctx.Done():
			t.Stop()
			break loop
		}
		select {
		case jobs <- cfg.stormFirst + i:
		default:
			dropped++
		}
	}
	close(jobs)
	wg.Wait()
	return dropped
}

// sleepUntil waits until t, and reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// result is the JSON line diskload prints. Its fields are flat and
// numeric (but for mode, label, url and first_error) so that a shell
// script can read them.
type result struct {
	Mode          string  `json:"mode"`
	Label         string  `json:"label,omitempty"`
	URL           string  `json:"url"`
	Size          int64   `json:"size"`
	Keys          int     `json:"keys"`
	Conns         int     `json:"conns"`
	Pace          float64 `json:"pace"`
	Seconds       float64 `json:"seconds"`
	Complete      bool    `json:"complete"`
	Requests      int64   `json:"requests"`
	ReqPerS       float64 `json:"req_per_s"`
	P50ms         float64 `json:"p50_ms"`
	P90ms         float64 `json:"p90_ms"`
	P99ms         float64 `json:"p99_ms"`
	Maxms         float64 `json:"max_ms"`
	HitRatio      float64 `json:"hit_ratio"`
	Hits          int64   `json:"hits"`
	Misses        int64   `json:"misses"`
	OtherOutcomes int64   `json:"other_outcomes"`
	Errors        int64   `json:"errors"`
	Shed          int64   `json:"shed"`
	Corrupt       int64   `json:"corrupt"`
	Bytes         int64   `json:"bytes"`
	Verified      bool    `json:"verified"`
	FirstError    string  `json:"first_error,omitempty"`
	*stormResult
}

type stormResult struct {
	Rate     float64 `json:"storm_rate"`
	Sent     int64   `json:"storm_requests"`
	Dropped  int64   `json:"storm_dropped"`
	Errors   int64   `json:"storm_errors"`
	Shed     int64   `json:"storm_shed"`
	Corrupt  int64   `json:"storm_corrupt"`
	Misses   int64   `json:"storm_misses"`
	Bytes    int64   `json:"storm_bytes"`
	MiBPerS  float64 `json:"storm_mib_per_s"`
	P50ms    float64 `json:"storm_p50_ms"`
	P99ms    float64 `json:"storm_p99_ms"`
	FirstErr string  `json:"storm_first_error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (st *stats) fill(r *result, elapsed time.Duration) {
	r.Seconds = elapsed.Seconds()
	r.Requests = st.requests.Load()
	if r.Seconds > 0 {
		r.ReqPerS = float64(r.Requests) / r.Seconds
	}
	r.P50ms, r.P90ms, r.P99ms = ms(st.hist.Quantile(0.5)), ms(st.hist.Quantile(0.9)), ms(st.hist.Quantile(0.99))
	r.Maxms = ms(st.hist.Max())
	r.Hits = st.outcomes[bench.OutcomeHit].Load()
	r.Misses = st.outcomes[bench.OutcomeMiss].Load()
	var ok int64
	for i := range st.outcomes {
		ok += st.outcomes[i].Load()
	}
	r.OtherOutcomes = ok - r.Hits - r.Misses
	if ok > 0 {
		r.HitRatio = float64(r.Hits) / float64(ok)
	}
	r.Errors, r.Shed, r.Corrupt, r.Bytes = st.errs.Load(), st.shed.Load(), st.corrupt.Load(), st.bytes.Load()
	r.FirstError = st.firstErr
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "diskload:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var warmMode, stormMode bool
	var scrapeURL, countURL string
	flag.StringVar(&cfg.base, "url", "", "`base` URL of the cache (or origin), such as http://127.0.0.1:9301")
	flag.IntVar(&cfg.keys, "keys", 1000, "keys 0 to `N`-1 are asked for")
	flag.StringVar(&cfg.sizeText, "size", "16k", "object `size`: 16k, 1m, ... (binary units)")
	flag.Float64Var(&cfg.s, "s", 1.1, "Zipf `exponent` (> 1)")
	flag.IntVar(&cfg.conns, "conns", 64, "connections of the loop")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long the hit loop (and the storm) runs")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the key sequences")
	flag.BoolVar(&cfg.verify, "verify", false, "check every body against the origin's content")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout of each request")
	flag.Float64Var(&cfg.pace, "pace", 0, "requests a second the hit loop's connections share; 0: each sends as soon as it can")
	flag.BoolVar(&warmMode, "warm", false, "fetch every key once instead")
	flag.DurationVar(&cfg.maxTime, "max-time", 10*time.Minute, "bound of -warm")
	flag.BoolVar(&stormMode, "fill-storm", false, "run the hit loop while new keys are requested at -rate")
	flag.Float64Var(&cfg.rate, "rate", 100, "new keys a second of -fill-storm; 0: none (the idle baseline)")
	flag.IntVar(&cfg.stormConns, "storm-conns", 16, "connections of the -fill-storm's new keys")
	flag.Int64Var(&cfg.stormFirst, "storm-first", 1_000_000_000, "first key `N` of the -fill-storm")
	flag.StringVar(&cfg.label, "label", "", "free text copied into the output")
	flag.StringVar(&scrapeURL, "scrape", "", "print the disk and origin counters of the Weir admin listener at `URL` instead")
	flag.StringVar(&countURL, "count", "", "print the /count totals of the diskorigin at `URL` instead")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	switch {
	case scrapeURL != "":
		return scrape(ctx, scrapeURL, cfg.timeout)
	case countURL != "":
		return count(ctx, countURL, cfg.timeout)
	}
	var err error
	if cfg.size, err = body.ParseSize(cfg.sizeText); err != nil {
		return err
	}
	switch {
	case cfg.base == "" || !strings.Contains(cfg.base, "://"):
		return errors.New("-url: want the base URL of the server, such as http://127.0.0.1:9301")
	case cfg.keys < 1 || cfg.conns < 1 || cfg.stormConns < 1:
		return errors.New("-keys, -conns and -storm-conns: want at least 1")
	case cfg.duration <= 0 || cfg.timeout <= 0 || cfg.maxTime <= 0:
		return errors.New("-duration, -timeout and -max-time: want a positive duration")
	case cfg.pace < 0 || cfg.rate < 0:
		return errors.New("-pace and -rate: want 0 or more")
	case warmMode && stormMode:
		return errors.New("-warm and -fill-storm: choose one")
	}
	cfg.base = strings.TrimRight(cfg.base, "/")

	r := result{URL: cfg.base, Size: cfg.size, Keys: cfg.keys, Conns: cfg.conns, Pace: cfg.pace, Label: cfg.label, Verified: cfg.verify}
	var st stats
	switch {
	case warmMode:
		r.Mode = "warm"
		r.Pace = 0
		elapsed, complete := warm(ctx, &cfg, &st)
		r.Complete = complete
		st.fill(&r, elapsed)
	case stormMode:
		r.Mode = "fill-storm"
		var sst stats
		sr := &stormResult{Rate: cfg.rate}
		stop := make(chan struct{})
		done := make(chan int64, 1)
		if cfg.rate > 0 {
			go func() { done <- storm(ctx, &cfg, &sst, stop) }()
		} else {
			done <- 0
		}
		stormStart := time.Now()
		elapsed, err := hits(ctx, &cfg, &st)
		close(stop)
		sr.Dropped = <-done
		stormElapsed := time.Since(stormStart)
		if err != nil {
			return err
		}
		r.Complete = ctx.Err() == nil
		st.fill(&r, elapsed)
		var tmp result
		sst.fill(&tmp, stormElapsed)
		sr.Sent, sr.Errors, sr.Shed, sr.Corrupt, sr.Misses, sr.Bytes = tmp.Requests, tmp.Errors, tmp.Shed, tmp.Corrupt, tmp.Misses, tmp.Bytes
		sr.MiBPerS = float64(tmp.Bytes) / (1 << 20) / stormElapsed.Seconds()
		sr.P50ms, sr.P99ms, sr.FirstErr = tmp.P50ms, tmp.P99ms, tmp.FirstError
		r.stormResult = sr
	default:
		r.Mode = "hit"
		elapsed, err := hits(ctx, &cfg, &st)
		if err != nil {
			return err
		}
		r.Complete = ctx.Err() == nil
		st.fill(&r, elapsed)
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// get fetches u with a client bounded by timeout and returns its body,
// at most 16 MiB.
func get(ctx context.Context, u string, timeout time.Duration) ([]byte, error) {
	hc := &http.Client{Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return b, nil
}

// scrape prints, as one JSON object, the sum over its series of each of
// the scraped metrics of a Weir admin listener, null for those it does
// not export.
func scrape(ctx context.Context, admin string, timeout time.Duration) error {
	u := strings.TrimRight(admin, "/") + "/metrics"
	page, err := get(ctx, u, timeout)
	if err != nil {
		return err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return fmt.Errorf("%s: not a Prometheus text page: %w", u, err)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range scraped {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", name)
		mf, ok := families[name]
		if !ok {
			b.WriteString("null")
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		b.WriteString(strconv.FormatFloat(sum, 'f', -1, 64))
	}
	b.WriteByte('}')
	fmt.Println(b.String())
	return nil
}

// count prints diskorigin's /count totals as one JSON line.
func count(ctx context.Context, origin string, timeout time.Duration) error {
	page, err := get(ctx, strings.TrimRight(origin, "/")+"/count", timeout)
	if err != nil {
		return err
	}
	var totals map[string]int64
	if err := json.Unmarshal(page, &totals); err != nil {
		return fmt.Errorf("%s/count: %w", origin, err)
	}
	line, err := json.Marshal(totals)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}
