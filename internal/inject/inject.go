// Package inject adds faults inside Weir's own transports: delay,
// jitter, loss, connection errors and resets on what this node sends to
// its peers (fills, purges, reads), to its origins, and in gossip. It is
// the switch an operator flips to rehearse a slow or lossy network
// without netem, and what the chaos suite drives. One more target, the
// clock, offsets the time this node signs and verifies peer messages by
// and stamps the purges it issues, to rehearse clock skew.
//
// A fault is a Spec added to a Set, through the admin API's POST /faults.
// Every fault expires by itself (Spec.Duration, at most MaxDuration), its
// blast radius is bounded by Hosts and Percent, and at most MaxActive are
// active at once. A Set with no active fault costs one atomic load per
// message.
//
// What a fault does to one message is a Plan, drawn by Set.Plan; the
// wrappers of this package (Transport, Handler, Gossip) carry it out.
package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/sign"
	"github.com/weir-cdn/weir/internal/units"
)

// Targets: which of this node's transports a fault acts on.
const (
	// TargetPeers: what this node sends other members over the peer
	// link: fill requests and their answers, purge batches, anti-entropy
	// and their replies, dashboard reads.
	TargetPeers = "peers"
	// TargetOrigin: requests to origin servers.
	TargetOrigin = "origin"
	// TargetGossip: memberlist's packets and streams.
	TargetGossip = "gossip"
	// TargetClock: the clock this node signs and verifies peer messages
	// (fills, reads, purge messages) by and stamps the purges it issues
	// with (Set.Now), offset by Spec.Skew. It acts on no message of its
	// own, so it counts no injected effect.
	TargetClock = "clock"
)

// Targets returns every target, in a stable order (for metrics).
func Targets() []string { return []string{TargetPeers, TargetOrigin, TargetGossip, TargetClock} }

// Effects a fault has on a message, as metrics count them.
const (
	EffectDelay = "delay"
	EffectLoss  = "loss"
	EffectError = "error"
	EffectReset = "reset"
)

// Effects returns every effect, in a stable order (for metrics).
func Effects() []string { return []string{EffectDelay, EffectLoss, EffectError, EffectReset} }

// Bounds on what a fault may ask for.
const (
	// MaxDuration is the longest a fault lasts; DefaultDuration applies
	// when a Spec names none.
	MaxDuration     = time.Hour
	DefaultDuration = 60 * time.Second
	// MaxDelay bounds Delay and Jitter each.
	MaxDelay = 10 * time.Second
	// MaxActive is how many faults may be active at once.
	MaxActive = 16
	// MaxHosts bounds Spec.Hosts, and maxHostLen each of them.
	MaxHosts   = 64
	maxHostLen = 255
	// MaxSkew bounds Spec.Skew either way: the window in which members
	// accept each other's signed messages (sign.Window), so a skewed
	// node stays a member that signs and verifies, as a real node whose
	// clock is off by less than the window does.
	MaxSkew = sign.Window
)

// RTO is how long a lost message of a stream (TCP) waits before it is
// sent again: Linux's minimum retransmission timeout. Each further loss
// of the same message doubles it, as TCP backs off; maxLosses bounds the
// doublings, so one message waits at most 6.2 s.
const (
	RTO       = 200 * time.Millisecond
	maxLosses = 5
)

// Duration is a time.Duration in JSON as Go writes one ("10ms", "1m30s").
type Duration time.Duration

// MarshalText writes d as units.FormatDuration does.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(units.FormatDuration(time.Duration(d))), nil
}

// UnmarshalText reads d as units.ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := units.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Spec is one fault, as POST /faults takes it.
type Spec struct {
	// Target is TargetPeers, TargetOrigin or TargetGossip.
	Target string `json:"target"`
	// Delay is added to every message the fault applies to, plus or
	// minus up to Jitter (uniformly; never below zero). Messages of one
	// connection may overtake each other by up to 2 × Jitter.
	Delay  Duration `json:"delay"`
	Jitter Duration `json:"jitter"`
	// Loss is the probability that a message is lost. A gossip packet
	// is dropped; a message of a stream (peers, origin, gossip streams)
	// arrives after a retransmission: RTO later, doubling if the
	// retransmission is lost too.
	Loss float64 `json:"loss"`
	// ErrorRate is the probability that the message's connection
	// attempt fails (refused), so nothing is sent.
	ErrorRate float64 `json:"error_rate"`
	// ResetRate is the probability that the connection is reset once the
	// message was sent: the receiver may have acted on it, the sender
	// gets no answer.
	ResetRate float64 `json:"reset_rate"`
	// Hosts, when set, limits the fault to messages to these
	// destinations: member names or addresses ("host:port" or host) for
	// peers and gossip, origin names or server addresses for origins.
	// Empty means every destination of the target.
	Hosts []string `json:"hosts,omitempty"`
	// Percent is the share of matching messages the fault applies to,
	// in (0, 100]; 100 when absent.
	Percent float64 `json:"percent"`
	// Duration is how long the fault lasts: DefaultDuration when
	// absent, at most MaxDuration.
	Duration Duration `json:"duration"`
	// Skew, for TargetClock only (and required there), is added to this
	// node's clock while the fault lasts: "-5s" puts it 5 s behind. At
	// most MaxSkew either way; at most one clock fault is active at once.
	Skew Duration `json:"skew,omitempty"`
}

// MaxSpecBytes bounds the JSON of one Spec.
const MaxSpecBytes = 16 << 10

// ParseSpec reads one Spec from JSON, fills in its defaults and
// validates it. Unknown fields are refused, so that a misspelt "loss"
// is an error rather than a fault that does nothing.
func ParseSpec(b []byte) (Spec, error) {
	if len(b) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("the fault is %d bytes; at most %d", len(b), MaxSpecBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	// The defaults, which what the body names replaces: an absent
	// percent is 100, an explicit 0 an error.
	s := Spec{Percent: 100, Duration: Duration(DefaultDuration)}
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf(`the body is not a fault: %v; send JSON such as {"target": "peers", "delay": "10ms", "jitter": "2ms", "duration": "60s"}`, err)
	}
	if dec.More() {
		return Spec{}, errors.New("the body holds more than one JSON document; send one fault per call")
	}
	if len(s.Hosts) == 0 {
		s.Hosts = nil // [] and absent both mean every destination
	}
	return s, s.Validate()
}

// Validate checks s: a known target, bounded delays, probabilities in
// [0, 1], a percent in (0, 100], a duration in (0, MaxDuration], at most
// MaxHosts hosts, and at least one effect.
func (s *Spec) Validate() error {
	if !slices.Contains(Targets(), s.Target) {
		return fmt.Errorf("target %q is not one of %s", clip(s.Target), strings.Join(Targets(), ", "))
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"delay", s.Delay}, {"jitter", s.Jitter}} {
		if d.v < 0 || time.Duration(d.v) > MaxDelay {
			return fmt.Errorf("%s %s is outside [0, %s]", d.name, units.FormatDuration(time.Duration(d.v)), units.FormatDuration(MaxDelay))
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", s.Loss}, {"error_rate", s.ErrorRate}, {"reset_rate", s.ResetRate}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%s %v is not a probability in [0, 1]; write 0.01 for 1%%", p.name, p.v)
		}
	}
	if !(s.Percent > 0 && s.Percent <= 100) {
		return fmt.Errorf("percent %v is outside (0, 100]: the share of matching messages the fault applies to", s.Percent)
	}
	if s.Duration <= 0 || time.Duration(s.Duration) > MaxDuration {
		return fmt.Errorf("duration %s is outside (0, %s]: every fault ends by itself", units.FormatDuration(time.Duration(s.Duration)), units.FormatDuration(MaxDuration))
	}
	if s.Target == TargetClock {
		return s.validateClock()
	}
	if s.Skew != 0 {
		return fmt.Errorf("skew is for target %q only; target %s takes delay, jitter, loss, error_rate or reset_rate", TargetClock, s.Target)
	}
	if len(s.Hosts) > MaxHosts {
		return fmt.Errorf("%d hosts; at most %d (leave hosts out for every destination)", len(s.Hosts), MaxHosts)
	}
	for i, h := range s.Hosts {
		if h == "" || len(h) > maxHostLen || strings.ContainsAny(h, " \t\r\n/") {
			return fmt.Errorf("hosts[%d] %q is not a member name, origin name or address", i, clip(h))
		}
	}
	if s.Delay == 0 && s.Jitter == 0 && s.Loss == 0 && s.ErrorRate == 0 && s.ResetRate == 0 {
		return errors.New("the fault has no effect: set delay, jitter, loss, error_rate or reset_rate")
	}
	return nil
}

// validateClock checks a fault of TargetClock: a skew within MaxSkew and
// nothing else, since a node has one clock.
func (s *Spec) validateClock() error {
	if s.Skew == 0 {
		return errors.New(`the clock fault has no effect: set skew, such as "5s" or "-5s"`)
	}
	if d := time.Duration(s.Skew); d < -MaxSkew || d > MaxSkew {
		return fmt.Errorf("skew %s is outside [-%s, %s]: members refuse each other's messages beyond it", units.FormatDuration(d), units.FormatDuration(MaxSkew), units.FormatDuration(MaxSkew))
	}
	if s.Delay != 0 || s.Jitter != 0 || s.Loss != 0 || s.ErrorRate != 0 || s.ResetRate != 0 {
		return errors.New("a clock fault takes skew only: delay, jitter, loss, error_rate and reset_rate act on messages, so add them as a fault of another target")
	}
	if len(s.Hosts) > 0 || s.Percent != 100 {
		return errors.New("a clock fault takes neither hosts nor percent: it offsets the node's one clock")
	}
	return nil
}

// Fault is an active fault, as GET /faults lists it.
type Fault struct {
	ID string `json:"id"`
	Spec
	// By names who added it (the token's name, or "anonymous").
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Matched counts the messages the fault applied to (Hosts and
	// Percent), Injected what it did to them, by effect.
	Matched  int64            `json:"matched"`
	Injected map[string]int64 `json:"injected"`
}

// fault is an active fault and its counters.
type fault struct {
	id      string
	spec    Spec
	hosts   []string // lower case
	by      string
	created time.Time
	expires time.Time
	matched atomic.Int64
	effects [4]atomic.Int64 // by Effects' order
	timer   *time.Timer     // ends it at expires
}

func (f *fault) view() Fault {
	v := Fault{ID: f.id, Spec: f.spec, By: f.by, Created: f.created, Expires: f.expires,
		Matched: f.matched.Load(), Injected: make(map[string]int64, 4)}
	v.Hosts = slices.Clone(f.spec.Hosts)
	for i, e := range Effects() {
		v.Injected[e] = f.effects[i].Load()
	}
	return v
}

// Plan is what the active faults do to one message.
type Plan struct {
	// Delay is how long the message waits before it is on its way,
	// retransmissions included.
	Delay time.Duration
	// Lost counts the transmissions lost: a packet with Lost > 0 is
	// dropped.
	Lost int
	// Fail: the connection attempt fails; nothing is sent.
	Fail bool
	// Reset: the connection is reset after the message was sent.
	Reset bool
}

// None reports whether p leaves the message alone.
func (p Plan) None() bool { return p == Plan{} }

// Set holds the active faults. The zero value is not usable; a nil *Set
// injects nothing. Its methods are safe for concurrent use.
type Set struct {
	// active is the immutable list of faults in force, swapped whole.
	active atomic.Pointer[[]*fault]

	mu     sync.Mutex // serializes changes to active, and next
	next   uint64
	now    func() time.Time
	random func() float64

	closed bool
	onEnd  func(f Fault, reason string)

	// totals count every effect ever injected, by target and effect,
	// for metrics (a fault's own counters end with it).
	totals [4][4]atomic.Int64
}

// Reasons a fault ends, as OnEnd is told.
const (
	EndExpired = "expired"
	EndDeleted = "deleted"
)

// New returns an empty Set. onEnd, when not nil, is called (from a
// timer's goroutine, or Remove's caller) as each fault ends, with
// EndExpired or EndDeleted, without the Set's lock held.
func New(onEnd func(f Fault, reason string)) *Set {
	return &Set{now: time.Now, random: rand.Float64, onEnd: onEnd}
}

// Close ends every fault, without calling onEnd, and refuses new ones.
func (s *Set) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if p := s.active.Load(); p != nil {
		for _, f := range *p {
			f.timer.Stop()
		}
	}
	s.active.Store(nil)
}

// expire ends f when its time is up.
func (s *Set) expire(f *fault) {
	if v, ok := s.remove(f.id, false); ok && s.onEnd != nil {
		s.onEnd(v, EndExpired)
	}
}

// Add activates spec (validated again here) for spec.Duration from now,
// on behalf of by.
func (s *Set) Add(spec Spec, by string) (Fault, error) {
	if err := spec.Validate(); err != nil {
		return Fault{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Fault{}, errors.New("the node is shutting down")
	}
	now := s.now()
	var cur []*fault // expired ones too: their timers remove them
	if p := s.active.Load(); p != nil {
		cur = *p
	}
	live := 0
	for _, f := range cur {
		if now.Before(f.expires) {
			live++
			if spec.Target == TargetClock && f.spec.Target == TargetClock {
				return Fault{}, fmt.Errorf("clock fault %s is active already, with skew %s: end it with DELETE /faults/%s first", f.id, units.FormatDuration(time.Duration(f.spec.Skew)), f.id)
			}
		}
	}
	if live >= MaxActive {
		return Fault{}, fmt.Errorf("%d faults are active, the most there may be; end one with DELETE /faults/{id} or wait for one to expire", live)
	}
	s.next++
	f := &fault{id: "f" + strconv.FormatUint(s.next, 10), spec: spec, by: by, created: now,
		expires: now.Add(time.Duration(spec.Duration))}
	f.spec.Hosts = slices.Clone(spec.Hosts)
	for _, h := range spec.Hosts {
		f.hosts = append(f.hosts, strings.ToLower(h))
	}
	f.timer = time.AfterFunc(time.Duration(spec.Duration), func() { s.expire(f) })
	next := append(slices.Clone(cur), f)
	s.active.Store(&next)
	return f.view(), nil
}

// Remove ends the fault id. It reports false for an unknown or expired
// fault.
func (s *Set) Remove(id string) (Fault, bool) {
	v, ok := s.remove(id, true)
	if ok && s.onEnd != nil {
		s.onEnd(v, EndDeleted)
	}
	return v, ok
}

func (s *Set) remove(id string, stop bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*fault
	var gone *fault
	if p := s.active.Load(); p != nil {
		for _, f := range *p {
			if f.id == id {
				gone = f
			} else {
				live = append(live, f)
			}
		}
	}
	if gone == nil {
		return Fault{}, false
	}
	if stop {
		gone.timer.Stop()
	}
	s.active.Store(&live)
	return gone.view(), true
}

// List returns the active faults, oldest first.
func (s *Set) List() []Fault {
	if s == nil {
		return nil
	}
	now := s.now()
	p := s.active.Load()
	if p == nil {
		return nil
	}
	out := make([]Fault, 0, len(*p))
	for _, f := range *p {
		if now.Before(f.expires) {
			out = append(out, f.view())
		}
	}
	return out
}

// Active returns how many faults of target are active.
func (s *Set) Active(target string) int {
	if s == nil {
		return 0
	}
	n := 0
	now := s.now()
	if p := s.active.Load(); p != nil {
		for _, f := range *p {
			if f.spec.Target == target && now.Before(f.expires) {
				n++
			}
		}
	}
	return n
}

// Injected returns how many times effect was injected on target since
// the Set was made.
func (s *Set) Injected(target, effect string) int64 {
	if s == nil {
		return 0
	}
	t, e := slices.Index(Targets(), target), slices.Index(Effects(), effect)
	if t < 0 || e < 0 {
		return 0
	}
	return s.totals[t][e].Load()
}

// Skew returns the skew of the active clock fault, or 0.
func (s *Set) Skew() time.Duration {
	if s == nil {
		return 0
	}
	p := s.active.Load()
	if p == nil {
		return 0
	}
	now := s.now()
	for _, f := range *p {
		if f.spec.Target == TargetClock && now.Before(f.expires) {
			return time.Duration(f.spec.Skew)
		}
	}
	return 0
}

// Now returns the time on this node's clock: time.Now plus the active
// clock fault's skew. A nil *Set returns time.Now, so Now fits as the
// clock of a component given no faults.
func (s *Set) Now() time.Time {
	if s == nil {
		return time.Now()
	}
	return s.now().Add(s.Skew())
}

// Plan draws what the active faults of target do to one message to the
// destination that hosts name (a member's name and address, an origin's
// name and server): each fault whose Hosts name one of them, or that has
// none, applies with probability Percent; the delays of several faults
// add up.
func (s *Set) Plan(target string, hosts ...string) Plan {
	if s == nil {
		return Plan{}
	}
	p := s.active.Load()
	if p == nil || len(*p) == 0 {
		return Plan{}
	}
	var plan Plan
	now := s.now()
	ti := slices.Index(Targets(), target)
	for _, f := range *p {
		if f.spec.Target != target || !now.Before(f.expires) || !f.matches(hosts) {
			continue
		}
		if f.spec.Percent < 100 && s.random()*100 >= f.spec.Percent {
			continue
		}
		f.matched.Add(1)
		sp := &f.spec
		if sp.ErrorRate > 0 && s.random() < sp.ErrorRate {
			plan.Fail = true
			s.count(f, ti, 2)
			continue
		}
		if d := s.delay(sp); d > 0 {
			plan.Delay += d
			s.count(f, ti, 0)
		}
		for lost := 0; lost < maxLosses && sp.Loss > 0 && s.random() < sp.Loss; lost++ {
			plan.Delay += RTO << lost
			plan.Lost++
			s.count(f, ti, 1)
		}
		if sp.ResetRate > 0 && s.random() < sp.ResetRate {
			plan.Reset = true
			s.count(f, ti, 3)
		}
	}
	return plan
}

func (s *Set) count(f *fault, target, effect int) {
	f.effects[effect].Add(1)
	if target >= 0 {
		s.totals[target][effect].Add(1)
	}
}

// delay draws Delay ± Jitter, never below zero.
func (s *Set) delay(sp *Spec) time.Duration {
	d := time.Duration(sp.Delay)
	if j := time.Duration(sp.Jitter); j > 0 {
		d += time.Duration((s.random()*2 - 1) * float64(j))
	}
	return max(d, 0)
}

// matches reports whether f applies to a destination named by hosts.
func (f *fault) matches(hosts []string) bool {
	if len(f.hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		host, _, err := net.SplitHostPort(h)
		if err != nil {
			host = ""
		}
		for _, want := range f.hosts {
			if strings.EqualFold(h, want) || (host != "" && strings.EqualFold(host, want)) {
				return true
			}
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
