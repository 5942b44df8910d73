// Package admin serves Weir's admin API on its own listener: health,
// readiness and status for operators and orchestrators. It is never
// mounted on the edge listener.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"
)

// Options configure the admin handler.
type Options struct {
	// Ready reports whether the node should receive traffic; a non-nil
	// error is shown as the reason. Nil means always ready.
	Ready func() error
	// Status returns the JSON document served at /status; nil serves {}.
	Status func() any
	// Doctor returns the JSON document served at /debug/doctor (role
	// viewer), what `weir doctor` reads, within the request's context;
	// nil serves 404.
	Doctor func(ctx context.Context) any
	// Cluster returns the JSON document served at /cluster: the members
	// and, when key is not empty, which node owns it. A non-nil error is
	// the client's mistake (400). Nil serves 404: not a cluster member.
	Cluster func(key string) (any, error)
	// Explain returns the JSON document served at /debug/explain: what
	// the edge would do with a GET of rawURL carrying the request fields
	// in header ("Name: value" each). A non-nil error is the client's
	// mistake (400). Nil serves 404.
	Explain func(rawURL string, header []string) (any, error)
	// Routes, when set, adds more endpoints to the admin API (the purge
	// API registers itself through it).
	Routes func(mux *http.ServeMux)
	// Views are more reads guarded as /status is (role viewer once tokens
	// are configured, refusals audited and limited alike); the dashboard's
	// event stream is one. Nil adds none.
	Views []View
	// Metrics serves /metrics; nil serves 404.
	Metrics http.Handler
	// Events serves GET /debug/events, the node's flight recorder
	// (journal.Handler), with the access of /status; nil serves 404.
	Events http.Handler
	// Auth guards the reads once tokens are configured (a tokens file or
	// a token keys file, see Authenticator.Configured): /status, /cluster,
	// /debug/explain, /debug/doctor, /metrics and /debug/events then need
	// role viewer, /debug/pprof/ role admin. /healthz and /readyz are always open. Nil, or an Authenticator
	// without either file, leaves every read open, as the admin listener
	// is on loopback by default. The routes of Routes guard themselves.
	Auth *Authenticator
	// MetricsPublic leaves /metrics open even when Auth has tokens (a
	// Prometheus scrape on a management network).
	MetricsPublic bool
	// Audit receives the refused reads, at most refusalBurst per remote
	// address and refusalRate a second after that; past the limit they
	// are answered 429 and not written. Nil writes none.
	Audit *Audit
}

// View is a read endpoint of Options.Views.
type View struct {
	// Pattern is the ServeMux pattern ("GET /dashboard/events").
	Pattern string
	// Action names the read in the audit log's refusals ("dashboard").
	Action  string
	Handler http.Handler
}

// Limits on the refused reads audited one by one per remote address (the
// purge API's limit on calls without a valid token is the same).
const (
	refusalRate  = 5
	refusalBurst = 50
)

// NewHandler returns the admin API:
//
//	GET /healthz  liveness: 200 while the process can serve
//	GET /readyz   readiness: 200, or 503 with the reason
//	GET /status   JSON status document
//	GET /cluster  JSON cluster membership; ?key=URL adds the key's owner
//	GET /metrics  Prometheus metrics
//	GET /debug/events  the flight recorder's events, as JSON lines
//	GET /debug/explain?url=URL&header=...  what the edge would do with URL, and why
//	GET /debug/doctor  JSON evidence of the fill path for `weir doctor`
//	/debug/pprof/ Go profiles (net/http/pprof)
//
// plus what opt.Routes and opt.Views register.
func NewHandler(opt Options) http.Handler {
	mux := http.NewServeMux()
	if opt.Routes != nil {
		opt.Routes(mux)
	}
	g := &readGuard{auth: opt.Auth, audit: opt.Audit, refusals: NewRateLimiter(refusalRate, refusalBurst, 10000)}
	for _, v := range opt.Views {
		mux.Handle(v.Pattern, g.guard(v.Action, RoleViewer, v.Handler))
	}
	if opt.Metrics != nil {
		if opt.MetricsPublic {
			mux.Handle("GET /metrics", opt.Metrics)
		} else {
			mux.Handle("GET /metrics", g.guard("metrics", RoleViewer, opt.Metrics))
		}
	}
	if opt.Events != nil {
		mux.Handle("GET /debug/events", g.guard("events", RoleViewer, opt.Events))
	}
	mux.Handle("/debug/pprof/", g.guard("pprof", RoleAdmin, http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", g.guard("pprof", RoleAdmin, http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", g.guard("pprof", RoleAdmin, http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", g.guard("pprof", RoleAdmin, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", g.guard("pprof", RoleAdmin, http.HandlerFunc(pprof.Trace)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if opt.Ready != nil {
			if err := opt.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /status", g.guard("status", RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc any = struct{}{}
		if opt.Status != nil {
			doc = opt.Status()
		}
		WriteJSON(w, http.StatusOK, doc)
	})))
	if opt.Doctor != nil {
		mux.Handle("GET /debug/doctor", g.guard("doctor", RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, opt.Doctor(r.Context()))
		})))
	}
	mux.Handle("GET /cluster", g.guard("cluster", RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opt.Cluster == nil {
			WriteJSON(w, http.StatusNotFound, ErrorDoc{"this node is not part of a cluster: set cluster.listen (--cluster-listen) to enable it"})
			return
		}
		doc, err := opt.Cluster(r.URL.Query().Get("key"))
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, ErrorDoc{err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, doc)
	})))
	mux.Handle("GET /debug/explain", g.guard("explain", RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opt.Explain == nil {
			WriteJSON(w, http.StatusNotFound, ErrorDoc{"this node cannot explain responses"})
			return
		}
		q := r.URL.Query()
		doc, err := opt.Explain(q.Get("url"), q["header"])
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, ErrorDoc{err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, doc)
	})))
	return mux
}

// ErrorDoc is the JSON body of an error answer.
type ErrorDoc struct {
	Error string `json:"error"`
}

// WriteJSON answers with doc as indented JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, doc any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}

// NewServer returns the admin listener's server with conservative limits.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}
