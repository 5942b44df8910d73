package node

import (
	"errors"
	"os"
	"time"

	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/version"
)

func (n *Node) ready() error {
	if n.draining.Load() {
		return errors.New("draining for shutdown")
	}
	if n.cluster != nil && !n.cluster.Joined() {
		if err := n.cluster.NameTaken(); err != nil {
			return err
		}
		return errors.New("not joined to the cluster yet: no seed in cluster.join (--join) has answered")
	}
	return nil
}

// status returns the /status document (status.Node).
func (n *Node) status() any {
	host, _ := os.Hostname()
	st := status.Node{
		Node:     n.name,
		Host:     host,
		Version:  version.Get(),
		Uptime:   time.Since(n.started).Round(time.Second).String(),
		Started:  n.started,
		Edge:     n.EdgeAddr(),
		Draining: n.draining.Load(),
		Cache:    n.store.Stats(),
		Requests: n.edge.Stats(),
		Purge:    n.purge.Stats(),
	}
	if ds, ok := n.DiskStats(); ok {
		st.Disk = &ds
	}
	for _, c := range n.sites.Load().Origins() {
		st.Origins = append(st.Origins, c.State())
	}
	if n.limiter != nil {
		ls := n.limiter.State()
		st.Overload = &ls
	}
	if n.cluster != nil {
		info := n.cluster.Info()
		st.Cluster = &info
	}
	st.TLS = n.tlsStatus()
	st.Config = n.reloads.status(n.opt.File)
	st.Anomalies = n.anomalies()
	st.Faults = n.faultsDoc().Faults
	return st
}

// doctor builds the /debug/doctor document: what the edge recorded on
// its fill path, and the hosts entries in force with their key rules.
func (n *Node) doctor() any {
	cfg := n.live.Load()
	doc := status.Doctor{Node: n.name, Time: time.Now(), DoctorSample: n.edge.Doctor()}
	if cfg != nil {
		doc.MaxObject = int64(cfg.Cache.MaxObjectSize)
		doc.Cluster = n.cluster != nil
		doc.TieredFill = n.cluster != nil && cfg.Cluster.TieredFill
		for i, h := range cfg.Hosts {
			ds := status.DoctorSite{Index: i, IgnoreQuery: h.Key.IgnoreQuery, DropParams: h.Key.DropParams,
				AllowParams: h.Key.AllowParams, Headers: h.Key.Headers, StoreSetCookie: h.StoreSetCookie}
			if len(h.Match) > 0 {
				ds.Name = h.Match[0]
			}
			doc.Sites = append(doc.Sites, ds)
		}
	}
	return doc
}
