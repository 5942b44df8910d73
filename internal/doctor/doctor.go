// Package doctor names what limits a running Weir deployment: it reads
// each node's /status, /metrics and /debug/doctor (Collect), and turns
// them into findings ranked by the gain expected from the change each
// proposes (Analyze). `weir doctor` prints the report.
//
// Every finding's Gain is in one unit, so that findings of different
// kinds can be ranked: the share of all requests the change would
// improve, weighted by how much of their cost it removes. A fill that
// would have been a hit counts 1, a shed request that would have been
// served counts 1, a miss that would get faster counts the share of its
// time the change removes.
package doctor

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/status"
)

// The kinds of finding.
const (
	KindKeyVariation = "key-variation"
	KindUncacheable  = "uncacheable"
	KindMissTime     = "miss-time"
	KindShedding     = "shedding"
	KindHeadroom     = "headroom"
	KindCacheSize    = "cache-too-small"
	KindTieredFill   = "tiered-fill"
	KindNodeHitRatio = "node-hit-ratio"
)

// Finding is one thing that limits the deployment.
type Finding struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Node names the node it is about; "" means all nodes read.
	Node string `json:"node,omitempty"`
	// Site names the hosts entry it is about, when it is about one.
	Site string `json:"site,omitempty"`
	// What says what is wrong, in one sentence.
	What string `json:"what"`
	// Evidence are the numbers it rests on, one per line.
	Evidence []string `json:"evidence"`
	// Change is what to do; YAML, when set, the configuration it means.
	Change string `json:"change"`
	YAML   string `json:"yaml,omitempty"`
	// Effect is what the change is expected to do, in words; Gain the
	// same as a share of all requests (see the package documentation).
	Effect string  `json:"effect"`
	Gain   float64 `json:"gain"`
}

// Report is what the doctor found, the largest gain first.
type Report struct {
	Nodes []string `json:"nodes"`
	// Window is the sampling window the counters cover, 0 meaning since
	// each node started.
	Window   time.Duration `json:"window_ns"`
	Requests int64         `json:"requests"`
	// Findings are ranked by Gain, the largest first: Findings[0] is the
	// bottleneck.
	Findings []Finding `json:"findings"`
}

// Thresholds tune when a finding is made. The zero value of each field
// means its default.
type Thresholds struct {
	// MinGain drops findings whose gain is below it; default 0.01 (1 %
	// of requests).
	MinGain float64
	// SlowMiss is the mean miss time above which the time split of
	// misses is a finding; default 50ms.
	SlowMiss time.Duration
	// Headroom is the share of the concurrency limit to keep free for
	// spikes; default 0.25.
	Headroom float64
}

func (t Thresholds) withDefaults() Thresholds {
	t.MinGain = cmp.Or(t.MinGain, 0.01)
	t.SlowMiss = cmp.Or(t.SlowMiss, 50*time.Millisecond)
	t.Headroom = cmp.Or(t.Headroom, 0.25)
	return t
}

// Analyze turns what Collect read into a report. It is a pure function
// of its arguments.
func Analyze(nodes []Node, th Thresholds) Report {
	th = th.withDefaults()
	rep := Report{}
	for _, n := range nodes {
		rep.Nodes = append(rep.Nodes, n.Status.Node)
		rep.Requests += n.Requests.Requests
		rep.Window = n.Window
	}
	if rep.Requests <= 0 {
		return rep
	}
	total := float64(rep.Requests)
	var fs []Finding
	fs = append(fs, keyVariation(nodes, total)...)
	fs = append(fs, uncacheable(nodes, total)...)
	fs = append(fs, missTime(nodes, total, th)...)
	fs = append(fs, shedding(nodes, total, th)...)
	fs = append(fs, cacheSize(nodes, total)...)
	fs = append(fs, tieredFill(nodes, total)...)
	fs = append(fs, nodeHitRatio(nodes, total)...)
	for _, f := range fs {
		if f.Gain >= th.MinGain {
			rep.Findings = append(rep.Findings, f)
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Gain > rep.Findings[j].Gain })
	return rep
}

func pct(x float64) string { return fmt.Sprintf("%.1f %%", 100*x) }

// missShare is the share of all requests that were fills.
func missShare(nodes []Node, total float64) float64 {
	var m int64
	for _, n := range nodes {
		m += n.Requests.Misses - n.Requests.Collapsed
	}
	return min(1, float64(max(m, 0))/total)
}

// siteRules returns the hosts entry named name in the nodes' documents.
func siteRules(nodes []Node, name string) status.DoctorSite {
	for _, n := range nodes {
		for _, s := range n.Doctor.Sites {
			if s.Name == name {
				return s
			}
		}
	}
	return status.DoctorSite{Index: -1, Name: name}
}

// hostsPath names a hosts entry's setting, as hosts[i].key.drop_params.
func hostsPath(s status.DoctorSite, field string) string {
	if s.Index < 0 {
		return "hosts[?]." + field
	}
	return fmt.Sprintf("hosts[%d].%s", s.Index, field)
}

// hostsYAML writes a hosts entry with its match and the given lines.
func hostsYAML(s status.DoctorSite, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hosts:\n  - match: [%q]   # hosts[%d]; keep its other settings\n", s.Name, max(s.Index, 0))
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// sampledFill is a fill of the nodes' samples with its query parsed.
type sampledFill struct {
	site, host, path, extra string
	params                  url.Values
	hash                    uint64
}

// keyVariation finds query parameters whose values never change the
// body: across the sampled fills of one site, host and path whose other
// parameters and key fields agree, fills that differ in the parameter
// and carry the same body. It proposes dropping them from the key and
// predicts the fills that would have been hits.
func keyVariation(nodes []Node, total float64) []Finding {
	bySite := map[string][]sampledFill{}
	for _, n := range nodes {
		for _, f := range n.Doctor.Fills {
			q, err := url.ParseQuery(f.Query)
			if err != nil {
				continue
			}
			bySite[f.Site] = append(bySite[f.Site], sampledFill{site: f.Site, host: f.Host, path: f.Path,
				extra: strings.Join(f.Extra, "\x00"), params: q, hash: f.BodyHash})
		}
	}
	share := missShare(nodes, total)
	out := keyHeaders(nodes, bySite, share)
	for _, name := range sortedKeys(bySite) {
		fills := bySite[name]
		names := map[string]bool{}
		for _, f := range fills {
			for p := range f.params {
				names[p] = true
			}
		}
		var idle []string
		for _, p := range sortedKeys(names) {
			if saved, varies := dropSaves(fills, []string{p}); !varies && saved > 0 {
				idle = append(idle, p)
			}
		}
		if len(idle) == 0 {
			continue
		}
		saved, _ := dropSaves(fills, idle)
		frac := float64(saved) / float64(len(fills))
		s := siteRules(nodes, name)
		drop := append(slices.Clone(s.DropParams), globOf(idle)...)
		f := Finding{
			Kind: KindKeyVariation, Site: name,
			What: fmt.Sprintf("the cache key of hosts entry %q varies on query parameters that never change the body: %s", name, strings.Join(idle, ", ")),
			Evidence: []string{
				fmt.Sprintf("%d of %d sampled fills differ from another fill of the same path only in %s, with the same body (xxhash)", saved, len(fills), strings.Join(idle, ", ")),
				fmt.Sprintf("fills are %s of requests", pct(share)),
			},
			Change: fmt.Sprintf("drop them from the key with %s", hostsPath(s, "key.drop_params")),
			YAML:   hostsYAML(s, "key:", "  drop_params: ["+strings.Join(drop, ", ")+"]"),
			Gain:   frac * share,
		}
		if len(idle) == len(names) {
			f.Change += fmt.Sprintf(" (no parameter seen changes the body: %s: true would do as well, if that holds for all its URLs)", hostsPath(s, "key.ignore_query"))
		}
		f.Effect = fmt.Sprintf("%s of fills would be hits: hit ratio up by about %s of requests", pct(frac), pct(f.Gain))
		out = append(out, f)
	}
	return out
}

// keyHeaders finds the request fields of key.headers (and cookies of
// key.cookies) whose values never change the body, as keyVariation does
// for query parameters, and proposes the key without them.
func keyHeaders(nodes []Node, bySite map[string][]sampledFill, share float64) []Finding {
	var out []Finding
	for _, name := range sortedKeys(bySite) {
		// The key's fields play the parameters' part, the query the
		// rest of the key's.
		var fills []sampledFill
		names := map[string]bool{}
		for _, f := range bySite[name] {
			hf := sampledFill{site: f.site, host: f.host, path: f.path, extra: f.params.Encode(), params: url.Values{}, hash: f.hash}
			for _, e := range strings.Split(f.extra, "\x00") {
				if e == "" {
					continue
				}
				k, v, _ := strings.Cut(e, "=")
				k = strings.TrimSuffix(k, " (absent)")
				hf.params[k] = append(hf.params[k], v)
				names[k] = true
			}
			fills = append(fills, hf)
		}
		s := siteRules(nodes, name)
		var idle []string
		for _, h := range sortedKeys(names) {
			if saved, varies := dropSaves(fills, []string{h}); !varies && saved > 0 && keysHeader(s, h) {
				idle = append(idle, h)
			}
		}
		if len(idle) == 0 {
			continue
		}
		saved, _ := dropSaves(fills, idle)
		frac := float64(saved) / float64(len(fills))
		var keep []string
		for _, h := range s.Headers {
			if !slices.Contains(idle, strings.ToLower(h)) {
				keep = append(keep, h)
			}
		}
		f := Finding{
			Kind: KindKeyVariation, Site: name,
			What: fmt.Sprintf("the cache key of hosts entry %q varies on request fields that never change the body: %s", name, strings.Join(idle, ", ")),
			Evidence: []string{
				fmt.Sprintf("%d of %d sampled fills differ from another fill of the same URL only in %s, with the same body (xxhash)", saved, len(fills), strings.Join(idle, ", ")),
				fmt.Sprintf("fills are %s of requests", pct(share)),
			},
			Change: fmt.Sprintf("take them out of %s", hostsPath(s, "key.headers")),
			YAML:   hostsYAML(s, "key:", "  headers: ["+strings.Join(keep, ", ")+"]"),
			Gain:   frac * share,
		}
		f.Effect = fmt.Sprintf("%s of fills would be hits: hit ratio up by about %s of requests", pct(frac), pct(f.Gain))
		out = append(out, f)
	}
	return out
}

// keysHeader reports whether name (lower case, as the key holds it) is
// one of the site's key.headers; cookies are left alone, since their
// values are rarely the same for everyone.
func keysHeader(s status.DoctorSite, name string) bool {
	for _, h := range s.Headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// dropSaves groups fills by what their key would be without the params
// drop and reports how many fills a key without them would have saved,
// and whether any group holds different bodies (one of them changes the
// body).
func dropSaves(fills []sampledFill, drop []string) (saved int, varies bool) {
	type group struct {
		hashes map[uint64]bool
		keys   map[string]bool
		n      int
	}
	groups := map[string]*group{}
	for _, f := range fills {
		has := false
		rest := url.Values{}
		for k, v := range f.params {
			if slices.Contains(drop, k) {
				has = true
				continue
			}
			rest[k] = v
		}
		if !has {
			continue
		}
		k := f.host + "\x00" + f.path + "\x00" + rest.Encode() + "\x00" + f.extra
		g := groups[k]
		if g == nil {
			g = &group{hashes: map[uint64]bool{}, keys: map[string]bool{}}
			groups[k] = g
		}
		g.n++
		g.hashes[f.hash] = true
		g.keys[f.params.Encode()] = true
	}
	for _, g := range groups {
		if len(g.keys) < 2 {
			continue // the parameter never varied here
		}
		if len(g.hashes) > 1 {
			return 0, true
		}
		saved += g.n - 1
	}
	return saved, false
}

// globOf returns names, or one "prefix_*" glob when they all share a
// prefix up to an underscore (utm_source, utm_medium: utm_*).
func globOf(names []string) []string {
	if len(names) < 2 {
		return names
	}
	i := strings.IndexByte(names[0], '_')
	if i <= 0 {
		return names
	}
	prefix := names[0][:i+1]
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			return names
		}
	}
	return []string{prefix + "*"}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// fixes says, for each reason a response is not stored, what would
// store it.
var fixes = map[string]struct{ change, yaml string }{
	"set-cookie":   {"the origin sets cookies on these responses; stop it there (best), or store them with the cookie removed: %s", "store_set_cookie: true"},
	"no-store":     {"the origin marks these responses no-store; if they are not personal, let the origin send Cache-Control: public, max-age=N, or give them a TTL with an edge rule's cache settings (%s)", ""},
	"private":      {"the origin marks these responses private; if they are not personal, let the origin send Cache-Control: public, max-age=N, or give them a TTL with an edge rule's cache settings (%s)", ""},
	"no-freshness": {"these responses carry neither freshness nor validators; let the origin send Cache-Control: max-age=N (or an ETag), or set a default TTL for them (%s)", ""},
	"vary-star":    {"the origin sends Vary: *, which no cache may reuse; let it name the fields it varies on (%s)", ""},
}

// uncacheable finds the site and path prefixes whose responses are not
// stored, by reason, counting the fills and the passes their
// hit-for-pass markers caused.
func uncacheable(nodes []Node, total float64) []Finding {
	type k struct{ site, prefix string }
	lost := map[k]int64{}
	reasons := map[k]map[string]int64{}
	for _, n := range nodes {
		for _, u := range n.Uncacheable {
			key := k{u.Site, u.Prefix}
			lost[key] += u.Count
			if u.Reason != "hit-for-pass" {
				if reasons[key] == nil {
					reasons[key] = map[string]int64{}
				}
				reasons[key][u.Reason] += u.Count
			}
		}
	}
	var out []Finding
	for key, n := range lost {
		rs := reasons[key]
		if len(rs) == 0 {
			continue
		}
		top := ""
		for _, r := range sortedKeys(rs) {
			if top == "" || rs[r] > rs[top] {
				top = r
			}
		}
		fix, ok := fixes[top]
		if !ok {
			continue // too-large, status, error-over-stale: not a key or policy fault
		}
		s := siteRules(nodes, key.site)
		var ev []string
		for _, r := range sortedKeys(rs) {
			ev = append(ev, fmt.Sprintf("%d responses under %s not stored: %s", rs[r], key.prefix, r))
		}
		if hfp := n - sumValues(rs); hfp > 0 {
			ev = append(ev, fmt.Sprintf("%d more requests passed to the origin by the hit-for-pass markers they left", hfp))
		}
		ev = append(ev, fmt.Sprintf("%s of all requests", pct(float64(n)/total)))
		f := Finding{
			Kind: KindUncacheable, Site: key.site,
			What:     fmt.Sprintf("responses under %s of hosts entry %q are not cached (%s)", key.prefix, key.site, top),
			Evidence: ev,
			Gain:     float64(n) / total,
		}
		if fix.yaml != "" {
			f.Change = fmt.Sprintf(fix.change, hostsPath(s, fix.yaml[:strings.IndexByte(fix.yaml, ':')]))
			f.YAML = hostsYAML(s, fix.yaml)
		} else {
			f.Change = fmt.Sprintf(fix.change, hostsPath(s, "rules"))
		}
		f.Effect = fmt.Sprintf("up to %s of requests served from the cache instead of the origin", pct(f.Gain))
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].What < out[j].What })
	return out
}

func sumValues(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

// missTime splits the time of misses into its phases and, when misses
// are slow, names the phase that dominates.
func missTime(nodes []Node, total float64, th Thresholds) []Finding {
	var limiter, coalesce, peer, origin, body, fill, collapsed int64
	var fills int64
	for _, n := range nodes {
		m := n.Misses
		limiter += int64(m.Limiter.Total)
		coalesce += int64(m.Coalesce.Total)
		collapsed += m.Coalesce.Count
		peer += int64(m.PeerHop.Total)
		origin += int64(m.Origin.Total)
		body += int64(m.Body.Total)
		fill += int64(m.FillTotal.Total)
		fills += m.FillTotal.Count
	}
	if fills == 0 {
		return nil
	}
	mean := time.Duration(fill / fills)
	if mean < th.SlowMiss {
		return nil
	}
	phases := []struct {
		name string
		t    int64
	}{{"origin wait (to the response header)", origin}, {"body transfer", body}, {"peer hop", peer}, {"limiter", limiter}}
	sum := origin + body + peer + limiter
	if sum <= 0 {
		return nil
	}
	sort.SliceStable(phases, func(i, j int) bool { return phases[i].t > phases[j].t })
	top := phases[0]
	share := float64(top.t) / float64(sum)
	ev := []string{fmt.Sprintf("%d fills, %v each on average", fills, mean.Round(time.Millisecond))}
	for _, p := range phases {
		ev = append(ev, fmt.Sprintf("%s: %s of fill time", p.name, pct(float64(p.t)/float64(sum))))
	}
	if collapsed > 0 {
		ev = append(ev, fmt.Sprintf("%d requests waited for another's fill, %v each on average", collapsed, time.Duration(coalesce/collapsed).Round(time.Millisecond)))
	}
	for _, n := range nodes {
		if n.Metrics.OriginRequests > 0 {
			ev = append(ev, fmt.Sprintf("%s: origin latency %v mean over %.0f origin requests (weir_origin_request_duration_seconds)", n.Status.Node, n.Metrics.OriginLatency.Round(time.Millisecond), n.Metrics.OriginRequests))
		}
	}
	f := Finding{Kind: KindMissTime, Evidence: ev}
	switch top.t {
	case origin:
		f.What = fmt.Sprintf("misses are slow (%v) and the origin's wait is %s of their time", mean.Round(time.Millisecond), pct(share))
		f.Change = "make the origin answer sooner (more origin capacity, a closer origin), or make fewer requests reach it: longer TTLs (Cache-Control max-age, stale-while-revalidate so that refreshes happen in the background), and a cluster so that each object is fetched once"
	case body:
		f.What = fmt.Sprintf("misses are slow (%v) and the body's transfer is %s of their time", mean.Round(time.Millisecond), pct(share))
		f.Change = "bodies arrive slowly from the origin: check the bandwidth between the edge and the origin, and let the origin compress (Accept-Encoding is forwarded normalized)"
	case peer:
		f.What = fmt.Sprintf("misses are slow (%v) and the hop to the key's owner is %s of their time", mean.Round(time.Millisecond), pct(share))
		f.Change = "the peers answer slowly: check the network between the members and their load (cluster.peer_timeout bounds the hop)"
	default:
		f.What = fmt.Sprintf("misses are slow (%v) and asking the concurrency limit is %s of their time", mean.Round(time.Millisecond), pct(share))
		f.Change = "the limiter itself is slow: report it, this should not happen"
	}
	// The change is assumed to halve the phase.
	f.Gain = missShare(nodes, total) * share * 0.5
	f.Effect = fmt.Sprintf("halving it makes misses about %v faster (%s of requests are misses)", time.Duration(float64(mean)*share*0.5).Round(time.Millisecond), pct(missShare(nodes, total)))
	return []Finding{f}
}

// shedding reports origin work the concurrency limit refused, and a
// limit running with less headroom than th.Headroom.
func shedding(nodes []Node, total float64, th Thresholds) []Finding {
	var out []Finding
	for _, n := range nodes {
		ov := n.Status.Overload
		shed := n.Requests.Shed
		if ov == nil {
			continue
		}
		var capEv string
		latency := cmp.Or(n.Metrics.Baseline, n.Metrics.OriginLatency)
		if latency > 0 && ov.Limit > 0 {
			capacity := float64(ov.Limit) / latency.Seconds()
			capEv = fmt.Sprintf("capacity by Little's law: limit %d / latency %v = %.0f origin requests/s", ov.Limit, latency.Round(time.Millisecond), capacity)
		}
		if shed > 0 {
			ev := []string{
				fmt.Sprintf("%d of %d requests shed (503) by the origin concurrency limit (%s)", shed, n.Requests.Requests, pct(float64(shed)/float64(max(n.Requests.Requests, 1)))),
				fmt.Sprintf("limit %d (mode %s), %d in flight now", ov.Limit, ov.Mode, ov.InFlight),
			}
			if capEv != "" {
				ev = append(ev, capEv)
			}
			want := 2 * max(ov.Limit, 1)
			f := Finding{
				Kind: KindShedding, Node: n.Status.Node,
				What:     fmt.Sprintf("%s sheds origin work: its concurrency limit is reached", n.Status.Node),
				Evidence: ev,
				Gain:     float64(shed) / total,
			}
			switch ov.Mode {
			case "fixed":
				f.Change = fmt.Sprintf("the limit is fixed at %d: raise overload.concurrency.initial if the origin can take more (or let it adapt: mode adaptive), else add origin capacity; caching more also takes work off the origin", ov.Limit)
				f.YAML = fmt.Sprintf("overload:\n  concurrency:\n    mode: fixed\n    initial: %d\n", want)
			default:
				f.Change = "the adaptive limit stays low because the origin's latency rises under this load: add origin capacity, or cache more so that fewer requests need it; if the limit sits at overload.concurrency.max, raise max"
				f.YAML = fmt.Sprintf("overload:\n  concurrency:\n    max: %d\n", max(want, 2048))
			}
			f.Effect = fmt.Sprintf("%s of requests served instead of refused", pct(f.Gain))
			out = append(out, f)
			continue
		}
		if ov.Limit > 0 && float64(ov.InFlight) > float64(ov.Limit)*(1-th.Headroom) {
			ev := []string{fmt.Sprintf("%d in flight of a limit of %d: %s headroom, want %s for spikes", ov.InFlight, ov.Limit, pct(1-float64(ov.InFlight)/float64(ov.Limit)), pct(th.Headroom))}
			if capEv != "" {
				ev = append(ev, capEv)
			}
			out = append(out, Finding{
				Kind: KindHeadroom, Node: n.Status.Node,
				What:     fmt.Sprintf("%s runs close to its origin concurrency limit", n.Status.Node),
				Evidence: ev,
				Change:   "add origin capacity or raise overload.concurrency.max before a spike sheds requests",
				Effect:   "no request shed yet: this protects the next spike",
				Gain:     th.MinGain, // a warning, ranked last among the findings kept
			})
		}
	}
	return out
}

// cacheSize reports a store too small for the working set: misses on
// keys whose copy would still have been fresh (the ghost keys), with
// evictions against inserts.
func cacheSize(nodes []Node, total float64) []Finding {
	var out []Finding
	for _, n := range nodes {
		g := n.Ghost
		if g.GhostHits == 0 || n.Evictions == 0 {
			continue
		}
		c := n.Status.Cache
		ev := []string{
			fmt.Sprintf("%d evictions for %d objects stored (%s)", n.Evictions, g.Inserts, pct(float64(n.Evictions)/float64(max(g.Inserts, 1)))),
			fmt.Sprintf("%d misses on keys stored earlier whose copy would still be fresh (%d bytes)", g.GhostHits, g.GhostBytes),
			fmt.Sprintf("cache %d of %d bytes used; the fresh working set seen is %d bytes of bodies", c.Bytes, c.MaxBytes, g.FreshBytes),
		}
		if n.Status.Cache.Purged > 0 {
			ev = append(ev, fmt.Sprintf("%d objects were purged: misses after a purge count here too", n.Status.Cache.Purged))
		}
		want := max(2*c.MaxBytes, g.FreshBytes*3/2)
		want = (want + mib - 1) / mib * mib
		f := Finding{
			Kind: KindCacheSize, Node: n.Status.Node,
			What:     fmt.Sprintf("the cache of %s is too small for its working set: it evicts objects that are asked for again while fresh", n.Status.Node),
			Evidence: ev,
			Change:   fmt.Sprintf("raise cache.max_size to at least %s (the fresh working set and a half, or twice the current bound)", sizeString(want)),
			YAML:     fmt.Sprintf("cache:\n  max_size: %s\n", sizeString(want)),
			Gain:     float64(g.GhostHits) / total,
		}
		f.Effect = fmt.Sprintf("%s of requests would be hits", pct(f.Gain))
		out = append(out, f)
	}
	return out
}

const mib = 1 << 20

func sizeString(b int64) string {
	if b%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", b>>30)
	}
	return fmt.Sprintf("%dMiB", b/mib)
}

// tieredFill reports nodes that fill the same objects from the origin
// each on its own (not a cluster), and a cluster whose peer fills fall
// back to the origin.
func tieredFill(nodes []Node, total float64) []Finding {
	var out []Finding
	var fallbacks, peerFills int64
	clustered := 0
	for _, n := range nodes {
		fallbacks += n.Requests.PeerFallbacks
		peerFills += n.Requests.PeerFills
		if n.Status.Cluster != nil {
			clustered++
		}
	}
	if fallbacks > 0 {
		out = append(out, Finding{
			Kind:     KindTieredFill,
			What:     "tiered fill is ineffective: fills meant for the key's owner go to the origin because the owner does not answer",
			Evidence: []string{fmt.Sprintf("%d peer fills fell back to the origin, %d were answered by the owner", fallbacks, peerFills)},
			Change:   "check the members' peer listeners and the network between them (cluster.peer_listen, cluster.peer_timeout), and the peer breakers in /status",
			Effect:   "each fallback is an origin request another member would have saved",
			Gain:     float64(fallbacks) / total,
		})
	}
	tiered := 0
	for _, n := range nodes {
		if n.Doctor.TieredFill {
			tiered++
		}
	}
	if len(nodes) > 1 && tiered < len(nodes) {
		// Standalone nodes: the same object filled by several of them.
		seen := map[string]map[string]bool{}
		for _, n := range nodes {
			for _, f := range n.Doctor.Fills {
				k := f.Host + f.Path + "?" + f.Query
				if seen[k] == nil {
					seen[k] = map[string]bool{}
				}
				seen[k][n.Status.Node] = true
			}
		}
		dup, all := 0, 0
		for _, ns := range seen {
			all += len(ns)
			dup += len(ns) - 1
		}
		if dup > 0 {
			frac := float64(dup) / float64(all)
			what, change, yaml := "tiered fill is off: the nodes are not a cluster, so each fills the same objects from the origin",
				"join the nodes into a cluster (cluster.listen, cluster.peer_listen, cluster.join, a shared cluster.key_file): each object is then fetched from the origin by its owner alone",
				"cluster:\n  listen: 0.0.0.0:7946\n  peer_listen: 0.0.0.0:7947\n  join: [OTHER-NODE:7946]\n  key_file: /etc/weir/cluster.key\n"
			if clustered == len(nodes) {
				what, change, yaml = "tiered fill is off: the members fill the same objects from the origin each on its own",
					"turn cluster.tiered_fill on: a miss then asks the key's owner before the origin", "cluster:\n  tiered_fill: true\n"
			}
			f := Finding{
				Kind:     KindTieredFill,
				What:     what,
				Evidence: []string{fmt.Sprintf("%d of %d sampled fills were of objects another node also filled", dup, all), fmt.Sprintf("%d of %d nodes are cluster members, %d with tiered fill", clustered, len(nodes), tiered)},
				Change:   change,
				YAML:     yaml,
				Gain:     frac * missShare(nodes, total),
			}
			f.Effect = fmt.Sprintf("%s of fills saved at the origin", pct(frac))
			out = append(out, f)
		}
	}
	return out
}
