package disk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The tier's metadata survives a restart as an index snapshot plus a
// journal of every change since, as Varnish's MSE keeps its books: a
// start reads two files sequentially and never walks the segments.
//
// The journal is a sequence of frames [length u32][CRC-32C u32][payload];
// a start replays them in order and stops at the first frame that is
// short or fails its checksum (a write torn by a crash), cutting the file
// there. Every change is appended before the call that made it returns:
// a kill -9 loses nothing that was acknowledged, since the kernel keeps
// what was written; the syncer fsyncs the segments and then the journal
// every second, so a power failure loses at most that second, and a
// record the journal names but the device lost fails its checksum when
// read and is dropped.
//
// When the journal outgrows maxJournal, the syncer writes a new snapshot
// (to a temporary file, fsynced, then renamed over the old one) and
// starts the next journal generation; the snapshot names the generation
// that follows it. Replaying a change already in the snapshot is
// harmless: every journal record is idempotent.
const (
	snapName   = "index.snap"
	snapMagic  = "WDS1"
	journalExt = ".wjl"
	maxJournal = 64 << 20
	maxFrame   = 16 << 20
)

// Journal record types.
const (
	jPut        = 'P' // hash, entry
	jDel        = 'D' // hash, ref
	jSoft       = 'S' // hash, ref
	jRule       = 'R' // epoch, soft, keys, tags, prefixes
	jRetire     = 'X' // epoch
	jCheckpoint = 'C' // epoch, opaque bytes
	jSegment    = 'N' // id of a new segment
)

func journalName(gen uint64) string { return fmt.Sprintf("journal-%016x%s", gen, journalExt) }

func appendEntry(dst []byte, h uint64, e entry) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h)
	dst = binary.LittleEndian.AppendUint32(dst, e.seg)
	dst = binary.LittleEndian.AppendUint32(dst, e.off)
	dst = binary.LittleEndian.AppendUint32(dst, e.head)
	dst = binary.LittleEndian.AppendUint32(dst, e.body)
	dst = binary.LittleEndian.AppendUint64(dst, e.epoch)
	dst = binary.LittleEndian.AppendUint32(dst, e.expires)
	return append(dst, e.flags&entryDurable)
}

const entryBytes = 8 + 4*4 + 8 + 4 + 1

func readEntry(p []byte) (uint64, entry) {
	return binary.LittleEndian.Uint64(p), entry{
		seg:     binary.LittleEndian.Uint32(p[8:]),
		off:     binary.LittleEndian.Uint32(p[12:]),
		head:    binary.LittleEndian.Uint32(p[16:]),
		body:    binary.LittleEndian.Uint32(p[20:]),
		epoch:   binary.LittleEndian.Uint64(p[24:]),
		expires: binary.LittleEndian.Uint32(p[32:]),
		flags:   p[36] & entryDurable,
	}
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

func appendRule(dst []byte, r ruleRecord) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.epoch)
	soft := byte(0)
	if r.inv.Soft {
		soft = 1
	}
	dst = append(dst, soft)
	dst = appendStrings(dst, r.inv.Keys)
	dst = appendStrings(dst, r.inv.Tags)
	return appendStrings(dst, r.inv.Prefixes)
}

// reader reads the fields of a journal or snapshot payload, with every
// length checked.
type reader struct {
	p   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.p) {
		r.err = errTruncated
		return nil
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) strings() []string {
	n := r.uvarint()
	if n > uint64(len(r.p)) {
		r.err = errTruncated
		return nil
	}
	var out []string
	for range n {
		l := r.uvarint()
		if l > uint64(len(r.p)) {
			r.err = errTruncated
			return nil
		}
		out = append(out, string(r.take(int(l))))
	}
	return out
}

func (r *reader) rule() ruleRecord {
	rec := ruleRecord{epoch: r.u64()}
	rec.inv.Soft = r.u8() == 1
	rec.inv.Keys = r.strings()
	rec.inv.Tags = r.strings()
	rec.inv.Prefixes = r.strings()
	return rec
}

// journal is the append side of the current journal file; Tier.mu
// guards it.
type journal struct {
	f     *os.File
	gen   uint64
	size  int64
	buf   []byte
	dirty bool
}

func openJournal(dir string, gen uint64) (*journal, error) {
	f, err := os.OpenFile(filepath.Join(dir, journalName(gen)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &journal{f: f, gen: gen, size: st.Size()}, nil
}

// append writes one frame with payload p.
func (j *journal) append(p []byte) (int, error) {
	j.buf = binary.LittleEndian.AppendUint32(j.buf[:0], uint32(len(p)))
	j.buf = binary.LittleEndian.AppendUint32(j.buf, crc32.Checksum(p, castagnoli))
	j.buf = append(j.buf, p...)
	if _, err := j.f.WriteAt(j.buf, j.size); err != nil {
		return 0, err
	}
	j.size += int64(len(j.buf))
	j.dirty = true
	return len(j.buf), nil
}

// replay calls apply for every intact frame of the journal file at path,
// in order, and cuts the file after the last intact one. It returns how
// many frames it applied.
func replay(path string, apply func(p []byte) error) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var (
		good int64
		n    int
		hdr  [8]byte
		p    []byte
	)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		l := binary.LittleEndian.Uint32(hdr[:4])
		if l > maxFrame {
			break
		}
		if cap(p) < int(l) {
			p = make([]byte, l)
		}
		p = p[:l]
		if _, err := io.ReadFull(br, p); err != nil {
			break
		}
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		if err := apply(p); err != nil {
			break
		}
		good += 8 + int64(l)
		n++
	}
	st, err := f.Stat()
	if err == nil && st.Size() > good {
		err = f.Truncate(good)
	}
	return n, err
}

// snapshot is the state a snapshot file holds.
type snapshot struct {
	gen        uint64 // the journal generation that follows it
	epoch      uint64
	nextSeg    uint32
	checkpoint []byte
	rules      []ruleRecord
	entries    func(yield func(h uint64, e entry)) // for writing
}

// writeSnapshot writes s to dir atomically.
func writeSnapshot(dir string, s snapshot) error {
	tmp := filepath.Join(dir, snapName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var b []byte
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint64(b, s.gen)
	b = binary.LittleEndian.AppendUint64(b, s.epoch)
	b = binary.LittleEndian.AppendUint32(b, s.nextSeg)
	b = binary.AppendUvarint(b, uint64(len(s.checkpoint)))
	b = append(b, s.checkpoint...)
	b = binary.AppendUvarint(b, uint64(len(s.rules)))
	for _, r := range s.rules {
		rb := appendRule(nil, r)
		b = binary.AppendUvarint(b, uint64(len(rb)))
		b = append(b, rb...)
	}
	bw.Write(b)
	var eb [entryBytes + 1]byte
	s.entries(func(h uint64, e entry) {
		bw.WriteByte(1)
		bw.Write(appendEntry(eb[:0], h, e))
	})
	bw.WriteByte(0)
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := f.Write(sum[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, snapName)); err != nil {
		return err
	}
	return syncDir(dir)
}

// readSnapshot reads dir's snapshot, calling put for every entry; ok is
// false when there is none.
func readSnapshot(dir string, put func(h uint64, e entry)) (s snapshot, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, snapName))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if len(data) < 4+8+8+4+4 || string(data[:4]) != snapMagic {
		return s, false, fmt.Errorf("%w: not a snapshot", errCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return s, false, fmt.Errorf("%w: snapshot checksum", errCorrupt)
	}
	r := reader{p: body[4:]}
	s.gen, s.epoch, s.nextSeg = r.u64(), r.u64(), r.u32()
	s.checkpoint = append([]byte(nil), r.take(int(min(r.uvarint(), uint64(len(r.p)))))...)
	nr := r.uvarint()
	for i := uint64(0); i < nr && r.err == nil; i++ {
		l := r.uvarint()
		rr := reader{p: r.take(int(min(l, uint64(len(r.p)))))}
		rec := rr.rule()
		if rr.err != nil {
			return s, false, fmt.Errorf("%w: snapshot rule %d", errCorrupt, i)
		}
		s.rules = append(s.rules, rec)
	}
	for r.err == nil {
		if r.u8() != 1 {
			break
		}
		p := r.take(entryBytes)
		if p == nil {
			break
		}
		h, e := readEntry(p)
		put(h, e)
	}
	if r.err != nil {
		return s, false, fmt.Errorf("%w: snapshot %v", errCorrupt, r.err)
	}
	return s, true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// decodeCheckpoint reads a checkpoint payload (after its type byte).
func decodeCheckpoint(p []byte) (epoch uint64, data []byte, err error) {
	r := reader{p: p}
	epoch = r.u64()
	data = append([]byte(nil), r.p...)
	return epoch, data, r.err
}
