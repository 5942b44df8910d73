package httpcache

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVaryFields(t *testing.T) {
	tests := []struct {
		name   string
		h      http.Header
		fields []string
		star   bool
	}{
		{"RFC 9110 §12.5.5 absent", hdr(), nil, false},
		{"RFC 9110 §12.5.5 empty", hdr("Vary", ""), nil, false},
		{"RFC 9110 §12.5.5 one field", hdr("Vary", "accept-encoding"), []string{"Accept-Encoding"}, false},
		{"RFC 9110 §12.5.5 duplicates and case", hdr("Vary", "Accept-Encoding, accept-encoding", "Vary", "ACCEPT-LANGUAGE,Accept-Encoding"), []string{"Accept-Encoding", "Accept-Language"}, false},
		{"RFC 9110 §12.5.5 sorted", hdr("Vary", "Origin, Accept, Cookie"), []string{"Accept", "Cookie", "Origin"}, false},
		{"RFC 9110 §12.5.5 star", hdr("Vary", "*"), nil, true},
		{"RFC 9110 §12.5.5 star among fields", hdr("Vary", "Accept, *"), []string{"Accept"}, true},
		{"RFC 9110 §5.6.1 empty elements and OWS", hdr("Vary", " , Accept ,, \tOrigin\t,"), []string{"Accept", "Origin"}, false},
		{"RFC 9110 §5.6.2 invalid names skipped", hdr("Vary", "Accept Language, X@Y, Origin"), []string{"Origin"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, star := VaryFields(tt.h)
			if diff := cmp.Diff(tt.fields, fields); diff != "" || star != tt.star {
				t.Errorf("VaryFields(%v) = %q, %v; want %q, %v", tt.h, fields, star, tt.fields, tt.star)
			}
		})
	}
}

func TestAppendSecondaryKey(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		req    http.Header
		want   string
	}{
		{"§4.1 no fields", nil, hdr("Accept", "x"), ""},
		{"§4.1 absent field", []string{"Origin"}, hdr(), "Origin\x01\x00"},
		{"§4.1 empty field differs from absent", []string{"Origin"}, hdr("Origin", ""), "Origin=\x00"},
		{"§4.1 whitespace normalized", []string{"Accept-Language"}, hdr("Accept-Language", " en-US ,en;q=0.9\t"), "Accept-Language=en-US, en;q=0.9\x00"},
		{"§4.1 field lines combined", []string{"Accept-Language"}, hdr("Accept-Language", "en-US", "Accept-Language", "en;q=0.9"), "Accept-Language=en-US, en;q=0.9\x00"},
		{"§4.1 empty members dropped", []string{"Accept"}, hdr("Accept", "a,,b, ,"), "Accept=a, b\x00"},
		{"§4.1 quoted commas kept", []string{"X-A"}, hdr("X-A", `"a,b", c`), "X-A=\"a,b\", c\x00"},
		{"§4.1 Accept-Encoding normalized", []string{"Accept-Encoding"}, hdr("Accept-Encoding", "gzip, deflate, br"), "Accept-Encoding=br, gzip\x00"},
		{"§4.1 Accept-Encoding present but nothing kept", []string{"Accept-Encoding"}, hdr("Accept-Encoding", "identity"), "Accept-Encoding=\x00"},
		{"§4.1 several fields in order", []string{"Accept-Encoding", "Origin"}, hdr("Origin", "https://a.example"), "Accept-Encoding\x01\x00Origin=https://a.example\x00"},
		{"§4.1 separator bytes escaped", []string{"X-A"}, hdr("X-A", "a\x00b\x01c\x02"), "X-A=a\x020b\x021c\x022\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendSecondaryKey([]byte("prefix:"), tt.fields, tt.req))
			if want := "prefix:" + tt.want; got != want {
				t.Errorf("AppendSecondaryKey = %q, want %q", got, want)
			}
		})
	}
}

// TestAppendSecondaryKeyEquivalence checks which requests select the same
// variant (RFC 9111 §4.1).
func TestAppendSecondaryKeyEquivalence(t *testing.T) {
	fields := []string{"Accept-Encoding", "Accept-Language", "X-Device"}
	tests := []struct {
		name string
		a, b http.Header
		same bool
	}{
		{"§4.1 OWS differences match", hdr("Accept-Language", "en,fr"), hdr("Accept-Language", "en , fr"), true},
		{"§4.1 split lines match the combined line", hdr("Accept-Language", "en", "Accept-Language", "fr"), hdr("Accept-Language", "en, fr"), true},
		{"§4.1 order matters", hdr("Accept-Language", "en, fr"), hdr("Accept-Language", "fr, en"), false},
		{"§4.1 absent and empty differ", hdr(), hdr("X-Device", ""), false},
		{"§4.1 equivalent Accept-Encoding match", hdr("Accept-Encoding", "gzip, deflate, br"), hdr("Accept-Encoding", "br;q=0.9, x-gzip"), true},
		{"§4.1 value cannot forge the next field", hdr("Accept-Language", "en\x00X-Device=a"), hdr("Accept-Language", "en", "X-Device", "a"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := string(AppendSecondaryKey(nil, fields, tt.a))
			kb := string(AppendSecondaryKey(nil, fields, tt.b))
			if (ka == kb) != tt.same {
				t.Errorf("keys %q and %q: same = %v, want %v", ka, kb, ka == kb, tt.same)
			}
		})
	}
}

func TestNormalizeAcceptEncoding(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"absent", nil, ""},
		{"empty", []string{""}, ""},
		{"Chrome", []string{"gzip, deflate, br, zstd"}, "br, gzip, zstd"},
		{"Firefox", []string{"gzip, deflate, br"}, "br, gzip"},
		{"curl", []string{"deflate, gzip"}, "gzip"},
		{"identity only", []string{"identity"}, ""},
		{"RFC 9110 §8.4.1.3 x-gzip is gzip", []string{"x-gzip"}, "gzip"},
		{"RFC 9110 §12.5.3 case-insensitive", []string{"GZIP, Br, ZSTD"}, "br, gzip, zstd"},
		{"RFC 9110 §12.5.3 several lines", []string{"gzip", "br"}, "br, gzip"},
		{"RFC 9110 §12.4.2 q-values", []string{"br;q=1.0, gzip;q=0.8, zstd;q=0.001"}, "br, gzip, zstd"},
		{"RFC 9110 §12.4.2 q=0 excludes", []string{"br;q=0, gzip"}, "gzip"},
		{"RFC 9110 §12.4.2 q=0.000 excludes", []string{"gzip;q=0.000, br"}, "br"},
		{"RFC 9110 §12.4.2 Q is case-insensitive", []string{"gzip;Q=0"}, ""},
		{"RFC 9110 §12.4.2 OWS around parameters", []string{"gzip ; q=0.5 , br ;q=0"}, "gzip"},
		{"RFC 9110 §12.4.2 exclusion wins over acceptance", []string{"gzip, gzip;q=0"}, ""},
		{"RFC 9110 §12.5.3 star adds all", []string{"*"}, "br, gzip, zstd"},
		{"RFC 9110 §12.5.3 star with exclusion", []string{"*, br;q=0"}, "gzip, zstd"},
		{"RFC 9110 §12.5.3 star;q=0 adds nothing", []string{"*;q=0"}, ""},
		{"RFC 9110 §12.5.3 star;q=0 with explicit coding", []string{"gzip, *;q=0"}, "gzip"},
		{"RFC 9110 §12.4.2 invalid q ignored", []string{"gzip;q=abc, br;q=2, zstd;q=1.5"}, ""},
		{"RFC 9110 §12.4.2 invalid q with too many digits", []string{"gzip;q=0.5000"}, ""},
		{"RFC 9110 §12.4.2 other parameters ignored", []string{"gzip;level=9;q=0.5"}, "gzip"},
		{"garbage", []string{"\x00\xff, ;;;, ====, gzip br"}, ""},
		{"unknown codings", []string{"compress, deflate, sdch, xz"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeAcceptEncoding(tt.values); got != tt.want {
				t.Errorf("NormalizeAcceptEncoding(%q) = %q, want %q", tt.values, got, tt.want)
			}
		})
	}
}

func TestAcceptEncodingWeights(t *testing.T) {
	type w = EncodingWeights
	tests := []struct {
		name string
		in   []string
		want w
	}{
		{"RFC 9110 §12.5.3 absent: identity only", nil, w{Identity: 1000}},
		{"RFC 9110 §12.5.3 empty: identity only", []string{""}, w{Identity: 1000}},
		{"RFC 9110 §12.5.3 browser", []string{"gzip, deflate, br, zstd"}, w{Br: 1000, Gzip: 1000, Zstd: 1000, Identity: 1000}},
		{"RFC 9110 §12.4.2 weights", []string{"br;q=0.5, gzip;q=0.8"}, w{Br: 500, Gzip: 800, Identity: 1000}},
		{"RFC 9110 §12.4.2 q=0 refuses", []string{"gzip;q=0, br"}, w{Br: 1000, Identity: 1000}},
		{"RFC 9110 §12.4.2 an exclusion wins", []string{"gzip", "gzip;q=0"}, w{Identity: 1000}},
		{"RFC 9110 §12.5.3 * covers what is not listed", []string{"br;q=0.2, *;q=0.5"}, w{Br: 200, Gzip: 500, Zstd: 500, Identity: 500}},
		{"RFC 9110 §12.5.3 *;q=0 refuses identity", []string{"*;q=0, gzip"}, w{Gzip: 1000}},
		{"RFC 9110 §12.5.3 identity;q=0", []string{"gzip, identity;q=0"}, w{Gzip: 1000, IdentityListed: true}},
		{"RFC 9110 §12.5.3 identity listed", []string{"identity;q=1, gzip;q=0.5"}, w{Gzip: 500, Identity: 1000, IdentityListed: true}},
		{"RFC 9110 §8.4.1.3 x-gzip is gzip", []string{"X-GZIP;Q=0.7"}, w{Gzip: 700, Identity: 1000}},
		{"RFC 9110 §12.4.2 invalid qvalue ignored", []string{"gzip;q=1.5, br;q=abc, zstd;q=0.001"}, w{Zstd: 1, Identity: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, AcceptEncodingWeights(tt.in)); diff != "" {
				t.Errorf("AcceptEncodingWeights(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
	in := []string{"gzip;q=0.8, deflate, br;q=0.9, zstd, identity;q=0.1"}
	if n := testing.AllocsPerRun(100, func() { AcceptEncodingWeights(in) }); n != 0 {
		t.Errorf("AcceptEncodingWeights allocates %v times", n)
	}
}
