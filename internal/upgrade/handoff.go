package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
)

// EnvVar carries the handoff from the process being upgraded to the one
// it starts: which inherited file descriptor is which listener, the
// control socket, and the gossip seeds. It is JSON; see handoff.
const EnvVar = "WEIR_UPGRADE"

// maxInherited bounds the listeners a handoff may name.
const maxInherited = 64

// handoff is what a new process learns from its parent. Descriptors
// count from 3, after standard input, output and error: the control
// socket, then the listeners (see Upgrader.spawn).
type handoff struct {
	// Control is the descriptor of the control socket to the parent.
	Control int `json:"control"`
	// Listeners are the sockets handed over.
	Listeners []inherited `json:"listeners"`
	// Seeds are gossip addresses of the members the parent knew.
	Seeds []string `json:"seeds,omitempty"`
}

// inherited is one listening socket handed over.
type inherited struct {
	Name    string `json:"name"`
	FD      int    `json:"fd"`
	Network string `json:"network"`
	// Addr is the address the parent was asked to bind, Bound the one it
	// got (they differ for ":8080" or port 0).
	Addr  string `json:"addr"`
	Bound string `json:"bound"`
}

// parseHandoff decodes and checks the handoff in s. Every problem is an
// error naming the field: a process started with a broken handoff stops
// before it binds anything, and its parent keeps serving.
func parseHandoff(s string) (handoff, error) {
	var h handoff
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return handoff{}, fmt.Errorf("%s is not a handoff from a weir process: %w", EnvVar, err)
	}
	if dec.More() {
		return handoff{}, fmt.Errorf("%s: trailing data after the handoff", EnvVar)
	}
	if len(h.Listeners) > maxInherited {
		return handoff{}, fmt.Errorf("%s: %d listeners, more than %d", EnvVar, len(h.Listeners), maxInherited)
	}
	if h.Control < 3 {
		return handoff{}, fmt.Errorf("%s: control descriptor %d: want 3 or more", EnvVar, h.Control)
	}
	fds := map[int]bool{h.Control: true}
	names := map[string]bool{}
	var errs []error
	for i, l := range h.Listeners {
		switch {
		case l.Name == "":
			errs = append(errs, fmt.Errorf("listeners[%d]: no name", i))
		case names[l.Name]:
			errs = append(errs, fmt.Errorf("listeners[%d]: %q handed over twice", i, l.Name))
		case l.FD < 3 || l.FD > 3+maxInherited:
			errs = append(errs, fmt.Errorf("listeners[%d] (%s): descriptor %d: want 3 to %d", i, l.Name, l.FD, 3+maxInherited))
		case fds[l.FD]:
			errs = append(errs, fmt.Errorf("listeners[%d] (%s): descriptor %d used twice", i, l.Name, l.FD))
		case l.Network != "tcp" && l.Network != "tcp4" && l.Network != "tcp6":
			errs = append(errs, fmt.Errorf("listeners[%d] (%s): network %q: want tcp, tcp4 or tcp6", i, l.Name, l.Network))
		}
		names[l.Name], fds[l.FD] = true, true
	}
	for i, s := range h.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("seeds[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return handoff{}, fmt.Errorf("%s: %w", EnvVar, err)
	}
	return h, nil
}

// encode returns the handoff as EnvVar's value.
func (h handoff) encode() string {
	b, err := json.Marshal(h)
	if err != nil {
		panic(err) // strings and ints only
	}
	return string(b)
}

// matches reports whether a listener asked for on network at addr may be
// the inherited one: the same request as the parent's, or an address
// that resolves to the socket the parent bound. A changed address binds
// afresh.
func (l inherited) matches(network, addr string) bool {
	if network != l.Network {
		return false
	}
	if addr == l.Addr || addr == l.Bound {
		return true
	}
	want, err := net.ResolveTCPAddr(network, addr)
	if err != nil {
		return false
	}
	got, err := net.ResolveTCPAddr(network, l.Bound)
	if err != nil || want.Port != got.Port || want.Port == 0 {
		return false
	}
	if want.IP == nil || want.IP.IsUnspecified() {
		return got.IP == nil || got.IP.IsUnspecified()
	}
	return want.IP.Equal(got.IP)
}
