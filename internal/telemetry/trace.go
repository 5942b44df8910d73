package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/weir-cdn/weir/internal/version"
)

// TracingOptions configure a Tracer.
type TracingOptions struct {
	// Endpoint is the OTLP/HTTP traces URL, such as
	// http://127.0.0.1:4318/v1/traces. "" with no Exporter means tracing
	// off: requests still get trace ids for logs and traceparent, but no
	// span is recorded.
	Endpoint string
	// SampleRatio is the share of traces recorded, decided by trace id so
	// every node with the same ratio records the same traces. A client's
	// sampled flag is not trusted: it could make the edge trace every
	// request.
	SampleRatio float64
	// Timeout bounds one export; zero means 10s.
	Timeout time.Duration
	// Headers are sent with every export (authorization, tenant).
	Headers map[string]string
	// ServiceName and Node are the service.name and service.instance.id
	// resource attributes.
	ServiceName, Node string
	// Exporter, when set, receives the spans synchronously instead of an
	// OTLP endpoint (tests use an in-memory exporter).
	Exporter sdktrace.SpanExporter
}

// Tracer creates Weir's spans. A nil *Tracer is valid and records
// nothing. It is safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	// ratio decides which traces are recorded, by trace id.
	ratio sdktrace.Sampler
}

// maxQueuedSpans bounds the spans waiting for export; past it new spans
// are dropped rather than held, so a collector that is down costs memory
// up to this bound only.
const maxQueuedSpans = 4096

// NewTracer returns a tracer exporting as opt says, or a tracer that
// records nothing when opt names no endpoint and no exporter.
func NewTracer(opt TracingOptions) (*Tracer, error) {
	if opt.Endpoint == "" && opt.Exporter == nil {
		return &Tracer{tracer: noop.NewTracerProvider().Tracer("weir")}, nil
	}
	exp := opt.Exporter
	var process sdktrace.TracerProviderOption
	if exp == nil {
		u, err := url.Parse(opt.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tracing endpoint %q: want an OTLP/HTTP URL such as http://127.0.0.1:4318/v1/traces", opt.Endpoint)
		}
		timeout := opt.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		exp, err = otlptracehttp.New(context.Background(),
			otlptracehttp.WithEndpointURL(opt.Endpoint),
			otlptracehttp.WithTimeout(timeout),
			otlptracehttp.WithHeaders(opt.Headers),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: timeout}),
		)
		if err != nil {
			return nil, fmt.Errorf("tracing endpoint %q: %w", opt.Endpoint, err)
		}
		process = sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(maxQueuedSpans), sdktrace.WithExportTimeout(timeout))
	} else {
		process = sdktrace.WithSyncer(exp)
	}
	name := opt.ServiceName
	if name == "" {
		name = "weir"
	}
	ratio := sdktrace.TraceIDRatioBased(opt.SampleRatio)
	tp := sdktrace.NewTracerProvider(
		process,
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithSampler(sdktrace.ParentBased(ratio,
			sdktrace.WithRemoteParentSampled(ratio),
			sdktrace.WithRemoteParentNotSampled(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", name),
			attribute.String("service.instance.id", opt.Node),
			attribute.String("service.version", version.Get().Version),
		)),
	)
	return &Tracer{provider: tp, tracer: tp.Tracer("github.com/weir-cdn/weir"), ratio: ratio}, nil
}

// sampled reports whether the trace with id is recorded.
func (t *Tracer) sampled(id trace.TraceID) bool {
	return t.ratio.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id}).Decision == sdktrace.RecordAndSample
}

// idGenerator gives a request's server span the trace id the request
// was sampled by.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid := trace.TraceID{}
	if r := RequestFrom(ctx); r != nil {
		tid = r.traceID
	}
	if !tid.IsValid() {
		tid = newTraceID()
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newTraceID() trace.TraceID {
	var id trace.TraceID
	binary.BigEndian.PutUint64(id[:8], rand.Uint64())
	binary.BigEndian.PutUint64(id[8:], rand.Uint64()|1)
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], rand.Uint64()|1)
	return id
}

// Enabled reports whether spans are recorded.
func (t *Tracer) Enabled() bool { return t != nil && t.provider != nil }

// Start starts a span named name as a child of the span in ctx. With
// tracing off, or within a request that is not traced, it returns ctx and
// a span that records nothing.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if r := RequestFrom(ctx); r != nil && !r.traced {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// Shutdown exports the spans still queued, waiting until ctx ends.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// propagator reads and writes W3C traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Inject writes the trace context of ctx (SpanContext) into h as
// traceparent and tracestate, replacing what a client sent.
func Inject(ctx context.Context, h http.Header) {
	delete(h, "Traceparent")
	delete(h, "Tracestate")
	sc := SpanContext(ctx)
	if !sc.IsValid() {
		return
	}
	flags := "-00"
	if sc.IsSampled() {
		flags = "-01"
	}
	h["Traceparent"] = []string{"00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + flags}
	if ts := sc.TraceState().String(); ts != "" {
		h["Tracestate"] = []string{ts}
	}
}

// remoteSpanContext returns the span context of h's traceparent (and
// tracestate), or an invalid one when it has no valid traceparent.
func remoteSpanContext(h http.Header) trace.SpanContext {
	if len(h["Traceparent"]) == 0 {
		return trace.SpanContext{}
	}
	ctx := propagator.Extract(context.Background(), propagation.HeaderCarrier(h))
	return trace.SpanContextFromContext(ctx)
}
