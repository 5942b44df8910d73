package cluster

import (
	"fmt"
	"time"
)

// initIdentity puts the configured identity and trust in force, making
// an identity certified by the cluster key when none is configured.
func (c *Cluster) initIdentity() error {
	t := c.cfg.Trust
	if t == nil {
		var err error
		if t, err = NewTrust(nil, c.cfg.Keys, nil); err != nil {
			return err
		}
	}
	id := c.cfg.Identity
	if id == nil {
		var err error
		if id, err = NewIdentity(c.cfg.Node, c.cfg.Keys, time.Now()); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	if id.Name() != c.cfg.Node {
		return fmt.Errorf("cluster: the identity is node %s's, and this node is %s", id.Name(), c.cfg.Node)
	}
	if err := t.Verify(id.Cert(), time.Now()); err != nil {
		return fmt.Errorf("cluster: this node's own identity is not trusted: %w", err)
	}
	c.identity.Store(id)
	c.trust.Store(t)
	return nil
}

// checkIdentity parses and verifies the identity certificate a node
// announces. A node that announces none (one older than identities) is
// accepted unless the trust requires a CA's certificate.
func (c *Cluster) checkIdentity(name, enc string) (*Cert, error) {
	t := c.trust.Load()
	if t.RevokedName(name) {
		return nil, fmt.Errorf("%w: node %s", ErrRevoked, name)
	}
	if enc == "" {
		if t.RequiresCA() {
			return nil, fmt.Errorf("it announces no identity, and cluster.identity.ca requires one: upgrade it and give it cluster.identity.file")
		}
		return nil, nil
	}
	cert, err := ParseCert(name, enc)
	if err != nil {
		return nil, err
	}
	if err := t.Verify(cert, time.Now()); err != nil {
		return nil, err
	}
	return cert, nil
}

// Identity returns this node's identity.
func (c *Cluster) Identity() *Identity { return c.identity.Load() }

// Trust returns what this node checks the others' identities against.
func (c *Cluster) Trust() *Trust { return c.trust.Load() }

// Cert returns the verified identity certificate of the live member
// called name: nil, true for a member that announces none (a node older
// than identities), and nil, false for a node that is no member.
func (c *Cluster) Cert(name string) (*Cert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[name]
	if m == nil {
		return nil, false
	}
	return m.cert, true
}

// SetTrust puts a reloaded trust in force (cluster.identity.revoked or
// .ca changed): members whose identity it no longer accepts are dropped
// at once, and refused from then on, without re-keying the cluster.
func (c *Cluster) SetTrust(t *Trust) error {
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	t = t.WithKeys(c.keys.Load())
	if err := t.Verify(c.identity.Load().Cert(), time.Now()); err != nil {
		return fmt.Errorf("cluster: this node's own identity would not be trusted: %w", err)
	}
	c.trust.Store(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if name == c.self {
			continue
		}
		var err error
		if t.RevokedName(name) {
			err = fmt.Errorf("%w: node %s", ErrRevoked, name)
		} else if m.cert == nil && t.RequiresCA() {
			err = fmt.Errorf("it announces no identity, and cluster.identity.ca requires one")
		} else if m.cert != nil {
			err = t.Verify(m.cert, time.Now())
		}
		if err != nil {
			c.log.Error("cluster: dropping a member whose identity is no longer trusted", "peer", name, "reason", err.Error())
			c.refusedLocked(name, err)
			c.dropLocked(m, "refused")
		}
	}
	return nil
}

// Trust states of a member, as SetPeerTrust takes them and /cluster
// shows them.
const (
	TrustSuspect     = "suspect"
	TrustQuarantined = "quarantined"
)

// distrust is why this node distrusts a member.
type distrust struct{ state, reason string }

// maxDistrusted bounds the distrusted names remembered.
const maxDistrusted = 1024

// SetPeerTrust records what this node's purge service concluded about
// the member called name: "" trusts it again, TrustSuspect reports it
// (/cluster), TrustQuarantined also stops peer fills from it (misses go
// to the origin instead of its copies). The state outlives the member's
// departure, so a quarantined node that rejoins stays quarantined until
// this node restarts or is told otherwise.
func (c *Cluster) SetPeerTrust(name, state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state == "" {
		delete(c.distrust, name)
	} else {
		if _, ok := c.distrust[name]; !ok && len(c.distrust) >= maxDistrusted {
			clear(c.distrust)
		}
		c.distrust[name] = distrust{state, reason}
	}
	if m := c.members[name]; m != nil && m.peer != nil {
		m.peer.quarantined.Store(state == TrustQuarantined)
	}
}
