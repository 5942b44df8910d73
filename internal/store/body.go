package store

import (
	"errors"
	"io"
)

// Body is a stored response's content, as the edge reads it: its length,
// reads at an offset, and a range written to a connection. The memory
// tier's bodies are Bytes; a tier that keeps bodies elsewhere (a file)
// gives its own, and the edge does not change. A Body is immutable and
// safe for concurrent use.
type Body interface {
	// Len is the length in bytes.
	Len() int64
	// ReadAt reads len(p) bytes from offset off, as io.ReaderAt does.
	ReadAt(p []byte, off int64) (int, error)
	// WriteRange writes the bytes [start, end) to w and returns how many
	// w took.
	WriteRange(w io.Writer, start, end int64) (int64, error)
}

// Bytes is a body held in memory.
type Bytes []byte

// Len returns len(b).
func (b Bytes) Len() int64 { return int64(len(b)) }

// ReadAt implements io.ReaderAt.
func (b Bytes) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteRange writes b[start:end] to w in one call.
func (b Bytes) WriteRange(w io.Writer, start, end int64) (int64, error) {
	n, err := w.Write(b[start:end])
	return int64(n), err
}

var errNegativeOffset = errors.New("store: ReadAt at a negative offset")
