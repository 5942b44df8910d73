package purge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Defaults of Options. Those the configuration also has are its own
// (config.Default*), defined there once.
const (
	DefaultMaxLag       = time.Duration(config.DefaultMaxPurgeLag)
	DefaultSyncInterval = time.Duration(config.DefaultPurgeSyncInterval)
	DefaultRetention    = time.Duration(config.DefaultPurgeRetention)
	DefaultMaxBatch     = 1024
	// maxStatuses and maxStatusBytes bound the purges whose
	// acknowledgements the issuing node tracks for GET /purge/{id}.
	maxStatuses    = 1 << 16
	maxStatusBytes = 32 << 20
	// refusalRate and refusalBurst bound the calls without a valid token
	// per remote address that are audited one by one.
	refusalRate  = 5
	refusalBurst = 50
	// maxPending bounds the purges waiting for the batcher; past it the
	// oldest are left to anti-entropy.
	maxPending = 1 << 17
	// syncLimit bounds the entries one sync reply carries.
	syncLimit = 5000
	// maxSyncPages bounds the replies one sync round pulls from a peer.
	maxSyncPages = 16
	// startSkew: a purge issued this long before this node started cannot
	// concern anything it has cached, so it is recorded, not applied.
	startSkew = time.Minute
	// DefaultOutbox bounds the batches queued for one peer; past it they
	// are dropped and anti-entropy delivers them.
	DefaultOutbox = 1024
)

// Store is the cache as purges see it.
type Store interface {
	Invalidate(store.Invalidation) store.InvalidateResult
}

// Keys turns what a purge names into the store's terms, with the key
// rules of the host each URL names.
type Keys interface {
	// PurgeURL returns the primary keys of rawURL under http and https.
	PurgeURL(rawURL string) ([]string, error)
	// PurgePrefix returns the scheme-less key prefix "host/path" of a
	// prefix URL.
	PurgePrefix(rawURL string) (string, error)
	// PurgeHost returns the scheme-less key prefix "host/" of a host.
	PurgeHost(host string) (string, error)
}

// Members is the cluster membership as purges need it.
type Members interface {
	// Peers returns the other live members.
	Peers() []Member
	// Dead returns how many members died (rather than left) within d.
	Dead(d time.Duration) int
}

// Member is another live node.
type Member struct {
	Name string
	// Addr is its peer listener, "host:port".
	Addr string
}

// Options configure a Service.
type Options struct {
	// Node is this node's name; required.
	Node string
	// Store applies purges; required.
	Store Store
	// Keys maps URLs to cache keys (the node's site.Current); required.
	Keys Keys
	// Members is the cluster; nil means a standalone node, which applies
	// purges locally and is never lagging.
	Members Members
	// Keyring signs and verifies messages between nodes; nil is an
	// insecure cluster (see insecureKey).
	Keyring *cluster.Keyring
	// Distrust, when set, is told when this node starts to suspect or
	// quarantines a member ("suspect", "quarantined"), or trusts it
	// again (""), and why (see distrust.go); the node stops filling from
	// a quarantined member.
	Distrust func(name, state, reason string)
	// Identities, when set (a cluster's node), signs this node's
	// messages and seals its purges with its identity and checks the
	// others' (see Seal and SigHeader); nil signs with Keyring only.
	Identities Identities
	// Auth, Audit and Limiter protect the API; Auth and Audit are
	// required, a nil Limiter means no rate limit.
	Auth    *admin.Authenticator
	Audit   *admin.Audit
	Limiter *admin.RateLimiter
	// MaxLag is how long a node may go without syncing purges with the
	// cluster before it revalidates every cached object; 0 means
	// DefaultMaxLag.
	MaxLag time.Duration
	// SyncInterval is the longest anti-entropy period (rounds that
	// repair something come faster, down to a quarter of it, see
	// nextSyncInterval); 0 means DefaultSyncInterval, and it is capped at
	// MaxLag/4.
	SyncInterval time.Duration
	// Retention bounds how long entries stay in the log for others to
	// pull; 0 means DefaultRetention.
	Retention time.Duration
	// MaxLogEntries bounds the log; 0 means DefaultMaxEntries.
	MaxLogEntries int
	// MaxBatch bounds the purges per batch; 0 means 1024. 1 sends one
	// message per purge (for comparison in benchmarks).
	MaxBatch int
	// Uncompressed sends messages without zstd (for benchmarks).
	Uncompressed bool
	// Outbox bounds the batches queued for each peer; 0 means 1024.
	Outbox int
	// RelayFanout is how many other members a member relays the purges
	// it received from their issuer to, at once, and whether it also
	// acknowledges them to the issuer in a message of its own (see
	// spread): redundant paths, so that one slow or lost message delays
	// no purge. Zero or negative relays nothing.
	RelayFanout int
	// ConnectTimeout and Timeout bound connecting to a peer and a whole
	// exchange with it; 0 means config.DefaultPeerConnectTimeout and
	// config.DefaultPeerTimeout.
	ConnectTimeout, Timeout time.Duration
	// PeerTLS, when set, is the TLS client side of the messages to peers
	// (cluster.peer_tls): they go to https://ADDR, verify the peer's
	// certificate against its RootCAs, by its ServerName or else the host
	// of the peer's address, and present its Certificates; ConnectTimeout
	// bounds the handshake too. Every member's peer listener must then
	// serve TLS. Nil sends them over plain HTTP. It is not modified.
	PeerTLS *tls.Config
	// Clock is the time this node signs and verifies messages by and
	// stamps the purges it issues with (Entry.Time): the node's skewed
	// clock under a clock fault (inject.Set.Now). Nil means time.Now.
	Clock func() time.Time
	// Faults are the injected faults (POST /faults) of
	// inject.TargetPeers applied to the messages this node sends, matching
	// the member's name and address; nil injects none.
	Faults *inject.Set
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Journal records purges issued, applied and acknowledged, gaps, and
	// when this node starts and stops lagging; nil records none.
	Journal journal.Recorder
	// Resume is a Checkpoint from before this start (kept by a disk tier
	// with the objects it covers): the purges it marks as applied are not
	// pulled and applied again, and every purge received is applied,
	// however old, since the store holds content from before the start.
	// A malformed one is logged, and CaughtUp never reports true.
	Resume []byte
	// Handover is set for a process that took over from its upgrade,
	// which may have been sent purges the checkpoint does not mark: a
	// cluster member is not caught up until it has synced with a peer.
	Handover bool
}

// Service issues, propagates, applies and repairs purges for one node.
type Service struct {
	opt     Options
	log     *slog.Logger
	self    stream
	started time.Time
	plog    *Log
	sig     *signer
	batchC  *http.Client // pushes batches
	syncC   *http.Client // anti-entropy
	batchIO wireCounter
	syncIO  wireCounter

	// mu guards the fields below it.
	mu        sync.Mutex
	seq       uint64
	statuses  map[uint64]*issueStatus
	order     []uint64 // statuses' keys, oldest first
	statusMem int      // the entries' size in statuses
	senders   map[string]*peerSender
	peerMarks map[string][]Mark
	lastSync  map[string]time.Time
	ackedHW   map[string]uint64

	// applyMu is held (shared) while a purge is applied to the store and
	// recorded in the log, and exclusively by Checkpoint, so that a
	// checkpoint never marks a purge the store has not applied.
	applyMu sync.RWMutex
	// caughtUp is set once a sync round since the start reached every
	// live peer and a majority of the members (see CaughtUp).
	caughtUp atomic.Bool
	resumed  bool
	// expectPeers is set when the checkpoint resumed holds purges of
	// other nodes: this node was a member before, and is not caught up
	// until it has synced with at least one peer.
	expectPeers bool
	// lostResume is set when the checkpoint given could not be read.
	lostResume bool
	// held is set by Hold.
	held atomic.Bool

	// pmu guards pending, the entries waiting for the batcher.
	pmu     sync.Mutex
	pending []Entry
	wake    chan struct{}

	// deadline is when this node starts lagging, in Unix nanoseconds.
	deadline atomic.Int64
	// lagging is whether the last sync round found this node lagging,
	// since when (Unix nanoseconds), for the journal; only the sync loop
	// writes them.
	lagging  atomic.Bool
	lagSince atomic.Int64
	// lagEnd is when it last stopped lagging, Unix nanoseconds.
	lagEnd atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats counters
	jlim  [len(purgeKinds)]eventBudget
	trust trustBook
	adapt adaptState
	// challengeEvery is challengeEvery but in tests.
	challengeEvery int
	latency        *telemetry.Histogram
	// refusals limits the calls without a valid token per remote address
	// that are audited one by one.
	refusals *admin.RateLimiter
}

// issueStatus tracks the acknowledgements of a purge issued here.
type issueStatus struct {
	entry     Entry
	targets   map[string]time.Time // peer → when it acknowledged; zero while pending
	pending   int
	completed time.Time
}

// New returns a service. Call Start to begin propagation and Close to
// stop it.
func New(opt Options) (*Service, error) {
	if opt.Node == "" || opt.Store == nil || opt.Keys == nil || opt.Auth == nil || opt.Audit == nil {
		return nil, errors.New("purge: Node, Store, Keys, Auth and Audit are required")
	}
	if opt.MaxLag <= 0 {
		opt.MaxLag = DefaultMaxLag
	}
	if opt.SyncInterval <= 0 {
		opt.SyncInterval = DefaultSyncInterval
	}
	opt.SyncInterval = min(opt.SyncInterval, opt.MaxLag/4)
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	if opt.Outbox <= 0 {
		opt.Outbox = DefaultOutbox
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = time.Duration(config.DefaultPeerConnectTimeout)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Duration(config.DefaultPeerTimeout)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	now := time.Now()
	self := stream{opt.Node, uint64(now.UnixNano())}
	s := &Service{
		opt:            opt,
		log:            opt.Logger,
		self:           self,
		started:        now,
		plog:           NewLog(self, opt.MaxLogEntries, opt.Retention),
		sig:            newSigner(opt.Node, self.Inc, opt.Keyring, opt.Identities),
		statuses:       make(map[uint64]*issueStatus),
		senders:        make(map[string]*peerSender),
		peerMarks:      make(map[string][]Mark),
		lastSync:       make(map[string]time.Time),
		ackedHW:        make(map[string]uint64),
		wake:           make(chan struct{}, 1),
		latency:        telemetry.NewHistogram(latencyBuckets),
		refusals:       admin.NewRateLimiter(refusalRate, refusalBurst, 10000),
		trust:          trustBook{peers: make(map[string]*peerTrust), inFlight: make(chan struct{}, maxChallenges)},
		challengeEvery: challengeEvery,
	}
	if len(opt.Resume) > 0 {
		var marks []Mark
		if err := json.Unmarshal(opt.Resume, &marks); err != nil {
			// Which purges the kept objects went through is unknown:
			// they are revalidated before use, for good (CaughtUp).
			opt.Logger.Error("purge: the checkpoint of applied purges kept with the disk tier is unreadable; objects from before the restart will be revalidated before use", "error", err.Error())
			marks, s.lostResume = nil, true
		}
		for _, m := range marks[:min(len(marks), maxStreams)] {
			s.plog.Resume(m, now)
			s.expectPeers = s.expectPeers || m.Node != opt.Node
		}
		s.resumed = true
	}
	s.expectPeers = s.expectPeers || (opt.Handover && opt.Members != nil)
	s.batchC = s.newClient(&s.batchIO)
	s.syncC = s.newClient(&s.syncIO)
	s.deadline.Store(now.Add(opt.MaxLag).UnixNano())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func (s *Service) newClient(c *wireCounter) *http.Client {
	d := &net.Dialer{Timeout: s.opt.ConnectTimeout, KeepAlive: 30 * time.Second}
	var tc *tls.Config
	if s.opt.PeerTLS != nil {
		tc = s.opt.PeerTLS.Clone()
		tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
		tc.NextProtos = []string{"http/1.1"} // the Transport speaks HTTP/1.1 here
	}
	return &http.Client{
		Transport: s.opt.Faults.Transport(inject.TargetPeers, &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &countingConn{Conn: conn, c: c}, nil
			},
			// TLS, when set, runs over the counting connection: the bytes
			// counted are the wire's.
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   s.opt.ConnectTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: s.opt.Timeout,
			DisableCompression:    true,
		}),
		Timeout: s.opt.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// SetKeyring replaces the cluster keys messages are signed and verified
// with, as a reloaded key file does; safe while the service runs.
func (s *Service) SetKeyring(kr *cluster.Keyring) { s.sig.setKeys(kr) }

// Start starts the batcher and the anti-entropy loop of a cluster member.
// A standalone node needs neither.
func (s *Service) Start() {
	if s.opt.Members == nil {
		return
	}
	s.wg.Add(2)
	go s.batchLoop()
	go s.syncLoop()
}

// Close stops propagation and waits for every goroutine to return.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
	s.batchC.CloseIdleConnections()
	s.syncC.CloseIdleConnections()
}

// Node returns this node's name.
func (s *Service) Node() string { return s.opt.Node }

// invalidateAll is the soft purge of everything that a gap in the purges
// this node received forces.
var invalidateAll = store.Invalidation{Soft: true, Prefixes: []string{""}}

// ErrInvalid wraps the errors Issue returns for a request that can never
// succeed as given.
var ErrInvalid = errors.New("invalid purge")

// ErrNoMajority is Issue's error on a member that has not synced, within
// max_purge_lag, with a majority of the members it knows (live, plus
// those that died recently): cut off in a minority, its purge could not
// reach the majority, which would go on serving what it covers past
// max_purge_lag. The API answers 503 with Retry-After.
var ErrNoMajority = errors.New("purge: this node has not synced with a majority of the cluster's members within max_purge_lag (cut off in a minority): the purge could not reach the others in time, so it is refused and nothing was purged; issue it on a member that reaches the majority")

// Issue applies a purge on this node and sends it to every other member.
// It returns the entry, whose ID the API answers with.
func (s *Service) Issue(req Request) (Entry, error) {
	if s.held.Load() {
		return Entry{}, ErrHeld
	}
	if !s.reachesMajority(time.Now()) {
		s.stats.noMajority.Add(1)
		return Entry{}, ErrNoMajority
	}
	if err := req.Validate(); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	inv, err := s.invalidation(&req, true)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var peers []Member
	if s.opt.Members != nil {
		peers = s.opt.Members.Peers()
	}
	// The store first: once Issue returns, this node serves nothing the
	// purge covers.
	s.applyMu.RLock()
	if s.held.Load() {
		// Held since the check above: the process taking over applies it.
		s.applyMu.RUnlock()
		return Entry{}, ErrHeld
	}
	s.opt.Store.Invalidate(inv)
	now := time.Now()
	s.mu.Lock()
	s.seq++
	e := Entry{Node: s.self.Node, Inc: s.self.Inc, Seq: s.seq, Time: s.now().UnixNano(), Req: req}
	s.plog.Add(e, now)
	s.applyMu.RUnlock()
	st := &issueStatus{entry: e, targets: make(map[string]time.Time, len(peers)), pending: len(peers)}
	for _, p := range peers {
		st.targets[p.Name] = time.Time{}
	}
	if len(peers) == 0 {
		st.completed = now
	}
	s.statuses[e.Seq] = st
	s.order = append(s.order, e.Seq)
	s.statusMem += e.size()
	for len(s.order) > 1 && (len(s.order) > maxStatuses || s.statusMem > maxStatusBytes) {
		if old := s.statuses[s.order[0]]; old != nil {
			s.statusMem -= old.entry.size()
		}
		delete(s.statuses, s.order[0])
		s.order = s.order[1:]
	}
	if s.opt.Members != nil {
		s.pmu.Lock()
		if len(s.pending) >= maxPending {
			s.pending = s.pending[1:]
			s.stats.dropped.Add(1)
		}
		s.pending = append(s.pending, e)
		s.pmu.Unlock()
	}
	s.mu.Unlock()
	s.stats.issued.Add(1)
	s.recordPurge(journal.PurgeIssued, e.Seq, func() journal.Details {
		return journal.Details{"id": e.ID(), "items": req.Items(), "peers": len(peers)}
	})
	if s.opt.Members != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return e, nil
}

// invalidation turns a request into the store's terms. strict fails on
// the first URL that cannot be normalized (when issuing); otherwise such
// items are skipped (when applying what another node issued, whose host
// configuration may differ during a rollout).
func (s *Service) invalidation(req *Request, strict bool) (store.Invalidation, error) {
	inv := store.Invalidation{Soft: req.Soft, Tags: req.Tags}
	for _, u := range req.URLs {
		keys, err := s.opt.Keys.PurgeURL(u)
		if err != nil {
			if strict {
				return inv, err
			}
			continue
		}
		inv.Keys = append(inv.Keys, keys...)
	}
	for _, p := range req.Prefixes {
		k, err := s.opt.Keys.PurgePrefix(p)
		if err != nil {
			if strict {
				return inv, err
			}
			continue
		}
		inv.Prefixes = append(inv.Prefixes, k)
	}
	for _, h := range req.Hosts {
		k, err := s.opt.Keys.PurgeHost(h)
		if err != nil {
			if strict {
				return inv, err
			}
			continue
		}
		inv.Prefixes = append(inv.Prefixes, k)
	}
	if req.All {
		inv.Prefixes = append(inv.Prefixes, "")
	}
	return inv, nil
}

// receive applies an entry another node issued, once.
func (s *Service) receive(e Entry, now time.Time) bool {
	s.applyMu.RLock()
	defer s.applyMu.RUnlock()
	if s.held.Load() {
		// Neither applied nor marked: its sender keeps it, and the
		// process taking over pulls it.
		return false
	}
	if !s.plog.Add(e, now) {
		return false
	}
	s.stats.applied.Add(1)
	s.recordPurge(journal.PurgeApplied, e.Seq, func() journal.Details { return journal.Details{"id": e.ID(), "from": e.Node} })
	if !s.resumed && e.Time < s.started.Add(-startSkew).UnixNano() {
		// Issued well before this node started: nothing cached here can
		// be older than it.
		return true
	}
	inv, _ := s.invalidation(&e.Req, false)
	s.opt.Store.Invalidate(inv)
	return true
}

// reachesMajority reports whether this node, with the peers it synced
// with within MaxLag, is a majority of the members it knows: a purge
// issued here then reaches, within MaxLag, every member that is not
// lagging (two majorities share a member). A standalone node always
// does. In its first MaxLag it counts every live peer, as the lag bound
// does (its first sync round runs at Start).
func (s *Service) reachesMajority(now time.Time) bool {
	if s.opt.Members == nil {
		return true
	}
	peers := s.opt.Members.Peers()
	total := 1 + len(peers) + s.opt.Members.Dead(s.opt.Retention)
	reached := 1
	young := now.Sub(s.started) < s.opt.MaxLag
	s.mu.Lock()
	for _, p := range peers {
		if t, ok := s.lastSync[p.Name]; young || ok && now.Sub(t) <= s.opt.MaxLag {
			reached++
		}
	}
	s.mu.Unlock()
	return 2*reached > total
}

// ErrHeld is Issue's error while the service is held (see Hold).
var ErrHeld = errors.New("purge: this process is handing over to its upgrade; retry in a second")

// Hold stops this service from applying purges, for good: Issue fails
// with ErrHeld (the API answers 503 with Retry-After), entries from peers
// are neither applied nor acknowledged, and anti-entropy stops. A process
// that handed its disk tier to its upgrade holds, so that every purge
// from then on reaches the process that has the disk, from its callers'
// retries or from the other members. It returns once no purge is being
// applied.
func (s *Service) Hold() {
	s.applyMu.Lock()
	s.held.Store(true)
	s.applyMu.Unlock()
}

// Held reports whether Hold was called.
func (s *Service) Held() bool { return s.held.Load() }

// Checkpoint returns the marks of every purge applied so far, for a
// store that keeps objects across restarts to journal with them: given
// back as Options.Resume, they spare the purges already applied.
func (s *Service) Checkpoint() []byte {
	s.applyMu.Lock()
	marks := s.plog.Marks()
	s.applyMu.Unlock()
	b, _ := json.Marshal(marks)
	return b
}

// CaughtUp reports whether this node has every purge issued while it was
// down: never when the checkpoint resumed was unreadable; a standalone
// node always has (purges are issued through it), a
// cluster member once a sync round since its start reached every live
// peer, and enough of them to be a majority of the members.
func (s *Service) CaughtUp() bool {
	return !s.lostResume && (s.opt.Members == nil || s.caughtUp.Load())
}

// acked records that peer has applied this node's purges up to hw. It
// counts nothing from a quarantined member, and a strike against one
// that acknowledges more than was issued.
func (s *Service) acked(peer string, hw uint64, now time.Time) {
	if hw == 0 || s.quarantined(peer) {
		return
	}
	s.mu.Lock()
	if hw > s.seq {
		issued := s.seq
		s.mu.Unlock()
		s.strike(peer, strikeFalseAck, fmt.Sprintf("acknowledged purges of this node up to %d, and it issued %d", hw, issued))
		return
	}
	defer s.mu.Unlock()
	from := s.ackedHW[peer]
	if hw <= from {
		return
	}
	s.ackedHW[peer] = hw
	if len(s.order) > 0 {
		from = max(from, s.order[0]-1)
	}
	var sample *Entry
	for seq := from + 1; seq <= hw; seq++ {
		st := s.statuses[seq]
		if st == nil {
			continue
		}
		if sample == nil || mrand.IntN(int(seq-from)) == 0 {
			sample = &st.entry
		}
		if t, ok := st.targets[peer]; ok && t.IsZero() {
			st.targets[peer] = now
			st.pending--
			s.latency.Observe(now.Sub(st.entry.Issued()))
			s.recordPurge(journal.PurgeAcked, seq, func() journal.Details {
				return journal.Details{"id": st.entry.ID(), "peer": peer,
					"latency_ms": now.Sub(st.entry.Issued()).Milliseconds(), "pending": st.pending}
			})
			if st.pending == 0 {
				st.completed = now
			}
		}
	}
	if sample != nil {
		s.maybeChallenge(peer, sample)
	}
}

// ackedFromMarks records the acknowledgement that peer's marks carry.
func (s *Service) ackedFromMarks(peer string, marks []Mark, now time.Time) {
	for _, m := range marks {
		if m.Node == s.self.Node && m.Inc == s.self.Inc {
			s.acked(peer, m.HW, now)
			return
		}
	}
}

// record records an event in the journal, when there is one.
func (s *Service) record(kind journal.Kind, d journal.Details) {
	if s.opt.Journal != nil {
		s.opt.Journal.Record(kind, d)
	}
}

// Per-purge journal events (issued, applied, acknowledged) are sampled
// in bursts: each kind is recorded for every purge up to journalRate a
// second, past it only for purges whose sequence number is 1 modulo
// journalEvery, on every node alike, so that a replay still pairs each
// purge's issue with its applications. A burst of 10,000 purges a second
// would otherwise fill the journal's ring in a few seconds, and cost the
// issuer one event per purge and member.
const (
	journalRate  = 200
	journalEvery = 64
)

// purgeKinds are the sampled kinds, indexing Service.jlim.
var purgeKinds = [...]journal.Kind{journal.PurgeIssued, journal.PurgeApplied, journal.PurgeAcked}

// eventBudget is a token bucket of journalRate events a second.
type eventBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *eventBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(journalRate, b.tokens+now.Sub(b.last).Seconds()*journalRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// recordPurge records a per-purge event of kind for purge seq, sampled
// as above; details builds it only when it is recorded.
func (s *Service) recordPurge(kind journal.Kind, seq uint64, details func() journal.Details) {
	if s.opt.Journal == nil {
		return
	}
	i := slices.Index(purgeKinds[:], kind)
	if seq%journalEvery != 1 && !s.jlim[i].take(time.Now()) {
		s.stats.journalSampled.Add(1)
		return
	}
	s.opt.Journal.Record(kind, details())
}

// noteLag records, after a sync round, whether this node started or
// stopped lagging since the last round.
func (s *Service) noteLag(now time.Time) {
	lagging := s.Lagging(now)
	if lagging == s.lagging.Load() {
		return
	}
	s.lagging.Store(lagging)
	since := time.Unix(0, s.deadline.Load())
	if lagging {
		s.lagSince.Store(since.UnixNano())
		s.record(journal.PurgeLagStart, journal.Details{"since": since.UTC().Format(time.RFC3339Nano), "max_lag_ms": s.opt.MaxLag.Milliseconds()})
		return
	}
	s.lagEnd.Store(now.UnixNano())
	s.record(journal.PurgeLagEnd, journal.Details{"lagged_ms": now.Sub(time.Unix(0, s.lagSince.Load())).Milliseconds()})
}

// PeerFloor returns how far back a copy another member serves must be
// dated, so that the purges applied here since cover it: MaxLag ago,
// the longest a member that is current may be behind this node; and,
// while this node lags and for MaxLag after it caught up, back to its
// last complete sync before it started lagging: cut off, it may have
// applied purges (issued on its side of a partition) that the others
// pull only once it is back.
func (s *Service) PeerFloor(now time.Time) time.Time {
	floor := now.Add(-s.opt.MaxLag)
	if s.opt.Members == nil {
		return floor
	}
	if s.lagging.Load() || s.Lagging(now) || now.Sub(time.Unix(0, s.lagEnd.Load())) < s.opt.MaxLag {
		if since := time.Unix(0, s.lagSince.Load()).Add(-s.opt.MaxLag); s.lagSince.Load() != 0 && since.Before(floor) {
			floor = since
		}
		if d := time.Unix(0, s.deadline.Load()).Add(-s.opt.MaxLag); s.Lagging(now) && d.Before(floor) {
			floor = d
		}
	}
	return floor
}

// Lagging reports whether this node has gone longer than MaxLag without
// syncing purges with the cluster: it must then revalidate every cached
// object before serving it. It is cheap enough for every request.
func (s *Service) Lagging(now time.Time) bool {
	return s.opt.Members != nil && now.UnixNano() > s.deadline.Load()
}

// wireCounter counts the bytes that crossed the wire in one direction
// each, and the connections made.
type wireCounter struct {
	sent, received atomic.Int64
}

type countingConn struct {
	net.Conn
	c *wireCounter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.received.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.sent.Add(int64(n))
	return n, err
}

// now reads the clock of Options.Clock.
func (s *Service) now() time.Time {
	if s.opt.Clock != nil {
		return s.opt.Clock()
	}
	return time.Now()
}
