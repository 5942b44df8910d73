package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/version"
)

// startCluster binds the peer listener and joins the cluster, when the
// configuration asks for one.
func (n *Node) startCluster() error {
	cc := n.cfg.Cluster
	if !cc.Enabled() {
		return nil
	}
	var keys *cluster.Keyring
	if !cc.Insecure {
		var err error
		if keys, err = cluster.LoadKeyFile(cc.KeyFile); err != nil {
			return err
		}
		n.keys = keys
		if warn := cluster.KeyFileModeWarning(cc.KeyFile); warn != "" {
			n.log.Warn(warn)
		}
	}
	id, trust, err := n.loadIdentity(cc, keys)
	if err != nil {
		return err
	}
	// Bound now: the cluster advertises its address.
	ln, err := listen.Bind(n.spec(peerSpec(cc.PeerListen)))
	if err != nil {
		return err
	}
	peerAddr, err := cluster.PeerAdvertise(ln.Addr(), cc.PeerAdvertise, cc.Listen, cc.Advertise)
	if err != nil {
		ln.Close()
		return err
	}
	if n.opt.BeforeGossip != nil {
		if err := n.opt.BeforeGossip(); err != nil {
			ln.Close()
			return fmt.Errorf("cluster: %w", err)
		}
	}
	var warmup time.Duration
	if cc.TieredFill {
		warmup = time.Duration(cc.Warmup) // only tiered fill asks peers
	}
	n.cluster, err = cluster.Start(cluster.Config{
		Node:               n.name,
		Listen:             cc.Listen,
		Advertise:          cc.Advertise,
		PeerAddr:           peerAddr,
		Join:               append(slices.Clip(cc.Join), n.opt.Seeds...),
		Keys:               keys,
		Identity:           id,
		Trust:              trust,
		Weight:             cc.Weight,
		Version:            version.Get().Version,
		PeerConnectTimeout: time.Duration(cc.PeerConnectTimeout),
		PeerTimeout:        time.Duration(cc.PeerTimeout),
		Warmup:             warmup,
		Logger:             n.log,
		Journal:            n.journal,
		WrapTransport:      n.hooks.WrapTransport,
		Faults:             n.faults,
		Clock:              n.faults.Now,
		Timing:             n.hooks.Timing,
		PeerTLS:            n.tls.peerClientCfg,
	})
	if err != nil {
		ln.Close()
		return err
	}
	n.peerLn = ln
	return nil
}

// ownerRouter adapts the cluster to the edge's view of it. self is this
// node's name in the ring.
type ownerRouter struct {
	c    *cluster.Cluster
	self string
}

func (o ownerRouter) Owner(key string) edge.Peer {
	if p := o.c.Owner(key); p != nil {
		return p
	}
	return nil
}

// Owns reports whether the ring gives key to this node; with an empty
// ring (the node left) there is nobody else to own it.
func (o ownerRouter) Owns(key string) bool {
	name := o.c.OwnerName(key)
	return name == "" || name == o.self
}

func (o ownerRouter) Warm(key string) edge.Peer {
	if p := o.c.WarmPeer(key); p != nil {
		return p
	}
	return nil
}

// clusterInfo returns the /cluster document (status.Cluster).
func (n *Node) clusterInfo(key string) (any, error) {
	doc := status.Cluster{Info: n.cluster.Info()}
	if key != "" {
		ck, err := n.sites.PrimaryKey(key)
		if err != nil {
			return nil, err
		}
		doc.Key = &status.KeyOwner{URL: key, CacheKey: ck, Owner: n.cluster.OwnerName(ck)}
	}
	return doc, nil
}

// Cluster returns the node's cluster membership, or nil when it runs
// alone.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// GossipSeeds returns the gossip addresses of the other members this node
// knows, for a process taking over from it to join; nil when it runs
// alone.
func (n *Node) GossipSeeds() []string {
	if n.cluster == nil {
		return nil
	}
	var seeds []string
	for _, m := range n.cluster.Info().Members {
		if !m.Self && m.Gossip != "" {
			seeds = append(seeds, m.Gossip)
		}
	}
	return seeds
}

// loadIdentity reads this node's identity file (nil without one: the
// cluster makes a key certified by the cluster key) and builds what the
// others' identities are checked against.
func (n *Node) loadIdentity(cc config.Cluster, keys *cluster.Keyring) (*cluster.Identity, *cluster.Trust, error) {
	trust, err := cluster.NewTrust(cc.Identity.CA, keys, cc.Identity.Revoked)
	if err != nil {
		return nil, nil, err
	}
	if cc.Identity.File == "" {
		return nil, trust, nil
	}
	id, err := cluster.LoadIdentityFile(cc.Identity.File, n.name, func(w string) { n.log.Warn(w) })
	if err != nil {
		return nil, nil, err
	}
	return id, trust, nil
}
