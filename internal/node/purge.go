package node

import (
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/purge"
)

// startPurge opens the API's tokens and audit log and creates the purge
// service.
func (n *Node) startPurge() error {
	var err error
	if n.auth, err = admin.NewAuthenticatorWith(admin.AuthOptions{TokensFile: n.cfg.AdminTokensFile, KeysFile: n.cfg.AdminTokenKeysFile}); err != nil {
		return err
	}
	aopt := admin.AuditOptions{MaxSize: int64(n.cfg.AuditLogMaxSize), MaxFiles: n.cfg.AuditLogMaxFiles}
	if n.audit, err = admin.OpenAuditWith(n.cfg.AuditLog, n.log, aopt); err != nil {
		return err
	}
	pc := n.cfg.Purge
	var limiter *admin.RateLimiter
	if pc.RateLimit > 0 {
		limiter = admin.NewRateLimiter(pc.RateLimit, pc.RateBurst, 10000)
	}
	opt := purge.Options{
		Node: n.name, Store: n.store, Keys: n.sites, Auth: n.auth, Audit: n.audit, Limiter: limiter,
		MaxLag: time.Duration(pc.MaxPurgeLag), SyncInterval: time.Duration(pc.SyncInterval),
		Retention: time.Duration(pc.Retention), MaxLogEntries: pc.MaxLogEntries,
		ConnectTimeout: time.Duration(n.cfg.Cluster.PeerConnectTimeout), Timeout: time.Duration(n.cfg.Cluster.PeerTimeout),
		Logger: n.log, Journal: n.journal, Faults: n.faults, Clock: n.faults.Now, RelayFanout: pc.RelayFanout,
	}
	if n.disk.tier != nil {
		opt.Resume = n.disk.tier.Recovery().Checkpoint
		opt.Handover = n.opt.BeforeDisk != nil
	}
	if n.cluster != nil {
		opt.Members = purgeMembers{n.cluster}
		opt.Keyring = n.keys
		opt.Identities = n.cluster
		opt.Distrust = n.cluster.SetPeerTrust
		opt.PeerTLS = n.tls.peerClientCfg
	}
	if n.hooks.Purge != nil {
		n.hooks.Purge(&opt)
	}
	n.purge, err = purge.New(opt)
	return err
}

// purgeMembers adapts the cluster to the purge service's view of it.
type purgeMembers struct{ c *cluster.Cluster }

func (m purgeMembers) Peers() []purge.Member {
	addrs := m.c.PeerAddrs()
	out := make([]purge.Member, len(addrs))
	for i, a := range addrs {
		out[i] = purge.Member{Name: a.Name, Addr: a.Peer}
	}
	return out
}

func (m purgeMembers) Dead(d time.Duration) int { return m.c.DeadSince(d) }

// Purges returns the node's purge service.
func (n *Node) Purges() *purge.Service { return n.purge }
