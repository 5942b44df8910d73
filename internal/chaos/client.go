package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxBody bounds the body Get reads.
const maxBody = 1 << 20

// Target is where Get sends a request: the node's name, the base URL of
// its edge listener ("http://10.0.0.1:8080") and the Host to ask for
// ("" leaves the base URL's).
type Target struct {
	Node, Base, Host string
}

// Get sends GET path to t with c, reads the answer and records it in h
// as a Request, which it returns. The request is bounded by ctx and by
// c's timeout. A body that is not one of Origin's, or is another path's,
// is recorded as a failure (Err).
func (h *History) Get(ctx context.Context, c *http.Client, t Target, path string) Request {
	r := Request{Node: t.Node, Path: path, Start: time.Now()}
	defer func() { h.Request(r) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Base+path, nil)
	if err != nil {
		r.End, r.Err = time.Now(), err.Error()
		return r
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	resp, err := c.Do(req)
	if err != nil {
		r.End, r.Err = time.Now(), err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	r.End, r.Status = time.Now(), resp.StatusCode
	r.ETag, r.Cache, r.Age = resp.Header.Get("ETag"), resp.Header.Get("Cache-Status"), resp.Header.Get("Age")
	switch {
	case err != nil:
		r.Err = "reading the body: " + err.Error()
	case len(body) > maxBody:
		r.Err = fmt.Sprintf("the body is over %d bytes", maxBody)
	case resp.StatusCode == http.StatusOK:
		p, v, ok := ParseBody(body)
		switch {
		case !ok:
			r.Err = fmt.Sprintf("a body of %d bytes that is no version of any object (torn or corrupted)", len(body))
		case p != path:
			r.Err = fmt.Sprintf("the body of %s version %d, another object's", p, v)
		default:
			r.Version = v
		}
	}
	return r
}
