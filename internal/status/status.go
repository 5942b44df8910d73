// Package status is the admin API as its clients see it: the documents
// a node serves (/status, /cluster, /debug/explain, /debug/doctor) as
// types, and Client, which calls one node's admin API and decodes them.
// The node builds these documents and the admin listener serves them;
// `weir purge`, `weir explain`, `weir doctor`, `weir replay` and the
// tests read the same types through the same client, and the dashboard
// (package dashboard) sends the Node document in each of its snapshots.
//
// The purge API's documents stay in package purge (purge.IDDoc,
// purge.StatusDoc, purge.Stats), beside the code that builds them and
// the peer protocol that relays them; this package refers to them. It
// imports purge, so purge must never import it.
package status

import (
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/disk"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/version"
)

// Node is the document served at the admin API's /status: one node's
// build, listeners, cache, requests, origins, cluster view, purges and
// overload limit.
type Node struct {
	Node     string       `json:"node"`
	Host     string       `json:"host"`
	Version  version.Info `json:"build"`
	Uptime   string       `json:"uptime"`
	Started  time.Time    `json:"started"`
	Edge     string       `json:"edge_listener"`
	Draining bool         `json:"draining"`
	Cache    store.Stats  `json:"cache"`
	// Disk is the disk tier's state (cache.disk), absent when it is off.
	Disk     *disk.Stats `json:"disk,omitempty"`
	Requests edge.Stats  `json:"requests"`
	Origins  []Origin    `json:"origins"`
	// Cluster is the node's view of the cluster, when it is a member.
	Cluster *cluster.Info `json:"cluster,omitempty"`
	// Purge are the purge counters and lag.
	Purge purge.Stats `json:"purge"`
	// Overload is the origin concurrency limit, when it is on.
	Overload *overload.LimiterState `json:"overload,omitempty"`
	// TLS is the TLS listeners' state, when any serves TLS.
	TLS *TLS `json:"tls,omitempty"`
	// Config is the configuration in force and how its reloads went.
	Config Config `json:"config"`
	// Anomalies are the signals departing from their baselines now (the
	// flags raised, none when all is steady).
	Anomalies []Anomaly `json:"anomalies"`
	// Faults are the faults injected on this node (POST /faults) and in
	// force: while there are any, its peers, origins or gossip are slowed
	// or failed on purpose.
	Faults []inject.Fault `json:"faults"`
}

// Anomaly is one anomaly flag raised on a node: a signal that departs
// from its own recent past (see docs/operations.md, "Anomaly flags").
type Anomaly struct {
	// Signal names it: request_rate, error_rate, latency_p99, hit_ratio,
	// origin_latency_p50, origin_latency_p99, origin_error_rate,
	// shed_rate, purge_lag.
	Signal string `json:"signal"`
	// Value is the latest sample for a step, the recent level (the fast
	// baseline) for a drift; Baseline the level it departs from (the
	// fast baseline before a step, the long-term one for a drift);
	// Spread the baseline's mean absolute deviation. Ratios are
	// fractions, latencies and lag seconds, rates per second.
	Value    float64 `json:"value"`
	Baseline float64 `json:"baseline"`
	Spread   float64 `json:"spread"`
	// Direction is "up" or "down".
	Direction string `json:"direction"`
	// Kind is "step" (a sudden change) or "drift" (a slow one).
	Kind string `json:"kind"`
	// Since is the time of the first departing sample.
	Since time.Time `json:"since"`
	// Evidence says it in one line, as the log does: "hit ratio 0.42 vs
	// baseline 0.91±0.03 for 60s".
	Evidence string `json:"evidence"`
}

// Config is the /status document's configuration section.
type Config struct {
	// Hash identifies the effective configuration in force (see
	// `weir check`, which prints the same hash).
	Hash string `json:"hash"`
	// File is the configuration file a reload re-reads, "" when the node
	// was started from flags alone.
	File string `json:"file,omitempty"`
	// AppliedAt is when the configuration in force was put in force: at
	// start, or by the last reload that changed it.
	AppliedAt time.Time `json:"applied_at"`
	// Reloads and ReloadsFailed count the reloads since start.
	Reloads       int64 `json:"reloads"`
	ReloadsFailed int64 `json:"reloads_failed"`
	// LastReload is the last reload's outcome, absent before the first.
	LastReload *Reload `json:"last_reload,omitempty"`
}

// Reload is what one reload did: the answer to POST /reload (200 when
// Result is "ok" or "unchanged", 400 when "error"), and /status's
// config.last_reload.
type Reload struct {
	Time time.Time `json:"time"`
	// Trigger is what asked for it: "signal" (SIGHUP) or "api" (POST
	// /reload, with the token's name).
	Trigger string `json:"trigger"`
	// Result is "ok" (changes applied), "unchanged" (the files were
	// re-read, no setting changed) or "error" (nothing changed).
	Result string `json:"result"`
	// Hash is the configuration in force after the reload: the new one,
	// or on error still the old one.
	Hash string `json:"hash"`
	// Changes lists each changed setting as config.Plan names it
	// ("hosts[0] changed"); Diff the values, as config.Diff shows them.
	Changes []string `json:"changes,omitempty"`
	Diff    []string `json:"diff,omitempty"`
	// Reloaded names the files re-read: the tokens file, the cluster key
	// file, the certificates.
	Reloaded []string `json:"reloaded,omitempty"`
	// Problems lists every reason a reload with Result "error" changed
	// nothing, one per line; Error is the same, joined.
	Problems []string `json:"problems,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Origin describes one origin in Node: its pool, with each server's
// health, ejection and breaker.
type Origin = origin.State

// Cluster is the document served at the admin API's /cluster: the node's
// view of the membership and, when asked with ?key=, who owns that key.
type Cluster struct {
	cluster.Info
	// Key, when asked with ?key=, names the node that owns it.
	Key *KeyOwner `json:"key,omitempty"`
}

// KeyOwner answers /cluster?key=: the URL asked about, the cache key it
// normalizes to, and the member that owns that key.
type KeyOwner struct {
	URL      string `json:"url"`
	CacheKey string `json:"cache_key"`
	Owner    string `json:"owner"`
}

// Explain is the document served at the admin API's /debug/explain: what
// the node's edge would do with one GET request and why (see
// edge.Explanation), and who owns its key in the cluster.
type Explain struct {
	// Node is the node that explains.
	Node string `json:"node"`
	edge.Explanation
	// Owner is the key's owner in the cluster; nil when the node runs
	// alone or the request never reaches the cache.
	Owner *ExplainOwner `json:"owner,omitempty"`
}

// ExplainOwner is a key's place in the cluster, as /cluster?key= tells
// it.
type ExplainOwner struct {
	// CacheKey is the primary key the ring places.
	CacheKey string `json:"cache_key"`
	// Node is the member that owns it.
	Node string `json:"node"`
	// Self reports that the explaining node owns it: a miss fills from
	// the origin; otherwise a miss asks Node first (tiered fill).
	Self bool `json:"self"`
}

// Doctor is the document served at the admin API's GET /debug/doctor
// (role viewer): what the node's fill path recorded for `weir doctor`,
// bounded (see edge.DoctorSample): its recent stored fills with their
// body's hash, its uncacheable responses by site, path prefix and
// reason, the split of its misses' time, and what its store did with
// the fills (inserts, and misses a bigger cache would have served).
type Doctor struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// Sites are the hosts entries in force, with their key rules, so
	// that a proposed rule extends what is there.
	Sites []DoctorSite `json:"sites"`
	// MaxObject is cache.max_object_size, in bytes.
	MaxObject int64 `json:"max_object_bytes"`
	// Cluster is whether the node is a cluster member; TieredFill
	// whether its misses ask the key's owner (cluster.tiered_fill).
	Cluster    bool `json:"cluster"`
	TieredFill bool `json:"tiered_fill"`
	// Aggregates is the cluster's private aggregate (privacy.enabled):
	// every member's noised release of the last closed privacy window,
	// summed, as GET /aggregates serves it; nil when privacy is off or no
	// window has closed yet. AggregatesNote says why it is missing, or
	// that it is an earlier window's (the members did not answer in
	// time).
	Aggregates     *privagg.Cluster `json:"aggregates,omitempty"`
	AggregatesNote string           `json:"aggregates_note,omitempty"`
	edge.DoctorSample
}

// DoctorSite is one hosts entry in Doctor: its name (its first match
// pattern), its index in hosts, and the key rules it has.
type DoctorSite struct {
	Index          int      `json:"index"`
	Name           string   `json:"name"`
	IgnoreQuery    bool     `json:"ignore_query,omitempty"`
	DropParams     []string `json:"drop_params,omitempty"`
	AllowParams    []string `json:"allow_params,omitempty"`
	Headers        []string `json:"headers,omitempty"`
	StoreSetCookie bool     `json:"store_set_cookie,omitempty"`
	// Hits and Misses are this node's exact counts of the entry's
	// cacheable requests since it started (its site counters, as the
	// dashboard's hosts table shows them): served from the cache, fresh
	// or stale, or not.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
}

// Faults is a node's answer to GET /faults: the faults injected there
// and in force, oldest first.
type Faults struct {
	Faults []inject.Fault `json:"faults"`
	// MaxActive and MaxDuration are the bounds every fault is held to.
	MaxActive   int    `json:"max_active"`
	MaxDuration string `json:"max_duration"`
}
