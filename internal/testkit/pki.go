package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a private certificate authority for a test: it issues server
// and client certificates and writes them, and itself, as PEM files
// into the test's temporary directory, as an operator's files would be.
type CA struct {
	// Cert is the CA's certificate, and Pool a pool holding it alone.
	Cert *x509.Certificate
	Pool *x509.CertPool
	// CertFile is the PEM file of Cert: what a ca setting names.
	CertFile string

	key *ecdsa.PrivateKey
	dir string
	tb  testing.TB
}

// Leaf is a certificate a CA issued, with its key.
type Leaf struct {
	// TLS is the certificate and key, for tls.Config.Certificates.
	TLS tls.Certificate
	// CertFile and KeyFile are its PEM files (the key mode 0600).
	CertFile, KeyFile string
}

// Files returns the certificate's and the key's files, as a cert/key
// setting names them.
func (l Leaf) Files() (certFile, keyFile string) { return l.CertFile, l.KeyFile }

// NewCA returns a fresh CA named name, valid for an hour either side of
// now; its file is NAME.pem.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("creating the test CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parsing the test CA: %v", err)
	}
	ca := &CA{Cert: cert, Pool: x509.NewCertPool(), key: key, dir: tb.TempDir(), tb: tb}
	ca.Pool.AddCert(cert)
	ca.CertFile = ca.write(name+".pem", "CERTIFICATE", der, 0o644)
	return ca
}

// Issue returns a certificate for name, usable both to serve and as a
// client certificate, valid for hosts: DNS names and IP addresses
// (none: a client certificate only). Its files are NAME.pem and
// NAME-key.pem.
func (ca *CA) Issue(name string, hosts ...string) Leaf {
	ca.tb.Helper()
	key := newKey(ca.tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.tb),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatalf("issuing a test certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		ca.tb.Fatalf("parsing a test certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.tb.Fatalf("encoding a test key: %v", err)
	}
	// The key first: a reader polling the pair (a certificate reload)
	// sees the new certificate only once its key is in place.
	keyFile := ca.write(name+"-key.pem", "PRIVATE KEY", keyDER, 0o600)
	return Leaf{
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		CertFile: ca.write(name+".pem", "CERTIFICATE", der, 0o644),
		KeyFile:  keyFile,
	}
}

// ServerConfig returns the configuration of a TLS server presenting
// leaf; with clientAuth tls.RequireAndVerifyClientCert it requires a
// client certificate this CA signed.
func (ca *CA) ServerConfig(leaf Leaf, clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, ClientCAs: ca.Pool, ClientAuth: clientAuth, MinVersion: tls.VersionTLS12}
}

// ClientConfig returns the configuration of a TLS client that trusts
// this CA only and presents leaf, when given.
func (ca *CA) ClientConfig(leaf ...Leaf) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	for _, l := range leaf {
		cfg.Certificates = append(cfg.Certificates, l.TLS)
	}
	return cfg
}

// write writes one PEM block as the file name, atomically (a rename, as
// certificate tooling does): issuing under a name again replaces it.
func (ca *CA) write(name, typ string, der []byte, mode os.FileMode) string {
	path := filepath.Join(ca.dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		ca.tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ca.tb.Fatal(err)
	}
	return path
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generating a test key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
