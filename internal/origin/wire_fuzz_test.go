package origin

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
)

// scanResult is what a scanner made of some bytes.
type scanResult struct {
	refusedAt int    // the offset of the refused byte, or -1
	reason    string // why
	state     uint8  // at the end
	// end is the offset where the first exchange ended, or -1; only
	// when scanned one byte at a time.
	end int
}

// scanBytes scans data in reads cut by cut (nil: one byte at a time), as
// the response to a HEAD request if head, with the head limit maxHead.
func scanBytes(data []byte, head bool, maxHead int64, cut func(rest int) int) scanResult {
	var hint atomic.Bool
	hint.Store(head)
	s := scanner{maxHead: maxHead, hint: &hint}
	r := scanResult{refusedAt: -1, end: -1}
	for off := 0; off < len(data); {
		n := 1
		if cut != nil {
			n = cut(len(data) - off)
		}
		k, m := s.scan(data[off : off+n])
		if m != nil {
			r.refusedAt, r.reason = off+k, m.Error()
			break
		}
		off += n
		if cut == nil && s.state == stIdle && r.end < 0 {
			r.end = off
		}
	}
	r.state = s.state
	return r
}

// splitter returns a cut function drawing read sizes from seed.
func splitter(seed uint64) func(int) int {
	rng := rand.New(rand.NewPCG(seed, seed>>32))
	return func(rest int) int { return 1 + rng.IntN(min(rest, 64)) }
}

// goFrames reads data as net/http's client does (1xx responses skipped)
// and returns the offset where the first final response ends.
func goFrames(data []byte, head bool) (int, error) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	req, _ := http.NewRequest(method, "http://example.com/", nil)
	src := bytes.NewReader(data)
	br := bufio.NewReaderSize(src, 4<<10) // the Transport's read buffer
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return 0, fmt.Errorf("head: %w", err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != 101 {
			continue
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return 0, fmt.Errorf("body: %w", err)
		}
		return len(data) - src.Len() - br.Buffered(), nil
	}
}

// FuzzScanner feeds arbitrary bytes to the scanner: it never panics,
// its verdict does not depend on how the bytes are cut into reads, and a
// response it accepts whole is one net/http frames exactly as it does
// (same end, no error), so the two can never disagree on where a
// response ends.
func FuzzScanner(f *testing.F) {
	for _, seed := range []string{
		okAnswer,
		okAnswer + okAnswer,
		chunkedHead + "5;a=b\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200\r\n\r\nuntil close",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n\x00\x01",
	} {
		f.Add([]byte(seed), false, uint64(1))
		f.Add([]byte(seed), true, uint64(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool, seed uint64) {
		const maxHead = 4 << 10
		whole := scanBytes(data, head, maxHead, nil)
		split := scanBytes(data, head, maxHead, splitter(seed))
		if split.end = whole.end; whole != split {
			t.Fatalf("verdicts differ with the cuts:\n whole %+v\n split %+v", whole, split)
		}
		if whole.refusedAt >= 0 || whole.state == stUntracked {
			return // refused, or not ours to judge
		}
		end := whole.end
		if end < 0 && whole.state == stBodyClose {
			end = len(data)
		} else if end < 0 {
			return // incomplete
		}
		got, err := goFrames(data, head)
		if err != nil {
			t.Fatalf("the scanner accepts the response ending at %d; net/http refuses it: %v\n%q", end, err, data)
		}
		if got != end {
			t.Fatalf("the scanner ends the response at %d, net/http at %d\n%q", end, got, data)
		}
	})
}

// generated is a strict response made up from fuzz bytes, with where
// its framing is, for mutations.
type generated struct {
	b       []byte
	head    bool  // answers a HEAD request
	crlfs   []int // the CR of every CRLF that ends a framing line
	fields  [][2]int
	codeAt  int   // the first digit of the final status code
	sizes   []int // the first digit of each chunk size
	headEnd int   // where the final head's empty line starts
	framing string
}

// gen draws choices from fuzz bytes, zero once they run out.
type gen struct{ data []byte }

func (g *gen) next() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) intn(n int) int { return int(g.next()) % n }

func (g *gen) from(alphabet string, min, max int) string {
	n := min + g.intn(max-min+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.intn(len(alphabet))]
	}
	return string(b)
}

const (
	tokenChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
	valueChars  = "abcXYZ019 \t\"(),/:;<=>?@[\\]{}~\x80\xc3\xa9\xff"
	reasonChars = "abcdefghiKLMNOP 019\t.-\x80\xfe"
)

func (r *generated) line(s string) {
	r.b = append(r.b, s...)
	r.crlfs = append(r.crlfs, len(r.b))
	r.b = append(r.b, "\r\n"...)
}

func (r *generated) fieldLines(g *gen, extra ...string) {
	for range g.intn(5) {
		r.field(g.from(tokenChars, 1, 8), g.from(valueChars, 0, 12))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		r.field(extra[i], extra[i+1])
	}
}

func (r *generated) field(name, value string) {
	colon := len(r.b) + len(name)
	r.line(name + ":" + value)
	r.fields = append(r.fields, [2]int{colon, len(r.b) - 2})
}

// generate makes a strict response from data.
func generate(data []byte) *generated {
	g := &gen{data: data}
	r := &generated{head: g.intn(4) == 0}
	if g.intn(3) == 0 {
		code := []int{100, 102, 103}[g.intn(3)]
		r.line("HTTP/1.1 " + strconv.Itoa(code) + " " + g.from(reasonChars, 0, 8))
		r.fieldLines(g)
		r.line("")
	}
	http10 := g.intn(5) == 0
	version := "HTTP/1.1 "
	if http10 {
		version = "HTTP/1.0 "
	}
	code := []int{200, 201, 204, 206, 304, 404, 500, 599}[g.intn(8)]
	r.codeAt = len(r.b) + len(version)
	if g.intn(4) == 0 {
		r.line(version + strconv.Itoa(code)) // no reason phrase
	} else {
		r.line(version + strconv.Itoa(code) + " " + g.from(reasonChars, 0, 12))
	}
	bodyless := r.head || code == 204 || code == 304
	choice := g.intn(3)
	n := g.intn(150)
	body := g.from("abc\r\n0", n, n)
	switch {
	case choice == 0 || (choice == 1 && http10):
		r.framing = "length"
		r.fieldLines(g, "Content-Length", " "+strconv.Itoa(len(body))+"\t")
		r.headEnd = len(r.b)
		r.line("")
		if !bodyless {
			r.b = append(r.b, body...)
		}
	case choice == 1:
		r.framing = "chunked"
		r.fieldLines(g, "Transfer-Encoding", "chunKed")
		r.headEnd = len(r.b)
		r.line("")
		if bodyless {
			break
		}
		for len(body) > 0 {
			n := 1 + g.intn(min(len(body), 60))
			r.sizes = append(r.sizes, len(r.b))
			ext := ""
			if g.intn(3) == 0 {
				ext = ";" + g.from(tokenChars, 1, 4) + "=" + g.from(tokenChars, 1, 4)
			}
			r.line(strconv.FormatInt(int64(n), 16) + ext)
			r.b = append(r.b, body[:n]...)
			body = body[n:]
			r.line("")
		}
		r.line("0")
		r.fieldLines(g)
		r.line("")
	default:
		r.framing = "close"
		r.fieldLines(g)
		r.headEnd = len(r.b)
		r.line("")
		if !bodyless {
			r.b = append(r.b, body...)
		} else {
			r.framing = "none"
		}
	}
	return r
}

// insert returns b with s inserted at i.
func insert(b []byte, i int, s string) []byte {
	return append(append(append([]byte(nil), b[:i]...), s...), b[i:]...)
}

// FuzzScannerMutations checks the scanner against the generator of
// strict responses: each generated response is accepted, whole, and
// framed the same by net/http; then one mutation known to break the
// framing (a bare LF, whitespace before a colon, obs-fold, a control
// byte, a second framing field, a bad status code or chunk size) must be
// refused, however the bytes are cut.
func FuzzScannerMutations(f *testing.F) {
	f.Add([]byte{}, byte(0), uint16(0), uint64(0))
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"), byte(1), uint16(3), uint64(5))
	f.Add([]byte("\x00\x01\x01\x01\x05\x06\x07\x08\x09\x0a\x0b\x0c"), byte(6), uint16(9), uint64(2))
	f.Fuzz(func(t *testing.T, data []byte, mutation byte, where uint16, seed uint64) {
		r := generate(data)
		good := scanBytes(r.b, r.head, 1<<20, nil)
		if good.refusedAt >= 0 {
			t.Fatalf("strict response refused: %s at %d\n%q", good.reason, good.refusedAt, r.b)
		}
		end := good.end
		if end < 0 && good.state == stBodyClose {
			end = len(r.b)
		}
		if end != len(r.b) {
			t.Fatalf("strict %s response ends at %d of %d (state %d)\n%q", r.framing, end, len(r.b), good.state, r.b)
		}
		if got, err := goFrames(r.b, r.head); err != nil || got != end {
			t.Fatalf("net/http frames the strict response to %d, %v; want %d\n%q", got, err, end, r.b)
		}

		pick := func(n int) int { return int(where) % n }
		var bad []byte
		switch mutation % 8 {
		case 0: // RFC 9112 §2.2: a bare LF
			cr := r.crlfs[pick(len(r.crlfs))]
			bad = append(append([]byte(nil), r.b[:cr]...), r.b[cr+1:]...)
		case 1: // §5.1: whitespace before the colon
			if len(r.fields) == 0 {
				return
			}
			bad = insert(r.b, r.fields[pick(len(r.fields))][0], " ")
		case 2: // §5.2: obs-fold
			if len(r.fields) == 0 {
				return
			}
			bad = insert(r.b, r.fields[pick(len(r.fields))][1], "\r\n\tfolded")
		case 3: // RFC 9110 §5.5: a control byte in a value
			if len(r.fields) == 0 {
				return
			}
			fl := r.fields[pick(len(r.fields))]
			ctl := "\x00\x01\x08\x0b\x0c\x1f\x7f"[int(seed%7) : int(seed%7)+1]
			bad = insert(r.b, fl[0]+1+int(seed>>8)%(fl[1]-fl[0]), ctl)
		case 4: // §6.3: a second Content-Length, even an equal one
			if r.framing != "length" {
				return
			}
			bad = insert(r.b, r.headEnd, "Content-Length: 0\r\n")
		case 5: // §6.1: Transfer-Encoding with Content-Length
			switch r.framing {
			case "length":
				bad = insert(r.b, r.headEnd, "Transfer-Encoding: chunked\r\n")
			case "chunked":
				bad = insert(r.b, r.headEnd, "Content-Length: 5\r\n")
			default:
				return
			}
		case 6: // §4: a status code out of 100-599
			bad = append([]byte(nil), r.b...)
			bad[r.codeAt] = "06+x"[pick(4)]
		case 7: // §7.1: a chunk size that is not hex
			if len(r.sizes) == 0 {
				return
			}
			bad = append([]byte(nil), r.b...)
			bad[r.sizes[pick(len(r.sizes))]] = "gG- ;"[int(seed%5)]
		}
		if v := scanBytes(bad, r.head, 1<<20, splitter(seed)); v.refusedAt < 0 {
			t.Fatalf("mutation %d of a %s response accepted (state %d)\n%q\n%q", mutation%8, r.framing, v.state, r.b, bad)
		}
	})
}
