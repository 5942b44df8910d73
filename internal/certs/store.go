package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Spec names one certificate and key pair a Store serves.
type Spec struct {
	// CertFile and KeyFile are the PEM files; both required.
	CertFile, KeyFile string
	// Names, when set, are the server names (ParseName's form) the pair
	// is chosen for, instead of all the names the certificate is valid
	// for; each must be one of those. Empty means the certificate's own.
	Names []string
	// Default makes the pair the one served when no pair's names match
	// the client's server name, or it sent none. Without a default the
	// first pair is.
	Default bool
}

// Store serves a list of certificate pairs by SNI and reloads them. Its
// methods are safe for concurrent use.
type Store struct {
	logger   *slog.Logger
	listener string // the metrics' listener label
	cur      atomic.Pointer[set]

	// mu serializes loads and guards entries.
	mu      sync.Mutex
	entries []*entry

	reloadsOK, reloadsFailed atomic.Int64

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// entry is one Spec with the pair it serves and what its last load said.
type entry struct {
	spec Spec
	pair *Pair // served; never nil after New
	// seen is the files' stamp at the last attempt, successful or not:
	// polling tries again only when they change again.
	seen stamp
	// err is the last load's error while the previous pair is served.
	err      error
	failedAt time.Time
	loadedAt time.Time
}

// set is one immutable choice table.
type set struct {
	exact map[string][]*tls.Certificate // by exact name
	wild  map[string][]*tls.Certificate // by the suffix after "*."
	def   *tls.Certificate
}

// New loads every pair; any that cannot be loaded is an error, joined, as
// start-up must not serve half a configuration. A key file others can
// read is warned about on logger (nil means slog.Default()).
func New(specs []Spec, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if len(specs) == 0 {
		return nil, errors.New("tls: no certificate configured: give --tls-cert and --tls-key, or tls.certificates")
	}
	s := &Store{logger: logger}
	var errs []error
	for i, sp := range specs {
		p, err := loadSpec(sp)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.certificates[%d]: %w", i, err))
			continue
		}
		if w := ModeWarning(sp.KeyFile); w != "" {
			logger.Warn(w)
		}
		s.entries = append(s.entries, &entry{spec: sp, pair: p, seen: p.stamp, loadedAt: time.Now()})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if n := countDefaults(specs); n > 1 {
		return nil, fmt.Errorf("tls.certificates: %d pairs say default: true; give it to one", n)
	}
	s.cur.Store(s.build())
	return s, nil
}

func countDefaults(specs []Spec) int {
	n := 0
	for _, sp := range specs {
		if sp.Default {
			n++
		}
	}
	return n
}

// loadSpec loads a spec's pair and checks its names against the
// certificate's.
func loadSpec(sp Spec) (*Pair, error) {
	p, err := LoadPair(sp.CertFile, sp.KeyFile)
	if err != nil {
		return nil, err
	}
	if len(sp.Names) > 0 {
		names := make([]string, 0, len(sp.Names))
		for _, n := range sp.Names {
			pn, err := ParseName(n)
			if err != nil {
				return nil, err
			}
			if !covered(p.Names, pn) {
				return nil, fmt.Errorf("name %s is not one the certificate %s is valid for (%s): clients would refuse it; list only the certificate's names, or leave names out", pn, sp.CertFile, strings.Join(p.Names, ", "))
			}
			names = append(names, pn)
		}
		p.Names = names
	}
	if len(p.Names) == 0 && !sp.Default {
		return nil, fmt.Errorf("certificate %s names no DNS name (no subject alternative name or common name): give it names, or make it the default", sp.CertFile)
	}
	return p, nil
}

// covered reports whether the certificate names certNames cover pattern:
// the same name, or a certificate wildcard matching an exact pattern.
func covered(certNames []string, pattern string) bool {
	for _, cn := range certNames {
		if cn == pattern || !strings.HasPrefix(pattern, "*.") && matches(cn, pattern) {
			return true
		}
	}
	return false
}

// build makes the choice table of the entries' current pairs. s.mu must
// be held, or s not yet shared.
func (s *Store) build() *set {
	t := &set{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	for _, e := range s.entries {
		c := e.pair.Cert
		for _, n := range e.pair.Names {
			if suffix, ok := strings.CutPrefix(n, "*."); ok {
				t.wild[suffix] = append(t.wild[suffix], c)
			} else {
				t.exact[n] = append(t.exact[n], c)
			}
		}
		if e.spec.Default {
			t.def = c
		}
	}
	if t.def == nil {
		t.def = s.entries[0].pair.Cert
	}
	return t
}

// GetCertificate chooses the certificate for a handshake, for
// tls.Config.GetCertificate: a pair listing the client's server name,
// then one whose wildcard covers it, then the default. Among several
// pairs for a name (an ECDSA and an RSA certificate), the first the
// client supports wins.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := s.cur.Load()
	name := lowerASCII(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := pick(t.exact[name], hello); c != nil {
			return c, nil
		}
		if _, suffix, ok := strings.Cut(name, "."); ok {
			if c := pick(t.wild[suffix], hello); c != nil {
				return c, nil
			}
		}
	}
	return t.def, nil
}

func pick(cs []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	switch len(cs) {
	case 0:
		return nil
	case 1:
		return cs[0]
	}
	for _, c := range cs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cs[0]
}

// Reload reads every pair's files again. A pair that fails to load keeps
// serving its previous certificate; its error is logged, counted, kept for
// Status, and returned (joined with the others'). Connections are not
// touched: new handshakes get the new certificates.
func (s *Store) Reload() error { return s.reload(true) }

// Check loads every pair's files as Reload would, without putting
// anything in force: a configuration reload checks them before it
// changes anything. Its errors are Reload's.
func (s *Store) Check() error {
	s.mu.Lock()
	specs := make([]Spec, len(s.entries))
	for i, e := range s.entries {
		specs[i] = e.spec
	}
	s.mu.Unlock()
	var errs []error
	for i, sp := range specs {
		if _, err := loadSpec(sp); err != nil {
			errs = append(errs, fmt.Errorf("tls.certificates[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// reload loads the pairs, all of them when all is set, else those whose
// files changed since the last attempt.
func (s *Store) reload(all bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	swapped := false
	for i, e := range s.entries {
		if !all && !e.seen.changedOn(e.spec) {
			continue
		}
		p, err := loadSpec(e.spec)
		if err != nil {
			e.seen = stampOf(e.spec)
			e.err, e.failedAt = err, time.Now()
			s.reloadsFailed.Add(1)
			err = fmt.Errorf("tls.certificates[%d]: %w", i, err)
			s.logger.Error("tls: certificate not reloaded; the previous one is still served", "certificate", e.spec.CertFile,
				"not_after", e.pair.NotAfter.UTC().Format(time.RFC3339), "error", err.Error())
			errs = append(errs, err)
			continue
		}
		if w := ModeWarning(e.spec.KeyFile); w != "" {
			s.logger.Warn(w)
		}
		s.reloadsOK.Add(1)
		if p.Fingerprint != e.pair.Fingerprint {
			s.logger.Info("tls: certificate reloaded", "certificate", e.spec.CertFile, "names", strings.Join(p.Names, ","),
				"not_after", p.NotAfter.UTC().Format(time.RFC3339), "sha256", p.Fingerprint)
		}
		e.pair, e.seen, e.err, e.loadedAt = p, p.stamp, nil, time.Now()
		swapped = true
	}
	if swapped {
		s.cur.Store(s.build())
	}
	return errors.Join(errs...)
}

// changedOn reports whether a spec's files differ from the stamp.
func (st stamp) changedOn(sp Spec) bool {
	return fileChanged(sp.CertFile, st.cert) || fileChanged(sp.KeyFile, st.key)
}

// stampOf stamps a spec's files as they are now; an unreadable file
// stamps as zero.
func stampOf(sp Spec) stamp {
	var st stamp
	if _, fs, err := readFile(sp.CertFile, "certificate"); err == nil {
		st.cert = fs
	}
	if b, fs, err := readFile(sp.KeyFile, "key"); err == nil {
		clear(b)
		st.key = fs
	}
	return st
}

// DefaultPollInterval is how often Watch looks at the files.
const DefaultPollInterval = 5 * time.Second

// Watch reloads a pair whenever its files change, looking every interval
// (DefaultPollInterval when zero) until Close. Renaming a new file into
// place and rewriting one both count; a pair written half-way is refused
// and kept trying when it changes again.
func (s *Store) Watch(interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	s.once.Do(func() {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(s.done)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-t.C:
					s.reload(false)
				}
			}
		}()
	})
}

// Close stops Watch and waits for it.
func (s *Store) Close() {
	s.once.Do(func() {}) // a later Watch does nothing
	if s.stop != nil {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		<-s.done
	}
}

// Status is what /status shows of one pair.
type Status struct {
	CertFile    string    `json:"cert_file"`
	KeyFile     string    `json:"key_file"`
	Names       []string  `json:"names"`
	Default     bool      `json:"default,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"sha256"`
	LoadedAt    time.Time `json:"loaded_at"`
	// Error is the last reload's failure while the previous pair is
	// served; FailedAt is when.
	Error    string     `json:"error,omitempty"`
	FailedAt *time.Time `json:"failed_at,omitempty"`
}

// Status returns each pair's certificate and last load, in spec order.
func (s *Store) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.entries))
	def := s.cur.Load().def
	for _, e := range s.entries {
		st := Status{
			CertFile: e.spec.CertFile, KeyFile: e.spec.KeyFile, Names: slices.Clone(e.pair.Names),
			Default: e.pair.Cert == def, NotBefore: e.pair.NotBefore, NotAfter: e.pair.NotAfter,
			Fingerprint: e.pair.Fingerprint, LoadedAt: e.loadedAt,
		}
		if e.err != nil {
			st.Error = e.err.Error()
			at := e.failedAt
			st.FailedAt = &at
		}
		out = append(out, st)
	}
	return out
}

var (
	notAfterDesc = prometheus.NewDesc("weir_tls_certificate_not_after_seconds",
		"When each served certificate expires, in Unix seconds; alert on it minus time() (by listener, certificate file, and its first server name).",
		[]string{"listener", "certificate", "name"}, nil)
	staleDesc = prometheus.NewDesc("weir_tls_certificate_stale",
		"1 when a certificate's files changed but could not be loaded, so the previous certificate is still served; /status says why.",
		[]string{"listener", "certificate"}, nil)
	reloadsDesc = prometheus.NewDesc("weir_tls_certificate_reloads_total",
		"Certificate loads after start-up (SIGHUP, or the files changed), by result: ok or error.",
		[]string{"listener", "result"}, nil)
)

// Named sets the listener label of the store's metrics ("tls", "admin",
// "peer"), before it is collected, and returns the store.
func (s *Store) Named(listener string) *Store {
	s.listener = listener
	return s
}

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) { describe(ch) }

func describe(ch chan<- *prometheus.Desc) {
	ch <- notAfterDesc
	ch <- staleDesc
	ch <- reloadsDesc
}

// Collector collects several stores' metrics (one registry takes one
// collector per metric name); nil stores are skipped.
func Collector(stores ...*Store) prometheus.Collector { return collector(stores) }

type collector []*Store

func (c collector) Describe(ch chan<- *prometheus.Desc) { describe(ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c {
		if s != nil {
			s.Collect(ch)
		}
	}
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	for _, e := range s.entries {
		name := ""
		if len(e.pair.Names) > 0 {
			name = e.pair.Names[0]
		}
		ch <- prometheus.MustNewConstMetric(notAfterDesc, prometheus.GaugeValue, float64(e.pair.NotAfter.Unix()), s.listener, e.spec.CertFile, name)
		stale := 0.0
		if e.err != nil {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, stale, s.listener, e.spec.CertFile)
	}
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(s.reloadsOK.Load()), s.listener, "ok")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(s.reloadsFailed.Load()), s.listener, "error")
}
