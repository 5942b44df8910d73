// Package bench is the engine of `weir bench`: an open-loop HTTP load
// generator that measures any HTTP cache (Weir, Varnish, nginx, a CDN).
//
// Run sends requests at a constant arrival rate: request i is due at
// start + i/rate whatever happened to the requests before it, and its
// latency is measured from that scheduled time to the last byte of the
// response, so time spent waiting for a free connection or for a slow
// server to answer the previous requests counts (no coordinated
// omission). A bounded pool of workers sends the requests; a request due
// while every worker is busy and the short queue in front of them is
// full is not sent and counts as an "overload_client" error: the load
// generator never grows without bound.
//
// Keys are drawn from a Zipf distribution (Zipf) and requests are a
// weighted mix (Mix) of cacheable GETs of those keys, GETs of keys never
// asked before, uncacheable POSTs and PURGEs. Every response is classified
// by what the cache says it did (Classify: Cache-Status, then the headers
// Varnish and nginx are commonly configured to send), and latencies go
// into a log-linear Histogram. Result holds what a run measured, with
// stable JSON field names.
package bench
