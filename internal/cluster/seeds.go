package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// ResolveTimeout bounds one look-up of a seed's host name.
const ResolveTimeout = 5 * time.Second

// resolveLogEvery spaces the log lines of a seed look-up that keeps
// failing the same way; a change (another seed fails, or the error
// changes) is logged at once, and so is the recovery.
const resolveLogEvery = 5 * time.Minute

// seedSet is Config.Join resolved once: the gossip addresses of the other
// nodes it names, and the entries that did not resolve.
type seedSet struct {
	// addrs are "ip:port" addresses other than this node's own, without
	// duplicates, in the order of Config.Join and of each name's answer.
	addrs []string
	// failed has one error per entry that did not resolve, naming it.
	failed []error
	// named is set when an entry is a host name, whose addresses can
	// change: the seeds must then be looked up again at every rejoin.
	named bool
}

// alone reports whether every entry resolved and named only this node:
// it is the first member, and starts the cluster the others join (as a
// node whose only seed is its own address always has).
func (s seedSet) alone() bool { return len(s.addrs) == 0 && len(s.failed) == 0 }

// err summarizes the entries that did not resolve, nil if none.
func (s seedSet) err() error { return errors.Join(s.failed...) }

// resolveSeeds looks up Config.Join. An entry whose host is an IP
// address is taken as it is; a host name becomes every address it
// resolves to (a headless Kubernetes Service answers with one A or AAAA
// record per pod), each with the entry's port. Each look-up goes through
// Config.Resolve within ResolveTimeout, and stops when the cluster does.
// Addresses of this node are left out.
func (c *Cluster) resolveSeeds() seedSet {
	var s seedSet
	seen := make(map[string]bool)
	for _, entry := range c.cfg.Join {
		host, port, err := net.SplitHostPort(entry)
		if err != nil {
			s.failed = append(s.failed, fmt.Errorf("seed %q is not host:port: %w", entry, err))
			continue
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			s.named = true
			if ips, err = c.lookup(host); err != nil {
				s.failed = append(s.failed, fmt.Errorf("seed %q: %w", entry, err))
				continue
			}
		}
		for _, ip := range ips {
			addr := net.JoinHostPort(ip, port)
			if !seen[addr] && !c.isSelf(addr) {
				seen[addr] = true
				s.addrs = append(s.addrs, addr)
			}
		}
	}
	return s
}

// lookup resolves host to its IP addresses with Config.Resolve, or
// net.DefaultResolver.LookupHost when that is nil.
func (c *Cluster) lookup(host string) ([]string, error) {
	resolve := c.cfg.Resolve
	if resolve == nil {
		resolve = net.DefaultResolver.LookupHost
	}
	ctx, cancel := context.WithTimeout(c.ctx, ResolveTimeout)
	defer cancel()
	addrs, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", host, err)
	}
	var ips []string
	for _, a := range addrs {
		// LookupHost answers IP addresses; an IPv6 zone ("fe80::1%eth0")
		// is kept, since JoinHostPort writes it back as memberlist reads it.
		ip, _, _ := strings.Cut(a, "%")
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("look up %s: the answer %q is not an IP address", host, a)
		}
		ips = append(ips, a)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("look up %s: no address", host)
	}
	return ips, nil
}

// isSelf reports whether the gossip address addr ("ip:port") is this
// node's: its advertised address, its listen address, or, when it listens
// on every interface, one of this machine's addresses with its port. A
// headless Service's answer includes the asking pod, which must not count
// as a seed that answered.
func (c *Cluster) isSelf(addr string) bool {
	if addr == c.GossipAddr() || addr == c.cfg.Listen {
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	lhost, lport, err := net.SplitHostPort(c.cfg.Listen)
	if err != nil || port != lport && port != c.advertisedPort() {
		return false
	}
	if lhost != "" && !net.ParseIP(lhost).IsUnspecified() {
		return false
	}
	ip := net.ParseIP(host)
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil || ip == nil {
		return false
	}
	return slices.ContainsFunc(ifaddrs, func(a net.Addr) bool {
		n, ok := a.(*net.IPNet)
		return ok && n.IP.Equal(ip)
	})
}

// advertisedPort is the port of GossipAddr.
func (c *Cluster) advertisedPort() string {
	_, port, _ := net.SplitHostPort(c.GossipAddr())
	return port
}

// noteResolve logs the look-up failures of s at a bounded rate: when they
// differ from the last ones logged, else every resolveLogEvery, and once
// when every seed resolves again. Only the goroutine that joins calls it.
func (c *Cluster) noteResolve(s seedSet, now time.Time) {
	err := s.err()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	last := &c.resolveLog
	switch {
	case msg == "" && last.msg != "":
		c.log.Info("cluster: every seed resolves again", "seeds", c.cfg.Join, "addresses", s.addrs)
	case msg == "":
	case msg != last.msg || now.Sub(last.at) >= resolveLogEvery:
		c.log.Warn("cluster: cannot resolve seeds; the node keeps running and looks them up again at every rejoin",
			"seeds", c.cfg.Join, "resolved", s.addrs, "error", msg,
			"fix", "check the names in cluster.join (--join) and this host's DNS; a headless Service needs publishNotReadyAddresses for pods to find each other before they are ready")
		last.at = now
	}
	last.msg = msg
}
