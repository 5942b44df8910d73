package certs

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestTicketKeys(t *testing.T) {
	a, b := []byte("secret a, derived for tickets"), []byte("secret b, derived for tickets")
	const epoch = 493000

	k := TicketKeys([][]byte{a}, epoch)
	if len(k) != 3 {
		t.Fatalf("%d keys for one secret, want 3 (this epoch, the one before, the one after)", len(k))
	}
	if again := TicketKeys([][]byte{[]byte("secret a, derived for tickets")}, epoch); !equalKeys(k, again) {
		t.Errorf("the same secret and epoch give other keys: edges would not share tickets")
	}
	if k[0] == k[1] || k[0] == k[2] || k[1] == k[2] {
		t.Errorf("the keys of three epochs are not all different")
	}
	if other := TicketKeys([][]byte{a}, epoch+1); other[0] == k[0] {
		t.Errorf("the next epoch encrypts with the same key")
	}
	// The key of each neighbouring epoch is that epoch's own: a ticket made
	// by an edge whose clock is an epoch ahead or behind still decrypts.
	if k[1] != TicketKeys([][]byte{a}, epoch-1)[0] || k[2] != TicketKeys([][]byte{a}, epoch+1)[0] {
		t.Errorf("the keys for the epochs before and after are not those epochs' encrypting keys")
	}
	if TicketKeys([][]byte{b}, epoch)[0] == k[0] {
		t.Errorf("another secret gives the same key")
	}

	two := TicketKeys([][]byte{a, b}, epoch)
	if len(two) != 6 {
		t.Fatalf("%d keys for two secrets, want 6", len(two))
	}
	if !equalKeys(two[:3], k) || !equalKeys(two[3:], TicketKeys([][]byte{b}, epoch)) {
		t.Errorf("two secrets' keys are not the first's, then the second's")
	}
	if two[0] != k[0] {
		t.Errorf("the first key (the one that encrypts) is not the first secret's key of this epoch")
	}
	if TicketKeys([][]byte{b, a}, epoch)[0] == two[0] {
		t.Errorf("the secrets' order does not decide which one encrypts")
	}
	if len(TicketKeys(nil, epoch)) != 0 {
		t.Errorf("keys without a secret")
	}
}

func equalKeys(a, b [][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clock is a test clock the test sets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// epochStart is when epoch e of period p begins.
func epochStart(e int64, p time.Duration) time.Time {
	return time.Unix(e*int64(p/time.Second), 0)
}

// ticketServers serves the store's certificates on two listeners, each
// with its own configuration whose ticket keys Tickets derive from
// secrets at the time now gives.
func ticketServer(t *testing.T, f *tlsFixture, secrets [][]byte, now func() time.Time) (string, *Tickets) {
	t.Helper()
	cfg, err := ServerConfig(f.store, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTickets(cfg, time.Hour, now)
	if secrets != nil {
		tk.SetSecrets(secrets)
	}
	t.Cleanup(tk.Close)
	return serve(t, cfg), tk
}

// resumes connects a fresh client to a, then to b, and reports whether
// the second connection resumed the first's session.
func resumes(t *testing.T, f *tlsFixture, version uint16, a, b string) bool {
	t.Helper()
	client := f.client(func(c *tls.Config) {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(8)
		c.MinVersion, c.MaxVersion = version, version
	})
	first, err := connect(t, a, client) // the round trip reads the TLS 1.3 ticket
	if err != nil {
		t.Fatal(err)
	}
	if first.DidResume {
		t.Fatalf("the first connection of a fresh client resumed")
	}
	second, err := connect(t, b, client)
	if err != nil {
		t.Fatal(err)
	}
	return second.DidResume
}

// TestTicketsShareSessionsAcrossServers: two servers whose ticket keys
// derive from the same secrets resume each other's sessions, within an
// epoch's clock difference; with other secrets, or Go's own keys, they
// do not.
func TestTicketsShareSessionsAcrossServers(t *testing.T) {
	f := newFixture(t)
	shared := [][]byte{[]byte("cluster ticket secret")}
	at := func(tm time.Time) func() time.Time { return func() time.Time { return tm } }
	e := time.Now().Unix() / 3600
	now := epochStart(e, time.Hour).Add(10 * time.Minute)

	a, _ := ticketServer(t, f, shared, at(now))
	for _, tt := range []struct {
		name    string
		secrets [][]byte
		now     time.Time
		resumes bool
	}{
		{"same secrets", shared, now, true},
		{"same secrets, the first still decrypting after a rotation", [][]byte{[]byte("new secret"), shared[0]}, now, true},
		{"same secrets, clock an epoch ahead", shared, now.Add(time.Hour), true},
		{"same secrets, clock an epoch behind", shared, now.Add(-time.Hour), true},
		{"same secrets, clock two epochs ahead", shared, now.Add(2 * time.Hour), false},
		{"other secrets", [][]byte{[]byte("another cluster's secret")}, now, false},
		{"Go's own keys", nil, now, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := ticketServer(t, f, tt.secrets, at(tt.now))
			for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
				if got := resumes(t, f, v, a, b); got != tt.resumes {
					t.Errorf("TLS %x: DidResume = %v on the second server, want %v", v, got, tt.resumes)
				}
			}
			if !resumes(t, f, tls.VersionTLS13, b, b) {
				t.Errorf("a server does not resume its own sessions")
			}
		})
	}
}

// TestTicketsRotate: Start moves to the next epoch's keys when the clock
// reaches it, and the keys in force are that epoch's: a ticket of two
// epochs ahead, refused before, resumes after.
func TestTicketsRotate(t *testing.T) {
	// Checked last, once the servers' cleanups have stopped them too.
	running := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, running) })
	f := newFixture(t)
	secrets := [][]byte{[]byte("cluster ticket secret")}
	e := time.Now().Unix() / 3600
	clk := &clock{now: epochStart(e+1, time.Hour).Add(-time.Millisecond)}

	r, tk := ticketServer(t, f, secrets, clk.Now)
	if tk.Epoch() != e {
		t.Fatalf("Epoch = %d, want %d", tk.Epoch(), e)
	}
	ahead, _ := ticketServer(t, f, secrets, func() time.Time { return epochStart(e+2, time.Hour) })
	if resumes(t, f, tls.VersionTLS13, ahead, r) {
		t.Fatalf("a ticket of epoch %d resumes at epoch %d, before any rotation", e+2, e)
	}

	tk.Start()
	tk.Start() // a second Start does nothing
	clk.Set(epochStart(e+1, time.Hour).Add(time.Second))
	testkit.Until(t, 10*time.Second, func() string {
		if tk.Epoch() == e+1 {
			return ""
		}
		return "the keys did not move to the next epoch"
	})
	if !resumes(t, f, tls.VersionTLS13, ahead, r) {
		t.Errorf("after the rotation to epoch %d, a ticket of epoch %d does not resume", e+1, e+2)
	}
	tk.Close()
	tk.Close() // twice is fine
	select {
	case <-tk.done:
	default:
		t.Errorf("the rotation goroutine runs after Close")
	}
}

func TestTicketsWithoutStart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tk := NewTickets(&tls.Config{}, 0, nil)
	if tk.period != DefaultTicketRotation {
		t.Errorf("period %v, want the default %v", tk.period, DefaultTicketRotation)
	}
	tk.SetSecrets([][]byte{[]byte("s")})
	if want := time.Now().Unix() / 3600; tk.Epoch() != want && tk.Epoch() != want+1 {
		t.Errorf("Epoch = %d with the real clock, want %d", tk.Epoch(), want)
	}
	tk.Close()
	tk.Start() // after Close: starts nothing
	tk.Close()

	// Epochs are whole seconds: a shorter period is one second, not a
	// division by zero.
	at := time.Unix(1_000_000, 500_000_000)
	short := NewTickets(&tls.Config{}, 500*time.Millisecond, func() time.Time { return at })
	short.SetSecrets([][]byte{[]byte("s")})
	if short.period != time.Second || short.Epoch() != 1_000_000 {
		t.Errorf("a 500ms period: period %v, epoch %d; want 1s and 1000000", short.period, short.Epoch())
	}
	odd := NewTickets(&tls.Config{}, 90*time.Second+300*time.Millisecond, func() time.Time { return at })
	odd.SetSecrets(nil)
	if odd.period != 90*time.Second || odd.Epoch() != 1_000_000/90 {
		t.Errorf("a 90.3s period: period %v, epoch %d; want 90s and %d", odd.period, odd.Epoch(), 1_000_000/90)
	}
}
