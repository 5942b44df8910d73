package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/secretfile"
)

// Node identities. Every node signs what it says in its own name with an
// Ed25519 key of its own: the purges it issues (sealed, so that a purge
// relayed by any number of members still proves who issued it) and every
// purge message it sends, acknowledgements included. A node's public key
// is bound to its name by a certificate, which the node announces through
// membership and which every member checks against its trust anchors:
//
//   - with cluster.identity.ca set, an operator-held Ed25519 CA signs each
//     node's certificate (weir identity issue), and a member whose
//     certificate the CA did not sign is refused: stealing one node's
//     files lets the thief speak as that node only, and revoking the
//     node's identity cuts it off without re-keying the cluster;
//   - without, each node makes a key pair at start and certifies it with
//     the cluster key (an HMAC). This pins each live member's messages to
//     the key it announced, but anyone holding the cluster key can
//     certify a key of its own under any name: it does not protect
//     against a stolen cluster key. Set a CA for that.
//
// A certificate's wire form (base64url, unpadded, in the member's
// metadata) is
//
//	version 1 | kind | not-after (Unix seconds, 8 bytes big-endian) |
//	public key (32) | issuer length (1) | issuer | signature
//
// where kind 1 is a CA's Ed25519 signature (64 bytes; the issuer is the
// CA's fingerprint) and kind 2 a cluster key's HMAC-SHA256 (32 bytes; the
// issuer is the key ID), over "weir identity v1", the node's name, the
// public key and not-after, each followed by a zero byte.

const (
	certVersion = 1
	// CertByCA and CertByClusterKey are a certificate's kinds.
	CertByCA         = 1
	CertByClusterKey = 2
	identityLabel    = "weir identity v1"
	// maxCertLen bounds a certificate's binary form.
	maxCertLen = 1 + 1 + 8 + ed25519.PublicKeySize + 1 + 255 + ed25519.SignatureSize
	// DefaultIdentityValidity is how long `weir identity issue` certifies
	// a node for unless told otherwise.
	DefaultIdentityValidity = 365 * 24 * time.Hour
	// clusterKeyCertValidity is how long a node certifies its own key
	// with the cluster key; it makes a new key pair at every start.
	clusterKeyCertValidity = 10 * 365 * 24 * time.Hour
	fingerprintPrefix      = "ed25519:"
)

// Cert binds a node's name to its public key.
type Cert struct {
	Name     string
	Pub      ed25519.PublicKey
	NotAfter time.Time
	Kind     byte
	// Issuer is the CA's fingerprint (CertByCA) or the cluster key's ID
	// (CertByClusterKey).
	Issuer string
	Sig    []byte
}

// Fingerprint names a public key: "ed25519:" and the unpadded base64url
// of the first 16 bytes of its SHA-256. Revocation lists and /cluster
// use it.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return fingerprintPrefix + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Fingerprint returns the certified key's fingerprint.
func (c *Cert) Fingerprint() string { return Fingerprint(c.Pub) }

// signed returns what the certificate's signature covers.
func certMessage(name string, pub ed25519.PublicKey, notAfter int64) []byte {
	b := make([]byte, 0, len(identityLabel)+len(name)+len(pub)+12)
	b = append(b, identityLabel...)
	b = append(b, 0)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, pub...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(notAfter))
	return append(b, 0)
}

// Encode returns the certificate's wire form, without the name (the
// member's name carries it).
func (c *Cert) Encode() string {
	b := make([]byte, 0, maxCertLen)
	b = append(b, certVersion, c.Kind)
	b = binary.BigEndian.AppendUint64(b, uint64(c.NotAfter.Unix()))
	b = append(b, c.Pub...)
	b = append(b, byte(len(c.Issuer)))
	b = append(b, c.Issuer...)
	b = append(b, c.Sig...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCert parses the wire form of the certificate of the node called
// name. It checks the form only; [Trust.Verify] checks the signature.
func ParseCert(name, s string) (*Cert, error) {
	if len(s) > base64.RawURLEncoding.EncodedLen(maxCertLen) {
		return nil, fmt.Errorf("identity certificate is %d characters long, at most %d are allowed", len(s), base64.RawURLEncoding.EncodedLen(maxCertLen))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("identity certificate is not unpadded base64url")
	}
	const head = 2 + 8 + ed25519.PublicKeySize + 1
	if len(b) < head {
		return nil, fmt.Errorf("identity certificate is %d bytes, too short", len(b))
	}
	if b[0] != certVersion {
		return nil, fmt.Errorf("identity certificate has version %d, this node knows %d: upgrade it", b[0], certVersion)
	}
	c := &Cert{Name: name, Kind: b[1]}
	c.NotAfter = time.Unix(int64(binary.BigEndian.Uint64(b[2:10])), 0)
	c.Pub = ed25519.PublicKey(bytes.Clone(b[10 : 10+ed25519.PublicKeySize]))
	n := int(b[head-1])
	rest := b[head:]
	if len(rest) < n {
		return nil, errors.New("identity certificate's issuer is cut short")
	}
	c.Issuer, rest = string(rest[:n]), rest[n:]
	want := 0
	switch c.Kind {
	case CertByCA:
		want = ed25519.SignatureSize
	case CertByClusterKey:
		want = sha256.Size
	default:
		return nil, fmt.Errorf("identity certificate has unknown kind %d", c.Kind)
	}
	if len(rest) != want {
		return nil, fmt.Errorf("identity certificate's signature is %d bytes, want %d", len(rest), want)
	}
	c.Sig = bytes.Clone(rest)
	return c, nil
}

// Identity is a node's signing key and its certificate. It never prints
// its private key.
type Identity struct {
	priv ed25519.PrivateKey
	cert *Cert
}

// Cert returns the identity's certificate.
func (id *Identity) Cert() *Cert { return id.cert }

// Name returns the node's name.
func (id *Identity) Name() string { return id.cert.Name }

// Sign signs msg with the node's key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// String names the identity without its key.
func (id *Identity) String() string {
	return "Identity(" + id.cert.Name + " " + id.cert.Fingerprint() + ")"
}

// Recertify returns the identity with the same key certified by kr's
// primary key: after a rotation of cluster keys, for an identity
// certified by the cluster key. Others are returned unchanged.
func (id *Identity) Recertify(kr *Keyring) *Identity {
	if id.cert.Kind != CertByClusterKey {
		return id
	}
	return &Identity{priv: id.priv, cert: certifyWithKey(id.cert.Name, id.cert.Pub, kr, id.cert.NotAfter)}
}

// NewIdentity makes a key pair for the node called name and certifies it
// with kr's primary key; a nil kr is an insecure cluster (the public
// insecure key certifies, which proves nothing).
func NewIdentity(name string, kr *Keyring, now time.Time) (*Identity, error) {
	if err := ValidateNodeName(name); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making the node's identity key: %w", err)
	}
	return &Identity{priv: priv, cert: certifyWithKey(name, pub, kr, now.Add(clusterKeyCertValidity))}, nil
}

// insecureIdentityKey certifies identities in a cluster run without
// keys (--insecure-cluster): public, as the purge messages' insecure key.
var insecureIdentityKey = Key{ID: "insecure", Secret: []byte("weir insecure cluster: no identity certification")}

func certifyWithKey(name string, pub ed25519.PublicKey, kr *Keyring, notAfter time.Time) *Cert {
	k := insecureIdentityKey
	if kr != nil {
		k = kr.keys[0]
	}
	na := notAfter.Unix()
	return &Cert{Name: name, Pub: pub, NotAfter: time.Unix(na, 0), Kind: CertByClusterKey, Issuer: k.ID,
		Sig: certMAC(k, name, pub, na)}
}

func certMAC(k Key, name string, pub ed25519.PublicKey, notAfter int64) []byte {
	m := hmac.New(sha256.New, k.Derive(identityLabel))
	m.Write(certMessage(name, pub, notAfter))
	return m.Sum(nil)
}

// Trust is what a node checks certificates against: the CAs (when set,
// only their certificates are accepted), the cluster keys otherwise, and
// the revoked fingerprints and node names. It is immutable.
type Trust struct {
	cas     []ed25519.PublicKey
	keys    *Keyring
	revoked map[string]bool
}

// NewTrust returns the trust of a node. cas are CA public keys in the
// form ParseCAKey reads; revoked holds fingerprints ("ed25519:...") and
// node names. kr may be nil (an insecure cluster).
func NewTrust(cas []string, kr *Keyring, revoked []string) (*Trust, error) {
	t := &Trust{keys: kr, revoked: make(map[string]bool, len(revoked))}
	var errs []error
	for i, s := range cas {
		pub, err := ParseCAKey(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster.identity.ca[%d]: %w", i, err))
			continue
		}
		t.cas = append(t.cas, pub)
	}
	for i, r := range revoked {
		if strings.HasPrefix(r, fingerprintPrefix) {
			if _, err := base64.RawURLEncoding.Strict().DecodeString(r[len(fingerprintPrefix):]); err != nil || len(r) != len(fingerprintPrefix)+22 {
				errs = append(errs, fmt.Errorf("cluster.identity.revoked[%d] %q is not a fingerprint as /cluster shows them (ed25519: and 22 characters)", i, clipName(r)))
				continue
			}
		} else if err := ValidateNodeName(r); err != nil {
			errs = append(errs, fmt.Errorf("cluster.identity.revoked[%d] is neither a fingerprint nor a node name: %v", i, err))
			continue
		}
		t.revoked[r] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// WithKeys returns t with kr as its cluster keys (after a key reload).
func (t *Trust) WithKeys(kr *Keyring) *Trust {
	c := *t
	c.keys = kr
	return &c
}

// RequiresCA reports whether only CA-signed certificates are accepted.
func (t *Trust) RequiresCA() bool { return len(t.cas) > 0 }

// Revoked reports whether the certificate's key or its node's name is
// revoked.
func (t *Trust) Revoked(c *Cert) bool {
	return t.revoked[c.Name] || t.revoked[c.Fingerprint()]
}

// RevokedName reports whether the node called name is revoked.
func (t *Trust) RevokedName(name string) bool { return t.revoked[name] }

// ErrRevoked is the error of a revoked identity.
var ErrRevoked = errors.New("identity revoked (cluster.identity.revoked)")

// Verify checks c's signature against the trust anchors, its expiry and
// revocation.
func (t *Trust) Verify(c *Cert, now time.Time) error {
	if t.Revoked(c) {
		return fmt.Errorf("%w: node %s, key %s", ErrRevoked, c.Name, c.Fingerprint())
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("identity certificate of node %s expired at %s: issue it a new one with `weir identity issue`", c.Name, c.NotAfter.UTC().Format(time.RFC3339))
	}
	msg := certMessage(c.Name, c.Pub, c.NotAfter.Unix())
	switch c.Kind {
	case CertByCA:
		for _, ca := range t.cas {
			if Fingerprint(ca) == c.Issuer && ed25519.Verify(ca, msg, c.Sig) {
				return nil
			}
		}
		if len(t.cas) == 0 {
			return fmt.Errorf("node %s presents a CA-signed identity, and this node trusts no CA: set cluster.identity.ca on every node", c.Name)
		}
		return fmt.Errorf("identity certificate of node %s is not signed by a CA in cluster.identity.ca (issuer %s)", c.Name, clipName(c.Issuer))
	case CertByClusterKey:
		if len(t.cas) > 0 {
			return fmt.Errorf("node %s certifies its identity with the cluster key, and cluster.identity.ca requires one a CA signed: give it cluster.identity.file from `weir identity issue`", c.Name)
		}
		var keys []Key
		if t.keys == nil {
			keys = []Key{insecureIdentityKey}
		} else {
			keys = t.keys.keys
		}
		for _, k := range keys {
			if k.ID == c.Issuer {
				if hmac.Equal(certMAC(k, c.Name, c.Pub, c.NotAfter.Unix()), c.Sig) {
					return nil
				}
				return fmt.Errorf("identity certificate of node %s does not match cluster key %s", c.Name, k.ID)
			}
		}
		return fmt.Errorf("identity certificate of node %s is certified by cluster key %s, which this node does not hold", c.Name, clipName(c.Issuer))
	}
	return fmt.Errorf("identity certificate of node %s has unknown kind %d", c.Name, c.Kind)
}

// VerifySig checks an Ed25519 signature by c's key.
func (c *Cert) VerifySig(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(c.Pub, msg, sig)
}

// Identity and CA files.
//
// An identity file, from `weir identity issue`:
//
//	# Weir node identity of edge-1. Keep this file secret (chmod 600).
//	node edge-1
//	key  <base64 of the 32-byte Ed25519 seed>
//	cert <the certificate's wire form>
//
// A CA key file, from `weir identity ca`:
//
//	# Weir identity CA. Keep this file offline.
//	ca <base64 of the 32-byte Ed25519 seed>
//
// The CA's public key, as cluster.identity.ca takes it, is
// "ed25519-pub:" and the unpadded base64url of the 32 bytes.

const (
	caPubPrefix        = "ed25519-pub:"
	maxIdentityFileLen = 4 << 10
)

// ParseCAKey parses a CA public key ("ed25519-pub:BASE64URL").
func ParseCAKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(s, caPubPrefix)
	if !ok {
		return nil, fmt.Errorf("%q is not a CA public key: want %s and 43 characters, as `weir identity ca` prints", clipName(s), caPubPrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not a CA public key: want %s and 43 characters of base64url", clipName(s), caPubPrefix)
	}
	return ed25519.PublicKey(b), nil
}

// CA is an operator's certificate authority for node identities.
type CA struct{ priv ed25519.PrivateKey }

// NewCA makes a CA key.
func NewCA() (*CA, error) {
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, err
	}
	return &CA{priv: priv}, nil
}

// PublicKey returns the CA's public key as cluster.identity.ca takes it.
func (ca *CA) PublicKey() string {
	return caPubPrefix + base64.RawURLEncoding.EncodeToString(ca.priv.Public().(ed25519.PublicKey))
}

// File returns the CA key file.
func (ca *CA) File() []byte {
	return []byte("# Weir identity CA. Keep this file offline; cluster.identity.ca takes its public key:\n# " +
		ca.PublicKey() + "\nca " + base64.StdEncoding.EncodeToString(ca.priv.Seed()) + "\n")
}

// ParseCAFile parses a CA key file.
func ParseCAFile(data []byte) (*CA, error) {
	f, err := fieldsOf(data, "ca")
	if err != nil {
		return nil, fmt.Errorf("CA key file: %w", err)
	}
	seed, err := parseSeed(f["ca"])
	if err != nil {
		return nil, fmt.Errorf("CA key file: ca %w", err)
	}
	return &CA{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Issue makes a key pair for the node called name and certifies it until
// now + validity; it returns the identity file.
func (ca *CA) Issue(name string, now time.Time, validity time.Duration) ([]byte, error) {
	if err := ValidateNodeName(name); err != nil {
		return nil, err
	}
	if validity <= 0 {
		return nil, fmt.Errorf("validity %s is not positive", validity)
	}
	pub, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, err
	}
	na := now.Add(validity).Unix()
	c := &Cert{Name: name, Pub: pub, NotAfter: time.Unix(na, 0), Kind: CertByCA,
		Issuer: Fingerprint(ca.priv.Public().(ed25519.PublicKey)),
		Sig:    ed25519.Sign(ca.priv, certMessage(name, pub, na))}
	return []byte("# Weir node identity of " + name + " (" + c.Fingerprint() + "), valid until " +
		c.NotAfter.UTC().Format(time.RFC3339) + ". Keep this file secret (chmod 600).\n" +
		"node " + name + "\nkey " + base64.StdEncoding.EncodeToString(priv.Seed()) + "\ncert " + c.Encode() + "\n"), nil
}

// ParseIdentityFile parses an identity file made by [CA.Issue] and checks
// that its key matches its certificate.
func ParseIdentityFile(data []byte) (*Identity, error) {
	f, err := fieldsOf(data, "node", "key", "cert")
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if err := ValidateNodeName(f["node"]); err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	seed, err := parseSeed(f["key"])
	if err != nil {
		return nil, fmt.Errorf("identity file: key %w", err)
	}
	c, err := ParseCert(f["node"], f["cert"])
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), c.Pub) {
		return nil, errors.New("identity file: the key does not match the certificate: issue the node a new file with `weir identity issue`")
	}
	return &Identity{priv: priv, cert: c}, nil
}

// LoadIdentityFile reads and parses an identity file for the node called
// name, warning (through warn) when others may read it.
func LoadIdentityFile(path, name string, warn func(string)) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.identity.file: %w", err)
	}
	if st.Size() > maxIdentityFileLen {
		return nil, fmt.Errorf("cluster.identity.file %s is %d bytes, more than an identity file's %d", path, st.Size(), maxIdentityFileLen)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.identity.file: %w", err)
	}
	if w := secretfile.ModeWarning(path, "this node's identity key"); w != "" && warn != nil {
		warn(w)
	}
	id, err := ParseIdentityFile(data)
	if err != nil {
		return nil, fmt.Errorf("cluster.identity.file %s: %w", path, err)
	}
	if id.Name() != name {
		return nil, fmt.Errorf("cluster.identity.file %s is the identity of node %s, and this node is %s: issue it its own with `weir identity issue --node %s`", path, id.Name(), name, name)
	}
	return id, nil
}

// fieldsOf reads "name value" lines, ignoring comments and blank lines,
// and requires exactly the names given, once each. Values are never
// quoted in errors: they may be secret.
func fieldsOf(data []byte, names ...string) (map[string]string, error) {
	if len(data) > maxIdentityFileLen {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", len(data), maxIdentityFileLen)
	}
	out := make(map[string]string, len(names))
	n := 0
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) != 2 || !slices.Contains(names, f[0]) {
			return nil, fmt.Errorf("line %d is not one of %s and a value", n, strings.Join(names, ", "))
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("line %d repeats %s", n, f[0])
		}
		out[f[0]] = f[1]
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("no %s line", name)
		}
	}
	return out, nil
}

func parseSeed(s string) ([]byte, error) {
	b, err := strictStd.DecodeString(s)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("is not the standard base64 of %d bytes", ed25519.SeedSize)
	}
	return b, nil
}
