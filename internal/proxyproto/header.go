// Package proxyproto reads the PROXY protocol header (versions 1 and 2)
// that a TCP load balancer (HAProxy's send-proxy, AWS NLB's proxy
// protocol v2) writes at the start of each connection it opens to Weir,
// so that Weir knows the client's address rather than the balancer's.
//
// The protocol is HAProxy's "The PROXY protocol, versions 1 & 2"
// (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt); section
// numbers below are that document's. The parser is strict: a header is
// either exactly what the specification describes, within its bounds, or
// refused with an error that names the bytes at fault. It never consumes
// a byte past the header, so what follows (an HTTP request, a TLS
// ClientHello) reaches the server intact.
//
// Only the sources an operator trusts may send a header (Listener.Trusted):
// anyone else's connection is served as it is, with its own address, so
// a client that reaches Weir directly cannot claim another address.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Bounds on a header.
const (
	// MaxV1Len is the longest version 1 header, CRLF included (§2.1:
	// "PROXY UNKNOWN" followed by two IPv6 addresses, two ports and the
	// separators fits in 107 bytes).
	MaxV1Len = 107
	// MaxV2Len is the longest version 2 header Weir accepts, the 16
	// fixed bytes included: the address block and the TLVs after it. The
	// specification allows 65535+16; a balancer sends its addresses and a
	// few TLVs (AWS NLB's VPC endpoint id, HAProxy's unique id), far less.
	MaxV2Len = 4096
)

// v2Signature starts every version 2 header (§2.2).
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// noHeader is the reason of a refusal of bytes that are no header at all.
const noHeader = "the connection does not start with a PROXY protocol header; make the load balancer send one, or remove its address from proxy_protocol.trusted"

// v1Prefix starts every version 1 header (§2.1).
const v1Prefix = "PROXY "

// Header is a parsed PROXY protocol header.
type Header struct {
	// Version is 1 (text) or 2 (binary).
	Version int
	// Local reports a header that carries no client: a version 2 LOCAL
	// command (the balancer's own health check), or a version 1 UNKNOWN
	// or version 2 AF_UNSPEC address family. The connection's own
	// addresses apply, and Source and Destination are zero.
	Local bool
	// Source is the client's address and port, Destination the address
	// and port the client connected to (the balancer's).
	Source, Destination netip.AddrPort
	// Len is the header's length in bytes on the wire.
	Len int
}

// Error is a header that was refused.
type Error struct {
	// Reason says what is wrong.
	Reason string
	// Bytes are the start of the offending bytes (at most 64 of them).
	Bytes []byte
}

func (e *Error) Error() string {
	if len(e.Bytes) == 0 {
		return "proxy protocol: " + e.Reason
	}
	return fmt.Sprintf("proxy protocol: %s (in %q)", e.Reason, e.Bytes)
}

func refuse(b []byte, format string, args ...any) *Error {
	if len(b) > 64 {
		b = b[:64]
	}
	return &Error{Reason: fmt.Sprintf(format, args...), Bytes: bytes.Clone(b)}
}

// ErrNoHeader is returned, wrapped, when the connection ended before its
// first byte: a balancer's TCP health check, which connects and closes.
var ErrNoHeader = errors.New("proxy protocol: the connection closed before sending a header")

// Read reads one header from r, either version, and consumes exactly its
// bytes: what follows stays in r. An error from r (a timeout, the
// connection's end) is returned wrapped; a malformed header is an
// *Error. r's buffer must hold at least MaxV1Len bytes (bufio's default
// of 4096 does).
func Read(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Header{}, ErrNoHeader
		}
		return Header{}, fmt.Errorf("proxy protocol: reading the header: %w", err)
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case '\r':
		return readV2(r)
	}
	b, _ := r.Peek(r.Buffered())
	return Header{}, refuse(b, "the connection does not start with a PROXY protocol header (%q is neither \"PROXY \" nor the version 2 signature); make the load balancer send one, or remove its address from proxy_protocol.trusted", first[:1])
}

// peekMore returns r's buffered bytes once it holds more than have of
// them, reading when it must.
func peekMore(r *bufio.Reader, have int) ([]byte, error) {
	n := max(r.Buffered(), have+1)
	b, err := r.Peek(n)
	if err != nil && len(b) <= have {
		return b, err
	}
	return b, nil
}

// readErr turns a read error in the middle of a header into one that
// says how far the header got.
func readErr(b []byte, version int, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return fmt.Errorf("proxy protocol: version %d header cut short after %q: %w", version, b, err)
}

// readV1 reads a version 1 header (§2.1):
//
//	"PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
//	"PROXY" SP "UNKNOWN" [ anything but CR and LF ] CRLF
func readV1(r *bufio.Reader) (Header, error) {
	var line []byte
	for {
		b, err := peekMore(r, len(line))
		if n := bytes.IndexByte(b, '\n'); n >= 0 && n < MaxV1Len {
			line = b[:n+1]
			break
		}
		if len(b) >= MaxV1Len {
			return Header{}, refuse(b[:MaxV1Len], "version 1 header has no LF within %d bytes", MaxV1Len)
		}
		// Refuse as soon as the bytes cannot start a header, rather than
		// wait for a line a client may never end.
		if p := min(len(b), len(v1Prefix)); string(b[:p]) != v1Prefix[:p] {
			return Header{}, refuse(b, "%s", noHeader)
		}
		if err != nil {
			return Header{}, readErr(b, 1, err)
		}
		line = b
	}
	h, err := ParseV1(line)
	if err != nil {
		return Header{}, err
	}
	r.Discard(len(line))
	return h, nil
}

// ParseV1 parses a whole version 1 header, line, its CRLF included.
func ParseV1(line []byte) (Header, error) {
	if len(line) > MaxV1Len {
		return Header{}, refuse(line, "version 1 header is %d bytes long, more than %d", len(line), MaxV1Len)
	}
	body, ok := bytes.CutPrefix(line, []byte(v1Prefix))
	if !ok {
		return Header{}, refuse(line, "%s", noHeader)
	}
	body, ok = bytes.CutSuffix(body, []byte("\r\n"))
	if !ok || bytes.IndexAny(body, "\r\n") >= 0 {
		return Header{}, refuse(line, "version 1 header does not end in CRLF, or has a CR or LF inside")
	}
	h := Header{Version: 1, Len: len(line)}
	if proto, _, _ := bytes.Cut(body, []byte(" ")); string(proto) == "UNKNOWN" {
		// §2.1: the receiver must ignore anything after UNKNOWN.
		h.Local = true
		return h, nil
	}
	f := bytes.Split(body, []byte(" "))
	if len(f) != 5 {
		return Header{}, refuse(line, "version 1 header has %d space-separated fields after PROXY, want 5 (protocol, source, destination, source port, destination port)", len(f))
	}
	var want6 bool
	switch string(f[0]) {
	case "TCP4":
	case "TCP6":
		want6 = true
	default:
		return Header{}, refuse(line, "version 1 protocol %q is not TCP4, TCP6 or UNKNOWN", f[0])
	}
	src, err := v1Addr(line, f[1], "source", want6)
	if err != nil {
		return Header{}, err
	}
	dst, err := v1Addr(line, f[2], "destination", want6)
	if err != nil {
		return Header{}, err
	}
	sport, err := v1Port(line, f[3], "source")
	if err != nil {
		return Header{}, err
	}
	dport, err := v1Port(line, f[4], "destination")
	if err != nil {
		return Header{}, err
	}
	h.Source, h.Destination = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return h, nil
}

func v1Addr(line, field []byte, which string, want6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(field))
	switch {
	case err != nil || a.Zone() != "":
		return netip.Addr{}, refuse(line, "version 1 %s address %q is not an IP address", which, field)
	case want6 && !a.Is6():
		return netip.Addr{}, refuse(line, "version 1 %s address %q is not an IPv6 address, as TCP6 says", which, field)
	case !want6 && !a.Is4():
		return netip.Addr{}, refuse(line, "version 1 %s address %q is not an IPv4 address, as TCP4 says", which, field)
	}
	return a, nil
}

// v1Port parses a port: 1 to 5 decimal digits, no sign and no leading
// zero, at most 65535.
func v1Port(line, field []byte, which string) (uint16, error) {
	ok := len(field) >= 1 && len(field) <= 5 && (field[0] != '0' || len(field) == 1)
	for _, c := range field {
		ok = ok && c >= '0' && c <= '9'
	}
	n, err := strconv.ParseUint(string(field), 10, 16)
	if !ok || err != nil {
		return 0, refuse(line, "version 1 %s port %q is not a number from 0 to 65535", which, field)
	}
	return uint16(n), nil
}

// Version 2 commands, address families and transport protocols (§2.2).
const (
	v2CmdLocal = 0x0
	v2CmdProxy = 0x1

	v2FamUnspec = 0x0
	v2FamInet   = 0x1
	v2FamInet6  = 0x2
	v2FamUnix   = 0x3

	v2ProtoUnspec = 0x0
	v2ProtoStream = 0x1
	v2ProtoDgram  = 0x2
)

// readV2 reads a version 2 header (§2.2): the 12-byte signature, the
// version and command byte, the family and protocol byte, the length of
// the rest (big-endian), then that many bytes: the addresses, and TLVs.
func readV2(r *bufio.Reader) (Header, error) {
	var fixed []byte
	for {
		b, err := peekMore(r, len(fixed))
		if len(b) >= 16 {
			fixed = b[:16]
			break
		}
		if p := min(len(b), len(v2Signature)); !bytes.Equal(b[:p], v2Signature[:p]) {
			return Header{}, refuse(b, "the connection does not start with a PROXY protocol header (not the version 2 signature); make the load balancer send one, or remove its address from proxy_protocol.trusted")
		}
		if err != nil {
			return Header{}, readErr(b, 2, err)
		}
		fixed = b
	}
	h, rest, err := parseV2Fixed(fixed)
	if err != nil {
		return Header{}, err
	}
	fixed = bytes.Clone(fixed) // r's buffer moves on
	r.Discard(16)
	if h.Local || fixed[13]>>4 == v2FamUnspec {
		// §2.2: the receiver uses the connection's own addresses and
		// discards the rest of the header, whatever it holds.
		h.Local = true
		if n, err := r.Discard(rest); err != nil {
			return Header{}, readErr(fixed, 2, fmt.Errorf("%d of the %d bytes after the fixed part arrived: %w", n, rest, err))
		}
		return h, nil
	}
	// The address block is at most 216 bytes (AF_UNIX): small enough to
	// peek at whole. TLVs after it are walked and discarded.
	b, err := r.Peek(min(rest, 216))
	if err != nil {
		return Header{}, readErr(append(fixed, b...), 2, err)
	}
	n, err := h.parseAddrs(fixed, b)
	if err != nil {
		return Header{}, err
	}
	r.Discard(n)
	if err := skipTLVs(r, fixed, rest-n); err != nil {
		return Header{}, err
	}
	return h, nil
}

// parseV2Fixed checks a version 2 header's 16 fixed bytes and returns the
// header so far and the length of the rest.
func parseV2Fixed(b []byte) (Header, int, error) {
	if !bytes.Equal(b[:12], v2Signature) {
		return Header{}, 0, refuse(b, "the connection does not start with a PROXY protocol header (not the version 2 signature)")
	}
	h := Header{Version: 2}
	if v := b[12] >> 4; v != 2 {
		return Header{}, 0, refuse(b, "version 2 signature followed by version %d (byte 13 is 0x%02x), want 2", v, b[12])
	}
	switch b[12] & 0xf {
	case v2CmdLocal:
		h.Local = true
	case v2CmdProxy:
	default:
		return Header{}, 0, refuse(b, "version 2 command 0x%x (byte 13 is 0x%02x) is neither LOCAL (0) nor PROXY (1)", b[12]&0xf, b[12])
	}
	rest := int(binary.BigEndian.Uint16(b[14:16]))
	h.Len = 16 + rest
	if h.Len > MaxV2Len {
		return Header{}, 0, refuse(b, "version 2 header is %d bytes long, more than the %d Weir accepts", h.Len, MaxV2Len)
	}
	return h, rest, nil
}

// parseAddrs reads the address block from b, the start of what follows
// the fixed bytes, and returns its length. A LOCAL header's block, and an
// AF_UNSPEC one, are ignored (§2.2: the receiver uses the connection's
// own addresses).
func (h *Header) parseAddrs(fixed, b []byte) (int, error) {
	fam, proto := fixed[13]>>4, fixed[13]&0xf
	switch proto {
	case v2ProtoUnspec, v2ProtoStream:
	case v2ProtoDgram:
		return 0, refuse(fixed, "version 2 header is for a DGRAM (UDP) connection (byte 14 is 0x%02x); an HTTP listener takes STREAM (TCP) only", fixed[13])
	default:
		return 0, refuse(fixed, "version 2 transport protocol 0x%x (byte 14 is 0x%02x) is not UNSPEC, STREAM or DGRAM", proto, fixed[13])
	}
	var size int
	switch fam {
	case v2FamInet:
		size = 12
	case v2FamInet6:
		size = 36
	case v2FamUnix:
		return 0, refuse(fixed, "version 2 header is for an AF_UNIX client (byte 14 is 0x%02x), which has no IP address; send AF_INET or AF_INET6", fixed[13])
	default:
		return 0, refuse(fixed, "version 2 address family 0x%x (byte 14 is 0x%02x) is not AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX", fam, fixed[13])
	}
	if proto == v2ProtoUnspec {
		return 0, refuse(fixed, "version 2 header gives addresses with transport protocol UNSPEC (byte 14 is 0x%02x); want STREAM (0x%x1)", fixed[13], fam)
	}
	if len(b) < size {
		return 0, refuse(fixed, "version 2 length %d is too short for the %s address block of %d bytes", h.Len-16, map[byte]string{v2FamInet: "AF_INET", v2FamInet6: "AF_INET6"}[fam], size)
	}
	alen := size/2 - 2
	src, _ := netip.AddrFromSlice(b[:alen])
	dst, _ := netip.AddrFromSlice(b[alen : 2*alen])
	sport := binary.BigEndian.Uint16(b[2*alen:])
	dport := binary.BigEndian.Uint16(b[2*alen+2:])
	h.Source, h.Destination = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return size, nil
}

// skipTLVs discards n bytes of TLVs from r (§2.2.1: type, a big-endian
// 16-bit length, the value), checking that they tile the header exactly.
// Their values are not needed.
func skipTLVs(r *bufio.Reader, fixed []byte, n int) error {
	for n > 0 {
		if n < 3 {
			return refuse(fixed, "version 2 header ends with %d byte(s) that are not a whole TLV", n)
		}
		b, err := r.Peek(3)
		if err != nil {
			return readErr(fixed, 2, err)
		}
		size := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if size > n {
			return refuse(fixed, "version 2 TLV of type 0x%02x claims %d bytes, but only %d are left of the header", b[0], size-3, n-3)
		}
		if _, err := r.Discard(size); err != nil {
			return readErr(fixed, 2, err)
		}
		n -= size
	}
	return nil
}
