package compress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Decode decodes b from coding e, as a client would.
func decode(t testing.TB, e Encoding, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch e {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", e, err)
	}
	return out
}

// page returns n bytes of HTML-like text: markup repeats, the words and
// numbers in it vary, as in a product listing.
func page(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over lazy dog cache edge origin purge stale fresh price shipping review stock colour size")
	var b bytes.Buffer
	b.WriteString("<!doctype html><html><head><title>Products</title></head><body><ul class=\"products\">\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li class=\"product\" data-id=\"%d\"><a href=\"/p/%d\">", rng.IntN(1e6), rng.IntN(1e6))
		for range 3 + rng.IntN(6) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "</a><span class=\"price\">%d.%02d</span></li>\n", rng.IntN(500), rng.IntN(100))
	}
	return b.Bytes()[:n]
}

func TestEncodeRoundTrips(t *testing.T) {
	src := page(64 << 10)
	for e := range NumEncodings {
		for l := range numLevels {
			t.Run(fmt.Sprintf("%s/%d", e, l), func(t *testing.T) {
				out, err := Encode(e, l, src)
				if err != nil {
					t.Fatal(err)
				}
				if len(out) >= len(src)/2 {
					t.Errorf("%d bytes from %d: not compressed", len(out), len(src))
				}
				if got := decode(t, e, out); !bytes.Equal(got, src) {
					t.Fatalf("round trip differs (%d bytes back)", len(got))
				}
				// Pooled writers start clean.
				again, _ := Encode(e, l, src)
				if !bytes.Equal(again, out) {
					t.Error("a second encoding differs from the first")
				}
			})
		}
	}
}

func mustPolicy(t *testing.T, o Options) *Policy {
	t.Helper()
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChoose(t *testing.T) {
	all := mustPolicy(t, Options{Encodings: []string{"br", "zstd", "gzip"}})
	gzipFirst := mustPolicy(t, Options{Encodings: []string{"gzip", "br"}})
	tests := []struct {
		name   string
		p      *Policy
		accept []string
		want   Encoding
	}{
		{"RFC 9110 §12.5.3 no field: identity", all, nil, Identity},
		{"RFC 9110 §12.5.3 empty field: identity", all, []string{""}, Identity},
		{"browser: the server's first", all, []string{"gzip, deflate, br, zstd"}, Brotli},
		{"ties follow the server's order", gzipFirst, []string{"br, gzip"}, Gzip},
		{"RFC 9110 §12.4.2 the highest weight wins", all, []string{"br;q=0.5, gzip;q=0.9, zstd;q=0.7"}, Gzip},
		{"RFC 9110 §12.4.2 q=0 refuses", all, []string{"br;q=0, gzip"}, Gzip},
		{"not offered", gzipFirst, []string{"zstd"}, Identity},
		{"RFC 9110 §12.5.3 *", all, []string{"*"}, Brotli},
		{"RFC 9110 §12.5.3 * with exclusions", all, []string{"*, br;q=0, zstd;q=0"}, Gzip},
		{"RFC 9110 §12.5.3 *;q=0 and nothing else: identity all the same", all, []string{"*;q=0"}, Identity},
		{"RFC 9110 §12.5.3 identity;q=0 with gzip", all, []string{"identity;q=0, gzip"}, Gzip},
		{"identity preferred outright", all, []string{"identity, gzip;q=0.5"}, Identity},
		{"identity listed lower", all, []string{"identity;q=0.1, gzip;q=0.5"}, Gzip},
		{"RFC 9110 §8.4.1.3 x-gzip", all, []string{"x-gzip"}, Gzip},
		{"unknown codings only", all, []string{"deflate, compress"}, Identity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Choose(tt.accept); got != tt.want {
				t.Errorf("Choose(%q) = %s, want %s", tt.accept, got, tt.want)
			}
		})
	}
	in := []string{"gzip, deflate, br, zstd"}
	if n := testing.AllocsPerRun(100, func() { all.Choose(in) }); n != 0 {
		t.Errorf("Choose allocates %v times", n)
	}
}

func TestCompressible(t *testing.T) {
	p := mustPolicy(t, Options{Encodings: []string{"gzip"}, Types: []string{"text/*", "application/json", "Image/SVG+xml"}, MinSize: 1024, MaxSize: 1 << 20})
	tests := []struct {
		name   string
		status int
		size   int64
		ct     string
		ce, cc []string
		want   bool
	}{
		{"html", 200, 4096, "text/html; charset=utf-8", nil, nil, true},
		{"json", 200, 4096, "application/json", nil, []string{"public, max-age=60"}, true},
		{"case-insensitive types", 200, 4096, "IMAGE/svg+XML", nil, nil, true},
		{"type/* needs a subtype", 200, 4096, "text/", nil, nil, false},
		{"not listed", 200, 4096, "image/png", nil, nil, false},
		{"no Content-Type", 200, 4096, "", nil, nil, false},
		{"RFC 9110 §15.3.7 only 200", 206, 4096, "text/html", nil, nil, false},
		{"too small", 200, 1023, "text/html", nil, nil, false},
		{"smallest", 200, 1024, "text/html", nil, nil, true},
		{"largest", 200, 1 << 20, "text/html", nil, nil, true},
		{"too large", 200, 1<<20 + 1, "text/html", nil, nil, false},
		{"RFC 9110 §8.4 already encoded", 200, 4096, "text/html", []string{"gzip"}, nil, false},
		{"RFC 9110 §8.4 identity is no coding", 200, 4096, "text/html", []string{"identity"}, nil, true},
		{"RFC 9111 §5.2.2.6 no-transform", 200, 4096, "text/html", nil, []string{"max-age=60, no-transform"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Compressible(tt.status, tt.size, tt.ct, tt.ce, tt.cc); got != tt.want {
				t.Errorf("Compressible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewPolicyRefuses(t *testing.T) {
	for _, o := range []Options{
		{Encodings: []string{"brotli"}},
		{Level: "max"},
		{Types: []string{"text"}},
		{Types: []string{"*/*"}},
		{Types: []string{"text/html; charset=utf-8"}},
	} {
		if _, err := NewPolicy(o); err == nil {
			t.Errorf("NewPolicy(%+v) accepted", o)
		}
	}
}

// BenchmarkCompress measures each encoder at each level on a 64 KiB HTML
// page, reporting the ratio (encoded/original) beside MB/s.
func BenchmarkCompressGzip(b *testing.B)   { benchEncode(b, Gzip) }
func BenchmarkCompressBrotli(b *testing.B) { benchEncode(b, Brotli) }
func BenchmarkCompressZstd(b *testing.B)   { benchEncode(b, Zstd) }

func benchEncode(b *testing.B, e Encoding) {
	src := page(64 << 10)
	for _, l := range []struct {
		name  string
		level Level
	}{{"default", LevelDefault}, {"fast", LevelFast}, {"best", LevelBest}} {
		b.Run(l.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				var err error
				if out, err = Encode(e, l.level, src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out))/float64(len(src)), "ratio")
		})
	}
}
