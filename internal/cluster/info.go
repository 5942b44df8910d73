package cluster

import (
	"slices"
	"time"
)

// Info is this node's view of the cluster, served at the admin API's
// /cluster.
type Info struct {
	Node   string `json:"node"`
	Gossip string `json:"gossip_addr"`
	Joined bool   `json:"joined"`
	// NameTaken, when this node refused to join because a live member
	// has its name, says so and what to do; the node then gossips no more.
	NameTaken string `json:"name_taken,omitempty"`
	Encrypted bool   `json:"encrypted"`
	Protocol  [2]int `json:"protocol"`
	// WarmingUntil, while this node warms up after joining, is when the
	// warm-up ends: until then its misses on keys it owns ask their
	// previous owner for a copy before the origin.
	WarmingUntil *time.Time `json:"warming_until,omitempty"`
	// Keys are the ids of the keys this node accepts, the one it signs
	// with first.
	Keys    []string     `json:"keys"`
	Members []MemberInfo `json:"members"`
	// Departed are nodes that left or died recently, newest last.
	Departed []Departed `json:"departed"`
	// Refused are nodes this node will not work with, and why.
	Refused    map[string]string `json:"refused"`
	PeerServed PeerStats         `json:"peer_requests"`
}

// MemberInfo describes one live member.
type MemberInfo struct {
	Name     string `json:"name"`
	Self     bool   `json:"self"`
	State    string `json:"state"` // "alive", or "suspect" while this node suspects it failed
	Gossip   string `json:"gossip_addr"`
	PeerAddr string `json:"peer_addr"`
	Version  string `json:"version"`
	Protocol [2]int `json:"protocol"`
	Weight   int    `json:"weight"`
	// KeyID is the key the member encrypts and signs with.
	KeyID string `json:"key_id,omitempty"`
	// Identity is the fingerprint of the member's signing key, and
	// IdentityBy what certified it ("ca" or "cluster-key"); empty for a
	// node older than identities.
	Identity   string `json:"identity,omitempty"`
	IdentityBy string `json:"identity_by,omitempty"`
	// Trust, set when this node distrusts the member (see
	// SetPeerTrust), is "suspect" or "quarantined", and TrustReason why.
	Trust       string    `json:"trust,omitempty"`
	TrustReason string    `json:"trust_reason,omitempty"`
	Share       float64   `json:"key_share"` // the share of keys it owns
	Breaker     string    `json:"breaker,omitempty"`
	Since       time.Time `json:"since"`
}

// Departed describes a node that left (gracefully) or died (failure
// detection).
type Departed struct {
	Name   string    `json:"name"`
	State  string    `json:"state"`
	Gossip string    `json:"gossip_addr"`
	At     time.Time `json:"at"`
}

// Info returns this node's view of the cluster.
func (c *Cluster) Info() Info {
	info := Info{
		Node:       c.self,
		Gossip:     c.GossipAddr(),
		Joined:     c.Joined(),
		Encrypted:  c.Encrypted(),
		Protocol:   c.cfg.protocol,
		Keys:       []string{},
		Members:    []MemberInfo{},
		Departed:   []Departed{},
		Refused:    map[string]string{},
		PeerServed: c.peerStats.snapshot(),
	}
	if err := c.NameTaken(); err != nil {
		info.NameTaken = err.Error()
	}
	if c.Warming() {
		until := time.Unix(0, c.warmUntil.Load()).UTC()
		info.WarmingUntil = &until
	}
	if kr := c.keys.Load(); kr != nil {
		for _, k := range kr.keys {
			info.Keys = append(info.Keys, k.ID)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, m := range c.members {
		total += m.meta.Weight
	}
	for _, m := range c.members {
		mi := MemberInfo{
			Name: m.name, Self: m.name == c.self, State: "alive", Gossip: m.gossip, PeerAddr: m.meta.Peer,
			Version: m.meta.Version, Protocol: [2]int{m.meta.ProtoMin, m.meta.ProtoMax}, Weight: m.meta.Weight, KeyID: m.meta.KeyID,
			Share: float64(m.meta.Weight) / float64(total), Since: m.since,
		}
		if at, ok := c.suspects[m.name]; ok && time.Since(at) < c.suspicionMax() {
			mi.State = "suspect"
		}
		if m.peer != nil {
			mi.Breaker = m.peer.BreakerState()
		}
		if m.cert != nil {
			mi.Identity, mi.IdentityBy = m.cert.Fingerprint(), "cluster-key"
			if m.cert.Kind == CertByCA {
				mi.IdentityBy = "ca"
			}
		}
		if d, ok := c.distrust[m.name]; ok {
			mi.Trust, mi.TrustReason = d.state, d.reason
		}
		info.Members = append(info.Members, mi)
	}
	slices.SortFunc(info.Members, func(a, b MemberInfo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	for _, d := range c.departed {
		info.Departed = append(info.Departed, Departed{Name: d.name, State: d.state, Gossip: d.gossip, At: d.at})
	}
	for name, why := range c.refused {
		info.Refused[name] = why
	}
	return info
}

// suspicionMax is the longest a suspicion lasts before the node is dead:
// past it, a suspect that is still a member has refuted the suspicion.
func (c *Cluster) suspicionMax() time.Duration {
	t := c.cfg.Timing
	return time.Duration(t.SuspicionMult*t.SuspicionMaxMult) * t.ProbeInterval
}

// Addr names a live member and its peer listener.
type Addr struct {
	Name string
	Peer string // "host:port"
}

// PeerAddrs returns the other live members that serve peer requests. It
// is cheaper than Info.
func (c *Cluster) PeerAddrs() []Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Addr, 0, len(c.members))
	for _, m := range c.members {
		if m.name != c.self && m.meta.Peer != "" {
			out = append(out, Addr{Name: m.name, Peer: m.meta.Peer})
		}
	}
	return out
}

// DeadSince returns how many nodes died (failure detection, not a
// graceful leave) within d and are not members again. It counts the
// departures this node remembers (the last 64).
func (c *Cluster) DeadSince(d time.Duration) int {
	cutoff := time.Now().Add(-d)
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool)
	n := 0
	for i := len(c.departed) - 1; i >= 0; i-- {
		dp := c.departed[i]
		if seen[dp.name] {
			continue
		}
		seen[dp.name] = true
		if _, back := c.members[dp.name]; !back && dp.state == "dead" && dp.at.After(cutoff) {
			n++
		}
	}
	return n
}
