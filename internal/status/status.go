// Package status is the admin API as its clients see it: the documents
// a node serves (/status, /cluster) as types, and Client, which calls one
// node's admin API and decodes them. The node builds these documents and
// the admin listener serves them; `weir purge`, the tests and `weir
// doctor` read the same types through the same client, and the
// dashboard (package dashboard) sends the Node document in each of its
// snapshots.
//
// The purge API's documents stay in package purge (purge.IDDoc,
// purge.StatusDoc, purge.Stats), beside the code that builds them and
// the peer protocol that relays them; this package refers to them. It
// imports purge, so purge must never import it.
package status

import (
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/overload"
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
	Requests edge.Stats   `json:"requests"`
	Origins  []Origin     `json:"origins"`
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
