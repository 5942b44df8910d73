package config

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Defaults of the privacy section (see Privacy).
const (
	// DefaultPrivacyEpsilon is the privacy budget each host spends per
	// window: 1.0, the usual "meaningful but useful" choice. A request
	// changes what the window's release shows with probability at most
	// e¹ ≈ 2.7 times what it would be without it.
	DefaultPrivacyEpsilon = 1.0
	// DefaultPrivacyDelta is the chance the top objects' threshold lets a
	// URL through on too few requests: one in a million.
	DefaultPrivacyDelta = 1e-6
	// DefaultPrivacyWindow is the span of one release: five minutes, long
	// enough for objects to clear the threshold, short enough to follow
	// a day's traffic.
	DefaultPrivacyWindow = Duration(5 * time.Minute)
	// DefaultPrivacyTopObjects is how many objects a release lists at
	// most.
	DefaultPrivacyTopObjects = 10
	// DefaultPrivacyMaxObjects bounds the distinct paths counted per host
	// per window, and so the memory of the exact counts.
	DefaultPrivacyMaxObjects = 4096
)

// Bounds of the privacy section.
const (
	MaxPrivacyEpsilon    = 100.0
	MinPrivacyWindow     = Duration(time.Second)
	MaxPrivacyWindow     = Duration(24 * time.Hour)
	MaxPrivacyTopObjects = 100
	MaxPrivacyMaxObjects = 1 << 16
)

// Privacy configures the private aggregates: per-host request, hit and
// miss counts and top objects, released once per window with Laplace
// noise (differential privacy), summed across the cluster, and shown to
// tenants (scoped tokens) and operators through GET /aggregates. Its
// zero value means off: nothing is counted.
type Privacy struct {
	// Enabled counts each hosts entry's requests per window and serves
	// their noised releases. The zero value false counts nothing and
	// serves no aggregates.
	Enabled bool `yaml:"enabled"`

	// Epsilon is the privacy budget each hosts entry spends per window,
	// for all of its release (counts and top objects together); smaller
	// is more private and noisier. From above 0 to 100; the zero value
	// means 1.0.
	Epsilon float64 `yaml:"epsilon"`

	// Delta is the probability, per object, that the top objects'
	// threshold releases an object on too few requests to hide them.
	// Above 0 and at most 0.001; the zero value means 1e-6.
	Delta float64 `yaml:"delta"`

	// Window is the span of one release, whole seconds from 1s to 24h;
	// windows are aligned to the Unix epoch, so every member's windows
	// start together. The zero value means 5m.
	Window Duration `yaml:"window"`

	// TopObjects is how many objects (paths, query left out) a release
	// lists at most, from 1 to 100; the zero value means 10.
	TopObjects int `yaml:"top_objects"`

	// MaxObjects bounds the distinct paths counted per hosts entry per
	// window, from 1 to 65536; paths past it are counted in the totals
	// only, and the window's top objects are withheld. The zero value
	// means 4096.
	MaxObjects int `yaml:"max_objects"`

	// Hosts give hosts entries their own epsilon. The zero value (none)
	// gives every entry Epsilon.
	Hosts []PrivacyHost `yaml:"hosts"`
}

// PrivacyHost is one hosts entry's privacy budget.
type PrivacyHost struct {
	// Host names the hosts entry by any of its match names. Required.
	Host string `yaml:"host"`
	// Epsilon is the entry's budget per window, as privacy.epsilon; the
	// zero value means privacy.epsilon.
	Epsilon float64 `yaml:"epsilon"`
}

func (p *Privacy) applyDefaults() {
	setDefault(&p.Epsilon, DefaultPrivacyEpsilon)
	setDefault(&p.Delta, DefaultPrivacyDelta)
	setDefault(&p.Window, DefaultPrivacyWindow)
	setDefault(&p.TopObjects, DefaultPrivacyTopObjects)
	setDefault(&p.MaxObjects, DefaultPrivacyMaxObjects)
}

// EpsilonFor returns the budget per window of the hosts entry h: its
// privacy.hosts entry's, else privacy.epsilon (default applied).
func (p *Privacy) EpsilonFor(h *Host) float64 {
	eps := p.Epsilon
	if eps == 0 {
		eps = DefaultPrivacyEpsilon
	}
	for _, ph := range p.Hosts {
		for _, m := range h.Match {
			if ph.Epsilon > 0 && strings.EqualFold(ph.Host, m) {
				return ph.Epsilon
			}
		}
	}
	return eps
}

// privacy checks the privacy section (defaults applied) against the
// hosts entries.
func (v *validator) privacy(p Privacy, hosts []Host) {
	checkEps := func(path string, eps float64) {
		if math.IsNaN(eps) || eps <= 0 || eps > MaxPrivacyEpsilon {
			v.add(path, "is %v; give a budget above 0 and at most %v (1.0 is the usual choice; above 10 hides little)", eps, MaxPrivacyEpsilon)
		}
	}
	checkEps("privacy.epsilon", p.Epsilon)
	if math.IsNaN(p.Delta) || p.Delta <= 0 || p.Delta > 1e-3 {
		v.add("privacy.delta", "is %v; give a probability above 0 and at most 0.001 (the default is 1e-6)", p.Delta)
	}
	if p.Window < MinPrivacyWindow || p.Window > MaxPrivacyWindow || time.Duration(p.Window)%time.Second != 0 {
		v.add("privacy.window", "is %s; give whole seconds from %s to %s (the default is %s)", p.Window, MinPrivacyWindow, MaxPrivacyWindow, DefaultPrivacyWindow)
	}
	if p.TopObjects < 1 || p.TopObjects > MaxPrivacyTopObjects {
		v.add("privacy.top_objects", "is %d; give 1 to %d (0 means %d)", p.TopObjects, MaxPrivacyTopObjects, DefaultPrivacyTopObjects)
	}
	if p.MaxObjects < 1 || p.MaxObjects > MaxPrivacyMaxObjects {
		v.add("privacy.max_objects", "is %d; give 1 to %d (0 means %d)", p.MaxObjects, MaxPrivacyMaxObjects, DefaultPrivacyMaxObjects)
	}
	seen := make(map[int]int)
	for i, ph := range p.Hosts {
		path := fmt.Sprintf("privacy.hosts[%d]", i)
		if ph.Epsilon != 0 {
			checkEps(path+".epsilon", ph.Epsilon)
		}
		entry := -1
		for j := range hosts {
			for _, m := range hosts[j].Match {
				if strings.EqualFold(m, ph.Host) {
					entry = j
				}
			}
		}
		switch {
		case ph.Host == "":
			v.add(path+".host", "is empty; name a hosts entry by one of its match names")
		case entry < 0:
			v.add(path+".host", "%q is no match name of any hosts entry; name one of hosts[].match", ph.Host)
		default:
			if first, dup := seen[entry]; dup {
				v.add(path+".host", "%q names hosts[%d] again (privacy.hosts[%d] names it already); give each entry one budget", ph.Host, entry, first)
			}
			seen[entry] = i
		}
	}
}
