package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// An upgrade request (RFC 9110 §7.8: Upgrade, with the upgrade option in
// Connection) is sent like any other, with these differences:
//
//   - It is never retried: the handshake may have side effects, and a
//     client that asked to switch protocols is better told at once.
//   - It goes over HTTP/1.1 only: an https server is offered no h2 in
//     ALPN for it, since HTTP/2 has no Upgrade.
//   - A 101 (Switching Protocols) answer is accepted: its Body is an
//     *Upgraded, the connection itself from then on. The request's
//     bulkhead slot and its count in the server's requests in flight are
//     released as the 101 arrives (a tunnel is not a request in flight,
//     and may last for hours; what bounds tunnels is the edge's
//     connection cap), its origin.fetch span ends, and the body idle
//     timeout does not apply: the caller times the tunnel.
//
// Any other answer is an ordinary response.

// IsUpgrade reports whether req asks to switch protocols: an Upgrade
// field, and the upgrade option in Connection.
func IsUpgrade(req *http.Request) bool {
	if len(req.Header["Upgrade"]) == 0 {
		return false
	}
	for _, v := range req.Header["Connection"] {
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); httpsyntax.IsToken(m) && strings.EqualFold(m, "upgrade") {
				return true
			}
		}
	}
	return false
}

// Upgraded is the body of a 101 response: the origin connection, which
// now speaks the protocol switched to. Read returns what the origin
// sends (starting with what the transport had buffered), Write sends to
// it, CloseWrite half-closes it (a TCP FIN, or TLS's close_notify) and
// Close closes it. Read and Write may be called from two goroutines at
// once; Close may be called from any goroutine, more than once.
type Upgraded struct {
	rwc    io.ReadWriteCloser
	cancel context.CancelCauseFunc
	once   sync.Once
}

// Read reads from the origin.
func (u *Upgraded) Read(p []byte) (int, error) { return u.rwc.Read(p) }

// Write writes to the origin.
func (u *Upgraded) Write(p []byte) (int, error) { return u.rwc.Write(p) }

// CloseWrite shuts down the writing side of the origin connection.
func (u *Upgraded) CloseWrite() error {
	if cw, ok := u.rwc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errCannotHalfClose
}

var errCannotHalfClose = errors.New("origin: the upgraded connection cannot half-close")

// Close closes the origin connection.
func (u *Upgraded) Close() error {
	var err error
	u.once.Do(func() {
		err = u.rwc.Close()
		u.cancel(nil)
	})
	return err
}

// upgradeKey marks a dial's context as one for an upgrade request.
type upgradeKey struct{}

// withUpgrade marks ctx as an upgrade request's: its TLS dial offers
// HTTP/1.1 only.
func withUpgrade(ctx context.Context) context.Context {
	return context.WithValue(ctx, upgradeKey{}, true)
}

// isUpgradeDial reports whether ctx is an upgrade request's.
func isUpgradeDial(ctx context.Context) bool {
	v, _ := ctx.Value(upgradeKey{}).(bool)
	return v
}
