// Package telemetry is how a Weir node shows what it does: Prometheus
// metrics on private registries, JSON logs that carry each request's
// request_id and trace_id, the access log, and OpenTelemetry tracing with
// W3C traceparent propagation.
//
// Each package owns its metrics and registers them on the node's
// registry, mostly as collectors that read counters the package keeps
// anyway ([CollectFunc]), so the request path pays for metrics only where
// it must time something ([Histogram]). [HTTP] is the layer in front of a
// listener: it assigns the request id and trace context, times and counts
// each request by what the cache did, and writes the access log.
package telemetry
