package cluster

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/sign"
)

// Request and response fields of the peer protocol. Every name starts with
// "Weir-Peer-", which edges strip from clients' requests.
const (
	// ProtocolHeader carries the protocol version a peer request speaks.
	ProtocolHeader = "Weir-Peer-Protocol"
	// RefusedHeader marks a response in which a node refused a peer
	// request (authentication, protocol) rather than answered it; its
	// value is the reason.
	RefusedHeader = "Weir-Peer-Refused"
	// ReadHeader marks a read of the member's own state (ReadPeer)
	// rather than a fill; only nodes send it, since edges strip every
	// Weir-Peer-* field from clients' requests.
	ReadHeader = "Weir-Peer-Read"
)

// AuthWindow is how far a peer request's timestamp may be from the
// receiver's clock, [sign.Window]. It bounds both clock skew and how long
// a captured request can be replayed (peer requests only read: a replay
// can fetch the same URL again, nothing else).
const AuthWindow = sign.Window

// Peer breaker: after breakerFailures consecutive failed requests to a
// peer, fills skip it for breakerDelay, then one trial request decides.
const (
	breakerFailures = 5
	breakerDelay    = 5 * time.Second
)

// breakerDelay is breakerDelay, or the test's.
func (c *Cluster) breakerDelay() time.Duration {
	if c.cfg.breakerDelay > 0 {
		return c.cfg.breakerDelay
	}
	return breakerDelay
}

// Peer is another node of the cluster that fills the keys it owns. It
// implements edge.Peer.
type Peer struct {
	name, addr string
	proto      int
	c          *Cluster
	client     *origin.Client
	breaker    circuitbreaker.CircuitBreaker[any]
	// quarantined is set while this node does not trust the member
	// (Cluster.SetPeerTrust): fills go to the origin instead.
	quarantined atomic.Bool
}

// ErrBreakerOpen is the error of a request not sent because the peer's
// breaker is open.
var ErrBreakerOpen = errors.New("peer breaker is open")

// RefusedError is a peer's refusal of a request.
type RefusedError struct {
	Peer, Reason string
	Status       int
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("peer %s refused the request (%d, %s): check that every node has the same cluster keys and a compatible version", e.Peer, e.Status, e.Reason)
}

func (c *Cluster) newPeer(name, addr string, proto int) *Peer {
	p := &Peer{name: name, addr: addr, proto: proto, c: c}
	connect, header := c.cfg.PeerConnectTimeout, c.cfg.PeerTimeout
	if connect <= 0 {
		connect = time.Duration(config.DefaultPeerConnectTimeout)
	}
	if header <= 0 {
		header = time.Duration(config.DefaultPeerTimeout)
	}
	scheme := "http://"
	if c.cfg.PeerTLS != nil {
		scheme = "https://"
	}
	// The address comes from gossip, which is authenticated when the
	// cluster has keys; origin.New only accepts host:port URLs.
	client, err := origin.New(origin.Config{
		Name:                  "peer " + name,
		URL:                   scheme + addr,
		TLS:                   c.cfg.PeerTLS,
		ConnectTimeout:        connect,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: header,
		MaxIdleConns:          64,
		MaxConns:              1024,
		// The peer has its own breaker below, which counts only failed
		// exchanges: an origin's 5xx that the owner relays says nothing
		// about the owner. One server: no outlier detection, no retries.
		Breaker:     origin.Breaker{ConsecutiveFailures: -1},
		Outlier:     origin.Outlier{ConsecutiveFailures: -1},
		Retry:       origin.Retry{Attempts: 1},
		Bulkhead:    origin.Bulkhead{MaxConcurrent: 1024},
		Logger:      c.log,
		Faults:      c.cfg.Faults,
		FaultTarget: inject.TargetPeers,
		FaultHosts:  []string{name, addr},
	})
	if err != nil {
		c.log.Error("cluster: peer address is unusable; filling its keys from the origin", "peer", name, "peer_addr", addr, "error", err.Error())
		return nil
	}
	p.client = client
	p.breaker = circuitbreaker.NewBuilder[any]().
		WithFailureThreshold(breakerFailures).
		WithDelay(c.breakerDelay()).
		WithSuccessThreshold(1).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			msg := "cluster: peer breaker " + e.NewState.String()
			if e.NewState == circuitbreaker.OpenState {
				c.log.Warn(msg+": filling its keys from the origin for a while", "peer", name, "peer_addr", addr, "retry_in", c.breakerDelay().String())
				return
			}
			c.log.Info(msg, "peer", name, "peer_addr", addr)
		}).
		Build()
	return p
}

// Name returns the peer's node name.
func (p *Peer) Name() string { return p.name }

// Addr returns the peer's fill address.
func (p *Peer) Addr() string { return p.addr }

// BreakerState returns "closed", "open" or "half-open".
func (p *Peer) BreakerState() string {
	switch p.breaker.State() {
	case circuitbreaker.OpenState:
		return "open"
	case circuitbreaker.HalfOpenState:
		return "half-open"
	}
	return "closed"
}

// available reports whether fills may go to the peer: it is not
// quarantined, and its breaker is closed, half-open, or open past its
// delay (the next request is the trial that decides; the breaker only
// half-opens when asked for a permit, so a peer skipped until then would
// stay skipped for good).
func (p *Peer) available() bool {
	return !p.quarantined.Load() && !(p.breaker.IsOpen() && p.breaker.RemainingDelay() > 0)
}

func (p *Peer) close() { p.client.Close() }

// Do sends a fill request to the peer, authenticated with the cluster's
// primary key. req is not modified. An error means the peer gave no
// usable answer: it is down, slow, refused the request, or its breaker is
// open.
func (p *Peer) Do(req *http.Request) (*http.Response, error) {
	if !p.breaker.TryAcquirePermit() {
		return nil, ErrBreakerOpen
	}
	out := req.Clone(req.Context())
	out.Header[ProtocolHeader] = []string{strconv.Itoa(p.proto)}
	if keys := p.c.keys.Load(); keys != nil {
		SignRequest(keys, out, p.c.self, p.c.now())
	}
	resp, err := p.client.Do(out)
	if err != nil {
		p.breaker.RecordFailure()
		return nil, err
	}
	if reason := resp.Header.Get(RefusedHeader); reason != "" {
		resp.Body.Close()
		p.breaker.RecordFailure()
		return nil, &RefusedError{Peer: p.name, Reason: reason, Status: resp.StatusCode}
	}
	p.breaker.RecordSuccess()
	return resp, nil
}

// PeerServer serves fill requests that passed authentication
// (edge.Handler.ServePeer).
type PeerServer interface {
	ServePeer(w http.ResponseWriter, r *http.Request)
}

// PeerHandler returns the handler of the peer listener: it refuses
// requests that are not authenticated with a cluster key or that speak an
// unknown protocol version, and hands the rest to s.
func (c *Cluster) PeerHandler(s PeerServer) http.Handler {
	return &peerHandler{c: c, next: s}
}

type peerHandler struct {
	c    *Cluster
	next PeerServer
}

// Reasons a peer request is refused, as counted in PeerStats: the method
// or the protocol version, or a refused signature (sign's reasons; peer
// requests carry no nonce, so never sign.Replayed).
var refuseReasons = []string{"method", "protocol", sign.Missing, sign.Malformed, sign.UnknownKey, sign.Expired, sign.BadSignature}

// PeerStats counts the peer requests this node received.
type PeerStats struct {
	Served  int64            `json:"served"`
	Refused map[string]int64 `json:"refused"`
}

type peerCounters struct {
	served  atomic.Int64
	refused [7]atomic.Int64 // indexed like refuseReasons
	// lastLog spaces refusal log lines, per reason.
	lastLog [7]atomic.Int64
}

func (pc *peerCounters) snapshot() PeerStats {
	st := PeerStats{Served: pc.served.Load(), Refused: make(map[string]int64, len(refuseReasons))}
	for i, r := range refuseReasons {
		st.Refused[r] = pc.refused[i].Load()
	}
	return st
}

func (h *peerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := h.c
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.refusePeer(w, r, "method", http.StatusMethodNotAllowed, "peer fills are GET or HEAD requests", "")
		return
	}
	from := ""
	if keys := c.keys.Load(); keys != nil {
		node, err := VerifyRequest(keys, r, c.now(), AuthWindow)
		if err != nil {
			reason, status := sign.Malformed, http.StatusForbidden
			var ae *sign.Error
			if errors.As(err, &ae) {
				reason = ae.Reason
			}
			if reason == sign.Missing {
				status = http.StatusUnauthorized
			}
			c.refusePeer(w, r, reason, status, "peer request not authenticated: "+err.Error(), "")
			return
		}
		from = node
	}
	v, err := strconv.Atoi(r.Header.Get(ProtocolHeader))
	if lo, hi := c.cfg.protocol[0], c.cfg.protocol[1]; err != nil || v < lo || v > hi {
		c.refusePeer(w, r, "protocol", http.StatusBadRequest,
			fmt.Sprintf("peer protocol version %q is not spoken here; this node speaks %d..%d", r.Header.Get(ProtocolHeader), lo, hi), from)
		return
	}
	for k := range r.Header {
		if len(k) > len(peerPrefix) && k[:len(peerPrefix)] == peerPrefix {
			delete(r.Header, k)
		}
	}
	c.peerStats.served.Add(1)
	h.next.ServePeer(w, r)
}

const peerPrefix = "Weir-Peer-"

// refusePeer answers a refused peer request and logs it, at most once per
// reason every refuseLogEvery.
func (c *Cluster) refusePeer(w http.ResponseWriter, r *http.Request, reason string, status int, msg, from string) {
	i := indexOf(refuseReasons, reason)
	n := c.peerStats.refused[i].Add(1)
	now := time.Now().UnixNano()
	last := c.peerStats.lastLog[i].Load()
	if now-last >= int64(refuseLogEvery) && c.peerStats.lastLog[i].CompareAndSwap(last, now) {
		c.log.Warn("cluster: refused a peer request", "reason", reason, "remote", r.RemoteAddr, "from_node", from,
			"method", r.Method, "uri", r.RequestURI, "detail", msg, "refused_total", n)
	}
	h := w.Header()
	h.Set(RefusedHeader, reason)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

const refuseLogEvery = 10 * time.Second

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return 3 // an unexpected reason counts as "malformed"
}

// now reads the clock of Config.Clock.
func (c *Cluster) now() time.Time {
	if c.cfg.Clock != nil {
		return c.cfg.Clock()
	}
	return time.Now()
}
