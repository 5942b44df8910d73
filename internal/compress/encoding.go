package compress

// Encoding is a content coding the edge can produce (RFC 9110 §8.4.1).
// Its value is the slot a stored object keeps that coding's body in.
type Encoding uint8

// The codings, in the default order of preference.
const (
	Brotli Encoding = iota
	Zstd
	Gzip
	// NumEncodings is the number of codings; Identity is none of them.
	NumEncodings
	Identity Encoding = 0xff
)

// names are the codings' names in Content-Encoding.
var names = [NumEncodings]string{Brotli: "br", Zstd: "zstd", Gzip: "gzip"}

// String returns the coding's name as Content-Encoding writes it.
func (e Encoding) String() string {
	if e < NumEncodings {
		return names[e]
	}
	return "identity"
}

// ParseEncoding returns the coding called name ("br", "zstd" or "gzip",
// exactly as the configuration writes them).
func ParseEncoding(name string) (Encoding, bool) {
	for i, n := range names {
		if n == name {
			return Encoding(i), true
		}
	}
	return Identity, false
}

// Level is how hard the encoders work.
type Level uint8

// Levels: Default is gzip 6, brotli 5, zstd's default; Fast is gzip 1,
// brotli 1, zstd fastest; Best is gzip 9, brotli 9, zstd best. Brotli's
// best is 9 rather than 11: a body is compressed while its first client
// waits, and quality 11 is about ten times slower than 9 for a few
// percent.
const (
	LevelDefault Level = iota
	LevelFast
	LevelBest
	numLevels
)

// ParseLevel returns the level called name: "" or "default", "fast",
// "best".
func ParseLevel(name string) (Level, bool) {
	switch name {
	case "", "default":
		return LevelDefault, true
	case "fast":
		return LevelFast, true
	case "best":
		return LevelBest, true
	}
	return LevelDefault, false
}
