package purge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on one purge request, so that a single call cannot make every
// node of the cluster hold or apply an unbounded amount of work.
const (
	// MaxItems bounds the URLs, prefixes, tags and hosts of one purge.
	MaxItems = 10000
	// MaxItemBytes bounds one URL, prefix, tag or host.
	MaxItemBytes = 8 << 10
	// MaxRequestBytes bounds the JSON body of POST /purge.
	MaxRequestBytes = 4 << 20
)

// Request is a purge as a client asks for it: the JSON body of
// POST /purge, and the wire form of what every node applies.
type Request struct {
	// URLs purge exactly these URLs, all their variants, under both
	// http and https.
	URLs []string `json:"urls,omitempty"`
	// Prefixes purge every URL of a host that starts with one of them,
	// given as URLs ("https://example.com/img/").
	Prefixes []string `json:"prefixes,omitempty"`
	// Tags purge every object whose Surrogate-Key carried one of them.
	Tags []string `json:"tags,omitempty"`
	// Hosts purge everything cached for these hosts.
	Hosts []string `json:"hosts,omitempty"`
	// All purges everything cached.
	All bool `json:"all,omitempty"`
	// Soft marks objects stale instead of removing them: they are
	// revalidated with the origin before the next fresh use and can
	// still be served stale-if-error.
	Soft bool `json:"soft,omitempty"`
}

// Items returns how many things r purges.
func (r *Request) Items() int {
	n := len(r.URLs) + len(r.Prefixes) + len(r.Tags) + len(r.Hosts)
	if r.All {
		n++
	}
	return n
}

// Validate checks r's shape: at least one item, within the limits, no
// empty or control-character values. Whether URLs name configured hosts
// is checked by the node that issues the purge.
func (r *Request) Validate() error {
	n := r.Items()
	if n == 0 {
		return errors.New(`the purge names nothing: give at least one of "urls", "prefixes", "tags", "hosts" or "all": true`)
	}
	if n > MaxItems {
		return fmt.Errorf("the purge names %d items, at most %d are allowed in one call; split it", n, MaxItems)
	}
	for _, l := range []struct {
		name string
		vals []string
	}{{"urls", r.URLs}, {"prefixes", r.Prefixes}, {"tags", r.Tags}, {"hosts", r.Hosts}} {
		for i, v := range l.vals {
			if v == "" {
				return fmt.Errorf("%s[%d] is empty", l.name, i)
			}
			if len(v) > MaxItemBytes {
				return fmt.Errorf("%s[%d] is %d bytes long, at most %d are allowed", l.name, i, len(v), MaxItemBytes)
			}
			if j := strings.IndexFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }); j >= 0 {
				return fmt.Errorf("%s[%d] has a control character at byte %d", l.name, i, j+1)
			}
			if l.name == "tags" && strings.ContainsAny(v, " \t") {
				return fmt.Errorf("tags[%d] %q has a space; a surrogate key is one word (give several tags as several items)", i, v)
			}
		}
	}
	return nil
}

// Entry is one issued purge: the unit the purge log keeps, batches carry
// and acknowledgements count. It is identified by the node it was issued
// on, that node's incarnation (its start time, so a restarted node starts
// a new sequence) and a sequence number within the incarnation.
type Entry struct {
	Node string `json:"n"`
	Inc  uint64 `json:"i"`
	Seq  uint64 `json:"s"`
	// Time is when the purge was issued, in Unix nanoseconds on the
	// issuing node's clock.
	Time int64   `json:"t"`
	Req  Request `json:"r"`
	// seal is the issuer's signature over the entry (see Seal), kept to
	// forward with it; nil for an entry of this node's not sent yet, or
	// of a node older than identities.
	seal *Seal
}

// ID returns the purge id: "NODE.INCARNATION.SEQ", with the incarnation
// in base 36.
func (e *Entry) ID() string { return FormatID(e.Node, e.Inc, e.Seq) }

// Issued returns when the purge was issued.
func (e *Entry) Issued() time.Time { return time.Unix(0, e.Time) }

// FormatID formats a purge id.
func FormatID(node string, inc, seq uint64) string {
	return node + "." + strconv.FormatUint(inc, 36) + "." + strconv.FormatUint(seq, 10)
}

// ParseID splits a purge id made by FormatID. Node names may contain
// dots, so it splits from the right.
func ParseID(id string) (node string, inc, seq uint64, err error) {
	rest, seqStr, ok := cut(id)
	if ok {
		rest, incStr, ok2 := cut(rest)
		if ok2 && rest != "" {
			inc, err1 := strconv.ParseUint(incStr, 36, 64)
			seq, err2 := strconv.ParseUint(seqStr, 10, 64)
			if err1 == nil && err2 == nil && seq > 0 {
				return rest, inc, seq, nil
			}
		}
	}
	return "", 0, 0, fmt.Errorf("purge id %q is not of the form NODE.INCARNATION.SEQ that POST /purge returns", clip(id))
}

func cut(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// stream identifies the purges of one node incarnation.
type stream struct {
	Node string `json:"n"`
	Inc  uint64 `json:"i"`
}

func (e *Entry) stream() stream { return stream{e.Node, e.Inc} }

// Mark is how far a node has applied one stream: every purge with a
// sequence number up to HW.
type Mark struct {
	Node string `json:"n"`
	Inc  uint64 `json:"i"`
	HW   uint64 `json:"hw"`
}

// size estimates the memory an entry holds, for the bounds on what is
// kept in memory.
func (e *Entry) size() int {
	n := 128 + len(e.Node)
	if e.seal != nil {
		n += e.seal.perEntry
	}
	for _, l := range [][]string{e.Req.URLs, e.Req.Prefixes, e.Req.Tags, e.Req.Hosts} {
		for _, v := range l {
			n += len(v) + 16
		}
	}
	return n
}
