package node

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/units"
)

// startFaults creates the node's injected faults (POST /faults), before
// the sites, the cluster and the purge service, whose transports apply
// them. A fault that ends is logged and recorded.
func (n *Node) startFaults() {
	n.faults = inject.New(func(f inject.Fault, reason string) {
		n.log.Info("fault injection ended", "fault", f.ID, "target", f.Target, "reason", reason, "matched", f.Matched)
		n.journal.Record(journal.FaultEnd, journal.Details{"id": f.ID, "target": f.Target, "reason": reason, "matched": f.Matched})
	})
}

// Faults returns the node's injected faults: tests and the chaos suite
// add faults through it as POST /faults does.
func (n *Node) Faults() *inject.Set { return n.faults }

func (n *Node) faultsDoc() status.Faults {
	fs := n.faults.List()
	if fs == nil {
		fs = []inject.Fault{}
	}
	return status.Faults{Faults: fs, MaxActive: inject.MaxActive, MaxDuration: units.FormatDuration(inject.MaxDuration)}
}

// registerFaults adds the fault-injection API to the admin mux:
//
//	POST   /faults       add a fault (role operator, audited) → the fault
//	DELETE /faults/{id}  end one (role operator, audited) → the fault
//
// GET /faults, the list, is a view guarded as /status (faultsView).
func (n *Node) registerFaults(mux *http.ServeMux) {
	mux.HandleFunc("POST /faults", n.serveAddFault)
	mux.HandleFunc("DELETE /faults/{id}", n.serveEndFault)
}

// faultsView serves GET /faults.
func (n *Node) faultsView() admin.View {
	return admin.View{Pattern: "GET /faults", Action: "faults", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, n.faultsDoc())
	})}
}

func (n *Node) serveAddFault(w http.ResponseWriter, r *http.Request) {
	rec := admin.AuditRecord{Action: "fault.add", From: r.RemoteAddr, Via: "admin"}
	who, ok := n.authorize(w, r, admin.RoleOperator, &rec)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, inject.MaxSpecBytes+1))
	if err != nil {
		n.refuse(w, &rec, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	spec, err := inject.ParseSpec(body)
	if err != nil {
		n.refuse(w, &rec, http.StatusBadRequest, err.Error())
		return
	}
	rec.What = spec
	by := who.Name
	if by == "" {
		by = "anonymous"
	}
	f, err := n.faults.Add(spec, by)
	if err != nil {
		status := http.StatusConflict // too many active, or shutting down
		n.refuse(w, &rec, status, err.Error())
		return
	}
	n.log.Warn("fault injection started: this node's messages are delayed, lost or failed on purpose until it ends",
		"fault", f.ID, "target", f.Target, "delay", time.Duration(f.Delay).String(), "jitter", time.Duration(f.Jitter).String(),
		"loss", f.Loss, "error_rate", f.ErrorRate, "reset_rate", f.ResetRate, "hosts", strings.Join(f.Hosts, ","),
		"skew", time.Duration(f.Skew).String(), "percent", f.Percent, "expires", f.Expires, "by", by)
	n.journal.Record(journal.FaultStart, journal.Details{"id": f.ID, "target": f.Target, "by": by,
		"delay_ms": time.Duration(f.Delay).Milliseconds(), "jitter_ms": time.Duration(f.Jitter).Milliseconds(),
		"loss": f.Loss, "error_rate": f.ErrorRate, "reset_rate": f.ResetRate, "hosts": strings.Join(f.Hosts, ","),
		"skew_ms": time.Duration(f.Skew).Milliseconds(), "percent": f.Percent, "duration_ms": time.Duration(f.Duration).Milliseconds()})
	rec.ID, rec.Time, rec.Status, rec.Result = f.ID, time.Now().UTC(), http.StatusOK, "ok"
	n.audit.Write(rec)
	admin.WriteJSON(w, http.StatusOK, f)
}

func (n *Node) serveEndFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec := admin.AuditRecord{Action: "fault.end", What: clip(id), ID: clip(id), From: r.RemoteAddr, Via: "admin"}
	if _, ok := n.authorize(w, r, admin.RoleOperator, &rec); !ok {
		return
	}
	f, ok := n.faults.Remove(id)
	if !ok {
		n.refuse(w, &rec, http.StatusNotFound, fmt.Sprintf("no active fault %q: it ended, or never was; GET /faults lists the active ones", clip(id)))
		return
	}
	rec.Time, rec.Status, rec.Result = time.Now().UTC(), http.StatusOK, "ok"
	n.audit.Write(rec)
	admin.WriteJSON(w, http.StatusOK, f)
}

// authorize checks that r carries an unscoped token with role need and
// fills in rec's caller. A refused call is answered and audited as rec,
// except that calls without a valid token past the per-address limit
// get 429 and are not written.
func (n *Node) authorize(w http.ResponseWriter, r *http.Request, need admin.Role, rec *admin.AuditRecord) (admin.Principal, bool) {
	who, err := n.auth.Authorize(r, need)
	rec.Who, rec.Key = who.Name, who.KeyID
	if who.Role != 0 {
		rec.Role = who.Role.String()
	}
	if err == nil {
		return who, true
	}
	ae, ok := errors.AsType[*admin.AuthError](err)
	if !ok {
		ae = &admin.AuthError{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	if ae.Status == http.StatusUnauthorized && !n.allowRefusal(r) {
		w.Header().Set("Retry-After", "1")
		admin.WriteJSON(w, http.StatusTooManyRequests, admin.ErrorDoc{Error: "too many calls without a valid token from this address"})
		return who, false
	}
	rec.Time, rec.Status, rec.Result = time.Now().UTC(), ae.Status, "refused: "+ae.Reason
	n.audit.Write(*rec)
	admin.WriteAuthError(w, ae)
	return who, false
}

// refuse answers an authorized call that failed with status and msg,
// and audits it.
func (n *Node) refuse(w http.ResponseWriter, rec *admin.AuditRecord, status int, msg string) {
	rec.Time, rec.Status, rec.Result = time.Now().UTC(), status, "refused: "+msg
	n.audit.Write(*rec)
	admin.WriteJSON(w, status, admin.ErrorDoc{Error: msg})
}

// claimedSender names the member a peer request says it comes from, and
// its address, for the Hosts of faults on the answers. The claim is not
// verified here (the handlers verify it): a liar can only choose which of
// this node's own faults its answer gets.
func claimedSender(r *http.Request) []string {
	if f := strings.Fields(r.Header.Get(cluster.AuthHeader)); len(f) == 5 {
		return []string{f[3], r.RemoteAddr}
	}
	if f := strings.Fields(r.Header.Get(purge.SigHeader)); len(f) == 8 {
		return []string{f[2], r.RemoteAddr}
	}
	return []string{r.RemoteAddr}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
