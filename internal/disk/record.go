package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record is one object in a segment file:
//
//	[0:4]   magic "WDR1"
//	[4:8]   head length H (little endian, as every number here)
//	[8:16]  body length B
//	[16:24] the key's hash
//	[24:28] CRC-32C of bytes [0:24] and the head
//	[28:32] zero
//	[32:32+H]          the head: the object's metadata (store.EncodeObject)
//	[32+H:32+H+B]      the body
//	[32+H+B:+4*chunks] CRC-32C of each chunkSize bytes of the body
//
// A record is self-describing and position-independent: it can be copied
// to another segment as it is. A reader verifies the head's checksum
// before believing any of it, and the checksum of every body chunk it
// sends, so a torn or corrupted record is never served.
const (
	recordMagic  = "WDR1"
	recordHeader = 32
	chunkSize    = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is wrapped by the errors of records that fail their checks.
var errCorrupt = errors.New("disk: corrupt record")

// chunks returns how many checksummed chunks a body of n bytes has.
func chunks(n int64) int64 { return (n + chunkSize - 1) / chunkSize }

// recordSize returns the size of a record with a head of h bytes and a
// body of b bytes.
func recordSize(h, b int64) int64 { return recordHeader + h + b + 4*chunks(b) }

// appendRecordHeader appends a record's fixed header and head.
func appendRecordHeader(dst []byte, hash uint64, head []byte, bodyLen int64) []byte {
	start := len(dst)
	dst = append(dst, recordMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(head)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(bodyLen))
	dst = binary.LittleEndian.AppendUint64(dst, hash)
	crc := crc32.Update(0, castagnoli, dst[start:start+24])
	crc = crc32.Update(crc, castagnoli, head)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	return append(dst, head...)
}

// recordInfo is what a record's fixed header says.
type recordInfo struct {
	head int64
	body int64
	hash uint64
	crc  uint32
}

// parseRecordHeader reads a record's fixed header.
func parseRecordHeader(p []byte) (recordInfo, error) {
	if len(p) < recordHeader {
		return recordInfo{}, fmt.Errorf("%w: %d bytes, want a %d-byte header", errCorrupt, len(p), recordHeader)
	}
	if string(p[:4]) != recordMagic {
		return recordInfo{}, fmt.Errorf("%w: bad magic %q", errCorrupt, p[:4])
	}
	return recordInfo{
		head: int64(binary.LittleEndian.Uint32(p[4:8])),
		body: int64(binary.LittleEndian.Uint64(p[8:16])),
		hash: binary.LittleEndian.Uint64(p[16:24]),
		crc:  binary.LittleEndian.Uint32(p[24:28]),
	}, nil
}

// checkHead verifies the head's checksum; p holds the fixed header and
// the head.
func (ri recordInfo) checkHead(p []byte) error {
	if int64(len(p)) < recordHeader+ri.head {
		return fmt.Errorf("%w: head truncated", errCorrupt)
	}
	crc := crc32.Update(0, castagnoli, p[:24])
	crc = crc32.Update(crc, castagnoli, p[recordHeader:recordHeader+ri.head])
	if crc != ri.crc {
		return fmt.Errorf("%w: head checksum %08x, want %08x", errCorrupt, crc, ri.crc)
	}
	return nil
}

// chunkCRC is the checksum of one body chunk.
func chunkCRC(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// crcAppender accumulates the chunk checksums of a body written in
// pieces of any size.
type crcAppender struct {
	crcs []byte
	cur  uint32
	fill int
}

func (c *crcAppender) write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), chunkSize-c.fill)
		c.cur = crc32.Update(c.cur, castagnoli, p[:n])
		c.fill += n
		p = p[n:]
		if c.fill == chunkSize {
			c.crcs = binary.LittleEndian.AppendUint32(c.crcs, c.cur)
			c.cur, c.fill = 0, 0
		}
	}
}

// sums returns the checksums, the last partial chunk's included.
func (c *crcAppender) sums() []byte {
	if c.fill > 0 {
		c.crcs = binary.LittleEndian.AppendUint32(c.crcs, c.cur)
		c.cur, c.fill = 0, 0
	}
	return c.crcs
}
