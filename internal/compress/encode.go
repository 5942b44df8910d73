package compress

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// gzipLevels and brotliLevels are the libraries' levels for each Level.
var (
	gzipLevels   = [numLevels]int{LevelDefault: 6, LevelFast: 1, LevelBest: 9}
	brotliLevels = [numLevels]int{LevelDefault: 5, LevelFast: 1, LevelBest: 9}
	zstdLevels   = [numLevels]zstd.EncoderLevel{LevelDefault: zstd.SpeedDefault, LevelFast: zstd.SpeedFastest, LevelBest: zstd.SpeedBestCompression}
)

// writers pools the gzip and brotli writers of each level: their state is
// hundreds of kilobytes, too much to build per body.
var writers [NumEncodings][numLevels]sync.Pool

// zstdEncoders are the zstd encoders of each level, built when first
// used. EncodeAll is safe for concurrent use.
var zstdEncoders [numLevels]struct {
	once sync.Once
	enc  *zstd.Encoder
	err  error
}

// resetWriter is a pooled encoder: reset to a destination, written,
// closed.
type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// Encode returns src encoded with e at level l. It is safe for concurrent
// use and allocates the result and, the first time, the encoder.
func Encode(e Encoding, l Level, src []byte) ([]byte, error) {
	if l >= numLevels {
		l = LevelDefault
	}
	switch e {
	case Zstd:
		z := &zstdEncoders[l]
		z.once.Do(func() {
			z.enc, z.err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevels[l]), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		})
		if z.err != nil {
			return nil, fmt.Errorf("compress: zstd encoder: %w", z.err)
		}
		return z.enc.EncodeAll(src, make([]byte, 0, len(src)/3+64)), nil
	case Gzip, Brotli:
	default:
		return nil, fmt.Errorf("compress: no encoder for %s", e)
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(src)/3+64))
	pool := &writers[e][l]
	w, _ := pool.Get().(resetWriter)
	if w == nil {
		w = newWriter(e, l, buf)
	} else {
		w.Reset(buf)
	}
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	w.Reset(nil)
	pool.Put(w)
	if err != nil {
		return nil, fmt.Errorf("compress: %s: %w", e, err)
	}
	return buf.Bytes(), nil
}

func newWriter(e Encoding, l Level, dst io.Writer) resetWriter {
	if e == Gzip {
		w, _ := gzip.NewWriterLevel(dst, gzipLevels[l]) // the levels are valid
		return w
	}
	return brotli.NewWriterLevel(dst, brotliLevels[l])
}
