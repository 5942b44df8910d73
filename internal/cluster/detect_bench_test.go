package cluster

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// BenchmarkFailureDetection measures, on a 10-node loopback cluster with
// DefaultTiming, how long after a node crashes the first member suspects
// it and how long until every member has removed it from ownership.
//
//	go test -run '^$' -bench FailureDetection -benchtime 5x ./internal/cluster/
func BenchmarkFailureDetection(b *testing.B) {
	const size = 10
	keys := testKeys(b)
	var suspect, removed []time.Duration
	for b.Loop() {
		nodes := startCluster(b, size, keys)
		victim := nodes[size-1]
		rest := nodes[:size-1]
		start := time.Now()
		victim.Close()
		var firstSuspect time.Duration
		testkit.Until(b, 30*time.Second, func() string {
			if firstSuspect == 0 {
				for _, c := range rest {
					c.mu.Lock()
					_, ok := c.suspects[victim.self]
					c.mu.Unlock()
					if ok {
						firstSuspect = time.Since(start)
						break
					}
				}
			}
			for _, c := range rest {
				if hasMember(c, victim.self) {
					return "not removed everywhere yet"
				}
			}
			return ""
		})
		removed = append(removed, time.Since(start))
		suspect = append(suspect, firstSuspect)
		for _, c := range rest {
			c.Close()
		}
	}
	b.ReportMetric(median(suspect).Seconds(), "suspect-s")
	b.ReportMetric(median(removed).Seconds(), "removed-s")
	b.ReportMetric(maxOf(removed).Seconds(), "removed-max-s")
}

func startCluster(b *testing.B, size int, keys *Keyring) []*Cluster {
	var nodes []*Cluster
	for i := range size {
		var join []string
		if i > 0 {
			join = []string{nodes[0].GossipAddr()}
		}
		c, err := Start(Config{Node: fmt.Sprintf("n%d", i), Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1",
			Join: join, Keys: keys, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, c)
	}
	testkit.Until(b, 30*time.Second, func() string {
		for _, c := range nodes {
			if n := len(memberNames(c)); n != size {
				return fmt.Sprintf("%s sees %d members", c.self, n)
			}
		}
		return ""
	})
	return nodes
}

func hasMember(c *Cluster, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.members[name]
	return ok
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
