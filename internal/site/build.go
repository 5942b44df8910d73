package site

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Builder compiles configurations into snapshots whose origin clients
// come from one registry, so that an origin whose description did not
// change keeps its client (breakers, health, ejections, connections)
// from one snapshot to the next.
type Builder struct {
	// Registry hands out and retires the origin clients; required.
	Registry *origin.Registry
	// Tracer and Logger are given to new origin clients.
	Tracer *telemetry.Tracer
	Logger *slog.Logger
	// Journal is given to new origin clients; nil records nothing.
	Journal journal.Recorder
	// Faults are the injected faults new origin clients apply; nil
	// injects none.
	Faults *inject.Set
}

// Build compiles a validated configuration. prev, when given, is the
// snapshot the new one will replace: its sites' counters carry over. On
// error nothing is left acquired.
func (b *Builder) Build(cfg *config.Config, prev *Snapshot) (*Snapshot, error) {
	clients := make(map[string]*origin.Client, len(cfg.Origins))
	release := func() {
		for _, c := range clients {
			b.Registry.Release(c)
		}
	}
	for _, oc := range cfg.Origins {
		ocfg, err := OriginConfig(oc, b.Tracer, b.Logger)
		if err != nil {
			release()
			return nil, err
		}
		ocfg.Journal, ocfg.Faults = b.Journal, b.Faults
		c, err := b.Registry.Acquire(ocfg)
		if err != nil {
			release()
			return nil, err
		}
		clients[oc.Name] = c
	}
	snap, err := Compile(cfg, clients, prev)
	if err != nil {
		release()
		return nil, err
	}
	return snap, nil
}

// Release gives back the origin clients snap acquired; call it once the
// snapshot is no longer in force. Requests still running on it may finish.
func (b *Builder) Release(snap *Snapshot) {
	if snap == nil {
		return
	}
	for _, c := range snap.origins {
		b.Registry.Release(c)
	}
}

// OriginConfig is what the origin client of oc is built from. An origin
// with tls settings gets its TLS client configuration, read from their
// files now, and a TLSSource that names the files and the server name
// and digests the CA and certificate files: the registry keeps the
// client while they are the same, and a renewed certificate written
// over the old file makes a new client. The error of a file that cannot
// be loaded names origins[NAME].tls and the file.
func OriginConfig(oc config.Origin, tracer *telemetry.Tracer, log *slog.Logger) (origin.Config, error) {
	cfg := origin.Config{
		Name:                  oc.Name,
		URL:                   oc.URL,
		Servers:               oc.Servers,
		Balance:               oc.Balance,
		HostHeader:            oc.HostHeader,
		ConnectTimeout:        time.Duration(oc.ConnectTimeout),
		TLSHandshakeTimeout:   time.Duration(oc.TLSHandshakeTimeout),
		ResponseHeaderTimeout: time.Duration(oc.ResponseHeaderTimeout),
		BodyIdleTimeout:       time.Duration(oc.BodyIdleTimeout),
		MaxIdleConns:          oc.MaxIdleConns,
		MaxConns:              oc.MaxConns,
		Tracer:                tracer,
		Logger:                log,
		HealthCheck: origin.HealthCheck{
			Path: oc.HealthCheck.Path, Interval: time.Duration(oc.HealthCheck.Interval), Timeout: time.Duration(oc.HealthCheck.Timeout),
			Healthy: oc.HealthCheck.HealthyThreshold, Unhealthy: oc.HealthCheck.UnhealthyThreshold,
		},
		Outlier: origin.Outlier{
			ConsecutiveFailures: oc.Outlier.ConsecutiveFailures, BaseEjection: time.Duration(oc.Outlier.BaseEjection),
			MaxEjection: time.Duration(oc.Outlier.MaxEjection), MaxEjectedPercent: oc.Outlier.MaxEjectedPercent,
		},
		Breaker: origin.Breaker{
			ConsecutiveFailures: oc.Breaker.ConsecutiveFailures, FailureRate: oc.Breaker.FailureRate,
			MinRequests: oc.Breaker.MinRequests, Window: time.Duration(oc.Breaker.Window), Delay: time.Duration(oc.Breaker.Delay),
			HalfOpenRequests: oc.Breaker.HalfOpenRequests,
		},
		Bulkhead:        origin.Bulkhead{MaxConcurrent: oc.Bulkhead.MaxConcurrent, MaxWaiting: oc.Bulkhead.MaxWaiting, MaxWait: time.Duration(oc.Bulkhead.MaxWait)},
		Retry:           origin.Retry{Attempts: oc.Retry.Attempts, Budget: oc.Retry.Budget, MinPerSecond: oc.Retry.MinPerSecond},
		FailureStatuses: oc.FailureStatuses,
		TrickleRate:     oc.TrickleRate,
	}
	if oc.TLS != (config.OriginTLS{}) {
		// The digest first: a file replaced while both are read leaves a
		// source that differs from the next one, not a stale client.
		cfg.TLSSource = tlsSource(oc.TLS)
		tc, err := certs.ClientConfig(certs.ClientOptions{CA: oc.TLS.CA, CertFile: oc.TLS.Cert, KeyFile: oc.TLS.Key, ServerName: oc.TLS.ServerName})
		if err != nil {
			return origin.Config{}, fmt.Errorf("origins[%s].tls: %w", oc.Name, err)
		}
		cfg.TLS = tc
		if w := certs.ModeWarning(oc.TLS.Key); oc.TLS.Key != "" && w != "" && log != nil {
			log.Warn(w, "origin", oc.Name)
		}
	}
	return cfg, nil
}

// tlsSource describes an origin's TLS settings for the registry: the
// files, the server name, and a SHA-256 of the CA and certificate
// files' contents (a new key comes with a new certificate; the key file
// is left unread here). A file that is not a regular file adds nothing:
// certs refuses it.
func tlsSource(t config.OriginTLS) string {
	h := sha256.New()
	for _, f := range []string{t.CA, t.Cert} {
		h.Write([]byte(f + "\x00"))
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if r, err := os.Open(f); err == nil {
			io.Copy(h, io.LimitReader(r, maxTLSFile))
			r.Close()
		}
	}
	return fmt.Sprintf("ca=%q cert=%q key=%q server_name=%q sha256=%x", t.CA, t.Cert, t.Key, t.ServerName, h.Sum(nil))
}

// maxTLSFile bounds what tlsSource reads of a file; certs refuses larger
// ones.
const maxTLSFile = 4<<20 + 1
