package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet is a logger for stores whose log lines a test does not read.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// rsaKeys are RSA keys generated once for the whole test binary: a 2048
// bit key takes long enough to generate that each test making its own
// would dominate the run.
var rsaKeys struct {
	sync.Mutex
	keys []*rsa.PrivateKey
}

// rsaKey returns the i-th shared RSA key; distinct i give distinct keys.
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	for len(rsaKeys.keys) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatalf("generating an RSA key: %v", err)
		}
		rsaKeys.keys = append(rsaKeys.keys, k)
	}
	return rsaKeys.keys[i]
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating an ECDSA key: %v", err)
	}
	return k
}

var serial atomic.Int64

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	file string // the CA certificate in PEM, in the test's directory
}

// newCA makes a self-signed ECDSA CA and writes its certificate to dir.
func newCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key := ecKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.file = filepath.Join(dir, name+"-ca.pem")
	writeFile(t, ca.file, ca.pem, 0o644)
	return ca
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leaf says what certificate testCA.issue makes.
type leaf struct {
	dns    []string
	cn     string
	key    crypto.Signer // nil: a fresh ECDSA key
	client bool          // for client authentication instead of server
}

// issued is a certificate and its key, in PEM and parsed.
type issued struct {
	cert        *x509.Certificate
	certPEM     []byte
	keyPEM      []byte // PKCS #8
	key         crypto.Signer
	fingerprint string
	certFile    string // set by write
	keyFile     string
}

// issue makes a certificate signed by ca.
func (ca *testCA) issue(t testing.TB, l leaf) *issued {
	t.Helper()
	key := l.key
	if key == nil {
		key = ecKey(t)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: l.cn},
		DNSNames:     l.dns,
		NotBefore:    now.Add(-time.Hour).Truncate(time.Second),
		NotAfter:     now.Add(12 * time.Hour).Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if l.client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("issuing a certificate for %v: %v", l.dns, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{
		cert:        cert,
		certPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		key:         key,
		fingerprint: fingerprintOf(cert),
	}
}

// write writes the certificate and key to dir as base.pem and base.key
// (mode 0600), replacing what is there by renaming a new file into
// place, as a certificate manager does, and returns c.
func (c *issued) write(t testing.TB, dir, base string) *issued {
	t.Helper()
	c.certFile, c.keyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	writeFile(t, c.certFile, c.certPEM, 0o600)
	writeFile(t, c.keyFile, c.keyPEM, 0o600)
	return c
}

func (c *issued) spec() Spec { return Spec{CertFile: c.certFile, KeyFile: c.keyFile} }

// writeFile replaces path with data, atomically.
func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fingerprintOf is how the tests name a certificate: Pair.Fingerprint's
// form, the SHA-256 of the DER in hex, computed here independently of
// LoadPair.
func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// server is a TLS echo server on loopback for one test.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// serve starts a TLS server with cfg on 127.0.0.1, port 0, that echoes
// what each client sends. It stops, its connections closed and its
// goroutines ended, when the test ends.
func serve(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
				}()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects to addr with cfg and completes the handshake; the
// connection is closed when the test ends.
func dial(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	return tc, nil
}

// roundTrip sends a message over c and reads it back: it fails when the
// server refused the connection after the client's half of the handshake
// (a client certificate it does not accept, in TLS 1.3), and it has the
// client read what the server sent after the handshake (TLS 1.3 session
// tickets).
func roundTrip(c *tls.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	msg := []byte("ping")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("the echo differs: " + string(got))
	}
	return nil
}

// connect dials addr with cfg, does one round trip and returns the
// connection's state.
func connect(t testing.TB, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := dial(t, addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	if err := roundTrip(c); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.ConnectionState(), nil
}

// served connects to addr asking for serverName (none when "") without
// verifying the certificate, and returns the fingerprint of the leaf the
// server chose.
func served(t testing.TB, addr, serverName string, tweak func(*tls.Config)) string {
	t.Helper()
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: true}
	if tweak != nil {
		tweak(cfg)
	}
	st, err := connect(t, addr, cfg)
	if err != nil {
		t.Fatalf("connecting with server name %q: %v", serverName, err)
	}
	return fingerprintOf(st.PeerCertificates[0])
}

// storeAddr starts a store over specs and a TLS server with its
// certificates.
func storeAddr(t testing.TB, specs ...Spec) (*Store, string) {
	t.Helper()
	s, err := New(specs, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg, err := ServerConfig(s, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s, serve(t, cfg)
}
