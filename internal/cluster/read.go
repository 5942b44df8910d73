package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ErrNoPeer is the error of ReadPeer for a name that is not a live
// member with a peer listener.
var ErrNoPeer = errors.New("not a live member with a peer listener")

// ReadPeer sends a signed GET for path (which starts with "/") to the
// live member name over the peer link, as peer fills are sent but marked
// with ReadHeader, and
// returns the body of its 200 answer, refusing one longer than limit
// bytes. It bypasses the member's fill breaker (a read says nothing
// about fills, and must not open the breaker fills use); ctx bounds the
// whole exchange. It is safe for concurrent use and blocks until the
// answer is read or ctx ends.
func (c *Cluster) ReadPeer(ctx context.Context, name, path string, limit int64) ([]byte, error) {
	c.mu.Lock()
	m := c.members[name]
	var p *Peer
	if m != nil {
		p = m.peer
	}
	c.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("peer %s: %w", name, ErrNoPeer)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", name, err)
	}
	req.Host = p.addr
	req.Header[ProtocolHeader] = []string{strconv.Itoa(p.proto)}
	req.Header[ReadHeader] = []string{"1"}
	if keys := c.keys.Load(); keys != nil {
		SignRequest(keys, req, c.self, c.now())
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", name, err)
	}
	defer resp.Body.Close()
	if reason := resp.Header.Get(RefusedHeader); reason != "" {
		return nil, &RefusedError{Peer: name, Reason: reason, Status: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("peer %s: reading its answer: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer %s answered %d to GET %s", name, resp.StatusCode, path)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("peer %s: its answer to GET %s is over %d bytes", name, path, limit)
	}
	return body, nil
}
