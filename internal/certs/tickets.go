package certs

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"sync"
	"time"
)

// DefaultTicketRotation is how long one session ticket key encrypts new
// tickets. A ticket stays usable for up to twice that: the previous
// period's key still decrypts.
const DefaultTicketRotation = time.Hour

// TicketKeys derives the session ticket keys of an epoch (the Unix time
// divided by the rotation period) from secrets, for
// tls.Config.SetSessionTicketKeys: every edge holding the same secrets
// derives the same keys, so a client resumes its session on any of them.
// The first secret's key of the epoch encrypts new tickets; the keys of
// the epochs before and after (clocks differ a little) and those of the
// other secrets (a cluster key being rotated in or out) decrypt.
func TicketKeys(secrets [][]byte, epoch int64) [][32]byte {
	keys := make([][32]byte, 0, 3*len(secrets))
	for _, s := range secrets {
		for _, e := range [3]int64{epoch, epoch - 1, epoch + 1} {
			keys = append(keys, ticketKey(s, e))
		}
	}
	return keys
}

func ticketKey(secret []byte, epoch int64) [32]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("weir tls session ticket key v1\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(epoch))
	m.Write(b[:])
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// Tickets keeps a TLS configuration's session ticket keys derived from a
// cluster's secrets, moving to the next epoch's keys on schedule. Without
// secrets the configuration keeps Go's own keys, random per process.
type Tickets struct {
	cfg    *tls.Config
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	secrets [][]byte
	epoch   int64

	stop, done chan struct{}
	startOnce  sync.Once
	stopOnce   sync.Once
}

// NewTickets manages cfg's session ticket keys, rotating every period
// (DefaultTicketRotation when zero or negative; epochs are whole seconds,
// so a period is rounded down to one, and is at least 1s). now is the
// clock; nil means time.Now.
func NewTickets(cfg *tls.Config, period time.Duration, now func() time.Time) *Tickets {
	if period <= 0 {
		period = DefaultTicketRotation
	}
	period = max(period.Truncate(time.Second), time.Second) // epochs count whole seconds
	if now == nil {
		now = time.Now
	}
	return &Tickets{cfg: cfg, period: period, now: now, stop: make(chan struct{}), done: make(chan struct{})}
}

// SetSecrets sets the secrets keys derive from, the one that encrypts
// first, and puts the current epoch's keys in force. Each secret should
// be derived for this purpose alone (cluster.Key.Derive).
func (t *Tickets) SetSecrets(secrets [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.secrets = make([][]byte, len(secrets))
	for i, sec := range secrets {
		t.secrets[i] = bytes.Clone(sec)
	}
	t.applyLocked()
}

func (t *Tickets) applyLocked() { t.applyAt(t.now()) }

// applyAt puts the keys of now's epoch in force. t.mu must be held.
func (t *Tickets) applyAt(now time.Time) {
	t.epoch = now.Unix() / int64(t.period/time.Second)
	if len(t.secrets) > 0 {
		t.cfg.SetSessionTicketKeys(TicketKeys(t.secrets, t.epoch))
	}
}

// Shared reports whether the keys derive from secrets (a cluster's), not
// Go's own per-process keys.
func (t *Tickets) Shared() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.secrets) > 0
}

// Epoch returns the epoch whose key encrypts new tickets.
func (t *Tickets) Epoch() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch
}

// Start moves to each next epoch's keys when it begins, until Close.
// Each step reads the clock once, puts that instant's epoch in force and
// waits for the next epoch from the same instant, so the keys in force
// never lag the clock by an epoch, whatever it does between two reads.
func (t *Tickets) Start() {
	t.startOnce.Do(func() {
		go func() {
			defer close(t.done)
			sec := int64(t.period / time.Second)
			for {
				now := t.now()
				t.mu.Lock()
				t.applyAt(now)
				t.mu.Unlock()
				next := time.Unix((now.Unix()/sec+1)*sec, 0)
				timer := time.NewTimer(next.Sub(now))
				select {
				case <-t.stop:
					timer.Stop()
					return
				case <-timer.C:
				}
			}
		}()
	})
}

// Close stops the rotation and waits for it.
func (t *Tickets) Close() {
	t.stopOnce.Do(func() { close(t.stop) })
	started := true
	t.startOnce.Do(func() { started = false; close(t.done) })
	if started {
		<-t.done
	}
}
