package admin

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// readGuard makes the admin API's own reads follow the roles once tokens
// are configured. It is safe for concurrent use.
type readGuard struct {
	auth  *Authenticator
	audit *Audit
	// refusals limits the refused reads per remote address that are
	// audited one by one.
	refusals *RateLimiter
	// unaudited counts the refused reads answered 429 instead.
	unaudited  atomic.Int64
	lastLogged atomic.Int64 // Unix nanoseconds of the last log line about them
}

// guard returns h behind a check that the caller's token allows need,
// when tokens are configured, and is not scoped; action names the read
// in the audit log.
// A refusal is answered 401 or 403 with the JSON error body (and
// WWW-Authenticate for 401) and audited, until its address is past the
// limit on refusals: then it is answered 429 with Retry-After and only
// counted, so a flood of refused reads cannot fill the audit log's disk.
// Allowed reads are not audited (dashboards and scrapes poll them).
func (g *readGuard) guard(action string, need Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.auth.Configured() {
			h.ServeHTTP(w, r)
			return
		}
		who, err := g.auth.Authorize(r, need)
		if err == nil && who.Scoped() {
			// Scoped tokens are tenants': these reads show every host's
			// exact figures (per-site counts, top keys, the fill path's
			// evidence), which a tenant must not see of another's hosts.
			err = forbidden(fmt.Sprintf("token %q is scoped (%s), and this read shows every host's exact figures: a scoped token reads GET /aggregates (its hosts' noised aggregates) and purge status",
				who.Name, who.Scope))
		}
		if err == nil {
			h.ServeHTTP(w, r)
			return
		}
		ae, ok := err.(*AuthError)
		if !ok {
			ae = unauthorized(err.Error())
		}
		host, _, serr := net.SplitHostPort(r.RemoteAddr)
		if serr != nil {
			host = r.RemoteAddr
		}
		if ok, _ := g.refusals.Allow(host, time.Now()); !ok {
			n := g.unaudited.Add(1)
			g.logUnaudited(r.RemoteAddr, n)
			w.Header().Set("Retry-After", "1")
			WriteJSON(w, http.StatusTooManyRequests, ErrorDoc{"too many refused calls from this address"})
			return
		}
		if g.audit != nil {
			rec := AuditRecord{Who: who.Name, Key: who.KeyID, Action: action, What: r.URL.Path, From: r.RemoteAddr, Via: "admin",
				Status: ae.Status, Result: "refused: " + ae.Reason}
			if who.Role != 0 {
				rec.Role = who.Role.String()
			}
			if who.Scoped() {
				rec.Scope = who.Scope.String()
			}
			g.audit.Write(rec)
		}
		WriteAuthError(w, ae)
	})
}

// logUnaudited logs, at most once per auditErrorLogEvery, that refused
// reads are being counted rather than audited.
func (g *readGuard) logUnaudited(from string, n int64) {
	if g.audit == nil {
		return
	}
	now := time.Now().UnixNano()
	last := g.lastLogged.Load()
	if last != 0 && now-last < int64(auditErrorLogEvery) {
		return
	}
	if g.lastLogged.CompareAndSwap(last, now) {
		g.audit.log.Warn("admin: too many refused reads from one address; refusing them with 429 without an audit line each",
			"remote_addr", from, "refusals_not_audited", n)
	}
}
