package purge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
)

// Register adds the purge API to the admin listener's mux:
//
//	POST /purge       issue a purge (role purge; operator for hosts, a host's
//	                  root prefix or all, see Need):
//	                  {"urls","prefixes","tags","hosts","all","soft"} → {"id"}
//	GET  /purge/{id}  a purge's per-node acknowledgements (role viewer); the
//	                  issuing node tracks them, other members ask it
//	GET  /purge       this node's purge counters and lag (role viewer)
//
// Every endpoint, like PURGE on the edge listener, answers a call without
// a valid token (or with too weak a role) through the same per-address
// limit and writes it to the audit log; the reads are audited only when
// refused, as `weir purge --wait` polls them.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /purge", s.servePost)
	mux.HandleFunc("GET /purge/{id}", s.serveStatus)
	mux.HandleFunc("GET /purge", s.serveStats)
}

// MethodPURGE is the HTTP method that purges a URL on the edge listener.
const MethodPURGE = "PURGE"

// IDDoc is the answer to an issued purge.
type IDDoc struct {
	ID string `json:"id"`
}

func (s *Service) servePost(w http.ResponseWriter, r *http.Request) {
	rec := admin.AuditRecord{Action: "purge", From: r.RemoteAddr, Via: "admin"}
	who, ok := s.allow(w, r, admin.RolePurge, &rec)
	if !ok {
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, MaxRequestBytes+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		msg := fmt.Sprintf(`the body is not a purge: %v; send JSON such as {"urls": ["https://example.com/a"], "soft": false} (at most %d bytes)`, err, MaxRequestBytes)
		if errors.Is(err, io.EOF) {
			msg = `the body is empty; send JSON such as {"urls": ["https://example.com/a"]}`
		}
		s.fail(w, &rec, http.StatusBadRequest, msg)
		return
	}
	if dec.More() {
		s.fail(w, &rec, http.StatusBadRequest, "the body holds more than one JSON document; send one purge per call")
		return
	}
	rec.What = req
	if !s.permit(w, &rec, who, &req) {
		return
	}
	s.issue(w, &rec, req)
}

// ServePurge serves the PURGE method on the edge listener: it purges the
// request's URL (all variants), or, when the request carries
// Surrogate-Key, those tags instead. Weir-Soft-Purge: 1 (or Fastly's
// Fastly-Soft-Purge: 1) makes it soft. It needs a token with the purge
// role, like POST /purge, and the same checks of what it purges (permit).
func (s *Service) ServePurge(w http.ResponseWriter, r *http.Request) {
	rec := admin.AuditRecord{Action: "purge", From: r.RemoteAddr, Via: "edge"}
	who, ok := s.allow(w, r, admin.RolePurge, &rec)
	if !ok {
		return
	}
	var req Request
	if sk := r.Header.Values("Surrogate-Key"); len(sk) > 0 {
		for _, v := range sk {
			req.Tags = append(req.Tags, strings.Fields(v)...)
		}
	} else {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		req.URLs = []string{scheme + "://" + r.Host + r.URL.RequestURI()}
	}
	req.Soft = r.Header.Get("Weir-Soft-Purge") == "1" || r.Header.Get("Fastly-Soft-Purge") == "1"
	rec.What = req
	if !s.permit(w, &rec, who, &req) {
		return
	}
	s.issue(w, &rec, req)
}

func (s *Service) issue(w http.ResponseWriter, rec *admin.AuditRecord, req Request) {
	e, err := s.Issue(req)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrInvalid):
			status = http.StatusBadRequest
		case errors.Is(err, ErrHeld), errors.Is(err, ErrNoMajority):
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, rec, status, err.Error())
		return
	}
	rec.ID, rec.Status, rec.Result = e.ID(), http.StatusOK, "ok"
	s.audit(rec)
	admin.WriteJSON(w, http.StatusOK, IDDoc{ID: e.ID()})
}

func (s *Service) serveStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec := admin.AuditRecord{Action: "purge.status", What: clip(id), From: r.RemoteAddr, Via: "admin"}
	if _, ok := s.authorize(w, r, admin.RoleViewer, &rec); !ok {
		return
	}
	node, inc, seq, err := ParseID(id)
	if err != nil {
		admin.WriteJSON(w, http.StatusBadRequest, admin.ErrorDoc{Error: err.Error()})
		return
	}
	if node != s.self.Node {
		s.relayStatus(w, id, node)
		return
	}
	doc, ok := s.Status(inc, seq)
	if !ok {
		msg := fmt.Sprintf("purge %s is not known: this node tracks its last %d purges, since it started", clip(id), maxStatuses)
		if inc != s.self.Inc {
			msg = fmt.Sprintf("purge %s was issued before this node restarted; its acknowledgements were not kept", clip(id))
		}
		admin.WriteJSON(w, http.StatusNotFound, admin.ErrorDoc{Error: msg})
		return
	}
	admin.WriteJSON(w, http.StatusOK, doc)
}

// relayStatus answers GET /purge/{id} for a purge issued on another
// node by asking that node over the peer port, so that any member's admin
// API can answer.
func (s *Service) relayStatus(w http.ResponseWriter, id, node string) {
	var addr string
	if s.opt.Members != nil {
		for _, p := range s.opt.Members.Peers() {
			if p.Name == node {
				addr = p.Addr
			}
		}
	}
	if addr == "" {
		admin.WriteJSON(w, http.StatusNotFound, admin.ErrorDoc{Error: fmt.Sprintf("purge %s was issued on node %s, which alone tracks its acknowledgements and is not a member now", clip(id), clip(node))})
		return
	}
	body, err := encode(statusMsg{ID: id}, s.opt.Uncompressed)
	if err != nil {
		admin.WriteJSON(w, http.StatusInternalServerError, admin.ErrorDoc{Error: err.Error()})
		return
	}
	var reply statusReply
	if err := s.call(s.syncC, node, addr, "status", body, &reply); err != nil {
		admin.WriteJSON(w, http.StatusBadGateway, admin.ErrorDoc{Error: fmt.Sprintf("purge %s was issued on node %s, which did not answer: %v; ask its admin API", clip(id), clip(node), err)})
		return
	}
	if !reply.Found {
		admin.WriteJSON(w, http.StatusNotFound, admin.ErrorDoc{Error: fmt.Sprintf("purge %s is not known to node %s, which issued it: it tracks its last purges since it started", clip(id), clip(node))})
		return
	}
	admin.WriteJSON(w, http.StatusOK, reply.Doc)
}

func (s *Service) serveStats(w http.ResponseWriter, r *http.Request) {
	rec := admin.AuditRecord{Action: "purge.stats", From: r.RemoteAddr, Via: "admin"}
	if _, ok := s.authorize(w, r, admin.RoleViewer, &rec); !ok {
		return
	}
	admin.WriteJSON(w, http.StatusOK, s.Stats())
}

// allow authorizes a purge call and takes a token from its caller's rate
// limit, answering and auditing the call when it is refused.
func (s *Service) allow(w http.ResponseWriter, r *http.Request, need admin.Role, rec *admin.AuditRecord) (admin.Principal, bool) {
	who, ok := s.authorize(w, r, need, rec)
	if !ok {
		return who, false
	}
	if s.opt.Limiter != nil {
		key := who.Name
		if who.KeyID != "" { // a capability token: names are not unique across keys and the tokens file
			key += "@" + who.KeyID
		}
		if ok, retry := s.opt.Limiter.Allow(key, time.Now()); !ok {
			secs := int(math.Ceil(retry.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			s.fail(w, rec, http.StatusTooManyRequests, fmt.Sprintf("token %s is over its purge rate limit; retry after %d s, or batch URLs into one call", who.Name, max(secs, 1)))
			return who, false
		}
	}
	return who, true
}

// authorize checks that r carries a token with role need, and fills in
// rec's caller. A refused call is answered and audited as rec, except
// that calls without a valid token past the per-address limit
// (allowRefusal) get 429 and are counted instead: every endpoint of the
// purge API goes through it.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request, need admin.Role, rec *admin.AuditRecord) (admin.Principal, bool) {
	// Scoped tokens may call every endpoint here: permit checks what a
	// purge names against the scope, and the reads need only viewer.
	who, err := s.opt.Auth.AuthorizeScoped(r, need)
	rec.Who, rec.Key = who.Name, who.KeyID
	if who.Role != 0 {
		rec.Role = who.Role.String()
	}
	if who.Scoped() {
		rec.Scope = who.Scope.String()
	}
	if err == nil {
		return who, true
	}
	ae := authError(err)
	if ae.Status == http.StatusUnauthorized && !s.allowRefusal(r) {
		// A flood of calls without a valid token would otherwise fill
		// the audit log's disk: past the per-address limit they are
		// counted, not written.
		s.stats.unaudited.Add(1)
		s.logLimited("unaudited", "purge: too many calls without a valid token from one address; refusing them without an audit line each", "remote_addr", r.RemoteAddr)
		w.Header().Set("Retry-After", "1")
		admin.WriteJSON(w, http.StatusTooManyRequests, admin.ErrorDoc{Error: "too many calls without a valid token from this address"})
		return who, false
	}
	rec.Status, rec.Result = ae.Status, "refused: "+ae.Reason
	s.audit(rec)
	admin.WriteAuthError(w, ae)
	return who, false
}

// allowRefusal takes a token from the limit on unauthenticated calls of
// r's remote address.
func (s *Service) allowRefusal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ok, _ := s.refusals.Allow(host, time.Now())
	return ok
}

// authError returns err as an *admin.AuthError; any other error refuses
// the call as unauthenticated.
func authError(err error) *admin.AuthError {
	var ae *admin.AuthError
	if errors.As(err, &ae) {
		return ae
	}
	return &admin.AuthError{Status: http.StatusUnauthorized, Reason: err.Error()}
}

func (s *Service) fail(w http.ResponseWriter, rec *admin.AuditRecord, status int, msg string) {
	rec.Status, rec.Result = status, "refused: "+msg
	if status >= 500 {
		rec.Result = "failed: " + msg
	}
	s.audit(rec)
	admin.WriteJSON(w, status, admin.ErrorDoc{Error: msg})
}

func (s *Service) audit(rec *admin.AuditRecord) {
	rec.Time = time.Now().UTC()
	s.opt.Audit.Write(*rec)
}
