package edge

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"net/textproto"

	"github.com/weir-cdn/weir/internal/httpcache"
)

// informational is a 1xx interim response from an origin (102
// Processing, 103 Early Hints), on its way to the client that asked.
type informational struct {
	code   int
	header http.Header
}

// maxInterim bounds the interim responses held for one request; more are
// dropped (net/http's transport reads at most 5 anyway).
const maxInterim = 8

// traceInterim returns ctx with a trace that hands the origin's 1xx
// responses to ch, dropping them when ch is full. 100 Continue is the
// edge's own business with its client, and 101 is not forwarded.
func traceInterim(ctx context.Context, ch chan<- informational) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
				return nil
			}
			h := http.Header(header).Clone()
			httpcache.RemoveHopByHop(h)
			removePeerFields(h)
			select {
			case ch <- informational{code: code, header: h}:
			default:
			}
			return nil
		},
	})
}

// writeInformational sends an interim response to the client (RFC 9110
// §15.2): its fields go out with it, and are taken back from the
// response header map so that the final response does not carry them;
// nothing of it is stored.
func writeInformational(w http.ResponseWriter, inf informational) {
	hdr := w.Header()
	var saved http.Header
	for k, v := range inf.header {
		if prior, ok := hdr[k]; ok {
			if saved == nil {
				saved = make(http.Header)
			}
			saved[k] = prior
		}
		hdr[k] = v
	}
	w.WriteHeader(inf.code)
	for k := range inf.header {
		delete(hdr, k)
	}
	for k, v := range saved {
		hdr[k] = v
	}
}

// drainInterim writes the interim responses already in ch.
func drainInterim(w http.ResponseWriter, ch <-chan informational) {
	for {
		select {
		case inf := <-ch:
			writeInformational(w, inf)
		default:
			return
		}
	}
}
