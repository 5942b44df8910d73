package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/status"
)

// A reload re-reads the configuration (Options.Source: the file and the
// flags over it) and every file it names, and applies what changed, in
// two phases:
//
//  1. prepare: parse and validate the configuration, plan the changes
//     (config.Plan) and refuse those a running node cannot apply, check
//     the tokens file, the cluster key file and every certificate, build
//     the new site snapshot (with the registry's clients for unchanged
//     origins), bind each listener whose address changed. Any problem
//     undoes what was prepared and changes nothing: the answer lists
//     every problem.
//  2. commit: move the changed listeners to their new sockets, swap the
//     snapshot in (requests in flight finish on the old one), put the
//     keys, tokens and certificates in force, reopen the logs.
//
// What outlives a reload: the cache, each unchanged origin's client (its
// breakers, health, ejections and pooled connections), the overload
// limit learned so far, cluster membership, and every listener whose
// address did not change, with its connections.

// The results of a reload, as status.Reload and the metric name them.
const (
	reloadOK        = "ok"
	reloadUnchanged = "unchanged"
	reloadError     = "error"
)

// restartHint follows the refused changes of a reload.
const restartHint = "settings that need a restart are applied without dropping a connection by an in-place restart: send SIGUSR2 (the new process starts with an empty cache)"

// reloadState is what /status and the metrics say of reloads.
type reloadState struct {
	mu        sync.Mutex
	hash      string
	appliedAt time.Time
	last      *status.Reload
	ok, fail  int64
}

// applied records cfg as the configuration in force since at.
func (s *reloadState) applied(cfg *config.Config, at time.Time) {
	hash := cfg.Hash()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hash, s.appliedAt = hash, at
}

// record counts a reload's outcome.
func (s *reloadState) record(r status.Reload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Result == reloadError {
		s.fail++
	} else {
		s.ok++
	}
	s.last = &r
}

// status returns the /status document's config section.
func (s *reloadState) status(file string) status.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return status.Config{Hash: s.hash, File: file, AppliedAt: s.appliedAt, Reloads: s.ok + s.fail, ReloadsFailed: s.fail, LastReload: s.last}
}

// Reload re-reads the configuration and the files it names and applies
// what changed (see ReloadConfig); on SIGHUP. It returns every problem
// when it changed nothing.
func (n *Node) Reload() error {
	if r := n.ReloadConfig("signal"); r.Result == reloadError {
		return errors.New(r.Error)
	}
	return nil
}

// ReloadConfig re-reads the configuration and the files it names and
// applies what changed, or, on any problem, changes nothing; trigger says
// who asked, for the log and /status. Requests in flight finish on the
// configuration they started with.
func (n *Node) ReloadConfig(trigger string) status.Reload {
	r, _ := n.reload(trigger, n.opt.Source)
	return r
}

// reload is ReloadConfig from src, also returning the changes planned.
func (n *Node) reload(trigger string, src func() (*config.Config, error)) (status.Reload, config.Changes) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	res := status.Reload{Time: time.Now().UTC(), Trigger: trigger}
	p, problems := n.prepare(src)
	if len(problems) > 0 {
		if p != nil && p.certsFailed {
			// The certificate stores keep the pairs in force and record
			// why the new ones do not load (/status, the stale metric),
			// as they do when they see the files change.
			_ = n.reloadCerts()
		}
		res.Result, res.Problems, res.Error = reloadError, problems, strings.Join(problems, "; ")
		res.Hash = n.config().Hash()
		n.log.Error("reload: configuration not applied; everything stays as it was", "trigger", trigger, "problems", res.Error)
		n.journal.Record(journal.Reload, journal.Details{"trigger": trigger, "result": res.Result, "problems": res.Error})
		n.reloads.record(res)
		var planned config.Changes
		if p != nil {
			planned = p.changes
		}
		return res, planned
	}
	n.commit(p)
	res.Hash = p.cfg.Hash()
	res.Reloaded = p.reloaded
	res.Result = reloadUnchanged
	if !p.changes.Empty() {
		res.Result = reloadOK
		for _, c := range p.changes {
			res.Changes = append(res.Changes, c.String())
		}
		n.reloads.applied(p.cfg, res.Time)
	}
	n.journal.Record(journal.Reload, journal.Details{"trigger": trigger, "result": res.Result, "changes": p.changes.String(), "hash": res.Hash})
	n.log.Info("reload: configuration applied", "trigger", trigger, "result", res.Result, "changes", p.changes.String(),
		"hash", res.Hash, "reloaded", strings.Join(p.reloaded, ", "))
	for _, line := range p.diff {
		n.log.Info("reload: setting changed", "change", line)
	}
	res.Diff = p.diff
	n.reloads.record(res)
	return res, p.changes
}

// reloadPlan is what prepare readied and commit puts in force.
type reloadPlan struct {
	cfg     *config.Config
	changes config.Changes
	diff    []string
	// snap is the new site snapshot, nil when the sites did not change.
	snap *site.Snapshot
	// listeners are the new sockets of the listeners whose address
	// changed, by name.
	listeners map[string]net.Listener
	// keys is the cluster key file as re-read, nil without one.
	keys *cluster.Keyring
	// trust is cluster.identity's CAs and revocations as reloaded, nil
	// outside a cluster.
	trust *cluster.Trust
	// reloaded names the files re-read, for the answer.
	reloaded []string
	// certsFailed is set when a certificate did not load.
	certsFailed bool
}

// abort undoes what prepare did.
func (p *reloadPlan) abort(n *Node) {
	for _, ln := range p.listeners {
		ln.Close()
	}
	if p.snap != nil {
		n.builder.Release(p.snap)
	}
}

// prepare readies a reload, or returns every reason it cannot be applied
// (having undone what it readied).
func (n *Node) prepare(src func() (*config.Config, error)) (*reloadPlan, []string) {
	old := n.config()
	next := old
	if src != nil {
		cfg, err := src()
		if err != nil {
			return nil, lines(err)
		}
		next = cfg
	}
	if err := next.Validate(); err != nil {
		return nil, lines(err)
	}
	p := &reloadPlan{cfg: next, changes: config.Plan(old, next), diff: config.Diff(old, next), listeners: make(map[string]net.Listener)}
	if n.opt.LogLevel == nil {
		for i, c := range p.changes {
			if c.Field == "telemetry.log_level" {
				p.changes[i].Live, p.changes[i].Why = false, "this node's log was not given a level that can change"
			}
		}
	}
	var problems []string
	if refused := p.changes.Refused(); len(refused) > 0 {
		for _, c := range refused {
			problems = append(problems, c.String())
		}
		problems = append(problems, restartHint)
		return &reloadPlan{changes: p.changes}, problems
	}
	problems = append(problems, n.checkFiles(p)...)
	if siteChanges(p.changes) {
		snap, err := n.builder.Build(next, n.sites.Load())
		if err != nil {
			problems = append(problems, lines(err)...)
		} else {
			p.snap = snap
		}
	}
	for _, l := range []struct{ name, setting, old, new string }{
		{"edge", edgeSetting, old.Listen, next.Listen},
		{"tls", tlsSetting, old.TLS.Listen, next.TLS.Listen},
		{"admin", adminSetting, old.AdminListen, next.AdminListen},
	} {
		if l.old == l.new || l.new == "" || n.listeners.Addr(l.name) == nil {
			continue
		}
		ln, err := listen.Bind(n.spec(listen.Spec{Name: l.name, Addr: l.new, Setting: l.setting}))
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		p.listeners[l.name] = ln
	}
	if len(problems) > 0 {
		p.abort(n)
		return &reloadPlan{changes: p.changes, certsFailed: p.certsFailed}, problems
	}
	return p, nil
}

// checkFiles reads the files the node re-reads on reload, without
// putting them in force: the cluster key file (kept in p), the tokens
// file, every certificate.
func (n *Node) checkFiles(p *reloadPlan) []string {
	var problems []string
	if n.keys != nil {
		path := p.cfg.Cluster.KeyFile
		if warn := cluster.KeyFileModeWarning(path); warn != "" {
			n.log.Warn(warn)
		}
		keys, err := cluster.LoadKeyFile(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("cluster.key_file: %v", err))
		} else {
			p.keys = keys
			p.reloaded = append(p.reloaded, "cluster key file "+path)
		}
	}
	if n.cluster != nil {
		id := p.cfg.Cluster.Identity
		t, err := cluster.NewTrust(id.CA, p.keys, id.Revoked)
		if err != nil {
			problems = append(problems, lines(err)...)
		} else {
			p.trust = t
		}
	}
	if path := n.auth.Path(); path != "" {
		if _, err := admin.LoadTokens(path); err != nil {
			problems = append(problems, fmt.Sprintf("admin_tokens_file: %v", err))
		} else {
			p.reloaded = append(p.reloaded, "tokens file "+path)
		}
	}
	if path := n.auth.KeysPath(); path != "" {
		if _, err := captoken.LoadKeys(path); err != nil {
			problems = append(problems, fmt.Sprintf("admin_token_keys_file: %v", err))
		} else {
			p.reloaded = append(p.reloaded, "token keys file "+path)
		}
	}
	for _, s := range []struct {
		setting string
		store   *certs.Store
	}{{"tls", n.tls.edge}, {"admin_tls", n.tls.admin}, {"cluster.peer_tls", n.tls.peer}} {
		if s.store == nil {
			continue
		}
		if err := s.store.Check(); err != nil {
			p.certsFailed = true
			for _, l := range lines(err) {
				problems = append(problems, s.setting+": "+l)
			}
		} else {
			p.reloaded = append(p.reloaded, s.setting+" certificates")
		}
	}
	return problems
}

// siteChanges reports whether any change is to a setting the site
// snapshot holds.
func siteChanges(changes config.Changes) bool {
	for _, c := range changes {
		if strings.HasPrefix(c.Field, "hosts[") || strings.HasPrefix(c.Field, "origins[") || strings.HasPrefix(c.Field, "cache.") {
			return true
		}
	}
	return false
}

// commit puts a prepared reload in force. Each step keeps what was in
// force when it fails (a file changed again since prepare read it), and
// logs why.
func (n *Node) commit(p *reloadPlan) {
	for name, ln := range p.listeners {
		if err := n.listeners.Rebind(name, ln); err != nil {
			n.log.Error("reload: listener not moved", "listener", name, "error", err.Error())
			continue
		}
		n.log.Info("reload: listener moved", "listener", name, "addr", ln.Addr().String())
	}
	if p.snap != nil {
		n.builder.Release(n.sites.Swap(p.snap))
	}
	if p.keys != nil {
		n.putKeys(p.keys)
	}
	if p.trust != nil {
		if err := n.cluster.SetTrust(p.trust); err != nil {
			n.log.Error("reload: cluster.identity not put in force; the previous CAs and revocations stay in force", "error", err.Error())
		}
	}
	if err := n.auth.Reload(); err != nil {
		n.log.Error("reload: API tokens file not reloaded; the previous tokens stay in force", "path", n.auth.Path(), "error", err.Error())
	}
	if err := n.reloadCerts(); err != nil {
		n.log.Error("reload: certificates not all reloaded; the previous ones are still served", "error", err.Error())
	}
	if err := n.auth.ReloadKeys(); err != nil {
		n.log.Error("reload: token keys file not reloaded; the previous keys stay in force", "path", n.auth.KeysPath(), "error", err.Error())
	}
	if err := n.audit.Reopen(); err != nil {
		n.log.Error("reload: audit log not reopened", "error", err.Error())
	}
	if n.accessFile != nil {
		if err := n.accessFile.Reopen(); err != nil {
			n.log.Error("reload: access log not reopened; the file open before stays in use", "path", n.accessFile.Path(), "error", err.Error())
		}
	}
	if lv := n.opt.LogLevel; lv != nil && p.cfg.Telemetry.LogLevel != n.cfg.Telemetry.LogLevel {
		var l slog.Level
		if l.UnmarshalText([]byte(p.cfg.Telemetry.LogLevel)) == nil { // validated
			lv.Set(l)
		}
	}
	n.cfg = p.cfg
	n.live.Store(p.cfg)
}

// putKeys puts re-read cluster keys in force for gossip, peer fills,
// purge messages and session tickets: key rotation needs no restart.
func (n *Node) putKeys(keys *cluster.Keyring) {
	if err := n.cluster.SetKeys(keys); err != nil {
		n.log.Error("reload: cluster keys not put in force; the previous keys stay in force", "keys", n.keys, "error", err.Error())
		return
	}
	n.purge.SetKeyring(keys)
	n.keys = keys
	if n.tls.tickets != nil {
		n.tls.tickets.SetSecrets(ticketSecrets(keys))
	}
	n.log.Info("reload: cluster key file re-read", "path", n.cfg.Cluster.KeyFile, "keys", keys)
}

// applySites puts cfg in force as a reload from a source answering cfg
// would, and returns its changes: tests of the site swap call it.
func (n *Node) applySites(cfg *config.Config) (config.Changes, error) {
	r, changes := n.reload("test", func() (*config.Config, error) { return cfg, nil })
	if r.Result == reloadError {
		return changes, errors.New(r.Error)
	}
	return changes, nil
}

// lines splits an error, as errors.Join and the configuration's
// validation write them, into one problem per line.
func lines(err error) []string {
	var out []string
	for l := range strings.Lines(err.Error()) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// serveReload answers POST /reload on the admin listener (role admin):
// 200 with what changed, 400 with every problem, 401/403 without the
// role. Every call, allowed or refused, is audited; calls without a valid
// token past the per-address limit get 429, counted instead of audited.
func (n *Node) serveReload(w http.ResponseWriter, r *http.Request) {
	rec := admin.AuditRecord{Action: "reload", From: r.RemoteAddr, Via: "admin"}
	who, ok := n.authorize(w, r, admin.RoleAdmin, &rec)
	if !ok {
		return
	}
	res := n.ReloadConfig("api:" + who.Name)
	code := http.StatusOK
	rec.Result = res.Result
	if res.Result == reloadError {
		code = http.StatusBadRequest
		rec.Result = "failed: " + res.Error
	}
	rec.What = struct {
		Hash    string   `json:"hash"`
		Changes []string `json:"changes,omitempty"`
	}{res.Hash, res.Changes}
	rec.Time, rec.Status = time.Now().UTC(), code
	n.audit.Write(rec)
	admin.WriteJSON(w, code, res)
}

// allowRefusal takes a token from the limit on unauthenticated admin
// calls of r's remote address.
func (n *Node) allowRefusal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ok, _ := n.refusals.Allow(host, time.Now())
	return ok
}
