package cluster

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/secretfile"

	"github.com/weir-cdn/weir/internal/sign"
)

const (
	// keySize is the length of a key's secret in bytes.
	keySize = 32
	// maxKeys is the most keys a key file may hold.
	maxKeys = 16
	// maxKeyIDLen is the longest key ID, in bytes.
	maxKeyIDLen = 64
	// maxKeyFileSize is the largest key file read, in bytes.
	maxKeyFileSize = 64 << 10
	// maxReportedProblems is the most problems ParseKeyFile reports.
	maxReportedProblems = 10

	keyFileHeader = "# Weir cluster keys. Keep this file secret (chmod 600).\n" +
		"# The first key encrypts gossip and signs peer requests; the others are still accepted.\n"
	keygenHint = "generate a new key with `weir keygen`"
)

// strictStd decodes key secrets: standard base64 with padding, and zero
// unused bits, so each secret has exactly one accepted spelling.
var strictStd = base64.StdEncoding.Strict()

// Key is one shared cluster secret.
//
// A Key never prints its Secret: fmt (every verb), log/slog,
// encoding/json and other encoders that honor [encoding.TextMarshaler]
// show only its ID, as in "Key(k20261122-3f9a)".
type Key struct {
	// ID names the key in the key file and in signed requests: 1 to 64
	// characters of A-Z, a-z, 0-9, '.', '_' and '-'. It is not secret.
	ID string

	// Secret is 32 random bytes.
	Secret []byte
}

// Derive returns a 32-byte secret for one purpose, HMAC-SHA256(Secret,
// "weir/" + label), so that one key serves several purposes without one use
// weakening another (domain separation), as [sign.Derive] does. Labels in
// use are "gossip/v1", "peer/v1" (peer requests) and "weir purge v1"
// (purge messages).
func (k Key) Derive(label string) []byte { return sign.Derive(k.Secret, label) }

// String returns "Key(ID)", without the secret.
func (k Key) String() string { return "Key(" + k.ID + ")" }

// GoString returns a Go-like form without the secret, for %#v.
func (k Key) GoString() string {
	return "cluster.Key{ID:" + strconv.Quote(k.ID) + ", Secret:<redacted>}"
}

// Format implements [fmt.Formatter] so that no verb prints the secret:
// %#v prints [Key.GoString], every other verb [Key.String].
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue implements [slog.LogValuer]: a key logs as [Key.String].
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText implements [encoding.TextMarshaler] with [Key.String], so
// that encoders such as encoding/json never write the secret. There is no
// way back: keys are read only from key files.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Keyring is the set of keys a node holds, primary first. It is immutable
// and safe for concurrent use. Make one with [LoadKeyFile],
// [ParseKeyFile] or [NewKeyring]; like [Key], it never prints secrets.
type Keyring struct {
	keys []Key      // primary first; never exposed, accessors copy
	peer *sign.Keys // peer requests' MAC keys, derived from keys in order
}

// NewKeyring returns a keyring of the given keys, the first being the
// primary, checked as [ParseKeyFile] checks a key file. It copies the
// secrets.
func NewKeyring(keys ...Key) (*Keyring, error) {
	var errs []error
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		if p := idProblem(k.ID); p != "" {
			errs = append(errs, fmt.Errorf("keys[%d]: key ID %s", i, p))
			continue
		}
		if j, dup := seen[k.ID]; dup {
			errs = append(errs, fmt.Errorf("keys[%d]: key ID %s repeats keys[%d]: give each key its own ID", i, k.ID, j))
			continue
		}
		seen[k.ID] = i
		if p := secretProblem(k.Secret); p != "" {
			errs = append(errs, fmt.Errorf("keys[%d]: key %s %s: %s", i, k.ID, p, keygenHint))
		}
	}
	switch {
	case len(keys) == 0:
		errs = append(errs, errors.New("no keys: "+keygenHint))
	case len(keys) > maxKeys:
		errs = append(errs, fmt.Errorf("%d keys, at most %d are allowed: remove keys that no node signs with any more", len(keys), maxKeys))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cp := make([]Key, len(keys))
	for i, k := range keys {
		cp[i] = Key{ID: k.ID, Secret: bytes.Clone(k.Secret)}
	}
	return newKeyring(cp), nil
}

// newKeyring returns a keyring holding keys, which must be valid and not
// shared with the caller.
func newKeyring(keys []Key) *Keyring {
	sk := make([]sign.Key, len(keys))
	for i, k := range keys {
		sk[i] = sign.Key(k)
	}
	return &Keyring{keys: keys, peer: sign.NewKeys(peerScheme, sk...)}
}

// ParseKeyFile parses a key file. Each line holds a key ID, white space,
// and the standard base64 encoding (with = padding) of a 32-byte secret;
// lines starting with '#' and blank lines are ignored, and spaces around a
// line are trimmed:
//
//	# Weir cluster keys. Keep this file secret (chmod 600).
//	k20261122-3f9a  <base64 of 32 random bytes>
//
// A file holds 1 to 16 keys with distinct IDs; the first is the primary.
// The error reports every problem found (up to 10), each starting with
// its line number, as in "line 3: key k1 is 24 bytes, want 32: generate a
// new key with `weir keygen`". Errors never contain secret material: only
// key IDs are quoted from the file.
func ParseKeyFile(data []byte) (*Keyring, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key file is %d bytes, more than the limit of %d: a key file holds at most %d keys", len(data), maxKeyFileSize, maxKeys)
	}
	var (
		keys     []Key
		problems []error
		seen     = make(map[string]int) // key ID to line number
		n        int                    // line number
		count    int                    // well-formed keys so far
	)
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("line %d: "+format, append([]any{n}, args...)...))
	}
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// Only a valid key ID from a line of two fields is ever quoted in
		// an error: any other text may be a misplaced secret.
		fields := bytes.Fields(line)
		if len(fields) != 2 {
			hint := "write the key ID, a space and the base64 secret on one line"
			if hasTrailingComment(fields) {
				hint = "comments go on a line of their own, starting with #"
			}
			problem("has %s, want 2: %s", plural(len(fields), "field"), hint)
			continue
		}
		id := string(fields[0])
		if p := idProblem(id); p != "" {
			problem("key ID %s", p)
			continue
		}
		if prev, dup := seen[id]; dup {
			problem("key ID %s repeats line %d: give each key its own ID", id, prev)
			continue
		}
		seen[id] = n
		secret := make([]byte, strictStd.DecodedLen(len(fields[1])))
		m, err := strictStd.Decode(secret, fields[1])
		secret = secret[:m]
		if err != nil {
			problem("key %s: %s: %s", id, base64Problem(fields[1], err), keygenHint)
			continue
		}
		if p := secretProblem(secret); p != "" {
			problem("key %s %s: %s", id, p, keygenHint)
			continue
		}
		if count++; count > maxKeys {
			problem("key %s is key number %d, at most %d are allowed: remove keys that no node signs with any more", id, count, maxKeys)
			continue
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	if len(problems) == 0 && len(keys) == 0 {
		return nil, errors.New("no keys (only comments and blank lines): " + keygenHint)
	}
	if len(problems) > maxReportedProblems {
		more := len(problems) - maxReportedProblems
		problems = append(problems[:maxReportedProblems], fmt.Errorf("and %d more problems", more))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return newKeyring(keys), nil
}

// hasTrailingComment reports whether a field after the first starts with
// '#', that is, whether a line has a trailing comment.
func hasTrailingComment(fields [][]byte) bool {
	for _, f := range fields[1:] {
		if f[0] == '#' {
			return true
		}
	}
	return false
}

// LoadKeyFile reads the key file at path (at most 64 KiB) and parses it
// with [ParseKeyFile]. Errors name the path.
func LoadKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key file %s does not exist: create it with `weir keygen`, and copy it to every node", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key file %s is larger than %d KiB: a key file holds at most %d keys", path, maxKeyFileSize>>10, maxKeys)
	}
	kr, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return kr, nil
}

// KeyFileModeWarning returns a warning when the file at path can be read
// or written by its group or by others, and "" otherwise. It is best
// effort: it returns "" when the file cannot be examined, and on Windows,
// where permission bits say little.
func KeyFileModeWarning(path string) string {
	return secretfile.ModeWarning(path, "can access the cluster keys")
}

// GenerateKey returns a new key with 32 secret bytes read from rand and the
// ID "k" + the UTC date of now as yyyymmdd + "-" + 4 hex digits from rand,
// as in "k20261122-3f9a". rand is normally crypto/rand.Reader; nil means
// crypto/rand.Reader.
func GenerateKey(rand io.Reader, now time.Time) (Key, error) {
	if rand == nil {
		rand = crand.Reader
	}
	var b [keySize + 2]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return Key{}, fmt.Errorf("generate key: read random bytes: %w", err)
	}
	k := Key{
		ID:     "k" + now.UTC().Format("20060102") + "-" + hex.EncodeToString(b[keySize:]),
		Secret: bytes.Clone(b[:keySize]),
	}
	if p := secretProblem(k.Secret); p != "" {
		return Key{}, fmt.Errorf("generate key: the random source is broken: the secret %s", p)
	}
	return k, nil
}

// WriteKeyFile writes a key file holding keys, the first being the primary:
// two comment lines, then one line per key. It writes nothing and returns
// an error when the keys would not make a valid key file (see
// [NewKeyring]).
func WriteKeyFile(w io.Writer, keys ...Key) error {
	if _, err := NewKeyring(keys...); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(keyFileHeader)
	for _, k := range keys {
		buf.WriteString(k.ID)
		buf.WriteString("  ")
		buf.Write(base64.StdEncoding.AppendEncode(buf.AvailableBuffer(), k.Secret))
		buf.WriteByte('\n')
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// Primary returns the key that encrypts gossip and signs peer requests,
// the first of the key file. The returned key is a copy.
func (kr *Keyring) Primary() Key { return kr.keys[0].clone() }

// Keys returns copies of all keys, primary first, in key file order.
func (kr *Keyring) Keys() []Key {
	keys := make([]Key, len(kr.keys))
	for i, k := range kr.keys {
		keys[i] = k.clone()
	}
	return keys
}

// Lookup returns a copy of the key with the given ID, and whether there is
// one.
func (kr *Keyring) Lookup(id string) (Key, bool) {
	if i := kr.index(id); i >= 0 {
		return kr.keys[i].clone(), true
	}
	return Key{}, false
}

// GossipKeys returns each key's Derive("gossip/v1"), primary first: the
// AES-256 keyring for memberlist, which encrypts with the first key and
// decrypts with any.
func (kr *Keyring) GossipKeys() [][]byte {
	keys := make([][]byte, len(kr.keys))
	for i, k := range kr.keys {
		keys[i] = k.Derive("gossip/v1")
	}
	return keys
}

// String returns the key IDs, primary first, as in "Keyring(k2, k1)".
func (kr *Keyring) String() string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.ID
	}
	return "Keyring(" + strings.Join(ids, ", ") + ")"
}

// GoString returns [Keyring.String], for %#v.
func (kr *Keyring) GoString() string { return kr.String() }

// Format implements [fmt.Formatter] so that no verb prints a secret.
func (kr *Keyring) Format(f fmt.State, verb rune) { io.WriteString(f, kr.String()) }

// LogValue implements [slog.LogValuer] with [Keyring.String].
func (kr *Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

// index returns the index of the key with the given ID, or -1.
func (kr *Keyring) index(id string) int {
	for i, k := range kr.keys {
		if k.ID == id {
			return i
		}
	}
	return -1
}

// plural returns "1 field", "3 fields".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func (k Key) clone() Key { return Key{ID: k.ID, Secret: bytes.Clone(k.Secret)} }

// idProblem describes what is wrong with a key ID, or returns "". It never
// quotes the ID, which may be a misplaced secret.
func idProblem(id string) string {
	if id == "" {
		return "is empty: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
	}
	if len(id) > maxKeyIDLen {
		return fmt.Sprintf("is %d bytes long, want at most %d", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return fmt.Sprintf("has a character other than A-Z, a-z, 0-9, '.', '_' and '-' at byte %d", i+1)
		}
	}
	return ""
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// secretProblem describes what is wrong with a decoded secret, or returns
// "".
func secretProblem(secret []byte) string {
	if len(secret) != keySize {
		return fmt.Sprintf("is %d bytes, want %d", len(secret), keySize)
	}
	var zero [keySize]byte
	if bytes.Equal(secret, zero[:]) {
		return "is all zero bytes"
	}
	return ""
}

// base64Problem describes why text, which failed to decode with err, is not
// a standard padded base64 string, without quoting it.
func base64Problem(text []byte, err error) string {
	s := string(text)
	switch {
	case bytes.ContainsAny(text, "-_"):
		if _, e := base64.URLEncoding.DecodeString(s); e == nil {
			return "secret uses URL-safe base64 (- and _); want standard base64 (+ and /)"
		}
		if _, e := base64.RawURLEncoding.DecodeString(s); e == nil {
			return "secret uses URL-safe base64 (- and _); want standard base64 (+ and /)"
		}
	case !bytes.HasSuffix(text, []byte("=")):
		if _, e := base64.RawStdEncoding.DecodeString(s); e == nil {
			return "secret lacks its = padding"
		}
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Sprintf("secret is not valid base64 (at character %d); want standard base64 with = padding", int64(ce)+1)
	}
	return "secret is not valid base64; want standard base64 with = padding"
}
