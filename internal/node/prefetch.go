package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// HotPath is the member read that lists the hottest keys a member holds
// for another (GET /_weir/hot?owner=NAME&limit=N), served on the peer
// listener behind the cluster's authentication.
const HotPath = "/_weir/hot"

// Bounds of the hot-key read and of the pre-fetch.
const (
	// defaultHotLimit and maxHotLimit bound the keys one answer lists.
	defaultHotLimit = config.DefaultPrefetchKeys
	maxHotLimit     = config.MaxPrefetchKeys
	// hotScanFactor times the limit is how many of the store's hottest
	// objects a read looks at, at most maxHotScan: the asker owns only
	// its share of them (about one in every member count), and
	// variants of one URL count once.
	hotScanFactor = 16
	maxHotScan    = 200_000
	// maxHotKeyBytes bounds a key listed or accepted; longer keys are
	// left out.
	maxHotKeyBytes = 4096
	// hotEntryBytes bounds the size of one key's entry in an answer the
	// asker reads: limit of them bound the whole.
	hotEntryBytes = 2*maxHotKeyBytes + 64
	// prefetchWorkers is how many keys are fetched at once.
	prefetchWorkers = 8
)

// HotKeys is the answer to GET /_weir/hot: the hottest keys the member
// Node holds whose owner, in its view of the ring with Owner in it, is
// Owner, hottest first.
type HotKeys struct {
	Node  string   `json:"node"`
	Owner string   `json:"owner"`
	Keys  []HotKey `json:"keys"`
}

// HotKey is one key of HotKeys: the primary cache key, which is the
// URL as the key rules make it (scheme, host, path and query), and its
// host. Varies says the URL's responses vary (a Vary index): the asker
// fetches the variant a request without fields selects.
type HotKey struct {
	Key    string `json:"key"`
	Host   string `json:"host"`
	Varies bool   `json:"varies,omitempty"`
}

// serveHot serves GET /_weir/hot on the peer listener. The keys are
// ranked by the store's eviction policy (store.Hottest), which lookups
// maintain anyway: the read costs the hit path nothing.
func (n *Node) serveHot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "weir: "+HotPath+" takes GET", http.StatusMethodNotAllowed)
		return
	}
	owner, limit, err := parseHotQuery(r.URL.RawQuery, n.name)
	if err != nil {
		http.Error(w, "weir: "+HotPath+": "+err.Error(), http.StatusBadRequest)
		return
	}
	ring, self := ringWith(n.cluster.Ring(), owner)
	doc := HotKeys{Node: n.name, Owner: owner, Keys: hottestFor(n.store.Hottest(min(limit*hotScanFactor, maxHotScan)), ring, self, limit)}
	body, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, "weir: hot keys not encoded: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// parseHotQuery reads the query of GET /_weir/hot: owner, a node name
// other than self, and limit, from 1 to 10000 (1000 when left out).
// Any other parameter, or one given twice, is an error.
func parseHotQuery(raw, self string) (owner string, limit int, err error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", 0, fmt.Errorf("the query %q does not parse: %v", raw, err)
	}
	for k, v := range q {
		if k != "owner" && k != "limit" {
			return "", 0, fmt.Errorf("unknown parameter %q: the parameters are owner (a member's name) and limit (1 to %d)", k, maxHotLimit)
		}
		if len(v) > 1 {
			return "", 0, fmt.Errorf("parameter %q is given %d times; give it once", k, len(v))
		}
	}
	owner = q.Get("owner")
	if err := cluster.ValidateNodeName(owner); err != nil {
		return "", 0, fmt.Errorf("owner %q: %v: name the member that asks, as in cluster.node", owner, err)
	}
	if owner == self {
		return "", 0, fmt.Errorf("owner %q is this node: ask another member for the keys it holds for you", owner)
	}
	limit = defaultHotLimit
	if v, ok := q["limit"]; ok {
		if limit, err = strconv.Atoi(v[0]); err != nil || limit < 1 || limit > maxHotLimit {
			return "", 0, fmt.Errorf("limit %q is not a whole number from 1 to %d", v[0], maxHotLimit)
		}
	}
	return owner, limit, nil
}

// ringWith returns ring with owner in it (at the default weight when it
// is not a member in this view yet) and owner's index in the result.
func ringWith(ring *cluster.Ring, owner string) (*cluster.Ring, int) {
	ms := ring.Members()
	found := false
	for _, m := range ms {
		if m.Name == owner {
			found = true
			break
		}
	}
	if !found {
		ms = append(ms[:len(ms):len(ms)], cluster.RingMember{Name: owner, Weight: config.DefaultClusterWeight})
		ring = cluster.NewRing(ms)
	}
	for i, m := range ring.Members() {
		if m.Name == owner {
			return ring, i
		}
	}
	return ring, -1 // unreachable: owner is a member
}

// hottestFor returns, from objs (hottest first), the primary keys that
// ring gives to its member self, each once, at most limit of them.
// Soft-purged copies and keys longer than maxHotKeyBytes are left out.
func hottestFor(objs []*store.Object, ring *cluster.Ring, self, limit int) []HotKey {
	out := []HotKey{}
	seen := make(map[string]int, min(len(objs), limit))
	for _, o := range objs {
		if len(out) == limit {
			break
		}
		if o.SoftPurged() {
			continue
		}
		key := store.PrimaryKey(o.Key())
		if i, ok := seen[key]; ok {
			if o.Vary != nil || key != o.Key() {
				out[i].Varies = true
			}
			continue
		}
		if len(key) > maxHotKeyBytes || ring.Owner(key) != self {
			continue
		}
		_, rest, _ := strings.Cut(key, "://")
		host, _, _ := strings.Cut(rest, "/")
		seen[key] = len(out)
		out = append(out, HotKey{Key: key, Host: host, Varies: o.Vary != nil || key != o.Key()})
	}
	return out
}

// prefetchParts is the pre-fetch of a joining node: at the start of the
// warm-up it copies the hottest keys this node now owns from their
// previous owners' caches, while /readyz waits (ready).
type prefetchParts struct {
	// on says the pre-fetch runs at the start of the warm-up.
	on bool
	// deadline is when /readyz stops waiting for the pre-fetch, in Unix
	// nanoseconds; 0 until it starts. done is set when it ended.
	deadline atomic.Int64
	done     atomic.Bool
	// counts are the keys by result: edge.PrefetchResults, then the
	// keys listed but not tried before the deadline (unfinished).
	counts [len(edge.PrefetchResults) + 1]atomic.Int64
	// peerErrors counts the members whose list could not be read.
	peerErrors atomic.Int64
	// millis is how long the last pre-fetch took, in milliseconds.
	millis atomic.Int64
	// cancel stops the goroutine that startPrefetch starts; wg waits
	// for it.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// prefetchResultLabels are the result labels of weir_prefetch_total.
var prefetchResultLabels = append(edge.PrefetchResults[:], "unfinished")

// startPrefetch starts the goroutine that pre-fetches when the warm-up
// starts, when the pre-fetch is on. stopPrefetch stops it. It starts
// before the listeners serve, so that /readyz never answers 200 ahead of
// a pre-fetch about to start.
func (n *Node) startPrefetch() error {
	cc := n.cfg.Cluster
	if n.cluster == nil || !cc.TieredFill || cc.Warmup <= 0 || cc.Prefetch.Keys <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.pre.on, n.pre.cancel = true, cancel
	n.pre.wg.Add(1)
	go func() {
		defer n.pre.wg.Done()
		select {
		case <-n.cluster.WarmingStarted():
		case <-ctx.Done():
			return
		}
		n.prefetch(ctx, cc.Prefetch.Keys, time.Duration(cc.Prefetch.Timeout))
	}()
	return nil
}

// stopPrefetch stops the pre-fetch and waits for it.
func (n *Node) stopPrefetch() {
	if n.pre.cancel != nil {
		n.pre.cancel()
		n.pre.wg.Wait()
	}
}

// prefetchPending returns why /readyz waits for the pre-fetch, or "".
func (n *Node) prefetchPending(now time.Time) string {
	if !n.pre.on || n.pre.done.Load() {
		return ""
	}
	select {
	case <-n.cluster.WarmingStarted():
	default:
		return "" // not joined to anyone: nothing to pre-fetch from
	}
	if d := n.pre.deadline.Load(); d != 0 && now.UnixNano() >= d {
		return ""
	}
	return "pre-fetching the hottest keys this node owns from their previous owners (cluster.prefetch)"
}

// prefetch lists, from every other member, the hottest keys this node
// now owns whose previous owner is that member, and copies them from
// its cache, hottest first, prefetchWorkers at a time, within timeout
// and at most keys of them.
func (n *Node) prefetch(ctx context.Context, keys int, timeout time.Duration) {
	start := time.Now()
	n.pre.deadline.Store(start.Add(timeout).UnixNano())
	defer n.pre.done.Store(true)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	peers := n.peerNames()
	lists := make([][]string, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[i], errs[i] = n.hotKeysOf(ctx, p, keys)
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			n.pre.peerErrors.Add(1)
			n.log.Warn("prefetch: could not list a member's hot keys; its keys are left to the warm-up", "peer", peers[i], "error", err.Error())
		}
	}
	order := interleave(lists, keys)

	var counts [len(edge.PrefetchResults) + 1]atomic.Int64
	var next atomic.Int64
	for range min(prefetchWorkers, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(order) || ctx.Err() != nil {
					return
				}
				res := edge.PrefetchSkipped
				// The owner as of now: the membership may have changed
				// since the list was made.
				if p := n.cluster.WarmPeer(order[i]); p != nil {
					res = n.edge.Prefetch(ctx, p, order[i])
				}
				counts[res].Add(1)
			}
		}()
	}
	wg.Wait()
	tried := int64(0)
	for i := range edge.PrefetchResults {
		tried += counts[i].Load()
	}
	counts[len(edge.PrefetchResults)].Store(int64(len(order)) - tried)
	took := time.Since(start)
	n.pre.millis.Store(took.Milliseconds())
	d := journal.Details{"peers": len(peers), "failed_peers": failed, "listed": len(order), "duration_ms": took.Milliseconds()}
	args := []any{"peers", len(peers), "failed_peers", failed, "listed", len(order), "duration", took.Round(time.Millisecond).String()}
	for i, name := range prefetchResultLabels {
		c := counts[i].Load()
		n.pre.counts[i].Add(c)
		d[name] = c
		args = append(args, name, c)
	}
	n.journal.Record(journal.Prefetch, d)
	n.log.Info("prefetch: copied the hottest keys this node owns from their previous owners", args...)
}

// hotKeysOf reads peer's list of the hottest keys it holds that this
// node owns, and keeps those whose previous owner, in this node's view,
// is peer.
func (n *Node) hotKeysOf(ctx context.Context, peer string, limit int) ([]string, error) {
	path := HotPath + "?owner=" + url.QueryEscape(n.name) + "&limit=" + strconv.Itoa(limit)
	body, err := n.cluster.ReadPeer(ctx, peer, path, int64(limit)*hotEntryBytes+256)
	if err != nil {
		return nil, err
	}
	var doc HotKeys
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("peer %s: its answer to GET %s is not a hot-key list: %w", peer, HotPath, err)
	}
	if len(doc.Keys) > limit {
		return nil, fmt.Errorf("peer %s listed %d keys, more than the %d asked for", peer, len(doc.Keys), limit)
	}
	out := make([]string, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		if len(k.Key) > maxHotKeyBytes {
			continue
		}
		if p := n.cluster.WarmPeer(k.Key); p != nil && p.Name() == peer {
			out = append(out, k.Key)
		}
	}
	return out, nil
}

// interleave takes the lists in turn, the first of each, then the
// second of each..., up to max keys, each once.
func interleave(lists [][]string, max int) []string {
	var out []string
	seen := make(map[string]bool)
	for i := 0; len(out) < max; i++ {
		more := false
		for _, l := range lists {
			if i >= len(l) {
				continue
			}
			more = true
			if !seen[l[i]] {
				seen[l[i]] = true
				out = append(out, l[i])
				if len(out) == max {
					break
				}
			}
		}
		if !more {
			break
		}
	}
	return out
}

var (
	descPrefetch = prometheus.NewDesc("weir_prefetch_total",
		"Keys a joining node pre-fetched from their previous owners' caches (cluster.prefetch), by result: fetched, present (held already), missed (the owner had no copy, or did not answer), skipped (not a key to pre-fetch here), unfinished (listed, not tried before the timeout).", []string{"result"}, nil)
	descPrefetchPeerErrors = prometheus.NewDesc("weir_prefetch_peer_errors_total",
		"Members whose hot-key list a joining node could not read for its pre-fetch.", nil, nil)
	descPrefetchSeconds = prometheus.NewDesc("weir_prefetch_duration_seconds",
		"How long the last pre-fetch took (at most cluster.prefetch.timeout); 0 before any.", nil, nil)
)

// prefetchCollector returns the pre-fetch's metrics.
func (n *Node) prefetchCollector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		if !n.pre.on {
			return
		}
		for i, name := range prefetchResultLabels {
			ch <- telemetry.Counter(descPrefetch, float64(n.pre.counts[i].Load()), name)
		}
		ch <- telemetry.Counter(descPrefetchPeerErrors, float64(n.pre.peerErrors.Load()))
		ch <- telemetry.Gauge(descPrefetchSeconds, float64(n.pre.millis.Load())/1000)
	})
}
