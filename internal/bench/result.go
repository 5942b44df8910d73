package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what a run measured. Its JSON field names are stable: scripts
// read them (docs/benchmarks.md lists them). Durations are in
// milliseconds (float, to the microsecond), rates per second.
type Result struct {
	// Targets are the URLs the run round-robined over.
	Targets []string `json:"targets"`
	// Config is the run's configuration, defaults filled in.
	Config ResultConfig `json:"config"`
	// ElapsedMS runs from the first scheduled request to the last
	// response.
	ElapsedMS float64 `json:"elapsed_ms"`
	// Scheduled counts the requests the schedule called for: Sent plus
	// the ones dropped as overload_client.
	Scheduled int64 `json:"scheduled"`
	// Sent counts the requests handed to a worker.
	Sent int64 `json:"sent"`
	// SentByKind counts Sent by kind: hit, miss, pass, purge.
	SentByKind map[string]int64 `json:"sent_by_kind"`
	// Answered counts the complete responses, whatever their status.
	Answered int64 `json:"answered"`
	// Canceled counts the requests cut short by an interrupt (Ctrl-C).
	Canceled int64 `json:"canceled"`
	// Bytes counts the response body bytes read.
	Bytes int64 `json:"bytes"`
	// AchievedRate is Answered per second of ElapsedMS.
	AchievedRate float64 `json:"achieved_rate"`
	// Latency summarises the complete responses' latencies, from each
	// request's scheduled time to its response's last byte.
	Latency Latency `json:"latency_ms"`
	// Cache is what the caches said they did with the GETs.
	Cache CacheResult `json:"cache"`
	// Origin is the work that reached the origins.
	Origin OriginResult `json:"origin"`
	// Status counts the complete responses by status code.
	Status map[string]int64 `json:"status"`
	// Errors counts failures by kind (see ErrorKind): connect, timeout,
	// reset, status_4xx, status_5xx, overload_client, other, and their
	// total.
	Errors map[string]int64 `json:"errors"`
}

// ResultConfig is Config as the Result reports it.
type ResultConfig struct {
	Rate        float64 `json:"rate"`
	DurationMS  float64 `json:"duration_ms"`
	Requests    int64   `json:"requests"`
	Concurrency int     `json:"concurrency"`
	Keys        int     `json:"keys"`
	ZipfS       float64 `json:"zipf_s"`
	Mix         string  `json:"mix"`
	TimeoutMS   float64 `json:"timeout_ms"`
	Seed        uint64  `json:"seed"`
}

// Latency is the latency summary of a run, in milliseconds; the
// percentiles are within 0.4% (see Histogram), Min, Max and Mean exact.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// CacheResult counts the responses to GETs by Outcome.
type CacheResult struct {
	Hit         int64 `json:"hit"`
	Stale       int64 `json:"stale"`
	Revalidated int64 `json:"revalidated"`
	Miss        int64 `json:"miss"`
	Pass        int64 `json:"pass"`
	Unknown     int64 `json:"unknown"`
	// HitRatio is (Hit + Stale) / (Hit + Stale + Revalidated + Miss): the
	// share of cache lookups answered from storage without waiting for
	// the origin, or null when there were none (or no response said).
	// Passes and unknown responses are no lookups and count in neither.
	HitRatio *float64 `json:"hit_ratio"`
	// Sources counts the classified responses by the header Classify read:
	// cache-status, x-cache-status, x-cache, x-varnish, age or none.
	Sources map[string]int64 `json:"sources"`
}

// OriginResult is the work that reached the origins.
type OriginResult struct {
	// Known is whether Requests was read (from the Weir admin APIs given
	// with --admin).
	Known bool `json:"known"`
	// Requests is how many requests the origins served during the run,
	// or null when unknown.
	Requests *int64 `json:"requests"`
	// DistinctObjects counts the distinct objects the GETs asked for
	// (hit keys and miss keys).
	DistinctObjects int64 `json:"distinct_objects"`
	// RequestsPerObject is Requests / DistinctObjects, or null when
	// either is unknown or 0. Each object fetched once makes it 1;
	// passes, which always reach the origin, and purged objects fetched
	// again add to it.
	RequestsPerObject *float64 `json:"requests_per_object"`
	// Error says why Requests is unknown after an attempt to read it.
	Error string `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func resultConfig(c *Config) ResultConfig {
	return ResultConfig{Rate: c.Rate, DurationMS: ms(c.Duration), Requests: c.Requests, Concurrency: c.Concurrency,
		Keys: c.Keys, ZipfS: c.ZipfS, Mix: c.Mix.String(), TimeoutMS: ms(c.Timeout), Seed: c.Seed}
}

// fill copies the run's counters into res.
func (res *Result) fill(r *run, elapsed time.Duration, scheduled int64, byKind [numKinds]int64, distinct int64) {
	res.ElapsedMS = ms(elapsed)
	res.Scheduled, res.Sent, res.Answered = scheduled, r.sent.Load(), r.answered.Load()
	res.Canceled, res.Bytes = r.canceled.Load(), r.bytes.Load()
	res.SentByKind = map[string]int64{}
	for k, n := range byKind {
		res.SentByKind[Kind(k).String()] = n
	}
	if elapsed > 0 {
		res.AchievedRate = math.Round(float64(res.Answered)/elapsed.Seconds()*10) / 10
	}
	h := &r.latency
	res.Latency = Latency{Count: h.Count(), Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)),
		P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
	c := &res.Cache
	c.Hit, c.Stale, c.Miss = r.outcomes[OutcomeHit].Load(), r.outcomes[OutcomeStale].Load(), r.outcomes[OutcomeMiss].Load()
	c.Revalidated = r.outcomes[OutcomeRevalidated].Load()
	c.Pass, c.Unknown = r.outcomes[OutcomePass].Load(), r.outcomes[OutcomeUnknown].Load()
	if lookups := c.Hit + c.Stale + c.Revalidated + c.Miss; lookups > 0 {
		ratio := float64(c.Hit+c.Stale) / float64(lookups)
		c.HitRatio = &ratio
	}
	c.Sources = map[string]int64{}
	for s := range r.sources {
		if n := r.sources[s].Load(); n > 0 {
			c.Sources[Source(s).String()] = n
		}
	}
	res.Origin.DistinctObjects = distinct
	res.Status = map[string]int64{}
	for code := range r.status {
		if n := r.status[code].Load(); n > 0 {
			res.Status[strconv.Itoa(code)] = n
		}
	}
	res.Errors = map[string]int64{}
	var total int64
	for k := range r.errors {
		n := r.errors[k].Load()
		res.Errors[ErrorKind(k).String()] = n
		total += n
	}
	res.Errors["total"] = total
}

// WriteText writes res for a person to read.
func (res *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	c := res.Config
	fmt.Fprintf(&b, "weir bench: %s against %s at %g/s (mix %s; %d keys, zipf s=%g)\n",
		time.Duration(res.ElapsedMS*1e6).Round(time.Millisecond), plural(len(res.Targets), "URL"), c.Rate, c.Mix, c.Keys, c.ZipfS)
	fmt.Fprintf(&b, "  requests  %d scheduled, %d sent, %d answered: %.1f/s achieved", res.Scheduled, res.Sent, res.Answered, res.AchievedRate)
	if res.Canceled > 0 {
		fmt.Fprintf(&b, ", %d cut short by the interrupt", res.Canceled)
	}
	b.WriteByte('\n')
	l := res.Latency
	fmt.Fprintf(&b, "  latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (from each request's scheduled time)\n",
		msText(l.P50), msText(l.P90), msText(l.P99), msText(l.P999), msText(l.Max))
	ch := res.Cache
	ratio := "unknown (no response said hit or miss)"
	if ch.HitRatio != nil {
		ratio = fmt.Sprintf("%.1f%%", *ch.HitRatio*100)
	}
	fmt.Fprintf(&b, "  cache     hit ratio %s: hit %d, stale %d; revalidated %d, miss %d; pass %d, unknown %d",
		ratio, ch.Hit, ch.Stale, ch.Revalidated, ch.Miss, ch.Pass, ch.Unknown)
	if len(ch.Sources) > 0 {
		fmt.Fprintf(&b, " (read from %s)", mapText(ch.Sources))
	}
	b.WriteByte('\n')
	o := res.Origin
	switch {
	case o.Requests != nil:
		per := "n/a"
		if o.RequestsPerObject != nil {
			per = fmt.Sprintf("%.2f", *o.RequestsPerObject)
		}
		fmt.Fprintf(&b, "  origin    %d requests for %d distinct objects: %s per object\n", *o.Requests, o.DistinctObjects, per)
	case o.Error != "":
		fmt.Fprintf(&b, "  origin    unknown: %s (%d distinct objects asked for)\n", o.Error, o.DistinctObjects)
	default:
		fmt.Fprintf(&b, "  origin    unknown: give --admin with a Weir node's admin URL to count origin requests (%d distinct objects asked for)\n", o.DistinctObjects)
	}
	fmt.Fprintf(&b, "  status    %s\n", mapText(res.Status))
	if res.Errors["total"] == 0 {
		b.WriteString("  errors    none\n")
	} else {
		var parts []string
		for k := range numErrorKinds {
			if n := res.Errors[k.String()]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, n))
			}
		}
		fmt.Fprintf(&b, "  errors    %d: %s\n", res.Errors["total"], strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ProgressLine is the one-line progress report of p.
func ProgressLine(p Progress) string {
	return fmt.Sprintf("bench: %4.0fs  sent %d  %.0f/s  p99 %s  errors %d",
		p.Elapsed.Seconds(), p.Sent, p.Rate(), msText(ms(p.P99)), p.Errors)
}

func msText(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(v, 'f', 3, 64) + "ms"
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// mapText writes counts as "k n, k n" in key order (status codes sort as
// numbers, being all three digits).
func mapText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
