package h1

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"strconv"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

const (
	// maxChunkLine bounds a chunk-size line, its extensions and CRLF
	// included.
	maxChunkLine = 4 << 10
	// maxChunkDigits bounds a chunk-size: 16 hex digits hold any int64.
	maxChunkDigits = 16
	// maxChunkExcess bounds how far the bytes of chunk-size lines may run
	// ahead of the data they frame; see chunkedReader.excess.
	maxChunkExcess = 16 << 10
)

// chunkPhase is where a chunkedReader is in the body.
type chunkPhase uint8

const (
	phaseSize    chunkPhase = iota // before a chunk-size line
	phaseData                      // inside chunk data
	phaseDataEnd                   // before the CRLF that ends chunk data
	phaseTrailer                   // inside the trailer section
	phaseDone                      // after the trailer section's empty line
)

// chunkedReader decodes a chunked request body (RFC 9112 §7.1) from the
// connection's read buffer, strictly: every line ends in CRLF, a
// chunk-size is 1 to 16 hex digits and fits an int64, chunk extensions
// follow the RFC's grammar and are discarded, chunk data is followed by
// exactly CRLF, and the trailer section's fields are checked like header
// fields and discarded. Anything else fails the read with a *BodyError.
//
// It works on the bufio.Reader's buffer in place: a connection reuses
// one chunkedReader (in its body) for every request, and decoding
// allocates nothing but the error that ends a malformed body.
type chunkedReader struct {
	br *bufio.Reader
	// maxTrailer bounds the bytes of the trailer section's field lines.
	maxTrailer int
	phase      chunkPhase
	// left is the data of the current chunk not yet read.
	left int64
	// excess is how far the bytes of chunk-size lines are ahead of an
	// allowance of 16 bytes per chunk plus twice the chunk's data, as in
	// net/http's chunked reader: one-byte chunks ("1\r\nX\r\n") stay
	// within it, one-byte chunks with long extensions do not.
	excess int64
	// trailerBytes and trailerLines count the trailer's field lines.
	trailerBytes, trailerLines int
	err                        error
}

func (cr *chunkedReader) reset(br *bufio.Reader, maxTrailer int) {
	*cr = chunkedReader{br: br, maxTrailer: maxTrailer}
}

// Read returns chunk data as it arrives: once it holds some, it stops
// before anything that would wait for more bytes from the client. It
// returns io.EOF only after the last chunk and a valid trailer section.
func (cr *chunkedReader) Read(p []byte) (n int, err error) {
	for cr.err == nil {
		switch cr.phase {
		case phaseSize:
			if n > 0 && !cr.lineBuffered() {
				return n, nil
			}
			cr.err = cr.readSizeLine()
		case phaseData:
			if len(p) == 0 {
				return n, nil
			}
			if n > 0 && cr.br.Buffered() == 0 {
				return n, nil
			}
			m := len(p)
			if int64(m) > cr.left {
				m = int(cr.left)
			}
			k, rerr := cr.br.Read(p[:m])
			n += k
			p = p[k:]
			if cr.left -= int64(k); cr.left == 0 {
				cr.phase = phaseDataEnd
			}
			if rerr != nil {
				cr.err = ioBodyError(rerr, "chunk data")
			}
		case phaseDataEnd:
			if n > 0 && cr.br.Buffered() < 2 {
				return n, nil
			}
			cr.err = cr.readDataEnd()
		case phaseTrailer:
			if n > 0 && !cr.lineBuffered() {
				return n, nil
			}
			cr.err = cr.readTrailerLine()
		case phaseDone:
			return n, io.EOF
		}
	}
	return n, cr.err
}

// lineBuffered reports whether a whole line is in the read buffer, so
// reading it does not wait for the client.
func (cr *chunkedReader) lineBuffered() bool {
	b, _ := cr.br.Peek(cr.br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// Chunk-size line states: chunk-size [ chunk-ext ] CRLF, where
// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
// chunk-ext-name = token and chunk-ext-val = token / quoted-string
// (RFC 9112 §7.1, §7.1.1; RFC 9110 §5.6.4 for quoted-string).
const (
	sizeDigits    = iota // in chunk-size
	sizeBWS              // whitespace after the size or a value: ";" follows
	extStart             // after ";": BWS, then a name
	extName              // in a name
	extNameBWS           // whitespace after a name: "=" or ";" follows
	extValStart          // after "=": BWS, then a value
	extValToken          // in a token value
	extQuoted            // in a quoted-string value
	extQuotedPair        // after a backslash in a quoted-string
	extQuotedEnd         // after a quoted-string's closing quote
	sizeLF               // after the CR that ends the line
)

// readSizeLine reads one chunk-size line and moves to the chunk's data,
// or to the trailer section after the last chunk.
func (cr *chunkedReader) readSizeLine() error {
	st := sizeDigits
	var size uint64
	digits, length := 0, 0
	for {
		frag, err := cr.br.ReadSlice('\n')
		for _, c := range frag {
			if length++; length > maxChunkLine {
				return malformedBody("chunk size line longer than " + strconv.Itoa(maxChunkLine) + " bytes")
			}
			if c == '\n' && st != sizeLF {
				return malformedBody("chunk size line ends in a bare LF")
			}
			switch st {
			case sizeDigits:
				if v, ok := hexValue(c); ok {
					if digits++; digits > maxChunkDigits {
						return malformedBody("chunk size longer than 16 hex digits")
					}
					if size = size<<4 | uint64(v); size > math.MaxInt64 {
						return malformedBody("chunk size overflows an int64")
					}
					continue
				}
				if digits == 0 {
					return malformedBody("chunk size line does not start with a hex digit")
				}
				switch c {
				case ';':
					st = extStart
				case ' ', '\t':
					st = sizeBWS
				case '\r':
					st = sizeLF
				default:
					return malformedBody("invalid character in chunk size")
				}
			case sizeBWS:
				switch c {
				case ' ', '\t':
				case ';':
					st = extStart
				default:
					return malformedBody("whitespace in a chunk size line not followed by \";\"")
				}
			case extStart:
				switch {
				case c == ' ' || c == '\t':
				case httpsyntax.IsTchar(c):
					st = extName
				default:
					return malformedBody("chunk extension without a name")
				}
			case extName:
				switch {
				case httpsyntax.IsTchar(c):
				case c == '=':
					st = extValStart
				case c == ';':
					st = extStart
				case c == ' ' || c == '\t':
					st = extNameBWS
				case c == '\r':
					st = sizeLF
				default:
					return malformedBody("invalid character in a chunk extension name")
				}
			case extNameBWS:
				switch c {
				case ' ', '\t':
				case '=':
					st = extValStart
				case ';':
					st = extStart
				default:
					return malformedBody("whitespace after a chunk extension name not followed by \"=\" or \";\"")
				}
			case extValStart:
				switch {
				case c == ' ' || c == '\t':
				case httpsyntax.IsTchar(c):
					st = extValToken
				case c == '"':
					st = extQuoted
				default:
					return malformedBody("chunk extension without a value after \"=\"")
				}
			case extValToken:
				switch {
				case httpsyntax.IsTchar(c):
				case c == ';':
					st = extStart
				case c == ' ' || c == '\t':
					st = sizeBWS
				case c == '\r':
					st = sizeLF
				default:
					return malformedBody("invalid character in a chunk extension value")
				}
			case extQuoted:
				switch {
				case c == '"':
					st = extQuotedEnd
				case c == '\\':
					st = extQuotedPair
				case !qdtext(c):
					return malformedBody("invalid character in a quoted chunk extension value")
				}
			case extQuotedPair:
				if c != '\t' && c != ' ' && (c < 0x21 || c == 0x7f) {
					return malformedBody("invalid character in a quoted chunk extension value")
				}
				st = extQuoted
			case extQuotedEnd:
				switch c {
				case ';':
					st = extStart
				case ' ', '\t':
					st = sizeBWS
				case '\r':
					st = sizeLF
				default:
					return malformedBody("invalid character after a quoted chunk extension value")
				}
			case sizeLF:
				if c != '\n' {
					return malformedBody("CR not followed by LF in a chunk size line")
				}
				return cr.beginChunk(int64(size), length)
			}
		}
		if err != bufio.ErrBufferFull {
			// A nil err means frag ended in '\n', which returned above.
			return ioBodyError(err, "a chunk size line")
		}
	}
}

// beginChunk accounts for a chunk-size line of length bytes announcing
// size bytes of data.
func (cr *chunkedReader) beginChunk(size int64, length int) error {
	cr.excess += int64(length)
	if size >= (math.MaxInt64-16)/2 {
		cr.excess = 0
	} else {
		cr.excess = max(cr.excess-16-2*size, 0)
	}
	if cr.excess > maxChunkExcess {
		return malformedBody("chunk extensions out of proportion to the data (more than " + strconv.Itoa(maxChunkExcess) + " bytes ahead)")
	}
	if size == 0 {
		cr.phase = phaseTrailer
		return nil
	}
	cr.left, cr.phase = size, phaseData
	return nil
}

// readDataEnd reads the CRLF that must follow chunk data.
func (cr *chunkedReader) readDataEnd() error {
	b, err := cr.br.Peek(2)
	switch {
	case len(b) > 0 && b[0] == '\n':
		return malformedBody("chunk data followed by a bare LF")
	case len(b) > 0 && b[0] != '\r':
		return malformedBody("chunk data not followed by CRLF")
	case len(b) > 1 && b[1] != '\n':
		return malformedBody("CR not followed by LF after chunk data")
	case err != nil:
		return ioBodyError(err, "the CRLF after chunk data")
	}
	cr.br.Discard(2)
	cr.phase = phaseSize
	return nil
}

// Trailer line states: field-name ":" OWS field-value OWS CRLF, or the
// CRLF that ends the section (RFC 9112 §7.1.2, §5).
const (
	trailerStart = iota // at the start of a line
	trailerName         // in a field name
	trailerValue        // after the colon
	trailerLF           // after the CR that ends a field line
	trailerEndLF        // after the CR of the empty line
)

// readTrailerLine reads one line of the trailer section and checks it
// like a header field line; the field is discarded.
func (cr *chunkedReader) readTrailerLine() error {
	st := trailerStart
	for {
		frag, err := cr.br.ReadSlice('\n')
		for _, c := range frag {
			emptyLine := st == trailerStart && c == '\r' || st == trailerEndLF
			if !emptyLine {
				if cr.trailerBytes++; cr.trailerBytes > cr.maxTrailer {
					return malformedBody("trailer section larger than " + strconv.Itoa(cr.maxTrailer) + " bytes")
				}
			}
			switch st {
			case trailerStart:
				switch {
				case c == '\r':
					st = trailerEndLF
				case c == '\n':
					return malformedBody("trailer section ends in a bare LF")
				case c == ' ' || c == '\t':
					return malformedBody("obsolete line folding in the trailer section")
				case c == ':':
					return malformedBody("trailer field without a name")
				case httpsyntax.IsTchar(c):
					st = trailerName
				default:
					return malformedBody("invalid character in a trailer field name")
				}
			case trailerName:
				switch {
				case httpsyntax.IsTchar(c):
				case c == ':':
					st = trailerValue
				case c == ' ' || c == '\t':
					return malformedBody("whitespace before the colon of a trailer field")
				case c == '\r' || c == '\n':
					return malformedBody("trailer field line without a colon")
				default:
					return malformedBody("invalid character in a trailer field name")
				}
			case trailerValue:
				switch {
				case c == '\r':
					st = trailerLF
				case c == '\n':
					return malformedBody("trailer field line ends in a bare LF")
				case c < ' ' && c != '\t' || c == 0x7f:
					return malformedBody("invalid character in a trailer field value")
				}
			case trailerLF:
				if c != '\n' {
					return malformedBody("CR not followed by LF in the trailer section")
				}
				if cr.trailerLines++; cr.trailerLines > maxHeaderLines {
					return malformedBody("more than " + strconv.Itoa(maxHeaderLines) + " trailer fields")
				}
				return nil
			case trailerEndLF:
				if c != '\n' {
					return malformedBody("CR not followed by LF in the trailer section")
				}
				cr.phase = phaseDone
				return nil
			}
		}
		if err != bufio.ErrBufferFull {
			return ioBodyError(err, "the trailer section")
		}
	}
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// qdtext reports whether c may appear unescaped in a quoted-string
// (RFC 9110 §5.6.4): HTAB, SP, VCHAR other than DQUOTE and backslash,
// and obs-text.
func qdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b || 0x5d <= c && c != 0x7f
}
