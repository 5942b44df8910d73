package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadPair(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	c := ca.issue(t, leaf{dns: []string{"www.example.com", "example.com"}}).write(t, dir, "site")
	p, err := LoadPair(c.certFile, c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if p.CertFile != c.certFile || p.KeyFile != c.keyFile {
		t.Errorf("files %s, %s; want %s, %s", p.CertFile, p.KeyFile, c.certFile, c.keyFile)
	}
	if p.Cert.Leaf == nil || !p.Cert.Leaf.Equal(c.cert) {
		t.Errorf("Leaf is not the certificate written")
	}
	if p.Fingerprint != c.fingerprint {
		t.Errorf("Fingerprint = %s, want %s", p.Fingerprint, c.fingerprint)
	}
	if !p.NotBefore.Equal(c.cert.NotBefore) || !p.NotAfter.Equal(c.cert.NotAfter) {
		t.Errorf("validity %v to %v, want %v to %v", p.NotBefore, p.NotAfter, c.cert.NotBefore, c.cert.NotAfter)
	}
	if want := []string{"www.example.com", "example.com"}; !slices.Equal(p.Names, want) {
		t.Errorf("Names = %q, want %q", p.Names, want)
	}
	if !p.Cert.PrivateKey.(*ecdsa.PrivateKey).Equal(c.key) {
		t.Errorf("the private key is not the one written")
	}
}

func TestLoadPairChainLeafFirst(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	c := ca.issue(t, leaf{dns: []string{"www.example.com"}})
	c.certPEM = append(c.certPEM, ca.pem...)
	c.write(t, dir, "chain")
	p, err := LoadPair(c.certFile, c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Cert.Certificate) != 2 || !bytes.Equal(p.Cert.Certificate[0], c.cert.Raw) || !bytes.Equal(p.Cert.Certificate[1], ca.cert.Raw) {
		t.Errorf("the chain has %d certificates; want the leaf then the CA", len(p.Cert.Certificate))
	}
	if p.Fingerprint != c.fingerprint || !slices.Equal(p.Names, []string{"www.example.com"}) {
		t.Errorf("Fingerprint and Names are %s %q; want the leaf's, %s [www.example.com]", p.Fingerprint, p.Names, c.fingerprint)
	}
}

func TestLoadPairKeyFormats(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	ec, rsaK := ecKey(t), rsaKey(t, 0)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    *issued
		key  []byte
	}{
		{"ECDSA, PKCS #8", ca.issue(t, leaf{dns: []string{"a.example"}, key: ec}), nil},
		{"ECDSA, SEC 1", ca.issue(t, leaf{dns: []string{"a.example"}, key: ec}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
		{"RSA, PKCS #8", ca.issue(t, leaf{dns: []string{"a.example"}, key: rsaK}), nil},
		{"RSA, PKCS #1", ca.issue(t, leaf{dns: []string{"a.example"}, key: rsaK}), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaK)})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key != nil {
				tt.c.keyPEM = tt.key
			}
			tt.c.write(t, t.TempDir(), "pair")
			p, err := LoadPair(tt.c.certFile, tt.c.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if p.Fingerprint != tt.c.fingerprint {
				t.Errorf("loaded another certificate")
			}
		})
	}
}

// TestLoadPairErrors: each error names the file at fault and says what
// is wrong with it, and none quotes the private key.
func TestLoadPairErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	good := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "good")
	other := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "other")
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage")
	writeFile(t, garbage, []byte("this is not PEM\n"), 0o600)
	subdir := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		cert, key     string
		want          []string // substrings of the error
		mentionsOther string   // a file the error must not blame
	}{
		{"missing certificate file", missing, good.keyFile, []string{"certificate file", missing, "no such file"}, good.keyFile},
		{"missing key file", good.certFile, missing, []string{"key file", missing, "no such file"}, good.certFile},
		{"certificate file without PEM", garbage, good.keyFile, []string{"certificate file " + garbage + " holds no PEM CERTIFICATE block"}, good.keyFile},
		{"key file without PEM", good.certFile, garbage, []string{"key file " + garbage + " holds no PEM private key block"}, good.certFile},
		{"certificate and key swapped", good.keyFile, good.certFile, []string{"certificate file " + good.keyFile + " holds no PEM CERTIFICATE block"}, ""},
		{"key of another certificate", good.certFile, other.keyFile, []string{"certificate " + good.certFile + " with key " + other.keyFile, "does not match"}, ""},
		{"certificate file is a directory", subdir, good.keyFile, []string{"certificate file " + subdir + " is not a regular file"}, good.keyFile},
		{"key file is a directory", good.certFile, subdir, []string{"key file " + subdir + " is not a regular file"}, good.certFile},
	}
	secrets := [][]byte{keyBody(good.keyPEM), keyBody(other.keyPEM)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadPair(tt.cert, tt.key)
			if err == nil {
				t.Fatalf("LoadPair(%s, %s) = %v, want an error", tt.cert, tt.key, p.Names)
			}
			if p != nil {
				t.Errorf("LoadPair returned a pair with its error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tt.mentionsOther != "" && strings.Contains(err.Error(), tt.mentionsOther) {
				t.Errorf("error %q names %s, which is not at fault", err, tt.mentionsOther)
			}
			for _, s := range secrets {
				if bytes.Contains([]byte(err.Error()), s[:16]) {
					t.Errorf("error %q quotes a private key", err)
				}
			}
		})
	}
}

// keyBody returns the base64 of a PEM block, what a leaked key would
// show.
func keyBody(p []byte) []byte {
	lines := bytes.Split(p, []byte("\n"))
	return lines[1]
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	tests := []struct {
		name string
		leaf leaf
		want []string
	}{
		{"from the DNS names, lower-cased, once each, the common name ignored",
			leaf{dns: []string{"B.Example.com", "b.example.com", "*.C.example", "c.example."}, cn: "ignored.example"},
			[]string{"b.example.com", "*.c.example", "c.example"}},
		{"names that are not server names are left out",
			leaf{dns: []string{"bad name", "*.com", "ok.example", "a.*.example"}},
			[]string{"ok.example"}},
		{"the common name without DNS names", leaf{cn: "Legacy.Example.com"}, []string{"legacy.example.com"}},
		{"a common name that is not a name", leaf{cn: "Weir Test CA"}, nil},
		{"no name at all", leaf{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ca.issue(t, tt.leaf).write(t, t.TempDir(), "pair")
			p, err := LoadPair(c.certFile, c.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Names, tt.want) {
				t.Errorf("Names = %q, want %q", p.Names, tt.want)
			}
		})
	}
}

func TestLoadPool(t *testing.T) {
	dir := t.TempDir()
	a, b := newCA(t, dir, "a"), newCA(t, dir, "b")
	bundle := filepath.Join(dir, "bundle.pem")
	// A key block in a bundle is skipped, not an error.
	writeFile(t, bundle, slices.Concat(a.pem, []byte("# a comment\n"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), b.pem), 0o644)
	pool, err := LoadPool(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []*testCA{a, b} {
		c := ca.issue(t, leaf{dns: []string{"x.example"}})
		if _, err := c.cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "x.example"}); err != nil {
			t.Errorf("a certificate of CA %s does not verify against the bundle: %v", ca.cert.Subject.CommonName, err)
		}
	}
	foreign := newCA(t, t.TempDir(), "foreign").issue(t, leaf{dns: []string{"x.example"}})
	if _, err := foreign.cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "x.example"}); err == nil {
		t.Errorf("a certificate of another CA verifies against the bundle")
	}

	empty := filepath.Join(dir, "empty.pem")
	writeFile(t, empty, []byte("no certificates here\n"), 0o644)
	broken := filepath.Join(dir, "broken.pem")
	writeFile(t, broken, slices.Concat(a.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})), 0o644)
	for _, tt := range []struct{ file, want string }{
		{empty, "CA file " + empty + " holds no PEM CERTIFICATE block"},
		{broken, "CA file " + broken + ": certificate 2:"},
		{filepath.Join(dir, "missing.pem"), "CA file: open " + filepath.Join(dir, "missing.pem")},
		{dir, "CA file " + dir + " is not a regular file"},
	} {
		if _, err := LoadPool(tt.file); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadPool(%s) = %v, want an error saying %q", tt.file, err, tt.want)
		}
	}
}

func TestModeWarning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "site.key")
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false}, {0o400, false}, {0o644, true}, {0o640, true}, {0o604, true},
	} {
		writeFile(t, key, []byte("k"), tt.mode)
		w := ModeWarning(key)
		if !tt.warn {
			if w != "" {
				t.Errorf("mode %04o: warning %q, want none", tt.mode, w)
			}
			continue
		}
		for _, s := range []string{key, fmt.Sprintf("mode %04o", tt.mode), "chmod 600 " + key} {
			if !strings.Contains(w, s) {
				t.Errorf("mode %04o: warning %q does not say %q", tt.mode, w, s)
			}
		}
	}
	if w := ModeWarning(filepath.Join(dir, "missing.key")); w != "" {
		t.Errorf("a missing file: warning %q, want none (loading it says why)", w)
	}
}

// TestNewWarnsAboutReadableKeys: a store logs ModeWarning's warning for
// a key others can read, at start and when it reloads.
func TestNewWarnsAboutReadableKeys(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	c := newCA(t, dir, "test").issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "site")
	if err := os.Chmod(c.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s, err := New([]Spec{c.spec()}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "chmod 600 "+c.keyFile) {
		t.Errorf("log %q has no warning about the key's mode", log.String())
	}
	log.Reset()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "chmod 600 "+c.keyFile) {
		t.Errorf("reload log %q has no warning about the key's mode", log.String())
	}
	if err := os.Chmod(c.keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "chmod") {
		t.Errorf("log %q warns about a key of mode 0600", log.String())
	}
}

// TestFileChanged: a file counts as changed when its size or time
// changes, and when it was rewritten within the same second with the
// same size (a coarse file system clock), by its content.
func TestFileChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeFile(t, path, []byte("aaaa"), 0o600)
	_, st, err := readFile(path, "certificate")
	if err != nil {
		t.Fatal(err)
	}
	if fileChanged(path, st) {
		t.Errorf("an untouched file counts as changed")
	}
	mtime := st.modTime

	writeFile(t, path, []byte("bbbb"), 0o600)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if !fileChanged(path, st) {
		t.Errorf("a file rewritten with the same size and time but other content does not count as changed")
	}

	writeFile(t, path, []byte("aaaa"), 0o600)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if fileChanged(path, st) {
		t.Errorf("a file rewritten with the same content, size and time counts as changed")
	}
	// A copy that kept an old time (cp -p), long after the stamp.
	old := mtime.Add(-time.Hour)
	st.modTime = old
	writeFile(t, path, []byte("cccc"), 0o600)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if !fileChanged(path, st) {
		t.Errorf("a file copied over with the same size and an old time does not count as changed")
	}
	writeFile(t, path, []byte("aaaa"), 0o600)
	st.modTime = mtime
	if err := os.Chtimes(path, mtime.Add(time.Second), mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !fileChanged(path, st) {
		t.Errorf("a file whose time changed does not count as changed")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !fileChanged(path, st) {
		t.Errorf("a removed file does not count as changed")
	}
	if fileChanged(path, fileStamp{}) {
		t.Errorf("a file missing now and at the stamp counts as changed")
	}
}
