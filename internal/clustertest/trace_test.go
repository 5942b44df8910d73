package clustertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
)

// TestTraceEdgeOwnerOrigin follows one miss from a client through the
// edge that received it, the key's owner and the origin, and checks the
// spans form one tree across the nodes, continuing the client's trace,
// and that the origin received the trace context.
func TestTraceEdgeOwnerOrigin(t *testing.T) {
	var mu sync.Mutex
	var originParents []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		originParents = append(originParents, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=300")
		io.WriteString(w, "traced")
	}))
	t.Cleanup(origin.Close)

	exp := tracetest.NewInMemoryExporter()
	c := Start(t, Options{
		Nodes: 3, Origin: origin.URL,
		Hooks: func(int) node.Hooks { return node.Hooks{SpanExporter: exp} },
		Configure: func(_ int, cfg *config.Config) {
			cfg.Telemetry.Tracing.SampleRatio = 1
		},
	})
	// A path that node 1 owns, asked at node 0.
	path := ""
	for i := range 1000 {
		p := fmt.Sprintf("/traced/%d", i)
		if c.Owner(0, p) == c.Name(1) {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no path owned by node 1 among 1000")
	}
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const clientSpan = "00f067aa0ba902b7"
	req, err := http.NewRequest(http.MethodGet, c.URL(0, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = Host
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := c.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, X-Request-Id %q; want 200 and an id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	// Spans end as each part finishes, some after the client has its
	// answer: wait for the whole tree.
	want := []string{"edge.request", "edge.coalesce_wait", "edge.fill", "peer.fill", "peer.request", "origin.fetch"}
	var spans tracetest.SpanStubs
	c.WaitFor(t, 5*time.Second, func() string {
		spans = nil
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID().String() == clientTrace {
				spans = append(spans, s)
			}
		}
		for _, name := range want {
			if findSpan(spans, name, "") == nil {
				return "no " + name + " span yet; have " + spanNames(spans)
			}
		}
		if len(findSpans(spans, "edge.fill")) < 2 {
			return "want an edge.fill span on both the edge and the owner; have " + spanNames(spans)
		}
		return ""
	})

	edgeName, ownerName := c.Name(0), c.Name(1)
	root := findSpan(spans, "edge.request", edgeName)
	if root == nil {
		t.Fatalf("no edge.request span from %s; have %s", edgeName, spanNames(spans))
	}
	if root.SpanKind != trace.SpanKindServer || root.Parent.SpanID().String() != clientSpan || !root.Parent.IsRemote() {
		t.Errorf("edge.request: kind %v, parent %s (remote %v); want a server span under the client's span %s",
			root.SpanKind, root.Parent.SpanID(), root.Parent.IsRemote(), clientSpan)
	}
	if got := attr(root, "weir.cache"); got != "miss" {
		t.Errorf("edge.request weir.cache = %q, want miss", got)
	}
	edgeFill := childOf(t, spans, root, "edge.fill")
	peerFill := childOf(t, spans, edgeFill, "peer.fill")
	ownerReq := childOf(t, spans, peerFill, "peer.request")
	ownerFill := childOf(t, spans, ownerReq, "edge.fill")
	fetch := childOf(t, spans, ownerFill, "origin.fetch")
	childOf(t, spans, root, "edge.coalesce_wait")
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range []struct {
		span *tracetest.SpanStub
		node string
		kind trace.SpanKind
	}{{edgeFill, edgeName, trace.SpanKindInternal}, {peerFill, edgeName, trace.SpanKindClient},
		{ownerReq, ownerName, trace.SpanKindServer}, {ownerFill, ownerName, trace.SpanKindInternal}, {fetch, ownerName, trace.SpanKindClient}} {
		if got := nodeOf(s.span); got != s.node || s.span.SpanKind != s.kind {
			t.Errorf("%s ran on %s as %v, want on %s as %v", s.span.Name, got, s.span.SpanKind, s.node, s.kind)
		}
	}
	if got := attr(fetch, "weir.attempt"); got != "1" {
		t.Errorf("origin.fetch weir.attempt = %q, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	wantParent := "00-" + clientTrace + "-" + fetch.SpanContext.SpanID().String() + "-01"
	if len(originParents) != 1 || originParents[0] != wantParent {
		t.Errorf("origin received traceparent %q, want one request with %q", originParents, wantParent)
	}
}

func findSpans(spans tracetest.SpanStubs, name string) []*tracetest.SpanStub {
	var out []*tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == name {
			out = append(out, &spans[i])
		}
	}
	return out
}

// findSpan returns the span called name recorded by node (any node when
// node is ""), or nil.
func findSpan(spans tracetest.SpanStubs, name, node string) *tracetest.SpanStub {
	for _, s := range findSpans(spans, name) {
		if node == "" || nodeOf(s) == node {
			return s
		}
	}
	return nil
}

// childOf returns the span called name whose parent is parent, failing
// the test when there is none.
func childOf(t *testing.T, spans tracetest.SpanStubs, parent *tracetest.SpanStub, name string) *tracetest.SpanStub {
	t.Helper()
	if parent == nil {
		return nil
	}
	for _, s := range findSpans(spans, name) {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() {
			return s
		}
	}
	t.Errorf("no %s span under %s (%s); spans: %s", name, parent.Name, parent.SpanContext.SpanID(), spanNames(spans))
	return nil
}

func nodeOf(s *tracetest.SpanStub) string {
	for _, kv := range s.Resource.Attributes() {
		if kv.Key == "service.instance.id" {
			return kv.Value.AsString()
		}
	}
	return ""
}

func attr(s *tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

func spanNames(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "[%s %s<-%s on %s] ", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID(), nodeOf(&s))
	}
	return b.String()
}
