package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// v2 builds a version 2 header: the signature, then the given bytes
// (version and command, family and protocol, length, addresses, TLVs).
func v2(rest ...byte) []byte { return append(bytes.Clone(v2Signature), rest...) }

// cat joins byte strings.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// tlv encodes one TLV (§2.2.1).
func tlv(typ byte, value string) []byte {
	return cat([]byte{typ, byte(len(value) >> 8), byte(len(value))}, []byte(value))
}

// withLen sets a version 2 header's length field to what follows it.
func withLen(b []byte) []byte {
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-16))
	return b
}

// Addresses from the specification's examples (§2.1).
var (
	src4 = netip.MustParseAddrPort("192.168.0.1:56324")
	dst4 = netip.MustParseAddrPort("192.168.0.11:443")
	max6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	src6 = netip.MustParseAddrPort("[2001:db8::1]:51000")
	dst6 = netip.MustParseAddrPort("[2001:db8::2]:8443")
)

// inet4 is the address block of src4 -> dst4 (AF_INET, 12 bytes).
var inet4 = []byte{192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb}

// inet6 is the address block of src6 -> dst6 (AF_INET6, 36 bytes).
var inet6 = cat(src6.Addr().AsSlice(), dst6.Addr().AsSlice(), []byte{0xc7, 0x38, 0x20, 0xfb})

const after = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// TestRead reads each header followed by a request, and checks that the
// request is left whole. Each row names the section of the
// specification it comes from.
func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Header
		err  string // a substring of the error; "" for none
	}{
		{"§2.1 TCP4 example", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
			Header{Version: 1, Source: src4, Destination: dst4, Len: 47}, ""},
		{"§2.1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 51000 8443\r\n"),
			Header{Version: 1, Source: src6, Destination: dst6, Len: 47}, ""},
		{"§2.1 the longest line: 107 bytes", []byte("PROXY TCP6 " + max6 + " " + max6 + " 65535 65535\r\n"),
			Header{Version: 1, Source: netip.MustParseAddrPort("[" + max6 + "]:65535"), Destination: netip.MustParseAddrPort("[" + max6 + "]:65535"), Len: 104}, ""},
		{"§2.1 UNKNOWN alone", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true, Len: 15}, ""},
		{"§2.1 UNKNOWN with ignored addresses, 107 bytes", []byte("PROXY UNKNOWN " + max6 + " " + max6 + " 65535 65535\r\n"),
			Header{Version: 1, Local: true, Len: 107}, ""},
		{"§2.1 port 0", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 0 443\r\n"),
			Header{Version: 1, Source: netip.AddrPortFrom(src4.Addr(), 0), Destination: dst4, Len: 43}, ""},

		{"§2.1 over 107 bytes", []byte("PROXY UNKNOWN " + max6 + " " + max6 + " 65535 655350\r\n"), Header{}, "no LF within 107 bytes"},
		{"§2.1 bare LF", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n"), Header{}, "does not end in CRLF"},
		{"§2.1 two spaces", []byte("PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n"), Header{}, "6 space-separated fields"},
		{"§2.1 lower case", []byte("PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n"), Header{}, `protocol "tcp4" is not TCP4`},
		{"§2.1 TCP4 with IPv6", []byte("PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n"), Header{}, `source address "2001:db8::1" is not an IPv4 address`},
		{"§2.1 TCP6 with IPv4", []byte("PROXY TCP6 2001:db8::1 192.168.0.11 56324 443\r\n"), Header{}, `destination address "192.168.0.11" is not an IPv6 address`},
		{"§2.1 leading zero in address", []byte("PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n"), Header{}, `source address "192.168.0.01" is not an IP address`},
		{"§2.1 zone", []byte("PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n"), Header{}, `is not an IP address`},
		{"§2.1 port too large", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n"), Header{}, `source port "65536"`},
		{"§2.1 port with sign", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n"), Header{}, `source port "+1"`},
		{"§2.1 port with leading zero", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 0443\r\n"), Header{}, `destination port "0443"`},
		{"§2.1 missing field", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n"), Header{}, "4 space-separated fields"},
		{"no header: an HTTP request", []byte(after), Header{}, "does not start with a PROXY protocol header"},
		{"no header: PROXY misspelt", []byte("PROXX TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), Header{}, "does not start with a PROXY protocol header"},
		{"no header: a TLS ClientHello", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), Header{}, `("\x16" is neither`},

		{"§2.2 PROXY TCP over IPv4", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4)...)),
			Header{Version: 2, Source: src4, Destination: dst4, Len: 28}, ""},
		{"§2.2 PROXY TCP over IPv6", withLen(v2(cat([]byte{0x21, 0x21, 0, 0}, inet6)...)),
			Header{Version: 2, Source: src6, Destination: dst6, Len: 52}, ""},
		{"§2.2 LOCAL, no addresses (a health check)", v2(0x20, 0x00, 0, 0), Header{Version: 2, Local: true, Len: 16}, ""},
		{"§2.2 LOCAL with an address block, which is ignored", withLen(v2(cat([]byte{0x20, 0x11, 0, 0}, inet4)...)),
			Header{Version: 2, Local: true, Len: 28}, ""},
		{"§2.2 PROXY with AF_UNSPEC: the connection's addresses", withLen(v2(0x21, 0x00, 0, 0, 1, 2, 3)),
			Header{Version: 2, Local: true, Len: 19}, ""},
		{"§2.2.1 TLVs after the addresses: NOOP, AWS VPC endpoint (0xEA)", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, tlv(0x04, "\x00\x00"), tlv(0xea, "\x01vpce-08d2bf15fac5001c9"))...)),
			Header{Version: 2, Source: src4, Destination: dst4, Len: 28 + 5 + 26}, ""},
		{"§2.2 at the bound: 4096 bytes", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, tlv(0x04, strings.Repeat("x", MaxV2Len-28-3)))...)),
			Header{Version: 2, Source: src4, Destination: dst4, Len: MaxV2Len}, ""},

		{"§2.2 past the bound: 4097 bytes", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, tlv(0x04, strings.Repeat("x", MaxV2Len-28-2)))...)),
			Header{}, "4097 bytes long, more than the 4096"},
		{"§2.2 version 1 in the binary format", withLen(v2(cat([]byte{0x11, 0x11, 0, 0}, inet4)...)), Header{}, "version 1 (byte 13 is 0x11)"},
		{"§2.2 command 2", withLen(v2(cat([]byte{0x22, 0x11, 0, 0}, inet4)...)), Header{}, "command 0x2"},
		{"§2.2 DGRAM", withLen(v2(cat([]byte{0x21, 0x12, 0, 0}, inet4)...)), Header{}, "DGRAM (UDP)"},
		{"§2.2 AF_UNIX", withLen(v2(cat([]byte{0x21, 0x31, 0, 0}, make([]byte, 216))...)), Header{}, "AF_UNIX"},
		{"§2.2 family 4", withLen(v2(cat([]byte{0x21, 0x41, 0, 0}, inet4)...)), Header{}, "address family 0x4"},
		{"§2.2 addresses with protocol UNSPEC", withLen(v2(cat([]byte{0x21, 0x10, 0, 0}, inet4)...)), Header{}, "transport protocol UNSPEC"},
		{"§2.2 length too short for AF_INET6", withLen(v2(cat([]byte{0x21, 0x21, 0, 0}, inet4)...)), Header{}, "too short for the AF_INET6 address block"},
		{"§2.2.1 TLV longer than the header", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, []byte{0x04, 0, 9, 1})...)),
			Header{}, "TLV of type 0x04 claims 9 bytes, but only 1 are left"},
		{"§2.2.1 half a TLV", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, []byte{0x04, 0})...)), Header{}, "2 byte(s) that are not a whole TLV"},
		{"§2.2 signature off by one byte", cat([]byte("\r\n\r\n\x00\r\nQUIT\r"), []byte{0x21, 0x11, 0, 12}, inet4), Header{}, "not the version 2 signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(io.MultiReader(bytes.NewReader(tc.in), strings.NewReader(after)))
			h, err := Read(br)
			if tc.err != "" {
				var pe *Error
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &pe) {
					t.Fatalf("Read(%q) = %+v, %v; want an *Error saying %q", tc.in, h, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, h, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("Read(%q) header (-want +got):\n%s", tc.in, diff)
			}
			if h.Len != len(tc.in) {
				t.Errorf("Len = %d, want the %d bytes given", h.Len, len(tc.in))
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != after {
				t.Errorf("after the header the reader holds %q, want the request %q untouched", rest, after)
			}
		})
	}
}

// TestReadCutShort: a header the connection ends in the middle of is an
// error wrapping io.ErrUnexpectedEOF; one that never began is ErrNoHeader.
func TestReadCutShort(t *testing.T) {
	whole := [][]byte{
		[]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
		withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, tlv(0x04, "abc"))...)),
	}
	for _, in := range whole {
		for n := 1; n < len(in); n++ {
			_, err := Read(bufio.NewReader(bytes.NewReader(in[:n])))
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Read(%q) = %v, want io.ErrUnexpectedEOF", in[:n], err)
			}
		}
	}
	if _, err := Read(bufio.NewReader(bytes.NewReader(nil))); !errors.Is(err, ErrNoHeader) {
		t.Errorf("Read of an empty connection = %v, want ErrNoHeader", err)
	}
}

// TestReadRefusesEarly: bytes that cannot start a header are refused as
// soon as they arrive, without waiting for the rest of a line.
func TestReadRefusesEarly(t *testing.T) {
	for _, in := range []string{"G", "PROXZ", "\r\n\r\n\x00\r\nQUIX"} {
		// A reader that fails after in: reaching it means Read waited.
		r := io.MultiReader(strings.NewReader(in), iotest{})
		_, err := Read(bufio.NewReader(r))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Read(%q) = %v, want it refused at once", in, err)
		}
	}
}

type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, errors.New("read past the bytes given") }

// appendV1 encodes h as a version 1 header, as a balancer would.
func appendV1(b []byte, h Header) []byte {
	if h.Local {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	proto := "TCP4"
	if h.Source.Addr().Is6() {
		proto = "TCP6"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", proto, h.Source.Addr(), h.Destination.Addr(), h.Source.Port(), h.Destination.Port())
}

// appendV2 encodes h as a version 2 header without TLVs.
func appendV2(b []byte, h Header) []byte {
	b = append(b, v2Signature...)
	if h.Local {
		return append(b, 0x20, 0, 0, 0)
	}
	fam, n := byte(0x11), 12
	if h.Source.Addr().Is6() {
		fam, n = 0x21, 36
	}
	b = append(b, 0x21, fam, 0, byte(n))
	b = append(b, h.Source.Addr().AsSlice()...)
	b = append(b, h.Destination.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, h.Source.Port()), h.Destination.Port())
}

// FuzzParse: whatever the bytes, Read consumes at most the header's
// bounds and never a byte past what it reports; a version 1 IPv4 header
// it accepts is exactly what a sender would write for its addresses, and a
// header of either version encodes and parses back to itself.
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 51000 8443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4, tlv(0xea, "\x01vpce-1"))...)))
	f.Add(withLen(v2(cat([]byte{0x21, 0x21, 0, 0}, inet6)...)))
	f.Add(v2(0x20, 0x00, 0, 0))
	f.Add([]byte(after))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		h, err := Read(br)
		if err != nil {
			if h != (Header{}) {
				t.Fatalf("Read(%q) failed (%v) but returned %+v", data, err, h)
			}
			return
		}
		if h.Len > len(data) || h.Version == 1 && h.Len > MaxV1Len || h.Len > MaxV2Len {
			t.Fatalf("Read(%q) = %+v: longer than the input or the bounds", data, h)
		}
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(rest, data[h.Len:]) {
			t.Fatalf("Read(%q) reports %d bytes but left %q", data, h.Len, rest)
		}
		if h.Local != !h.Source.IsValid() || h.Source.IsValid() != h.Destination.IsValid() {
			t.Fatalf("Read(%q) = %+v: addresses and Local disagree", data, h)
		}
		if h.Version == 1 && !h.Local && h.Source.Addr().Is4() { // IPv6 has many spellings
			if enc := appendV1(nil, h); !bytes.Equal(enc, data[:h.Len]) {
				t.Fatalf("Read accepted %q, which a sender would write %q", data[:h.Len], enc)
			}
		}
		for _, enc := range [][]byte{appendV1(nil, h), appendV2(nil, h)} {
			back, err := Read(bufio.NewReader(bytes.NewReader(enc)))
			back.Version, back.Len = h.Version, h.Len
			if err != nil || back != h {
				t.Fatalf("%+v encoded as %q parses as %+v, %v", h, enc, back, err)
			}
		}
	})
}
