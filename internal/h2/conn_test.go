package h2

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/net/http2"
)

// TestConnBoundsHeaderBlocks: the guard follows frames however the reads
// cut them: header blocks up to the limit pass, among DATA frames of any
// size, and one going past it is stopped there.
func TestConnBoundsHeaderBlocks(t *testing.T) {
	var wire bytes.Buffer
	wire.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&wire, nil)
	fr.WriteSettings()
	// A block of exactly the limit: HEADERS and two CONTINUATIONs.
	const limit = 2*(1024+headerListOverhead) + 16<<10
	part := (limit - 3*frameHeaderLen) / 3
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: make([]byte, part)})
	fr.WriteContinuation(1, false, make([]byte, part))
	fr.WriteContinuation(1, true, make([]byte, limit-3*frameHeaderLen-2*part))
	fr.WriteData(1, false, make([]byte, 100<<10))
	fr.WriteData(1, true, nil)
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: make([]byte, 100), EndHeaders: true})
	ok := wire.Len()
	// Then a block of empty CONTINUATIONs one frame past the limit.
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5})
	for n := frameHeaderLen; n <= limit; n += frameHeaderLen {
		fr.WriteContinuation(5, false, nil)
	}
	b := wire.Bytes()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, chunk := range []int{1, 7, 9, 4096, 0} {
		s := &Server{}
		c := s.newConn(nil, 1024, 0).(*conn)
		at := 0
		for at < len(b) {
			n := chunk
			if n == 0 {
				n = 1 + rng.IntN(20000)
			}
			n = min(n, len(b)-at)
			if !c.scan(b[at : at+n]) {
				break
			}
			at += n
		}
		if at < ok || at >= len(b) {
			t.Errorf("reads of %d: stopped at byte %d; want past %d (the blocks within the limit) and before %d", chunk, at, ok, len(b))
		}
	}
}

// bufConn is a net.Conn that keeps what is written to it.
type bufConn struct {
	net.Conn
	buf bytes.Buffer
}

func (b *bufConn) Write(p []byte) (int, error) { return b.buf.Write(p) }

// TestDrainNoticeGoesBetweenFrames: however the library's writes cut its
// frames, the drain notice is written whole between two of them, once,
// and every frame arrives intact.
func TestDrainNoticeGoesBetweenFrames(t *testing.T) {
	var wire bytes.Buffer
	fr := http2.NewFramer(&wire, nil)
	fr.WriteSettings()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: make([]byte, 300), EndHeaders: true})
	for i := range 20 {
		fr.WriteData(1, false, bytes.Repeat([]byte{byte(i)}, 1+i*700))
	}
	fr.WriteData(1, true, nil)
	frames := wire.Bytes()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, chunk := range []int{1, 5, 9, 10, 4096, 0} {
		for _, announceAt := range []int{0, 1, 9, 300, len(frames) / 2, len(frames) - 1} {
			out := &bufConn{}
			c := (&Server{}).newConn(out, 1024, 0).(*conn)
			at, announced := 0, false
			for at < len(frames) {
				if !announced && at >= announceAt {
					c.announceDrain()
					announced = true
				}
				n := chunk
				if n == 0 {
					n = 1 + rng.IntN(3000)
				}
				n = min(n, len(frames)-at)
				if _, err := c.Write(frames[at : at+n]); err != nil {
					t.Fatal(err)
				}
				at += n
			}
			if !announced {
				c.announceDrain()
			}
			// Read it all back: the original frames, and one GOAWAY.
			rd := http2.NewFramer(nil, &out.buf)
			rd.SetMaxReadFrameSize(1 << 20)
			goAways, data := 0, 0
			for {
				f, err := rd.ReadFrame()
				if err != nil {
					if err != io.EOF {
						t.Fatalf("chunk %d, notice at %d: reading the frames back: %v", chunk, announceAt, err)
					}
					break
				}
				switch f := f.(type) {
				case *http2.GoAwayFrame:
					goAways++
					if f.LastStreamID != 1<<31-1 || f.ErrCode != http2.ErrCodeNo {
						t.Fatalf("the notice: last stream %d, %v", f.LastStreamID, f.ErrCode)
					}
				case *http2.DataFrame:
					data++
				}
			}
			if goAways != 1 || data != 21 {
				t.Fatalf("chunk %d, notice at %d: %d GOAWAY and %d DATA frames read back, want 1 and 21", chunk, announceAt, goAways, data)
			}
		}
	}
}
