// Package demo holds what `weir demo` runs and what Weir's own tests lean on:
// a synthetic origin whose paths each exercise one caching behaviour, and a
// bounded Zipf workload driver that measures a cache placed in front of it.
//
// Origin is an http.Handler. Its bodies are deterministic functions of the
// request path (see Body), so a test can check every byte an edge serves,
// and every response carries X-Origin-Count, the number of times the origin
// has served that path, so a test can tell a cache hit from a fetch.
//
// RunLoad drives closed-loop workers against a base URL for a bounded time
// and number of requests, classifies every response by its Cache-Status
// header (RFC 9211) and reports hit ratio, origin offload and latency
// quantiles taken from a Histogram.
package demo
