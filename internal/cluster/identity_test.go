package cluster

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// issued returns an identity the CA issued to name.
func issued(t testing.TB, ca *CA, name string, now time.Time, valid time.Duration) *Identity {
	t.Helper()
	file, err := ca.Issue(name, now, valid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ParseIdentityFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustTrust(t testing.TB, cas []string, kr *Keyring, revoked []string) *Trust {
	t.Helper()
	tr, err := NewTrust(cas, kr, revoked)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestCertRoundTripAndVerify(t *testing.T) {
	now := time.Unix(1800000000, 0)
	kr := testKeys(t)
	ca, other := newCA(t), newCA(t)
	byCA := issued(t, ca, "edge-1", now, time.Hour)
	byKey, err := NewIdentity("edge-2", kr, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []*Identity{byCA, byKey} {
		c, err := ParseCert(id.Name(), id.Cert().Encode())
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if c.Fingerprint() != id.Cert().Fingerprint() || !c.NotAfter.Equal(id.Cert().NotAfter) || c.Kind != id.Cert().Kind {
			t.Errorf("%s: parsed %+v, want %+v", id, c, id.Cert())
		}
		if !c.VerifySig([]byte("m"), id.Sign([]byte("m"))) || c.VerifySig([]byte("n"), id.Sign([]byte("m"))) {
			t.Errorf("%s: its signatures do not verify with its certificate, or others do", id)
		}
	}

	withCA := mustTrust(t, []string{ca.PublicKey()}, kr, nil)
	keyOnly := mustTrust(t, nil, kr, nil)
	for _, tc := range []struct {
		name  string
		trust *Trust
		cert  *Cert
		at    time.Time
		want  string // "" accepted, else a part of the error
	}{
		{"CA cert, CA trusted", withCA, byCA.Cert(), now, ""},
		{"key cert, key trusted", keyOnly, byKey.Cert(), now, ""},
		{"key cert where a CA is required", withCA, byKey.Cert(), now, "requires one a CA signed"},
		{"CA cert, no CA trusted", keyOnly, byCA.Cert(), now, "trusts no CA"},
		{"another CA", mustTrust(t, []string{other.PublicKey()}, kr, nil), byCA.Cert(), now, "not signed by a CA"},
		{"expired", withCA, byCA.Cert(), now.Add(2 * time.Hour), "expired"},
		{"revoked by fingerprint", mustTrust(t, []string{ca.PublicKey()}, kr, []string{byCA.Cert().Fingerprint()}), byCA.Cert(), now, "revoked"},
		{"revoked by name", mustTrust(t, nil, kr, []string{"edge-2"}), byKey.Cert(), now, "revoked"},
		{"another cluster key", mustTrust(t, nil, testKeys(t), nil), byKey.Cert(), now, "does not hold"},
		{"name swapped", withCA, &Cert{Name: "edge-9", Pub: byCA.Cert().Pub, NotAfter: byCA.Cert().NotAfter, Kind: CertByCA, Issuer: byCA.Cert().Issuer, Sig: byCA.Cert().Sig}, now, "not signed by a CA"},
		{"key swapped", withCA, &Cert{Name: "edge-1", Pub: byKey.Cert().Pub, NotAfter: byCA.Cert().NotAfter, Kind: CertByCA, Issuer: byCA.Cert().Issuer, Sig: byCA.Cert().Sig}, now, "not signed by a CA"},
	} {
		err := tc.trust.Verify(tc.cert, tc.at)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestParseIdentityFileErrors(t *testing.T) {
	now := time.Now()
	ca := newCA(t)
	good, err := ca.Issue("edge-1", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.Issue("edge-1", now, time.Hour)
	lines := strings.Split(string(good), "\n")
	otherLines := strings.Split(string(other), "\n")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"no cert", strings.Join(lines[:3], "\n"), "no cert line"},
		{"key of another", strings.Join([]string{lines[0], lines[1], otherLines[2], lines[3]}, "\n"), "does not match the certificate"},
		{"repeated line", string(good) + lines[1] + "\n", "repeats node"},
		{"unknown line", string(good) + "extra x\n", "is not one of"},
		{"bad seed", strings.Replace(string(good), lines[2], "key AAAA", 1), "key is not the standard base64"},
		{"bad cert", strings.Replace(string(good), lines[3], "cert !!", 1), "not unpadded base64url"},
	} {
		_, err := ParseIdentityFile([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(lines[2], "key ")) {
			t.Errorf("%s: the error quotes the secret key", tc.name)
		}
	}
	if _, err := NewTrust([]string{"ed25519-pub:short"}, nil, []string{"ed25519:nope", "a b"}); err == nil ||
		!strings.Contains(err.Error(), "cluster.identity.ca[0]") || !strings.Contains(err.Error(), "cluster.identity.revoked[0]") || !strings.Contains(err.Error(), "cluster.identity.revoked[1]") {
		t.Errorf("NewTrust of bad values: %v", err)
	}
}

func FuzzParseCert(f *testing.F) {
	ca, _ := NewCA()
	file, _ := ca.Issue("edge-1", time.Unix(1800000000, 0), time.Hour)
	id, _ := ParseIdentityFile(file)
	byKey, _ := NewIdentity("edge-1", nil, time.Unix(1800000000, 0))
	f.Add(id.Cert().Encode())
	f.Add(byKey.Cert().Encode())
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCert("edge-1", s)
		if err != nil {
			return
		}
		// What parses is written back the same.
		if got := c.Encode(); got != s {
			t.Fatalf("Encode(ParseCert(%q)) = %q", s, got)
		}
		if len(c.Pub) != ed25519.PublicKeySize {
			t.Fatalf("public key of %d bytes", len(c.Pub))
		}
	})
}

// startWith starts a member with an identity and a trust of its own.
func startWith(t testing.TB, name string, keys *Keyring, id *Identity, trust *Trust, join []string) (*Cluster, error) {
	t.Helper()
	c, err := Start(Config{
		Node: name, Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Join: join, Keys: keys,
		Identity: id, Trust: trust, Version: "test", Logger: quiet(),
	})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

func TestMembersAnnounceAndCheckIdentities(t *testing.T) {
	now := time.Now()
	keys := testKeys(t)
	ca := newCA(t)
	trust := mustTrust(t, []string{ca.PublicKey()}, keys, nil)
	idA, idB := issued(t, ca, "a", now, time.Hour), issued(t, ca, "b", now, time.Hour)
	a, err := startWith(t, "a", keys, idA, trust, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := startWith(t, "b", keys, idB, trust, []string{a.GossipAddr()})
	if err != nil {
		t.Fatal(err)
	}
	// c holds the cluster key, and no identity the CA issued: refused.
	if _, err := startWith(t, "c", keys, nil, mustTrust(t, nil, keys, nil), []string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 10*time.Second, func() string {
		if got := memberNames(a); !slices.Equal(got, []string{"a", "b"}) {
			return fmt.Sprintf("a's members %v, want a and b", got)
		}
		if why := a.Info().Refused["c"]; !strings.Contains(why, "requires one a CA signed") {
			return fmt.Sprintf("a refused c for %q", why)
		}
		return ""
	})
	cert, member := a.Cert("b")
	if !member || cert == nil || cert.Fingerprint() != idB.Cert().Fingerprint() {
		t.Fatalf("a.Cert(b) = %v, %v; want b's identity %s", cert, member, idB.Cert().Fingerprint())
	}
	for _, m := range a.Info().Members {
		if m.Name == "b" && (m.Identity != idB.Cert().Fingerprint() || m.IdentityBy != "ca") {
			t.Errorf("/cluster shows b's identity %q by %q", m.Identity, m.IdentityBy)
		}
	}

	// Revoking b's identity cuts it off at once, and for good.
	if err := a.SetTrust(mustTrust(t, []string{ca.PublicKey()}, keys, []string{idB.Cert().Fingerprint()})); err != nil {
		t.Fatal(err)
	}
	if got := memberNames(a); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after revoking b, a's members are %v", got)
	}
	if _, member := a.Cert("b"); member {
		t.Error("a still takes b for a member")
	}
	if why := a.Info().Refused["b"]; !strings.Contains(why, ErrRevoked.Error()) {
		t.Errorf("a refused b for %q", why)
	}
	testkit.Until(t, 10*time.Second, func() string {
		// b's gossip keeps coming: it is refused again, not re-admitted.
		if got := memberNames(a); !slices.Equal(got, []string{"a"}) {
			return fmt.Sprintf("a's members %v", got)
		}
		if b.Info().Members == nil {
			return "b has no view"
		}
		return ""
	})
	// A trust that would refuse a's own identity is not put in force.
	if err := a.SetTrust(mustTrust(t, []string{newCA(t).PublicKey()}, keys, nil)); err == nil {
		t.Error("SetTrust accepted a trust that refuses this node's own identity")
	}
}

func TestQuarantinedPeerIsNotFilledFrom(t *testing.T) {
	keys := testKeys(t)
	a := startNode(t, "a", keys, nil, [2]int{})
	b := startNode(t, "b", keys, []string{a.GossipAddr()}, [2]int{})
	testkit.Until(t, 10*time.Second, func() string {
		if n := len(memberNames(a)); n != 2 {
			return fmt.Sprintf("a sees %d members", n)
		}
		return ""
	})
	_ = b
	// A key b owns.
	var key string
	for i := 0; ; i++ {
		if key = fmt.Sprintf("/k%d", i); a.OwnerName(key) == "b" {
			break
		}
	}
	if a.Owner(key) == nil {
		t.Fatal("a does not fill from b, the owner")
	}
	a.SetPeerTrust("b", TrustQuarantined, "false-ack: test")
	if a.Owner(key) != nil {
		t.Error("a still fills from b while b is quarantined")
	}
	for _, m := range a.Info().Members {
		if m.Name == "b" && m.Trust != TrustQuarantined {
			t.Errorf("/cluster shows b's trust %q", m.Trust)
		}
	}
	a.SetPeerTrust("b", "", "")
	if a.Owner(key) == nil {
		t.Error("a does not fill from b once b is trusted again")
	}
}
