package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestChunkedReaderReturnsDataAsItArrives: a read returns the data that
// arrived without waiting for the rest of the chunk or the next chunk's
// line, and io.EOF comes only with the end of the trailer section.
func TestChunkedReaderReturnsDataAsItArrives(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	var cr chunkedReader
	cr.reset(bufio.NewReader(pr), 1024)
	type result struct {
		s   string
		err error
	}
	reads := make(chan result)
	go func() {
		defer close(reads)
		buf := make([]byte, 64)
		for {
			n, err := cr.Read(buf)
			reads <- result{string(buf[:n]), err}
			if err != nil {
				return
			}
		}
	}()
	next := func(send, want string, wantErr error) {
		t.Helper()
		if send != "" {
			go io.WriteString(pw, send)
		}
		select {
		case r := <-reads:
			if r.s != want || r.err != wantErr {
				t.Fatalf("after %q: read %q, %v; want %q, %v", send, r.s, r.err, want, wantErr)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("after %q: the read waits for more", send)
		}
	}
	next("a\r\nhello", "hello", nil)          // half a chunk
	next("world\r\n", "world", nil)           // its rest, without the next line
	next("3;x=y\r\nabc\r\n0\r\n", "abc", nil) // a chunk, then the last chunk's line
	next("T: v\r\n\r\n", "", io.EOF)          // the trailer section ends the body
	pw.Close()
}

// TestChunkedReaderDoesNotAllocate: decoding, trailer included, works in
// the read buffer.
func TestChunkedReaderDoesNotAllocate(t *testing.T) {
	const body = "5\r\nhello\r\n3;x=\"y\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0;z\r\nT: v\r\nU: w\r\n\r\n"
	r := strings.NewReader(body)
	br := bufio.NewReaderSize(r, 16) // lines split across refills
	buf := make([]byte, 7)
	var cr chunkedReader
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		br.Reset(r)
		cr.reset(br, 1024)
		for {
			_, err := cr.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding a chunked body allocates %v times", allocs)
	}
}

// fuzzMaxTrailer is the trailer bound of FuzzChunkedReader: small, so
// the fuzzer reaches it.
const fuzzMaxTrailer = 256

// FuzzChunkedReader holds the decoder alone to refChunkedBody, once with
// the connection's read buffer and large reads, once with a 16-byte
// buffer refilled a byte at a time and 7-byte reads, so that lines and
// CRLFs are split across refills.
func FuzzChunkedReader(f *testing.F) {
	for _, s := range []string{"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "1;a=\"\\\"\"\r\nx\r\n0\r\nT: v\r\n\r\n"} {
		f.Add([]byte(s))
	}
	for _, c := range bodyRules {
		if s, ok := strings.CutPrefix(c.raw, chunkedPost); ok {
			f.Add([]byte(s))
		}
	}
	for _, c := range acceptedRules {
		if s, ok := strings.CutPrefix(c.raw, chunkedPost); ok {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, wantOK := refChunkedBody(string(raw), fuzzMaxTrailer)
		for _, cfg := range []struct {
			name    string
			r       io.Reader
			bufSize int
			readLen int
		}{
			{"4 KiB buffer", strings.NewReader(string(raw)), 4 << 10, 32 << 10},
			{"trickled into 16 bytes", iotest.OneByteReader(strings.NewReader(string(raw))), 16, 7},
		} {
			var cr chunkedReader
			cr.reset(bufio.NewReaderSize(cfg.r, cfg.bufSize), fuzzMaxTrailer)
			var got []byte
			buf := make([]byte, cfg.readLen)
			var err error
			for err == nil {
				var n int
				n, err = cr.Read(buf)
				got = append(got, buf[:n]...)
			}
			if string(got) != want {
				t.Fatalf("%s: %q decodes to %q (%v), the reference %q (ok=%v)", cfg.name, raw, got, err, want, wantOK)
			}
			var be *BodyError
			switch {
			case wantOK && err != io.EOF:
				t.Fatalf("%s: %q fails with %v; the reference takes it", cfg.name, raw, err)
			case !wantOK && !errors.As(err, &be):
				t.Fatalf("%s: %q ends with %v; the reference refuses it", cfg.name, raw, err)
			case !wantOK && be.HTTPStatus() != 400:
				t.Fatalf("%s: %q fails with status %d: %v", cfg.name, raw, be.HTTPStatus(), err)
			}
		}
	})
}
