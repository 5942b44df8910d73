package certs

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestSNI serves three pairs, an exact name, a wildcard and a default
// that is not the first, and checks over real handshakes which one each
// client gets.
func TestSNI(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	exact := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "exact")
	wild := ca.issue(t, leaf{dns: []string{"*.example.com"}}).write(t, dir, "wild")
	def := ca.issue(t, leaf{dns: []string{"fallback.example.net"}}).write(t, dir, "default")
	defSpec := def.spec()
	defSpec.Default = true
	_, addr := storeAddr(t, exact.spec(), wild.spec(), defSpec)

	for _, tt := range []struct {
		serverName string
		want       *issued
	}{
		{"www.example.com", exact}, // the exact name wins over the wildcard that also covers it
		{"WWW.Example.COM", exact},
		{"a.example.com", wild},
		{"shop.example.com", wild},
		{"a.b.example.com", def}, // a wildcard covers one label only
		{"example.com", def},     // and not its suffix alone
		{"fallback.example.net", def},
		{"unknown.example.org", def},
		{"", def}, // no SNI
	} {
		if got := served(t, addr, tt.serverName, nil); got != tt.want.fingerprint {
			t.Errorf("server name %q got %s, want %s", tt.serverName, got, tt.want.certFile)
		}
	}

	// A client that verifies gets a certificate it accepts.
	for _, name := range []string{"www.example.com", "a.example.com", "fallback.example.net"} {
		if _, err := connect(t, addr, &tls.Config{ServerName: name, RootCAs: ca.pool()}); err != nil {
			t.Errorf("a verifying client asking for %s: %v", name, err)
		}
	}
	if _, err := connect(t, addr, &tls.Config{ServerName: "a.b.example.com", RootCAs: ca.pool()}); err == nil {
		t.Errorf("a verifying client asking for a.b.example.com accepted the default certificate, which does not cover it")
	}
}

// TestSNIFirstPairIsTheDefault: without default: true, the first pair
// is served to clients no pair's names match.
func TestSNIFirstPairIsTheDefault(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	first := ca.issue(t, leaf{dns: []string{"*.example.com"}}).write(t, dir, "first")
	second := ca.issue(t, leaf{dns: []string{"www.example.org"}}).write(t, dir, "second")
	s, addr := storeAddr(t, first.spec(), second.spec())
	for name, want := range map[string]*issued{"": first, "other.example.net": first, "www.example.org": second} {
		if got := served(t, addr, name, nil); got != want.fingerprint {
			t.Errorf("server name %q got %s, want %s", name, got, want.certFile)
		}
	}
	st := s.Status()
	if len(st) != 2 || !st[0].Default || st[1].Default {
		t.Errorf("Status says default %v; want the first pair only", []bool{st[0].Default, st[1].Default})
	}
}

// TestSNINames: names restrict a pair to some of its certificate's
// names, and a name the certificate does not cover is refused.
func TestSNINames(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	multi := ca.issue(t, leaf{dns: []string{"www.example.com", "shop.example.com"}}).write(t, dir, "multi")
	wild := ca.issue(t, leaf{dns: []string{"*.example.com"}}).write(t, dir, "wild")
	def := ca.issue(t, leaf{dns: []string{"fallback.example.net"}}).write(t, dir, "default")

	shopOnly := multi.spec()
	shopOnly.Names = []string{"Shop.Example.com."}
	oneOfWild := wild.spec()
	oneOfWild.Names = []string{"api.example.com"} // an exact name the wildcard covers
	s, addr := storeAddr(t, def.spec(), shopOnly, oneOfWild)
	for name, want := range map[string]*issued{
		"shop.example.com": multi,
		"www.example.com":  def, // in the certificate, not in names
		"api.example.com":  wild,
		"cdn.example.com":  def, // the wildcard pair is chosen for api only
	} {
		if got := served(t, addr, name, nil); got != want.fingerprint {
			t.Errorf("server name %q got %s, want %s", name, got, want.certFile)
		}
	}
	if got := s.Status()[1].Names; !slices.Equal(got, []string{"shop.example.com"}) {
		t.Errorf("Status names %q, want [shop.example.com]", got)
	}

	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{CertFile: multi.certFile, KeyFile: multi.keyFile, Names: []string{"www.example.com", "other.example.com"}},
			"name other.example.com is not one the certificate " + multi.certFile + " is valid for (www.example.com, shop.example.com)"},
		{Spec{CertFile: multi.certFile, KeyFile: multi.keyFile, Names: []string{"*.example.com"}},
			"name *.example.com is not one the certificate " + multi.certFile + " is valid for"},
		{Spec{CertFile: wild.certFile, KeyFile: wild.keyFile, Names: []string{"a.b.example.com"}},
			"name a.b.example.com is not one the certificate " + wild.certFile + " is valid for"},
		{Spec{CertFile: wild.certFile, KeyFile: wild.keyFile, Names: []string{"bad name"}},
			`server name "bad name"`},
	} {
		_, err := New([]Spec{def.spec(), tt.spec}, quiet())
		if err == nil || !strings.Contains(err.Error(), "tls.certificates[1]: "+tt.want) {
			t.Errorf("New with names %q: %v, want an error saying %q", tt.spec.Names, err, tt.want)
		}
	}
}

// TestSNIECDSAAndRSA: of two pairs for one name, the first the client
// supports is served.
func TestSNIECDSAAndRSA(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	ec := ca.issue(t, leaf{dns: []string{"dual.example.com"}}).write(t, dir, "ecdsa")
	rs := ca.issue(t, leaf{dns: []string{"dual.example.com"}, key: rsaKey(t, 0)}).write(t, dir, "rsa")
	suites := func(ids ...uint16) func(*tls.Config) {
		return func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, ids }
	}
	rsaOnly := suites(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	ecdsaOnly := suites(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)

	_, addr := storeAddr(t, ec.spec(), rs.spec())
	for _, tt := range []struct {
		name  string
		tweak func(*tls.Config)
		want  *issued
	}{
		{"TLS 1.3 client", nil, ec},
		{"TLS 1.2 client with RSA suites only", rsaOnly, rs},
		{"TLS 1.2 client with ECDSA suites only", ecdsaOnly, ec},
	} {
		if got := served(t, addr, "dual.example.com", tt.tweak); got != tt.want.fingerprint {
			t.Errorf("%s got %s, want %s", tt.name, got, tt.want.certFile)
		}
	}

	_, addr = storeAddr(t, rs.spec(), ec.spec())
	if got := served(t, addr, "dual.example.com", nil); got != rs.fingerprint {
		t.Errorf("with the RSA pair first, a TLS 1.3 client got %s, want the RSA one", got)
	}
	if got := served(t, addr, "dual.example.com", ecdsaOnly); got != ec.fingerprint {
		t.Errorf("with the RSA pair first, an ECDSA-only client got %s, want the ECDSA one", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	a := ca.issue(t, leaf{dns: []string{"a.example"}}).write(t, dir, "a")
	nameless := ca.issue(t, leaf{cn: "Not A Name"}).write(t, dir, "nameless")
	bad := Spec{CertFile: a.certFile, KeyFile: dir + "/missing.key"}
	defA := a.spec()
	defA.Default = true

	if _, err := New(nil, quiet()); err == nil {
		t.Errorf("New with no pair: no error")
	}
	_, err := New([]Spec{a.spec(), bad, bad}, quiet())
	if err == nil || !strings.Contains(err.Error(), "tls.certificates[1]: key file: open "+bad.KeyFile) ||
		!strings.Contains(err.Error(), "tls.certificates[2]: key file") {
		t.Errorf("New with two broken pairs: %v, want both named", err)
	}
	if _, err := New([]Spec{defA, defA}, quiet()); err == nil || !strings.Contains(err.Error(), "2 pairs say default: true") {
		t.Errorf("New with two defaults: %v", err)
	}
	if _, err := New([]Spec{a.spec(), nameless.spec()}, quiet()); err == nil || !strings.Contains(err.Error(), "certificate "+nameless.certFile+" names no DNS name") {
		t.Errorf("New with a nameless pair that is not the default: %v", err)
	}
	namelessDefault := nameless.spec()
	namelessDefault.Default = true
	s, err := New([]Spec{a.spec(), namelessDefault}, quiet())
	if err != nil {
		t.Fatalf("New with a nameless default: %v", err)
	}
	s.Close()
}

// storeMetrics is what the store's collector says of one certificate
// file, with the reload counts, in the exposition format.
func storeMetrics(certFile string, stale, ok, failed int) string {
	return fmt.Sprintf(`# HELP weir_tls_certificate_reloads_total Certificate loads after start-up (SIGHUP, or the files changed), by result: ok or error.
# TYPE weir_tls_certificate_reloads_total counter
weir_tls_certificate_reloads_total{listener="",result="error"} %d
weir_tls_certificate_reloads_total{listener="",result="ok"} %d
# HELP weir_tls_certificate_stale 1 when a certificate's files changed but could not be loaded, so the previous certificate is still served; /status says why.
# TYPE weir_tls_certificate_stale gauge
weir_tls_certificate_stale{certificate=%q,listener=""} %d
`, failed, ok, certFile, stale)
}

func checkMetrics(t *testing.T, s *Store, want string) {
	t.Helper()
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), "weir_tls_certificate_stale", "weir_tls_certificate_reloads_total"); err != nil {
		t.Error(err)
	}
}

// TestReload: new files serve the new certificate on the next handshake
// while a connection made before keeps working.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	old := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	s, addr := storeAddr(t, old.spec())
	client := &tls.Config{ServerName: "www.example.com", RootCAs: ca.pool()}

	before, err := dial(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(before); err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, s, storeMetrics(old.certFile, 0, 0, 0))
	loadedAt := s.Status()[0].LoadedAt

	renewed := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	st, err := connect(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprintOf(st.PeerCertificates[0]); got != renewed.fingerprint {
		t.Errorf("after Reload a new connection got %s, want the renewed certificate %s", got, renewed.fingerprint)
	}
	if err := roundTrip(before); err != nil {
		t.Errorf("the connection made before Reload broke: %v", err)
	}
	if got := fingerprintOf(before.ConnectionState().PeerCertificates[0]); got != old.fingerprint {
		t.Errorf("the connection made before Reload changed certificate")
	}
	status := s.Status()[0]
	if status.Fingerprint != renewed.fingerprint || status.Error != "" || status.FailedAt != nil || !status.LoadedAt.After(loadedAt) {
		t.Errorf("Status after a reload: %+v; want the renewed certificate, loaded later, no error", status)
	}
	if !status.NotAfter.Equal(renewed.cert.NotAfter) || !slices.Equal(status.Names, []string{"www.example.com"}) || !status.Default {
		t.Errorf("Status after a reload: %+v", status)
	}
	checkMetrics(t, s, storeMetrics(old.certFile, 0, 1, 0))
	if got := testkit.Metric(t, s, "weir_tls_certificate_not_after_seconds", map[string]string{"certificate": old.certFile, "name": "www.example.com"}); got != float64(renewed.cert.NotAfter.Unix()) {
		t.Errorf("weir_tls_certificate_not_after_seconds = %v, want %d", got, renewed.cert.NotAfter.Unix())
	}
	if problems, err := testutil.CollectAndLint(s); err != nil || len(problems) > 0 {
		t.Errorf("the collector's metrics do not lint: %v %v", problems, err)
	}
}

// TestReloadKeepsThePreviousPair: a pair whose new files do not load
// keeps serving its previous certificate, says why in Reload's error,
// Status, the log and the metrics, and recovers once the files are
// fixed.
func TestReloadKeepsThePreviousPair(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(t *testing.T, ca *testCA, c *issued)
		want   func(c *issued) string // in the error
	}{
		{"garbage key", func(t *testing.T, ca *testCA, c *issued) {
			writeFile(t, c.keyFile, []byte("-----BEGIN PRIV"), 0o600) // written half-way
		}, func(c *issued) string { return "key file " + c.keyFile + " holds no PEM private key block" }},
		{"key of another certificate", func(t *testing.T, ca *testCA, c *issued) {
			other := ca.issue(t, leaf{dns: []string{"www.example.com"}})
			writeFile(t, c.keyFile, other.keyPEM, 0o600)
		}, func(c *issued) string { return "certificate " + c.certFile + " with key " + c.keyFile + ": " }},
		{"new certificate, old key", func(t *testing.T, ca *testCA, c *issued) {
			other := ca.issue(t, leaf{dns: []string{"www.example.com"}})
			writeFile(t, c.certFile, other.certPEM, 0o600)
		}, func(c *issued) string { return "certificate " + c.certFile + " with key " + c.keyFile + ": " }},
		{"certificate removed", func(t *testing.T, ca *testCA, c *issued) {
			if err := os.Remove(c.certFile); err != nil {
				t.Fatal(err)
			}
		}, func(c *issued) string { return "certificate file: open " + c.certFile }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := newCA(t, dir, "test")
			old := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
			var log bytes.Buffer
			s, err := New([]Spec{old.spec()}, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cfg, err := ServerConfig(s, ServerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, cfg)

			tt.break_(t, ca, old)
			start := time.Now()
			err = s.Reload()
			want := "tls.certificates[0]: " + tt.want(old)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Reload = %v, want an error saying %q", err, want)
			}
			if got := served(t, addr, "www.example.com", nil); got != old.fingerprint {
				t.Errorf("after a failed reload a new connection got %s, want the previous certificate", got)
			}
			st := s.Status()[0]
			if !strings.Contains(st.Error, tt.want(old)) || st.FailedAt == nil || st.FailedAt.Before(start) || st.Fingerprint != old.fingerprint {
				t.Errorf("Status after a failed reload: error %q, failed at %v, sha256 %s; want the error, a time after %v and the previous certificate",
					st.Error, st.FailedAt, st.Fingerprint, start)
			}
			if l := log.String(); !strings.Contains(l, "certificate not reloaded; the previous one is still served") || !strings.Contains(l, old.certFile) {
				t.Errorf("log %q does not say the certificate was not reloaded", l)
			}
			checkMetrics(t, s, storeMetrics(old.certFile, 1, 0, 1))

			fixed := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
			if err := s.Reload(); err != nil {
				t.Fatalf("Reload after fixing the files: %v", err)
			}
			if got := served(t, addr, "www.example.com", nil); got != fixed.fingerprint {
				t.Errorf("after fixing the files a new connection got %s, want the new certificate", got)
			}
			if st := s.Status()[0]; st.Error != "" || st.FailedAt != nil || st.Fingerprint != fixed.fingerprint {
				t.Errorf("Status after fixing the files: %+v; want no error and the new certificate", st)
			}
			checkMetrics(t, s, storeMetrics(old.certFile, 0, 1, 1))
		})
	}
}

// TestReloadOnePairOfSeveral: a broken pair does not hold back the
// others, and Reload's error names only it.
func TestReloadOnePairOfSeveral(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	a := ca.issue(t, leaf{dns: []string{"a.example.com"}}).write(t, dir, "a")
	b := ca.issue(t, leaf{dns: []string{"b.example.com"}}).write(t, dir, "b")
	s, addr := storeAddr(t, a.spec(), b.spec())
	writeFile(t, a.keyFile, []byte("garbage"), 0o600)
	b2 := ca.issue(t, leaf{dns: []string{"b.example.com"}}).write(t, dir, "b")
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), "tls.certificates[0]: key file "+a.keyFile) || strings.Contains(err.Error(), "certificates[1]") {
		t.Fatalf("Reload = %v; want an error for the first pair only", err)
	}
	if got := served(t, addr, "a.example.com", nil); got != a.fingerprint {
		t.Errorf("a.example.com got %s, want its previous certificate", got)
	}
	if got := served(t, addr, "b.example.com", nil); got != b2.fingerprint {
		t.Errorf("b.example.com got %s, want its new certificate", got)
	}
	if st := s.Status(); st[0].Error == "" || st[1].Error != "" {
		t.Errorf("Status errors %q, %q; want the first only", st[0].Error, st[1].Error)
	}
}

// TestWatch: Watch reloads a pair whose files change, refuses a broken
// one until it changes again, and Close stops it.
func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	old := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	s, err := New([]Spec{old.spec()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "www.example.com"}
	servedNow := func() string {
		c, err := s.GetCertificate(hello)
		if err != nil {
			t.Fatal(err)
		}
		return fingerprintOf(c.Leaf)
	}
	s.Watch(20 * time.Millisecond)
	s.Watch(time.Hour) // a second Watch does nothing

	renewed := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	testkit.Until(t, 10*time.Second, func() string {
		if servedNow() == renewed.fingerprint {
			return ""
		}
		return "the renewed certificate is not served"
	})

	writeFile(t, old.keyFile, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600)
	testkit.Until(t, 10*time.Second, func() string {
		if st := s.Status()[0]; st.Error != "" {
			return ""
		}
		return "Status shows no error for the broken key"
	})
	if got := servedNow(); got != renewed.fingerprint {
		t.Errorf("with a broken key the store serves %s, want the renewed certificate still", got)
	}
	checkMetrics(t, s, storeMetrics(old.certFile, 1, 1, 1))

	fixed := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	testkit.Until(t, 10*time.Second, func() string {
		if st := s.Status()[0]; st.Error == "" && servedNow() == fixed.fingerprint {
			return ""
		}
		return "the fixed pair is not served"
	})
	checkMetrics(t, s, storeMetrics(old.certFile, 0, 2, 1))

	s.Close()
	s.Close() // twice is fine
	s.Watch(time.Millisecond)
	if s.done == nil {
		t.Fatal("Watch did not start")
	}
	select {
	case <-s.done:
	default:
		t.Errorf("the watch goroutine runs after Close")
	}
}

// TestPollLoadsChangedPairsOnly: each look Watch takes (reload(false))
// loads a pair only when its files changed since the last attempt, so a
// broken pair is tried again when it changes again, not at every look.
func TestPollLoadsChangedPairsOnly(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	a := ca.issue(t, leaf{dns: []string{"a.example.com"}}).write(t, dir, "a")
	b := ca.issue(t, leaf{dns: []string{"b.example.com"}}).write(t, dir, "b")
	s, err := New([]Spec{a.spec(), b.spec()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counts := func() [2]int64 { return [2]int64{s.reloadsOK.Load(), s.reloadsFailed.Load()} }
	look := func(want [2]int64, what string) {
		t.Helper()
		for range 3 {
			s.reload(false)
		}
		if got := counts(); got != want {
			t.Errorf("%s: %d loads ok and %d failed, want %d and %d", what, got[0], got[1], want[0], want[1])
		}
	}
	look([2]int64{0, 0}, "unchanged files")
	ca.issue(t, leaf{dns: []string{"b.example.com"}}).write(t, dir, "b")
	look([2]int64{1, 0}, "b renewed")
	writeFile(t, a.keyFile, []byte("garbage"), 0o600)
	look([2]int64{1, 1}, "a broken")
	writeFile(t, a.keyFile, []byte("garbage, longer"), 0o600)
	look([2]int64{1, 2}, "a broken again")
	ca.issue(t, leaf{dns: []string{"a.example.com"}}).write(t, dir, "a")
	look([2]int64{2, 2}, "a fixed")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := counts(); got != [2]int64{4, 2} {
		t.Errorf("Reload loads every pair, changed or not: counts %v, want 4 ok", got)
	}
}

// TestCloseWithoutWatch: Close is safe on a store never watched, and a
// Watch after it starts nothing.
func TestCloseWithoutWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	c := newCA(t, dir, "test").issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	s, err := New([]Spec{c.spec()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Watch(time.Millisecond)
	if s.stop != nil {
		t.Errorf("Watch after Close started a goroutine")
	}
	s.Close()
}
