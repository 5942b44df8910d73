package purge

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
)

// Seals: a purge keeps its issuer's signature end to end. The issuer
// signs each run of consecutive entries of its stream it sends (a batch,
// or the entries a sync reply carries) with its identity key (see
// cluster.Identity), and every member that forwards them (relays, sync
// replies) forwards the seal with them, so a member that gets a purge
// from anyone checks who issued it, and that nobody on the way altered
// it. A seal signs, after the label "weir purge seal v1" and a zero byte,
// the issuer's name and a zero byte, its incarnation, the first and the
// last sequence number it covers (8 bytes big-endian each), and the
// SHA-256 of the concatenated hashes of the entries it covers (entryHash).
// When a message carries only some of a seal's entries, the seal carries
// the hashes of all of them, so the signature still verifies.

// Identities is what the purge service knows of node identities: the
// cluster implements it.
type Identities interface {
	// Identity is this node's.
	Identity() *cluster.Identity
	// Trust checks certificates carried in messages.
	Trust() *cluster.Trust
	// Cert returns the verified certificate of a live member: nil, true
	// for a member older than identities; nil, false for no member.
	Cert(name string) (*cluster.Cert, bool)
}

// Seal is an issuer's signature over a run of its entries.
type Seal struct {
	Node  string `json:"n"`
	Inc   uint64 `json:"i"`
	First uint64 `json:"f"`
	Last  uint64 `json:"l"`
	Sig   []byte `json:"s"`
	// Hashes are the entries' hashes, First to Last, when the message
	// does not carry all of them.
	Hashes [][]byte `json:"h,omitempty"`
	// Cert is the issuer's identity certificate (cluster.Cert.Encode),
	// unless the message comes from the issuer itself, whose certificate
	// the receiver knows from membership.
	Cert string `json:"c,omitempty"`

	// hashes are the entries' hashes once verified (or when made here),
	// and cert the issuer's certificate it verified with.
	hashes [][sha256.Size]byte
	cert   *cluster.Cert
	// perEntry is the memory the seal holds per entry it came with, which
	// the log counts against its bound (Entry.size): a seal forwarded
	// with few of its entries holds all their hashes.
	perEntry int
}

// maxSealRun bounds the entries one seal covers, so a seal's hashes stay
// bounded: a batch's worth (DefaultMaxBatch).
const maxSealRun = 1024

// sealOverhead estimates a seal's memory besides its hashes.
const sealOverhead = 256

const sealLabel = "weir purge seal v1"

// entryHash hashes an entry's content in a canonical binary form: its
// identity, time and request, each string and list length-prefixed.
func entryHash(e *Entry) [sha256.Size]byte {
	b := make([]byte, 0, e.size())
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str(e.Node)
	b = binary.BigEndian.AppendUint64(b, e.Inc)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	for _, l := range [][]string{e.Req.URLs, e.Req.Prefixes, e.Req.Tags, e.Req.Hosts} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(l)))
		for _, v := range l {
			str(v)
		}
	}
	flags := byte(0)
	if e.Req.All {
		flags |= 1
	}
	if e.Req.Soft {
		flags |= 2
	}
	b = append(b, flags)
	return sha256.Sum256(b)
}

// sealMessage returns what a seal's signature covers.
func sealMessage(node string, inc, first, last uint64, hashes [][sha256.Size]byte) []byte {
	h := sha256.New()
	for i := range hashes {
		h.Write(hashes[i][:])
	}
	b := make([]byte, 0, len(sealLabel)+len(node)+2+24+sha256.Size)
	b = append(b, sealLabel...)
	b = append(b, 0)
	b = append(b, node...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, inc)
	b = binary.BigEndian.AppendUint64(b, first)
	b = binary.BigEndian.AppendUint64(b, last)
	return h.Sum(b)
}

// sealRun signs entries, consecutive entries of this node's stream.
func sealRun(id *cluster.Identity, run []Entry) *Seal {
	hs := make([][sha256.Size]byte, len(run))
	for i := range run {
		hs[i] = entryHash(&run[i])
	}
	e0, en := &run[0], &run[len(run)-1]
	return &Seal{Node: e0.Node, Inc: e0.Inc, First: e0.Seq, Last: en.Seq,
		Sig: id.Sign(sealMessage(e0.Node, e0.Inc, e0.Seq, en.Seq, hs)), hashes: hs, cert: id.Cert(),
		perEntry: sha256.Size + sealOverhead/len(run)}
}

// seal returns the seals of entries for a message from this node: each
// entry's own seal when it has one (with the hashes when the message
// lacks some of its entries, and the issuer's certificate unless it is
// this node's), and a new one over each run of this node's current
// stream that has none. A relay leaves out the certificates of issuers
// that are live members here with that same certificate: the receiver
// knows them from membership too, and when it does not, the relay,
// a redundant path, is refused and nothing is lost.
func (s *Service) seal(entries []Entry, relay bool) []Seal {
	var out []Seal
	if s.opt.Identities == nil || len(entries) == 0 {
		return nil
	}
	id := s.opt.Identities.Identity()
	// The entries a seal covers that the message holds.
	carried := make(map[*Seal]int)
	var order []*Seal
	for i := 0; i < len(entries); i++ {
		e := &entries[i]
		if e.seal == nil && e.Node == s.self.Node && e.Inc == s.self.Inc {
			j := i + 1
			for j < len(entries) && j-i < maxSealRun && entries[j].Node == e.Node && entries[j].Inc == e.Inc &&
				entries[j].seal == nil && entries[j].Seq == entries[j-1].Seq+1 {
				j++
			}
			sl := sealRun(id, entries[i:j])
			for k := i; k < j; k++ {
				entries[k].seal = sl
			}
			order = append(order, sl)
			carried[sl] = j - i
			i = j - 1
			continue
		}
		if e.seal == nil {
			continue // from a node older than identities
		}
		if _, ok := carried[e.seal]; !ok {
			order = append(order, e.seal)
		}
		carried[e.seal]++
	}
	for _, sl := range order {
		w := Seal{Node: sl.Node, Inc: sl.Inc, First: sl.First, Last: sl.Last, Sig: sl.Sig}
		if carried[sl] < len(sl.hashes) {
			w.Hashes = make([][]byte, len(sl.hashes))
			for i := range sl.hashes {
				w.Hashes[i] = sl.hashes[i][:]
			}
		}
		if sl.cert != nil && sl.cert != id.Cert() {
			if mc, _ := s.opt.Identities.Cert(sl.Node); !relay || mc == nil || mc.Fingerprint() != sl.cert.Fingerprint() {
				w.Cert = sl.cert.Encode()
			}
		}
		out = append(out, w)
	}
	return out
}

// errSeal is a message whose entries' seals do not verify, and
// errUnknownIssuer one whose seal names an issuer whose certificate
// neither came with it nor is known here: not a lie by the sender.
var (
	errSeal          = errors.New("purge entries not sealed by their issuer")
	errUnknownIssuer = errors.New("purge entries of an issuer whose identity is unknown here")
)

// unseal checks the seals of the entries a message from sender carries,
// and attaches each verified seal to its entries so that they can be
// forwarded. An entry without a seal is accepted only when its issuer
// cannot seal: it announces no identity (a node older than identities),
// or is no live member and the cluster trusts no CA.
func (s *Service) unseal(entries []Entry, seals []Seal, now time.Time) error {
	ids := s.opt.Identities
	if ids == nil {
		return nil
	}
	if len(seals) > len(entries) {
		return fmt.Errorf("%w: %d seals for %d entries", errSeal, len(seals), len(entries))
	}
	trust := ids.Trust()
	// Index the entries by stream, to find those each seal covers.
	type key struct {
		node string
		inc  uint64
	}
	byStream := make(map[key][]int)
	for i := range entries {
		k := key{entries[i].Node, entries[i].Inc}
		byStream[k] = append(byStream[k], i)
	}
	for _, idx := range byStream {
		slices.SortFunc(idx, func(i, j int) int { return cmp.Compare(entries[i].Seq, entries[j].Seq) })
	}
	// The certificates seen in this message, by their wire form: a
	// burst's seals repeat their issuer's.
	certOf := make(map[string]*cluster.Cert)
	issuerCert := func(w *Seal) (*cluster.Cert, error) {
		if w.Cert == "" {
			if mc, _ := ids.Cert(w.Node); mc != nil {
				return mc, nil
			}
			return nil, fmt.Errorf("%w: no identity certificate of %s came with its seal, and it is no member here", errUnknownIssuer, w.Node)
		}
		if c, ok := certOf[w.Node+" "+w.Cert]; ok {
			return c, nil
		}
		c, err := cluster.ParseCert(w.Node, w.Cert)
		if err != nil {
			return nil, err
		}
		if err := trust.Verify(c, now); err != nil {
			return nil, err
		}
		certOf[w.Node+" "+w.Cert] = c
		return c, nil
	}
	for si := range seals {
		w := &seals[si]
		if w.Last < w.First || w.First == 0 || w.Last-w.First >= maxSealRun {
			return fmt.Errorf("%w: seal %d of %s covers %d..%d", errSeal, si, w.Node, w.First, w.Last)
		}
		n := int(w.Last - w.First + 1)
		if w.Hashes != nil && len(w.Hashes) != n {
			return fmt.Errorf("%w: seal %d of %s has %d hashes for %d entries", errSeal, si, w.Node, len(w.Hashes), n)
		}
		hs := make([][sha256.Size]byte, n)
		have := make([]bool, n)
		for _, h := range w.Hashes {
			if len(h) != sha256.Size {
				return fmt.Errorf("%w: seal %d of %s has a hash of %d bytes", errSeal, si, w.Node, len(h))
			}
		}
		for i, h := range w.Hashes {
			copy(hs[i][:], h)
		}
		var covered []int
		idx := byStream[key{w.Node, w.Inc}]
		from, _ := slices.BinarySearchFunc(idx, w.First, func(i int, seq uint64) int { return cmp.Compare(entries[i].Seq, seq) })
		for _, i := range idx[from:] {
			e := &entries[i]
			if e.Seq > w.Last {
				break
			}
			if e.seal != nil {
				return fmt.Errorf("%w: entry %s is covered by two seals", errSeal, e.ID())
			}
			j := e.Seq - w.First
			h := entryHash(e)
			if (w.Hashes != nil || have[j]) && h != hs[j] {
				// Against the seal's hashes, or against a copy earlier in
				// the message: every copy must be the sealed one.
				return fmt.Errorf("%w: entry %s does not match its issuer's seal: altered on the way", errSeal, e.ID())
			}
			hs[j], have[j] = h, true
			covered = append(covered, i)
		}
		if w.Hashes == nil && slices.Contains(have, false) {
			return fmt.Errorf("%w: seal %d of %s carries no hashes and the message lacks some of its entries", errSeal, si, w.Node)
		}
		c, err := issuerCert(w)
		if errors.Is(err, errUnknownIssuer) {
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: seal of %s: %v", errSeal, w.Node, err)
		}
		if !c.VerifySig(sealMessage(w.Node, w.Inc, w.First, w.Last, hs), w.Sig) {
			return fmt.Errorf("%w: the seal of %s over %d..%d does not verify with its key %s: forged or altered", errSeal, w.Node, w.First, w.Last, c.Fingerprint())
		}
		sl := &Seal{Node: w.Node, Inc: w.Inc, First: w.First, Last: w.Last, Sig: w.Sig, hashes: hs, cert: c,
			perEntry: (n*sha256.Size + sealOverhead + len(w.Cert)) / max(1, len(covered))}
		for _, i := range covered {
			entries[i].seal = sl
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.seal != nil {
			continue
		}
		if trust.RequiresCA() {
			return fmt.Errorf("%w: entry %s has no seal, and cluster.identity.ca requires one", errSeal, e.ID())
		}
		if c, member := ids.Cert(e.Node); member && c != nil {
			return fmt.Errorf("%w: entry %s has no seal, and its issuer announces an identity", errSeal, e.ID())
		}
	}
	return nil
}
