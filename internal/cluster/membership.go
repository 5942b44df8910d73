package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"

	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
)

// Protocol versions of the peer protocol (metadata, peer fill). A node
// speaks every version in [ProtocolMin, ProtocolMax]; two nodes work
// together when their ranges overlap, using the highest common version.
// A rolling upgrade that changes the protocol first ships nodes that
// still accept the old version.
const (
	ProtocolMin = 1
	ProtocolMax = 1
)

// Timing tunes failure detection. The zero value of each field means the
// tuned default (see DefaultTiming).
type Timing struct {
	// ProbeInterval is how often each node probes one other node.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before
	// asking other nodes to probe indirectly.
	ProbeTimeout time.Duration
	// SuspicionMult sets the shortest suspicion period before a suspect
	// node is declared dead: SuspicionMult × ProbeInterval (× log10 of the
	// cluster size beyond 10 nodes).
	SuspicionMult int
	// SuspicionMaxMult sets the longest suspicion period, when no other
	// node confirms the suspicion, as a multiple of the shortest.
	SuspicionMaxMult int
	// GossipInterval is how often gossip (suspicions, deaths, joins) is
	// sent to a few random nodes.
	GossipInterval time.Duration
	// PushPullInterval is how often a node exchanges its full member list
	// with a random node, which repairs what gossip missed.
	PushPullInterval time.Duration
	// RejoinInterval is how often a joined node joins the seeds that are
	// not members again, which merges the halves of a healed partition.
	RejoinInterval time.Duration
}

// DeadNodeReclaim is how long after a node is declared dead its name can
// be claimed by a node at another address: a restarted node that comes
// back on a new address within this time is refused until it has passed.
const DeadNodeReclaim = time.Second

// DefaultTiming detects a dead node on a LAN within about 2 s (suspected)
// and removes it within about 5 s, for clusters of up to 10 nodes, while a
// node that pauses for 500 ms refutes its suspicion well before the
// shortest suspicion period (2 s) ends. docs/operations.md has the
// measurements.
var DefaultTiming = Timing{
	ProbeInterval:    500 * time.Millisecond,
	ProbeTimeout:     200 * time.Millisecond,
	SuspicionMult:    4,
	SuspicionMaxMult: 2,
	GossipInterval:   100 * time.Millisecond,
	PushPullInterval: 15 * time.Second,
	RejoinInterval:   30 * time.Second,
}

// Config describes this node's part in a cluster.
type Config struct {
	// Node is this node's name, unique in the cluster.
	Node string
	// Listen is the gossip address, "host:port"; port 0 picks one.
	Listen string
	// Advertise is the gossip address told to other nodes; "" derives it
	// from Listen.
	Advertise string
	// PeerAddr is the address other nodes send peer fills to, as they
	// must dial it; "" means this node serves no peer fills.
	PeerAddr string
	// Join lists seed nodes' gossip addresses, "host:port". A host name
	// stands for every address it resolves to (a headless Service: one
	// per pod), looked up again at every rejoin, so the seeds follow the
	// names; a name that does not resolve does not stop the node from
	// starting. A node whose every seed is itself starts the cluster.
	Join []string
	// Resolve looks up the IP addresses of a host name in Join; the
	// context carries ResolveTimeout. Nil means
	// net.DefaultResolver.LookupHost. Tests answer with addresses of
	// their own.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// Keys encrypts gossip and authenticates peer requests; nil runs an
	// insecure cluster.
	Keys *Keyring
	// Identity is this node's signing identity, announced to the others
	// in its metadata; nil makes one certified by Keys (NewIdentity).
	Identity *Identity
	// Trust checks the others' identities; nil trusts certificates made
	// with Keys and revokes none.
	Trust *Trust
	// Weight is this node's share of keys relative to other nodes'; 0
	// means 100.
	Weight int
	// Version is this node's build version, shown to other nodes.
	Version string
	// PeerConnectTimeout and PeerTimeout bound connecting to a peer and
	// waiting for its response header. Zero means config.DefaultPeerConnectTimeout
	// and config.DefaultPeerTimeout.
	PeerConnectTimeout, PeerTimeout time.Duration
	// PeerTLS, when set, is the TLS client side of peer fills
	// (cluster.peer_tls): they go to https://ADDR, verify the peer's
	// certificate against its RootCAs, by its ServerName or else the host
	// of the peer's address, and present its Certificates; PeerConnectTimeout
	// bounds the handshake too. Every member's peer listener must then
	// serve TLS. Nil sends peer fills over plain HTTP. It is not modified.
	PeerTLS *tls.Config
	// Timing tunes failure detection; the zero value is DefaultTiming.
	Timing Timing
	// Warmup is how long after this node first sees another member
	// [Cluster.WarmPeer] names, for a key this node owns, the member that
	// owned it before: a restarted node fills from the cluster's copies
	// rather than the origin. Zero turns it off.
	Warmup time.Duration
	// Logger receives membership changes and memberlist's own messages.
	Logger *slog.Logger
	// Journal records joins, departures, suspicions and refutations; nil
	// records none. It is called with the member table's lock held.
	Journal journal.Recorder
	// WrapTransport, when set, wraps the gossip transport. Tests use it
	// to delay or drop gossip.
	WrapTransport func(memberlist.Transport) memberlist.Transport
	// Clock is the time peer fills and reads are signed and verified by:
	// the node's skewed clock under a clock fault (inject.Set.Now). Nil
	// means time.Now.
	Clock func() time.Time
	// Faults are the injected faults (POST /faults) applied to what this
	// node sends: gossip (inject.TargetGossip) and peer fills and reads
	// (inject.TargetPeers, matching the member's name and fill address).
	// Nil injects none.
	Faults *inject.Set

	// protocol, when set, replaces [ProtocolMin, ProtocolMax], so tests
	// can start nodes of other versions.
	protocol [2]int
	// breakerDelay, when set, replaces breakerDelay, for tests.
	breakerDelay time.Duration
}

// Cluster is this node's view of the cluster: its members, who owns which
// key, and clients for asking owners. It is safe for concurrent use.
type Cluster struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	self string
	// meta is what this node gossips about itself; it changes once, when
	// the node starts leaving.
	meta atomic.Pointer[meta]

	// mu guards members, departed, suspects, refused and nameTaken, and
	// orders setting joined after nameTaken; the view is rebuilt from them
	// under mu and published through view.
	mu       sync.Mutex
	members  map[string]*member
	departed []departure
	suspects map[string]time.Time
	refused  map[string]string
	// distrust holds the members this node's purge service found lying
	// or forging (SetPeerTrust), by name.
	distrust map[string]distrust
	view     atomic.Pointer[view]
	// nameTaken is set when, before joining, this node found a live
	// member with its name: it then never joins, and stops gossiping.
	nameTaken *NameTakenError

	// keys are the cluster keys in force (nil in an insecure cluster);
	// gossipKeys is memberlist's keyring, derived from them. keysMu
	// serializes SetKeys.
	keys       atomic.Pointer[Keyring]
	gossipKeys *memberlist.Keyring
	keysMu     sync.Mutex
	// identity is this node's, trust what the others' are checked
	// against; SetKeys and SetTrust replace them under keysMu.
	identity atomic.Pointer[Identity]
	trust    atomic.Pointer[Trust]

	peerStats peerCounters
	// failures counts members declared dead (not those that left).
	failures atomic.Int64

	// logMu and logClosed stop memberlist's log lines at Close.
	logMu     sync.RWMutex
	logClosed bool

	joined atomic.Bool
	// resolveLog is the last seed look-up failure logged and when; only
	// Start and then the rejoin loop use it.
	resolveLog struct {
		msg string
		at  time.Time
	}
	// warmUntil is when the warm-up ends, in Unix nanoseconds; 0 until
	// this node first sees another member.
	warmUntil atomic.Int64
	// warmStarted is closed when the warm-up starts (WarmingStarted).
	warmStarted chan struct{}
	ctx         context.Context
	cancel      context.CancelFunc
	loops       sync.WaitGroup
	stopOnce    sync.Once
}

// meta is the metadata each node gossips about itself.
type meta struct {
	ProtoMin int    `json:"pmin"`
	ProtoMax int    `json:"pmax"`
	Peer     string `json:"peer,omitempty"`
	Weight   int    `json:"w"`
	Version  string `json:"v,omitempty"`
	// KeyID names the key the node encrypts and signs with, so that an
	// operator can follow a key rotation across the cluster.
	KeyID string `json:"kid,omitempty"`
	// Leaving is set by a node that is shutting down gracefully: the
	// others stop sending it fills before it stops serving them.
	Leaving bool `json:"leaving,omitempty"`
	// ID is the node's identity certificate (Cert.Encode); nodes older
	// than identities send none.
	ID string `json:"id,omitempty"`
}

// member is a live node as this node knows it.
type member struct {
	name   string
	gossip string
	meta   meta
	cert   *Cert // verified; nil for a node that announces no identity
	since  time.Time
	peer   *Peer // nil for this node
}

// departure records a node that left or died, for the operator's view.
type departure struct {
	name, gossip, state string
	at                  time.Time
}

// maxDeparted bounds the departures remembered.
const maxDeparted = 64

// maxRefused bounds the incompatible nodes remembered.
const maxRefused = 256

// view is an immutable ownership snapshot: the ring of live compatible
// members and, aligned with it, the peer for each (nil for this node).
type view struct {
	ring  *Ring
	peers []*Peer
	self  int // this node's index in ring, -1 when it is not in it
}

// Start creates this node's membership, joins the seeds and keeps trying
// in the background while none answers, so nodes can start in any order.
// Stop it with Leave or Close.
func Start(cfg Config) (*Cluster, error) {
	if err := ValidateNodeName(cfg.Node); err != nil {
		return nil, fmt.Errorf("cluster: node name %q: %w: set node (--node) to a name unique in the cluster", cfg.Node, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Weight <= 0 {
		cfg.Weight = 100
	}
	t := cfg.Timing
	d := DefaultTiming
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setDur(&t.GossipInterval, d.GossipInterval)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.RejoinInterval, d.RejoinInterval)
	if t.SuspicionMult <= 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	if t.SuspicionMaxMult <= 0 {
		t.SuspicionMaxMult = d.SuspicionMaxMult
	}
	cfg.Timing = t
	if cfg.protocol == [2]int{} {
		cfg.protocol = [2]int{ProtocolMin, ProtocolMax}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{
		cfg:      cfg,
		self:     cfg.Node,
		members:  make(map[string]*member),
		suspects: make(map[string]time.Time),
		refused:  make(map[string]string),
		distrust: make(map[string]distrust),
		ctx:      ctx,
		cancel:   cancel,

		warmStarted: make(chan struct{}),
	}
	c.log = slog.New(gate{cfg.Logger.Handler(), &c.logMu, &c.logClosed}).With("component", "cluster")
	c.keys.Store(cfg.Keys)
	if err := c.initIdentity(); err != nil {
		cancel()
		return nil, err
	}
	c.meta.Store(&meta{ProtoMin: cfg.protocol[0], ProtoMax: cfg.protocol[1], Peer: cfg.PeerAddr,
		Weight: cfg.Weight, Version: cfg.Version, KeyID: primaryID(cfg.Keys), ID: c.identity.Load().Cert().Encode()})
	c.view.Store(&view{ring: NewRing(nil), self: -1})
	mc, err := c.memberlistConfig()
	if err != nil {
		cancel()
		return nil, err
	}
	c.ml, err = memberlist.Create(mc)
	if err != nil {
		cancel()
		mc.Transport.Shutdown()
		return nil, fmt.Errorf("cluster: start gossip on %s: %w (is the port in use? change cluster.listen or --cluster-listen)", cfg.Listen, err)
	}
	if c.cfg.Keys == nil {
		c.log.Warn("cluster runs INSECURE: gossip is not encrypted and peer requests are not authenticated; anyone who can reach the ports can join and read the cache. Use a key file (weir keygen) in production")
	}
	c.log.Info("cluster gossip started", "node", c.self, "gossip", c.GossipAddr(), "peer", cfg.PeerAddr,
		"encrypted", c.cfg.Keys != nil, "protocol_min", cfg.protocol[0], "protocol_max", cfg.protocol[1])
	seeds := c.resolveSeeds()
	c.noteResolve(seeds, time.Now())
	switch {
	case seeds.alone():
		c.joined.Store(true)
	case len(seeds.addrs) > 0:
		if err := c.join(seeds.addrs); err != nil {
			var taken *NameTakenError
			if errors.As(err, &taken) {
				// Stop without leaving: a leave would tell the cluster that
				// the member with this name is gone.
				c.stop()
				return nil, err
			}
			c.log.Warn("cluster: no seed answered yet; retrying in the background", "seeds", seeds.addrs, "error", err.Error())
		}
	}
	// Seeds by address that are all this node never change: there is
	// nothing to rejoin. Names are looked up again at every rejoin.
	if seeds.named || len(seeds.addrs) > 0 || len(seeds.failed) > 0 {
		c.loops.Add(1)
		go c.rejoinLoop()
	}
	return c, nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (c *Cluster) memberlistConfig() (*memberlist.Config, error) {
	host, portStr, err := net.SplitHostPort(c.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen address %q: %w", c.cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen address %q: port is not a number", c.cfg.Listen)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mlLog := newLogAdapter(c)
	var nt *memberlist.NetTransport
	// Binding one port for both UDP and TCP can race with other processes
	// when the port is picked by the kernel: retry a few times then.
	for try := 0; ; try++ {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mlLog})
		if err == nil || port != 0 || try == 9 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: bind gossip address %s: %w (is the port in use? change cluster.listen or --cluster-listen)", c.cfg.Listen, err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.self
	mc.BindAddr = host
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertisePort = mc.BindPort
	if c.cfg.Advertise != "" {
		ahost, aport, err := net.SplitHostPort(c.cfg.Advertise)
		if err != nil {
			nt.Shutdown()
			return nil, fmt.Errorf("cluster: advertise address %q: %w", c.cfg.Advertise, err)
		}
		if net.ParseIP(ahost) == nil {
			// memberlist advertises an IP: resolve a name once, at start.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ips, err := net.DefaultResolver.LookupIP(ctx, "ip", ahost)
			cancel()
			if err != nil || len(ips) == 0 {
				nt.Shutdown()
				return nil, fmt.Errorf("cluster: advertise address %q: cannot resolve %s: %v; give an IP address", c.cfg.Advertise, ahost, err)
			}
			ahost = ips[0].String()
		}
		mc.AdvertiseAddr = ahost
		if mc.AdvertisePort, err = strconv.Atoi(aport); err != nil {
			nt.Shutdown()
			return nil, fmt.Errorf("cluster: advertise address %q: port is not a number", c.cfg.Advertise)
		}
	}
	var transport memberlist.Transport = nt
	if c.cfg.WrapTransport != nil {
		transport = c.cfg.WrapTransport(nt)
	}
	transport = c.cfg.Faults.Gossip(transport)
	mc.Transport = transport
	mc.Label = "weir"
	mc.Delegate = (*delegate)(c)
	mc.Events = (*events)(c)
	mc.Alive = (*aliveCheck)(c)
	mc.Conflict = (*conflicts)(c)
	mc.Ping = (*pings)(c)
	mc.Logger = mlLog
	mc.LogOutput = nil
	t := c.cfg.Timing
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxMult
	mc.GossipInterval = t.GossipInterval
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = 2 * time.Second
	// A restarted node may come back on another address under its old
	// name; let it reclaim the name soon after it was declared dead.
	mc.DeadNodeReclaimTime = DeadNodeReclaim
	if c.cfg.Keys != nil {
		keys := c.cfg.Keys.GossipKeys()
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			nt.Shutdown()
			return nil, fmt.Errorf("cluster: gossip keyring: %w", err)
		}
		mc.Keyring = kr
		c.gossipKeys = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	return mc, nil
}

// join joins the seeds. It returns a *NameTakenError when a seed's
// member list has a live member with this node's name, which memberlist
// reports (to the conflict delegate) while Join merges that list.
func (c *Cluster) join(seeds []string) error {
	n, err := c.ml.Join(seeds)
	c.mu.Lock()
	taken := c.nameTaken
	first := taken == nil && n > 0 && !c.joined.Swap(true)
	c.mu.Unlock()
	if taken != nil {
		return taken
	}
	if n > 0 {
		if first {
			c.log.Info("cluster joined", "node", c.self, "seeds_answered", n, "members", c.ml.NumMembers())
		}
		return nil
	}
	if err == nil {
		err = errors.New("no seed answered")
	}
	return err
}

// NameTakenError is the refusal to join a cluster in which a live
// member, at another gossip address, already has this node's name. Two
// members of one name would take each other's keys and, when one leaves,
// make the cluster drop the other for a while.
type NameTakenError struct {
	Name   string // this node's name
	Member string // the gossip address of the member that has it
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("cluster: node name %q is taken by the live member at %s: set node (--node) to a name unique in the cluster "+
		"(the default, the host name, is shared by nodes on one machine); if that member is this node before a restart on a new address, "+
		"start again once the cluster has declared it dead (within about 5 s)", e.Name, e.Member)
}

// stopGossip stops a node that found its name taken after start-up
// (seeds that answered late): it shuts memberlist down without leaving,
// so the member with that name is not dropped, and forgets the members,
// so nothing is sent to them.
func (c *Cluster) stopGossip() {
	c.ml.Shutdown()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if name != c.self {
			if m.peer != nil {
				m.peer.close()
			}
			delete(c.members, name)
		}
	}
	clear(c.suspects)
	c.rebuild()
}

// NameTaken returns the reason this node refused to join the cluster
// because a live member has its name, or nil.
func (c *Cluster) NameTaken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nameTaken == nil {
		return nil // not a nil *NameTakenError in an error
	}
	return c.nameTaken
}

// rejoinLoop joins the seeds until one answers. Then, every interval, it
// joins the seeds that are not members and otherwise exchanges full state
// with one seed: after a partition heals, two halves that lost each other
// merge through a seed. Seeing the seed as a member is not enough, since
// the seed may still hold this node for dead: each exchange makes the
// node refute that, until the seed accepts it again. Each round looks the
// seeds' names up again, so a pod that a headless Service names later is
// joined too.
func (c *Cluster) rejoinLoop() {
	defer c.loops.Done()
	every := c.cfg.Timing.RejoinInterval
	backoff := min(time.Second, every)
	for {
		wait := every
		if !c.joined.Load() {
			wait = backoff
			backoff = min(backoff*2, every)
		}
		timer := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		seeds := c.resolveSeeds()
		c.noteResolve(seeds, time.Now())
		if seeds.alone() && !c.joined.Swap(true) {
			c.log.Info("cluster started: every seed is this node", "node", c.self, "seeds", c.cfg.Join)
		}
		if len(seeds.addrs) == 0 {
			continue
		}
		targets := c.missingSeeds(seeds.addrs)
		if len(targets) == 0 {
			targets = []string{seeds.addrs[rand.IntN(len(seeds.addrs))]}
		}
		err := c.join(targets)
		if taken := (*NameTakenError)(nil); errors.As(err, &taken) {
			c.stopGossip()
			c.log.Error("cluster: not joining: a live member has this node's name; gossip stopped", "node", c.self, "member", taken.Member, "error", taken.Error())
			return
		}
		if err != nil && !c.joined.Load() {
			c.log.Warn("cluster: still no seed answers", "seeds", seeds.addrs, "error", err.Error(), "retry_in", backoff.String())
		}
	}
}

// missingSeeds returns the seeds (resolved addresses) that are not the
// address of a live member.
func (c *Cluster) missingSeeds(seeds []string) []string {
	c.mu.Lock()
	have := make(map[string]bool, len(c.members))
	for _, m := range c.members {
		have[m.gossip] = true
	}
	c.mu.Unlock()
	var out []string
	for _, s := range seeds {
		if !have[s] {
			out = append(out, s)
		}
	}
	return out
}

// GossipAddr is the gossip address this node advertises.
func (c *Cluster) GossipAddr() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Joined reports whether this node has joined the cluster: it started a
// new one, or a seed answered.
func (c *Cluster) Joined() bool { return c.joined.Load() }

// Encrypted reports whether gossip is encrypted and peers authenticated.
func (c *Cluster) Encrypted() bool { return c.cfg.Keys != nil }

// Keys returns the cluster keys in force, nil in an insecure cluster.
func (c *Cluster) Keys() *Keyring { return c.keys.Load() }

// SetKeys replaces the cluster keys while the node runs, as a reloaded
// key file does: from now on gossip is encrypted and peer requests are
// signed with kr's primary key, and any of kr's keys is accepted. Keys
// that kr lacks are no longer accepted. The key this node signs with is
// gossiped, so /cluster shows how far a rotation has gone. An insecure
// cluster cannot be given keys while running, nor a secure one lose
// them: that takes a restart.
func (c *Cluster) SetKeys(kr *Keyring) error {
	if kr == nil || c.gossipKeys == nil {
		return errors.New("cluster: a cluster cannot switch between insecure and keyed while it runs: restart the node with the new settings")
	}
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	next := kr.GossipKeys()
	for _, k := range next {
		if err := c.gossipKeys.AddKey(k); err != nil {
			return fmt.Errorf("cluster: install gossip key: %w", err)
		}
	}
	if err := c.gossipKeys.UseKey(next[0]); err != nil {
		return fmt.Errorf("cluster: use the new primary gossip key: %w", err)
	}
	for _, k := range c.gossipKeys.GetKeys() {
		if !slices.ContainsFunc(next, func(n []byte) bool { return bytes.Equal(n, k) }) {
			if err := c.gossipKeys.RemoveKey(k); err != nil {
				return fmt.Errorf("cluster: remove an old gossip key: %w", err)
			}
		}
	}
	old := c.keys.Swap(kr)
	c.trust.Store(c.trust.Load().WithKeys(kr))
	if primaryID(old) != primaryID(kr) {
		id := c.identity.Load().Recertify(kr)
		c.identity.Store(id)
		m := *c.meta.Load()
		m.KeyID = primaryID(kr)
		m.ID = id.Cert().Encode()
		c.meta.Store(&m)
		c.mu.Lock()
		if self := c.members[c.self]; self != nil {
			self.meta.KeyID, self.meta.ID, self.cert = m.KeyID, m.ID, id.Cert()
		}
		c.mu.Unlock()
		// A node whose name is taken gossips no more: no one to tell.
		if c.NameTaken() == nil {
			if err := c.ml.UpdateNode(5 * time.Second); err != nil {
				c.log.Warn("cluster: the new signing key id is not gossiped yet; it will be at the next exchange", "error", err.Error())
			}
		}
	}
	c.log.Info("cluster keys replaced", "keys", kr, "previous", old)
	return nil
}

// primaryID is the id of kr's primary key, "" for nil.
func primaryID(kr *Keyring) string {
	if kr == nil {
		return ""
	}
	return kr.keys[0].ID
}

// Leave tells the other nodes this node is going away, so they stop
// sending it work at once, then stops. It waits at most timeout for the
// news to spread.
func (c *Cluster) Leave(timeout time.Duration) error {
	var err error
	c.stopOnce.Do(func() {
		// A node whose name is taken never joined: its leave would be
		// taken for the leave of the member with that name.
		if c.NameTaken() == nil && c.ml.NumMembers() > 1 {
			// First say so in the metadata: the others take this node out
			// of the ring, and record a leave rather than a failure.
			m := *c.meta.Load()
			m.Leaving = true
			c.meta.Store(&m)
			if uerr := c.ml.UpdateNode(timeout / 2); uerr != nil {
				err = fmt.Errorf("cluster: announce leaving: %w", uerr)
			}
			if lerr := c.ml.Leave(timeout / 2); lerr != nil && err == nil {
				err = fmt.Errorf("cluster: leave: %w", lerr)
			}
		}
		c.stop()
	})
	return err
}

// Close stops at once without telling the other nodes, as a crash would:
// they find out by failure detection.
func (c *Cluster) Close() {
	c.stopOnce.Do(c.stop)
}

func (c *Cluster) stop() {
	c.cancel()
	c.ml.Shutdown()
	c.logMu.Lock()
	c.logClosed = true
	c.logMu.Unlock()
	c.loops.Wait()
	// A node that left owns every key again: its requests go to the
	// origins, not to peers it no longer has clients for (a process
	// handing over to its upgrade serves on meanwhile).
	c.view.Store(&view{ring: NewRing(nil), self: -1})
	c.mu.Lock()
	for _, m := range c.members {
		if m.peer != nil {
			m.peer.close()
		}
	}
	c.mu.Unlock()
}

// Owner returns the peer to fill key from: nil when this node owns the
// key, when there is no other member, or when the owner's breaker is
// open. It implements edge.Peers.
func (c *Cluster) Owner(key string) *Peer {
	v := c.view.Load()
	i := v.ring.Owner(key)
	if i < 0 {
		return nil
	}
	p := v.peers[i]
	if p == nil || !p.available() {
		return nil
	}
	return p
}

// WarmPeer returns, for a key this node owns, the member that would own
// it without this node, which is the member that owned it before this
// node joined, while this node warms up (Config.Warmup after it first
// saw another member). That member most likely holds a copy. It returns
// nil for keys of other members, after the warm-up, and when that member's
// breaker is open. It takes no lock and does not allocate.
func (c *Cluster) WarmPeer(key string) *Peer {
	if !c.Warming() {
		return nil
	}
	v := c.view.Load()
	if v.self < 0 || v.ring.Owner(key) != v.self {
		return nil
	}
	i := v.ring.OwnerExcept(key, v.self)
	if i < 0 || v.peers[i] == nil || !v.peers[i].available() {
		return nil
	}
	return v.peers[i]
}

// WarmingStarted returns a channel closed when the warm-up starts: when
// this node first sees another member, with Config.Warmup above zero.
// It is never closed otherwise.
func (c *Cluster) WarmingStarted() <-chan struct{} { return c.warmStarted }

// Ring returns the ring of the live members in this node's view, which
// is immutable.
func (c *Cluster) Ring() *Ring { return c.view.Load().ring }

// Warming reports whether this node is within its warm-up.
func (c *Cluster) Warming() bool {
	until := c.warmUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// OwnerName returns the name of the node that owns key, "" when the ring
// is empty.
func (c *Cluster) OwnerName(key string) string {
	return c.view.Load().ring.OwnerName(key)
}

// rebuild publishes a new view from the members. c.mu must be held.
func (c *Cluster) rebuild() {
	names := make([]string, 0, len(c.members))
	for name, m := range c.members {
		if !m.meta.Leaving {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	rm := make([]RingMember, len(names))
	for i, name := range names {
		rm[i] = RingMember{Name: name, Weight: c.members[name].meta.Weight}
	}
	ring := NewRing(rm)
	peers := make([]*Peer, ring.Len())
	self := -1
	for i, m := range ring.Members() {
		peers[i] = c.members[m.Name].peer
		if m.Name == c.self {
			self = i
		}
	}
	c.view.Store(&view{ring: ring, peers: peers, self: self})
}

// decodeMeta parses a node's metadata and checks that this node can work
// with it.
func (c *Cluster) decodeMeta(name string, b []byte) (meta, *Cert, error) {
	lo, hi := c.cfg.protocol[0], c.cfg.protocol[1]
	var m meta
	if len(b) == 0 {
		return m, nil, errors.New("it sent no metadata (not a Weir node, or a Weir node older than the cluster protocol)")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, fmt.Errorf("its metadata is not valid: %v", err)
	}
	cert, err := c.checkIdentity(name, m.ID)
	if err != nil {
		return m, nil, err
	}
	if m.ProtoMin < 1 || m.ProtoMax < m.ProtoMin {
		return m, nil, fmt.Errorf("its protocol range %d..%d is invalid", m.ProtoMin, m.ProtoMax)
	}
	if m.ProtoMax < lo || m.ProtoMin > hi {
		return m, nil, fmt.Errorf("it speaks peer protocol %d..%d (version %s) and this node speaks %d..%d: upgrade the older nodes first, one at a time",
			m.ProtoMin, m.ProtoMax, m.Version, lo, hi)
	}
	if m.Weight < 1 {
		m.Weight = 1
	}
	return m, cert, nil
}

// commonProtocol is the protocol version this node and m use: the
// highest both speak.
func (c *Cluster) commonProtocol(m meta) int { return min(m.ProtoMax, c.cfg.protocol[1]) }

// delegate gives memberlist this node's metadata. Weir sends no user
// messages through gossip yet.
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte {
	m := *d.meta.Load()
	b, _ := json.Marshal(m)
	if len(b) > limit {
		// Only the version string is unbounded; drop it rather than fail.
		m.Version = ""
		b, _ = json.Marshal(m)
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// aliveCheck refuses nodes this node cannot work with, before memberlist
// counts them as members.
type aliveCheck Cluster

func (a *aliveCheck) NotifyAlive(n *memberlist.Node) error {
	c := (*Cluster)(a)
	if n.Name == c.self {
		return nil
	}
	if _, _, err := c.decodeMeta(n.Name, n.Meta); err != nil {
		c.refuse(n.Name, n.Address(), err)
		return fmt.Errorf("weir: refusing node %s: %w", n.Name, err)
	}
	return nil
}

// refuse logs, once per node and reason, that a node is refused.
func (c *Cluster) refuse(name, addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refusedLocked(name, err) {
		c.log.Error("cluster: refusing to work with a node", "peer", name, "gossip", addr, "reason", err.Error())
	}
}

// refusedLocked records that name is refused for err, and reports
// whether that is news. c.mu must be held.
func (c *Cluster) refusedLocked(name string, err error) bool {
	if c.refused[name] == err.Error() {
		return false
	}
	if len(c.refused) >= maxRefused {
		clear(c.refused)
	}
	c.refused[name] = err.Error()
	return true
}

// conflicts handles two nodes claiming one name at different gossip
// addresses, which memberlist reports after refusing the newer claim
// (it keeps the member it knows and ignores the other's alive messages).
// memberlist calls it with its own lock held: it must not call back
// into memberlist.
type conflicts Cluster

// NotifyConflict is told of existing, the node memberlist knows by the
// name, and other, the node at another address that claims it too.
//
// When the name is this node's, either this node is joining a cluster
// in which a member has its name (this node has not joined yet: it
// refuses to join, see join), or a newcomer claims this node's name (it
// is refused: this node carries on as before and says so). Any other
// node refuses the newcomer, and names it once.
func (cd *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	c := (*Cluster)(cd)
	if existing.Name == c.self {
		c.mu.Lock()
		newcomer := !c.joined.Load()
		if newcomer && c.nameTaken == nil {
			c.nameTaken = &NameTakenError{Name: c.self, Member: other.Address()}
		}
		c.mu.Unlock()
		if newcomer {
			return // join returns the error
		}
	}
	c.refuse(other.Name+"@"+other.Address(), other.Address(),
		fmt.Errorf("it claims the name of the member %s at %s, which stays a member: give the newcomer a name unique in the cluster (node, --node)",
			existing.Name, existing.Address()))
}

// events keeps the member table in step with memberlist. memberlist
// calls it with its own lock held: it must not call back into memberlist.
type events Cluster

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Cluster)(e).upsert(n, "joined") }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Cluster)(e).upsert(n, "updated") }

func (e *events) NotifyLeave(n *memberlist.Node) {
	c := (*Cluster)(e)
	if n.Name == c.self {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[n.Name]
	if !ok {
		return
	}
	// memberlist does not tell a leave from a failure here; a node that
	// leaves gracefully announced it in its metadata first.
	state := "dead"
	if m.meta.Leaving {
		state = "left"
	}
	c.dropLocked(m, state)
}

// dropLocked takes m out of the members: it left, died, or was refused
// (its identity revoked or no longer valid). c.mu must be held.
func (c *Cluster) dropLocked(m *member, state string) {
	delete(c.members, m.name)
	delete(c.suspects, m.name)
	if state == "dead" {
		c.failures.Add(1)
	}
	c.record(journal.MemberLeave, journal.Details{"peer": m.name, "state": state})
	if m.peer != nil {
		m.peer.close()
	}
	c.departed = append(c.departed, departure{name: m.name, gossip: m.gossip, state: state, at: time.Now()})
	if len(c.departed) > maxDeparted {
		c.departed = slices.Delete(c.departed, 0, len(c.departed)-maxDeparted)
	}
	c.rebuild()
	level := slog.LevelWarn
	if state == "left" {
		level = slog.LevelInfo
	}
	c.log.Log(context.Background(), level, "cluster member "+state, "peer", m.name, "gossip", m.gossip, "members", len(c.members))
}

func (c *Cluster) upsert(n *memberlist.Node, what string) {
	md, cert, err := c.decodeMeta(n.Name, n.Meta)
	if err != nil && n.Name != c.self {
		c.refuse(n.Name, n.Address(), err)
		c.mu.Lock()
		if old := c.members[n.Name]; old != nil {
			// Its new metadata is refused (a revoked or forged identity):
			// it is no member any more.
			c.dropLocked(old, "refused")
		}
		c.mu.Unlock()
		return
	}
	if n.Name == c.self {
		md, cert = *c.meta.Load(), c.identity.Load().Cert()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nameTaken != nil && n.Name != c.self {
		return // not a member: memberlist may still be finishing an exchange
	}
	old := c.members[n.Name]
	m := &member{name: n.Name, gossip: n.Address(), meta: md, cert: cert, since: time.Now()}
	if old != nil && what == "updated" {
		m.since = old.since
	}
	if n.Name != c.self && md.Peer != "" {
		if old != nil && old.peer != nil && old.peer.addr == md.Peer && old.meta.ProtoMax == md.ProtoMax {
			m.peer = old.peer
		} else {
			if old != nil && old.peer != nil {
				old.peer.close()
			}
			m.peer = c.newPeer(n.Name, md.Peer, c.commonProtocol(md))
			m.peer.quarantined.Store(c.distrust[n.Name].state == TrustQuarantined)
		}
	}
	_, suspected := c.suspects[n.Name]
	delete(c.suspects, n.Name)
	c.members[n.Name] = m
	c.rebuild()
	switch {
	case n.Name == c.self:
	case old == nil:
		c.record(journal.MemberJoin, journal.Details{"peer": n.Name, "gossip": m.gossip})
	case suspected:
		c.record(journal.MemberAlive, journal.Details{"peer": n.Name})
	}
	if n.Name != c.self {
		c.log.Info("cluster member "+what, "peer", n.Name, "gossip", m.gossip, "peer_addr", md.Peer,
			"version", md.Version, "protocol", c.commonProtocol(md), "members", len(c.members))
		if w := c.cfg.Warmup; w > 0 && c.warmUntil.CompareAndSwap(0, time.Now().Add(w).UnixNano()) {
			c.log.Info("cluster: warming up: misses on keys this node owns ask their previous owner for a copy first", "for", w.String())
			close(c.warmStarted)
		}
	}
}

// pings clears a suspicion when the suspect answers this node's probe:
// memberlist reports no refutation to the other members' delegates.
type pings Cluster

func (p *pings) AckPayload() []byte { return nil }

func (p *pings) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	c := (*Cluster)(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.suspects[n.Name]; ok {
		delete(c.suspects, n.Name)
		c.record(journal.MemberAlive, journal.Details{"peer": n.Name})
	}
}

// suspected records that this node suspects name has failed.
func (c *Cluster) suspected(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.members[name]; !ok {
		return
	}
	if _, already := c.suspects[name]; !already {
		c.record(journal.MemberSuspect, journal.Details{"peer": name})
	}
	c.suspects[name] = time.Now()
}

// record records an event in the journal, when there is one.
func (c *Cluster) record(kind journal.Kind, d journal.Details) {
	if c.cfg.Journal != nil {
		c.cfg.Journal.Record(kind, d)
	}
}

// PeerAdvertise returns the address other nodes should dial to reach a
// peer listener bound at bound: advertise when set; else bound, unless its
// host is unspecified (0.0.0.0, ::), in which case the host of the gossip
// advertise address (or listen address, or this machine's private IP,
// as memberlist picks it) with bound's port.
func PeerAdvertise(bound net.Addr, advertise, gossipListen, gossipAdvertise string) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", fmt.Errorf("cluster: peer listener address %s: %w", bound, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return bound.String(), nil
	}
	for _, a := range []string{gossipAdvertise, gossipListen} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				return net.JoinHostPort(h, port), nil
			}
		}
	}
	ip, err := sockaddr.GetPrivateIP()
	if err != nil || ip == "" {
		return "", fmt.Errorf("cluster: cannot tell which address other nodes can reach this node's peer listener %s at (no private IP found): set cluster.peer_advertise", bound)
	}
	return net.JoinHostPort(ip, port), nil
}
