package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startNode starts a standalone node named status-test whose admin API
// knows the tokens "purger" (role purge) and "viewer" (role viewer), with
// mutate applied to its configuration first.
func startNode(t *testing.T, mutate func(*config.Config)) *node.Node {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	t.Cleanup(origin.Close)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	lines := "p operator " + admin.HashToken("purger") + "\nv viewer " + admin.HashToken("viewer") + "\n"
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Node = "status-test"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL)
	cfg.AdminTokensFile, cfg.AuditLog = tokens, filepath.Join(dir, "audit.jsonl")
	if mutate != nil {
		mutate(cfg)
	}
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

// serveAdmin serves the admin API's handler with opt on 127.0.0.1:0 and
// returns its base URL.
func serveAdmin(t *testing.T, opt admin.Options) string {
	t.Helper()
	return serveHandler(t, admin.NewHandler(opt))
}

// serveHandler serves h as the admin listener does, on 127.0.0.1:0, and
// returns its base URL.
func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// client returns a client of base with its own transport, whose idle
// connections are closed when the test ends.
func client(t *testing.T, base string, opt status.ClientOptions) *status.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	opt.Transport = tr
	c, err := status.NewClient(base, opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw returns the body of GET base+path, with startNode's viewer token
// (the reads need one once tokens are configured).
func raw(t *testing.T, base, path string) []byte {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer viewer")
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", path, resp.StatusCode, b, err)
	}
	return b
}

// roundTrip checks that doc, decoded from served and encoded again as the
// admin API encodes, gives back served byte for byte: the type holds
// every field the node serves.
func roundTrip(t *testing.T, served []byte, doc any) {
	t.Helper()
	if err := json.Unmarshal(served, doc); err != nil {
		t.Fatalf("decoding %s: %v", served, err)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), served) {
		t.Errorf("%T does not hold the served document:\nserved:\n%s\nre-encoded:\n%s", doc, served, again.Bytes())
	}
}

func TestClientReadsWhatANodeServes(t *testing.T) {
	n := startNode(t, nil)
	base := "http://" + n.AdminAddr()
	c := client(t, base, status.ClientOptions{Token: "viewer"})
	ctx := context.Background()
	if err := c.Healthz(ctx); err != nil {
		t.Errorf("Healthz: %v", err)
	}
	if err := c.Readyz(ctx); err != nil {
		t.Errorf("Readyz: %v", err)
	}
	roundTrip(t, raw(t, base, "/status"), new(status.Node))
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "status-test" || st.Edge != n.EdgeAddr() || st.Version.Version == "" || len(st.Origins) != 1 || st.Cluster != nil || st.Purge.Node != "status-test" {
		t.Errorf("Status = %+v, want node status-test on edge %s, a build version, one origin, no cluster, its purge counters", st, n.EdgeAddr())
	}
	// A standalone node has no /cluster: 404, with the node's reason.
	_, err = c.Cluster(ctx, "")
	var e *status.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || !strings.Contains(e.Message, "not part of a cluster") {
		t.Errorf("Cluster on a standalone node: %v, want a 404 saying it is not part of a cluster", err)
	}
	if want := "GET " + base + "/cluster: 404: " + e.Message; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestClientReadsTheClusterDocument(t *testing.T) {
	n := startNode(t, func(cfg *config.Config) {
		cfg.Cluster.Listen, cfg.Cluster.PeerListen = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Cluster.Insecure = true
	})
	base := "http://" + n.AdminAddr()
	c := client(t, base, status.ClientOptions{Token: "viewer"})
	ctx := context.Background()
	roundTrip(t, raw(t, base, "/cluster?key=http://example.com/a"), new(status.Cluster))
	doc, err := c.Cluster(ctx, "http://example.com/a?b=1&c=2")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Node != "status-test" || doc.Key == nil || doc.Key.URL != "http://example.com/a?b=1&c=2" || doc.Key.Owner != "status-test" || doc.Key.CacheKey == "" {
		t.Errorf("Cluster(key) = %+v, key %+v; want status-test owning the URL asked about, with its cache key", doc.Info, doc.Key)
	}
	if doc, err = c.Cluster(ctx, ""); err != nil || doc.Key != nil || len(doc.Members) != 1 {
		t.Errorf("Cluster() = %+v, %v; want one member and no key", doc, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Cluster == nil || st.Cluster.Node != "status-test" {
		t.Errorf("Status of a member: cluster %+v, %v; want its view of the cluster", st.Cluster, err)
	}
	// A key the node cannot normalize is the caller's mistake: 400.
	_, err = c.Cluster(ctx, "ftp://example.com/a")
	var e *status.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Message == "" {
		t.Errorf("Cluster with a bad key: %v, want a 400 with the node's reason", err)
	}
}

func TestClientPurges(t *testing.T) {
	n := startNode(t, nil)
	base := "http://" + n.AdminAddr()
	ctx := context.Background()
	c := client(t, base, status.ClientOptions{Token: "purger"})
	id, err := c.Purge(ctx, purge.Request{All: true})
	if err != nil || !strings.HasPrefix(id, "status-test.") {
		t.Fatalf("Purge = %q, %v; want an id of node status-test", id, err)
	}
	doc, err := c.PurgeStatus(ctx, id)
	if err != nil || doc.ID != id || !doc.Complete || len(doc.Nodes) != 1 || doc.Nodes[0].State != "applied" || !doc.Request.All {
		t.Errorf("PurgeStatus = %+v, %v; want the purge of everything, applied and complete on its one node", doc, err)
	}
	stats, err := c.PurgeStats(ctx)
	if err != nil || stats.Node != "status-test" || stats.Issued != 1 {
		t.Errorf("PurgeStats = %+v, %v; want one purge issued on status-test", stats, err)
	}

	unknown := id[:strings.LastIndexByte(id, '.')] + ".999"
	for _, tc := range []struct {
		name   string
		token  string
		call   func(*status.Client) error
		status int
		method string
		path   string
		msg    string // the node's message starts so
	}{
		{"a wrong token", "wrong", func(c *status.Client) error { _, err := c.Purge(ctx, purge.Request{All: true}); return err },
			401, "POST", "/purge", "unknown bearer token"},
		{"an empty token", "", func(c *status.Client) error { _, err := c.Purge(ctx, purge.Request{All: true}); return err },
			401, "POST", "/purge", "empty bearer token"},
		{"too weak a role", "viewer", func(c *status.Client) error { _, err := c.Purge(ctx, purge.Request{All: true}); return err },
			403, "POST", "/purge", `token "v" has role viewer, and this call needs role purge`},
		{"nothing to purge", "purger", func(c *status.Client) error { _, err := c.Purge(ctx, purge.Request{}); return err },
			400, "POST", "/purge", "invalid purge: the purge names nothing"},
		{"an unknown purge", "viewer", func(c *status.Client) error { _, err := c.PurgeStatus(ctx, unknown); return err },
			404, "GET", "/purge/" + unknown, "purge " + unknown + " is not known"},
		{"a malformed id", "viewer", func(c *status.Client) error { _, err := c.PurgeStatus(ctx, "no/dots"); return err },
			400, "GET", "/purge/no%2Fdots", `purge id "no/dots" is not of the form`},
		{"stats without a token", "", func(c *status.Client) error { _, err := c.PurgeStats(ctx); return err },
			401, "GET", "/purge", "empty bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(client(t, base, status.ClientOptions{Token: tc.token}))
			var e *status.Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v, want an *status.Error", err)
			}
			if e.StatusCode != tc.status || e.Method != tc.method || e.URL != base+tc.path || !strings.HasPrefix(e.Message, tc.msg) {
				t.Errorf("error = %+v, want %s %s answered %d %q…", e, tc.method, base+tc.path, tc.status, tc.msg)
			}
			if want := fmt.Sprintf("%s %s: %d: %s", tc.method, base+tc.path, tc.status, e.Message); err.Error() != want {
				t.Errorf("error says %q, want %q", err, want)
			}
		})
	}
}

// TestClientSendsTheTokenWhereItIsNeeded: the purge calls always carry
// the token, so that an empty one is refused as empty; the others carry
// only a token that was given.
func TestClientSendsTheTokenWhereItIsNeeded(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{} // path → Authorization fields
	h := admin.NewHandler(admin.Options{Routes: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /purge", func(w http.ResponseWriter, r *http.Request) {
			admin.WriteJSON(w, http.StatusOK, purge.Stats{})
		})
	}})
	base := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Values("Authorization")
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	ctx := context.Background()
	for _, tc := range []struct {
		token         string
		purge, status []string
	}{
		// The server reads "Bearer " as "Bearer" (RFC 9110 §5.5: no
		// trailing whitespace in a field value); the admin API then
		// answers "empty bearer token".
		{"", []string{"Bearer"}, nil},
		{"t0ken", []string{"Bearer t0ken"}, []string{"Bearer t0ken"}},
	} {
		c := client(t, base, status.ClientOptions{Token: tc.token})
		if _, err := c.PurgeStats(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		purgeAuth, statusAuth := seen["/purge"], seen["/status"]
		mu.Unlock()
		if !slices.Equal(purgeAuth, tc.purge) || !slices.Equal(statusAuth, tc.status) {
			t.Errorf("token %q: GET /purge carried Authorization %q, GET /status %q; want %q and %q", tc.token, purgeAuth, statusAuth, tc.purge, tc.status)
		}
	}
}

// TestClientErrors: what a call that fails says, through a real admin
// handler answering as a broken node or a proxy in front of one would.
func TestClientErrors(t *testing.T) {
	proxyPage := "<html><body><h1>502 Bad Gateway</h1>" + strings.Repeat("<p>upstream trouble</p>", 200) + "</body></html>"
	base := serveAdmin(t, admin.Options{
		Ready:  func() error { return errors.New("draining for shutdown") },
		Status: func() any { return map[string]any{"node": 7} }, // not the document
		Routes: func(mux *http.ServeMux) {
			mux.HandleFunc("POST /purge", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, proxyPage)
			})
			mux.HandleFunc("GET /purge/{id}", func(w http.ResponseWriter, r *http.Request) {
				if r.PathValue("id") == "huge" {
					w.Write(bytes.Repeat([]byte(" "), status.MaxBodyBytes+1))
					return
				}
				io.WriteString(w, "<html>a login page</html>")
			})
			mux.HandleFunc("GET /purge", func(w http.ResponseWriter, r *http.Request) {
				admin.WriteJSON(w, http.StatusInternalServerError, admin.ErrorDoc{Error: "the purge log is gone"})
			})
		},
	})
	c := client(t, base, status.ClientOptions{Token: "t"})
	ctx := context.Background()
	check := func(what string, err error, code int, says ...string) *status.Error {
		t.Helper()
		var e *status.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error = %v, want an *status.Error", what, err)
			return &status.Error{}
		}
		if e.StatusCode != code {
			t.Errorf("%s: status code %d, want %d (%v)", what, e.StatusCode, code, err)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not say %q", what, err, s)
			}
		}
		return e
	}

	err := c.Readyz(ctx)
	if e := check("Readyz", err, 503); e.Message != "not ready: draining for shutdown" {
		t.Errorf("Readyz message %q, want the plain-text reason", e.Message)
	}
	if want := "GET " + base + "/readyz: 503: not ready: draining for shutdown"; err.Error() != want {
		t.Errorf("Readyz error %q, want %q", err, want)
	}
	_, err = c.Status(ctx)
	check("Status of the wrong shape", err, 200, "GET "+base+"/status: the answer is not the expected JSON: ", "cannot unmarshal number")
	_, err = c.PurgeStatus(ctx, "a.1.1")
	check("a page, not JSON", err, 200, "GET "+base+"/purge/a.1.1: the answer is not the expected JSON: ")
	_, err = c.PurgeStatus(ctx, "huge")
	check("a body past the limit", err, 200, "GET "+base+"/purge/huge: reading the answer: longer than 16777216 bytes")
	_, err = c.PurgeStats(ctx)
	if e := check("500", err, 500); e.Message != "the purge log is gone" {
		t.Errorf("500 message %q, want the JSON error's text", e.Message)
	}
	_, err = c.Purge(ctx, purge.Request{All: true})
	e := check("502 from a proxy", err, 502, "POST "+base+"/purge: 502: <html><body><h1>502 Bad Gateway</h1>", "bytes cut)")
	if len(e.Message) > status.MaxMessageBytes+32 || !strings.HasPrefix(proxyPage, strings.TrimSuffix(e.Message[:status.MaxMessageBytes], "…")) {
		t.Errorf("502 message is %d bytes, want the page's first %d and how much was cut", len(e.Message), status.MaxMessageBytes)
	}
}

func TestClientTimesOut(t *testing.T) {
	release := make(chan struct{})
	base := serveAdmin(t, admin.Options{Status: func() any {
		<-release
		return struct{}{}
	}})
	defer close(release) // before the server closes: it waits for nothing, but the handler must end
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{"its timeout", 50 * time.Millisecond, func() (context.Context, context.CancelFunc) { return ctx, func() {} }},
		{"the context's deadline", -1, func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 50*time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t, base, status.ClientOptions{Timeout: tc.timeout, AddrHint: "--admin"})
			cctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, err := c.Status(cctx)
			var e *status.Error
			if !errors.As(err, &e) || !e.Timeout() || e.StatusCode != 0 {
				t.Fatalf("Status of a node that does not answer: %v, want a timeout without an answer", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the call gave up after %v", took)
			}
			if !strings.HasPrefix(err.Error(), "GET "+base+"/status: ") || !strings.HasSuffix(err.Error(), " (is a node's admin API listening there? see --admin)") {
				t.Errorf("error %q does not name the call and what to check", err)
			}
		})
	}
}

func TestClientNoNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		hint, want string
	}{
		{"", " (is a node's admin API listening there?)"},
		{"--admin", " (is a node's admin API listening there? see --admin)"},
	} {
		c, err := status.ForAddr(addr, status.ClientOptions{AddrHint: tc.hint, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Healthz(context.Background())
		var e *status.Error
		if !errors.As(err, &e) || e.StatusCode != 0 || e.Timeout() || !strings.HasPrefix(err.Error(), "GET http://"+addr+"/healthz: ") || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("Healthz of nothing: %v; want the call, the refusal and %q", err, tc.want)
		}
	}
}

func TestNewClientWantsABaseURL(t *testing.T) {
	for _, tc := range []struct {
		base, want string // want "" refuses base
	}{
		{"http://127.0.0.1:9090", "http://127.0.0.1:9090"},
		{"https://admin.example/", "https://admin.example"},
		{"http://[::1]:9090//", "http://[::1]:9090"},
		{"127.0.0.1:9090", ""},
		{"ftp://example.com", ""},
		{"http://", ""},
		{"", ""},
	} {
		c, err := status.NewClient(tc.base, status.ClientOptions{})
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("NewClient(%q) accepted it as %s", tc.base, c.BaseURL())
		case tc.want == "" && !strings.Contains(err.Error(), "want the admin API's base URL"):
			t.Errorf("NewClient(%q): %v, want it to say what it wants", tc.base, err)
		case tc.want != "" && (err != nil || c.BaseURL() != tc.want):
			t.Errorf("NewClient(%q) = %v, %v; want base %s", tc.base, c, err, tc.want)
		}
	}
}
