package h2

import (
	"bytes"
	"math/rand/v2"
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
