package privagg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Path is where a cluster member serves its Document on the peer
// listener, to signed GET reads only.
const Path = "/_weir/aggregates"

// Bounds of a Document read from a peer, which is untrusted.
const (
	// MaxDocumentBytes bounds the body.
	MaxDocumentBytes = 4 << 20
	// MaxHosts bounds the hosts of one document.
	MaxHosts = 1024
	// maxTop bounds the objects of one host (config's top_objects bound).
	maxTop = 100
	// maxCount bounds every count's magnitude: 2⁵³, where float64 stays
	// exact, so sums cannot overflow.
	maxCount = 1 << 53
	// maxEpsilon is config's bound on epsilon.
	maxEpsilon = 100
)

// Encode returns d as JSON; a document over MaxDocumentBytes (many hosts
// with long paths) goes without its paths, marked withheld, so that its
// counts still reach the readers.
func Encode(d Document) ([]byte, error) {
	if len(d.Hosts) > MaxHosts {
		d.Hosts = d.Hosts[:MaxHosts]
	}
	b, err := json.Marshal(d)
	if err != nil || len(b) <= MaxDocumentBytes {
		return b, err
	}
	hosts := make([]Release, len(d.Hosts))
	for i, h := range d.Hosts {
		h.Top, h.TopWithheld = []Object{}, true
		hosts[i] = h
	}
	d.Hosts = hosts
	return json.Marshal(d)
}

// DecodeDocument parses and checks a Document from a peer: at most
// MaxDocumentBytes, version DocumentVersion, a window of whole seconds
// from 1 s to a day, at most MaxHosts hosts with distinct non-empty names
// of at most 255 bytes, an epsilon in (0, 100], counts of magnitude under
// 2⁵³, and at most 100 objects per host with distinct paths that start
// with '/' and are at most MaxPathBytes long. Unknown fields are ignored,
// for newer writers.
func DecodeDocument(b []byte) (Document, error) {
	var d Document
	if len(b) > MaxDocumentBytes {
		return d, fmt.Errorf("aggregates document is %d bytes, over the limit of %d", len(b), MaxDocumentBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("aggregates document is not valid JSON: %w", err)
	}
	if dec.More() {
		return Document{}, errors.New("aggregates document has data after its JSON object")
	}
	if err := d.check(); err != nil {
		return Document{}, fmt.Errorf("aggregates document refused: %w", err)
	}
	return d, nil
}

func (d *Document) check() error {
	if d.Version != DocumentVersion {
		return fmt.Errorf("version %d, this node reads %d: upgrade the older nodes", d.Version, DocumentVersion)
	}
	if d.Seconds < 1 || d.Seconds > 86400 {
		return fmt.Errorf("window_seconds %d is not from 1 to 86400", d.Seconds)
	}
	if d.Window < 0 || d.Window > math.MaxInt64/d.Seconds/1e9 {
		return fmt.Errorf("window %d is not a window since the Unix epoch", d.Window)
	}
	if len(d.Hosts) > MaxHosts {
		return fmt.Errorf("%d hosts, over the limit of %d", len(d.Hosts), MaxHosts)
	}
	names := make(map[string]bool, len(d.Hosts))
	for i := range d.Hosts {
		h := &d.Hosts[i]
		if h.Host == "" || len(h.Host) > 255 || names[h.Host] {
			return fmt.Errorf("host %d: its name is empty, over 255 bytes or listed before", i)
		}
		names[h.Host] = true
		if math.IsNaN(h.Epsilon) || h.Epsilon <= 0 || h.Epsilon > maxEpsilon {
			return fmt.Errorf("host %q: epsilon %v is not in (0, %d]", h.Host, h.Epsilon, maxEpsilon)
		}
		for _, n := range []int64{h.Hits, h.Misses, h.Other} {
			if n <= -maxCount || n >= maxCount {
				return fmt.Errorf("host %q: a count of %d is out of range", h.Host, n)
			}
		}
		if len(h.Top) > maxTop {
			return fmt.Errorf("host %q: %d objects, over the limit of %d", h.Host, len(h.Top), maxTop)
		}
		paths := make(map[string]bool, len(h.Top))
		for j, o := range h.Top {
			if o.Path == "" || o.Path[0] != '/' || len(o.Path) > MaxPathBytes || paths[o.Path] {
				return fmt.Errorf("host %q: object %d: its path is empty, not absolute, over %d bytes or listed before", h.Host, j, MaxPathBytes)
			}
			paths[o.Path] = true
			if o.Count <= -maxCount || o.Count >= maxCount {
				return fmt.Errorf("host %q: object %d: a count of %d is out of range", h.Host, j, o.Count)
			}
		}
		if h.Top == nil {
			h.Top = []Object{}
		}
	}
	return nil
}
