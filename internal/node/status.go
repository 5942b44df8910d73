package node

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/site"
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
	if msg := n.prefetchPending(time.Now()); msg != "" {
		return errors.New(msg)
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
func (n *Node) doctor(ctx context.Context) any {
	cfg := n.live.Load()
	doc := status.Doctor{Node: n.name, Time: time.Now(), DoctorSample: n.edge.Doctor()}
	if cfg != nil {
		doc.MaxObject = int64(cfg.Cache.MaxObjectSize)
		doc.Cluster = n.cluster != nil
		doc.TieredFill = n.cluster != nil && cfg.Cluster.TieredFill
		counts := map[string]*site.Counters{}
		for _, st := range n.sites.Load().Sites() {
			counts[st.Name] = st.Stats
		}
		for i, h := range cfg.Hosts {
			ds := status.DoctorSite{Index: i, IgnoreQuery: h.Key.IgnoreQuery, DropParams: h.Key.DropParams,
				AllowParams: h.Key.AllowParams, Headers: h.Key.Headers, StoreSetCookie: h.StoreSetCookie}
			if len(h.Match) > 0 {
				ds.Name = h.Match[0]
			}
			if c := counts[ds.Name]; c != nil {
				ds.Hits, ds.Misses = int64(c.Hits.Load()), int64(c.Misses.Load())
			}
			doc.Sites = append(doc.Sites, ds)
		}
	}
	doc.Aggregates, doc.AggregatesNote = n.doctorAggregates(ctx)
	return doc
}

// doctorAggregatesTimeout bounds how long a /debug/doctor read waits for
// the cluster's aggregate; past it the read gets the last one gathered.
const doctorAggregatesTimeout = 2 * time.Second

// doctorAggregates returns the cluster's private aggregate for the doctor
// document: the aggregator's (its cached sum, or a gathering of at most
// doctorAggregatesTimeout), else the last it gathered, with a note; nil
// with privacy off.
func (n *Node) doctorAggregates(ctx context.Context) (*privagg.Cluster, string) {
	if n.priv.agg == nil {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(ctx, doctorAggregatesTimeout)
	defer cancel()
	if c, ok := n.priv.agg.Get(ctx); ok {
		return &c, ""
	}
	if c, ok := n.priv.agg.Last(); ok {
		return &c, "the members did not answer within " + doctorAggregatesTimeout.String() + ": this is the last aggregate gathered"
	}
	if ctx.Err() != nil {
		return nil, "the members did not answer within " + doctorAggregatesTimeout.String()
	}
	return nil, "no privacy window has closed since this node started"
}
