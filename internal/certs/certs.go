// Package certs loads the certificates and keys Weir serves and presents
// over TLS, picks the certificate for a connection by its server name
// (SNI), reloads them when their files change without dropping a
// connection, derives the session ticket keys every edge of a cluster
// shares, and builds the TLS configurations of the edge, peer, admin and
// origin sides with one set of defaults.
//
// Certificates and keys come from files only. Nothing here logs or
// formats a private key; errors name the file and what is wrong with it.
package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/secretfile"
)

// Pair is a certificate chain and its private key, loaded from files.
type Pair struct {
	// Cert is the chain and key, with its Leaf parsed.
	Cert *tls.Certificate
	// CertFile and KeyFile are the files it was read from.
	CertFile, KeyFile string
	// Names are the server names the certificate is valid for, from its
	// DNS subject alternative names (its common name when it has none),
	// lower-cased; "*.example.com" is a wildcard for one label.
	Names []string
	// NotBefore and NotAfter bound the leaf certificate's validity.
	NotBefore, NotAfter time.Time
	// Fingerprint is the SHA-256 of the leaf certificate, in hex.
	Fingerprint string

	stamp stamp
}

// stamp tells whether a pair's files changed since it was loaded.
type stamp struct {
	cert, key fileStamp
}

type fileStamp struct {
	size    int64
	modTime time.Time
	sum     [sha256.Size]byte
}

// LoadPair reads a PEM certificate chain (the leaf first) and its PEM
// private key. The error names the file at fault and what to do.
func LoadPair(certFile, keyFile string) (*Pair, error) {
	certPEM, certStamp, err := readFile(certFile, "certificate")
	if err != nil {
		return nil, err
	}
	keyPEM, keyStamp, err := readFile(keyFile, "key")
	if err != nil {
		return nil, err
	}
	defer clear(keyPEM)
	if !hasBlock(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("certificate file %s holds no PEM CERTIFICATE block: give the certificate chain, leaf first, in PEM", certFile)
	}
	if !hasKeyBlock(keyPEM) {
		return nil, fmt.Errorf("key file %s holds no PEM private key block: give the certificate's private key in PEM (PKCS #8, PKCS #1 or SEC 1)", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls's messages name neither file; they never quote the key.
		return nil, fmt.Errorf("certificate %s with key %s: %v", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate file %s: %v", certFile, err)
		}
		cert.Leaf = leaf
	}
	sum := sha256.Sum256(leaf.Raw)
	return &Pair{
		Cert:        &cert,
		CertFile:    certFile,
		KeyFile:     keyFile,
		Names:       leafNames(leaf),
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		Fingerprint: hex.EncodeToString(sum[:]),
		stamp:       stamp{cert: certStamp, key: keyStamp},
	}, nil
}

// leafNames returns the server names a leaf certificate is valid for.
func leafNames(leaf *x509.Certificate) []string {
	var names []string
	for _, n := range leaf.DNSNames {
		if p, err := ParseName(n); err == nil && !slices.Contains(names, p) {
			names = append(names, p)
		}
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		if p, err := ParseName(leaf.Subject.CommonName); err == nil {
			names = append(names, p)
		}
	}
	return names
}

// maxFile bounds a certificate, key or CA file: a chain of a few
// certificates is a few KiB, a CA bundle a few hundred.
const maxFile = 4 << 20

func readFile(path, what string) ([]byte, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s file: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s file: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fileStamp{}, fmt.Errorf("%s file %s is not a regular file", what, path)
	}
	if fi.Size() > maxFile {
		return nil, fileStamp{}, fmt.Errorf("%s file %s is %d bytes, more than the %d a %s file can be", what, path, fi.Size(), maxFile, what)
	}
	b := make([]byte, fi.Size()+1)
	n, err := readFull(f, b)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s file %s: %w", what, path, err)
	}
	b = b[:n]
	return b, fileStamp{size: fi.Size(), modTime: fi.ModTime(), sum: sha256.Sum256(b)}, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return n, err
			}
			return n, nil // io.EOF, or the file shrank: what was read is what there is
		}
		if n > maxFile {
			return n, fmt.Errorf("grew past %d bytes while being read", maxFile)
		}
	}
	return n, nil
}

func hasBlock(data []byte, typ string) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type == typ {
			return true
		}
	}
}

func hasKeyBlock(data []byte) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
			return true
		}
	}
}

// fileChanged reports whether a file differs from its stamp: its size or
// modification time, or, when those are equal and recent, its content (a
// file rewritten within the file system's time granularity). A file that
// cannot be stat'ed differs unless it could not be read at the stamp
// either.
func fileChanged(path string, was fileStamp) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return was != (fileStamp{})
	}
	if fi.Size() != was.size || !fi.ModTime().Equal(was.modTime) {
		return true
	}
	// Same size and time: compare the content too (a few KiB every poll),
	// for a rewrite within the clock's granularity or a copy that kept
	// the old time (cp -p, rsync -t).
	b, _, err := readFile(path, "certificate")
	return err != nil || sha256.Sum256(b) != was.sum
}

// LoadPool reads a PEM bundle of CA certificates, for verifying the
// other side of a connection: clients on a listener with mTLS, or an
// origin's server.
func LoadPool(caFile string) (*x509.CertPool, error) {
	data, _, err := readFile(caFile, "CA")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: certificate %d: %v", caFile, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM CERTIFICATE block: give the CA certificates in PEM", caFile)
	}
	return pool, nil
}

// ModeWarning returns a warning when a private key file can be read by
// users other than its owner, or "" (also when the file cannot be
// stat'ed: loading it says why).
func ModeWarning(keyFile string) string {
	return secretfile.ModeWarning(keyFile, "can read the private key")
}

// ParseName checks a server name as configuration gives it, for choosing
// a certificate by SNI: a DNS name ("www.example.com") or a wildcard for
// exactly one leftmost label ("*.example.com"). It returns it in lower
// case, without a trailing dot. IP addresses are not server names (RFC
// 6066 §3). Only ASCII is lower-cased: a name with other letters is
// refused, not folded into an ASCII one ("\u212A" is KELVIN SIGN, not k).
func ParseName(s string) (string, error) {
	name := lowerASCII(strings.TrimSuffix(s, "."))
	switch {
	case name == "":
		return "", errors.New("empty server name")
	case len(name) > 253:
		return "", fmt.Errorf("server name %.40q... is %d characters, more than DNS's 253", s, len(name))
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) >= 3 {
			continue
		}
		if l == "*" || strings.Contains(l, "*") {
			return "", fmt.Errorf("server name %q: a wildcard must be the whole leftmost label of a name with at least two more (*.example.com)", s)
		}
		if problem := labelProblem(l); problem != "" {
			return "", fmt.Errorf("server name %q: %s", s, problem)
		}
	}
	if isNumeric(labels[len(labels)-1]) {
		return "", fmt.Errorf("server name %q looks like an IP address: clients send DNS names only in SNI", s)
	}
	return name, nil
}

func labelProblem(l string) string {
	switch {
	case l == "":
		return "empty label"
	case len(l) > 63:
		return fmt.Sprintf("label %.20q... is longer than 63 characters", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Sprintf("label %q has %q: use letters, digits and hyphens (IDNs in their xn-- form)", l, c)
		}
	}
	return ""
}

// lowerASCII returns s with its ASCII letters in lower case and every
// other byte as it is.
func lowerASCII(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isNumeric(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// matches reports whether a server name pattern (ParseName's form)
// covers name, which is lower case.
func matches(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		first, rest, found := strings.Cut(name, ".")
		return found && first != "" && rest == suffix
	}
	return pattern == name
}
