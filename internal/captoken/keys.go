package captoken

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Limits of the trusted keys file.
const (
	// MaxKeysFileBytes bounds the trusted keys file LoadKeys reads.
	MaxKeysFileBytes = 1 << 20
	// keyAlgorithm is the second field of a key line.
	keyAlgorithm = "ed25519"
)

// KeyID returns the id of a public key: the first 8 bytes of its SHA-256,
// in hex. Tokens name their key by it, so that a node with several
// trusted keys (during a rotation) knows which one to verify with.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// KeyLine returns pub's line in a trusted keys file:
// "KEYID ed25519 PUBLIC-KEY", the key in unpadded base64url.
func KeyLine(pub ed25519.PublicKey) string {
	return KeyID(pub) + " " + keyAlgorithm + " " + base64.RawURLEncoding.EncodeToString(pub)
}

// Keys is an immutable set of trusted public keys. The zero value and nil
// hold none.
type Keys struct {
	byID map[string]ed25519.PublicKey
}

// Len returns how many keys k holds.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.byID)
}

// Lookup returns the key with id.
func (k *Keys) Lookup(id string) (ed25519.PublicKey, bool) {
	if k == nil {
		return nil, false
	}
	pub, ok := k.byID[id]
	return pub, ok
}

// ParseKeys reads a trusted keys file: one key per line as
// "KEYID ed25519 PUBLIC-KEY" (what KeyLine writes and weir token keygen
// prints), fields separated by spaces or tabs. KEYID must be the key's id
// (a check that the line was copied whole). Blank lines and lines whose
// first non-blank character is '#' are ignored. source names the file in
// errors, which say "source:line:" and what is wrong. An empty file is
// valid and trusts no key.
func ParseKeys(r io.Reader, source string) (*Keys, error) {
	k := &Keys{byID: make(map[string]ed25519.PublicKey)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimLeft(sc.Text(), " \t")
		if text == "" || text[0] == '#' {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", source, line, fmt.Sprintf(format, args...))
		}
		fields := strings.FieldsFunc(text, func(c rune) bool { return c == ' ' || c == '\t' })
		if len(fields) != 3 {
			return nil, fail("want 3 fields \"KEYID ed25519 PUBLIC-KEY\" as weir token keygen prints them, got %d; start the line with '#' to make it a comment", len(fields))
		}
		if fields[1] != keyAlgorithm {
			return nil, fail("key algorithm %s: only %q is supported", quote(fields[1]), keyAlgorithm)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(fields[2])
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fail("PUBLIC-KEY is not %d bytes of unpadded base64url: copy the line weir token keygen (or weir token pubkey) printed", ed25519.PublicKeySize)
		}
		pub := ed25519.PublicKey(raw)
		id := KeyID(pub)
		if fields[0] != id {
			return nil, fail("key id %s does not match the key, whose id is %s: copy the whole line weir token keygen printed", quote(fields[0]), id)
		}
		if _, dup := k.byID[id]; dup {
			return nil, fail("key %s is listed twice: delete one of the lines", id)
		}
		k.byID[id] = pub
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: reading keys after line %d: %w", source, line, err)
	}
	return k, nil
}

// LoadKeys reads the trusted keys file at path (see ParseKeys), at most
// MaxKeysFileBytes.
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin token keys file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeysFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("admin token keys file %s: %w", path, err)
	}
	if len(data) > MaxKeysFileBytes {
		return nil, fmt.Errorf("admin token keys file %s is larger than %d bytes: is it the right file? A key takes one line of about 70 bytes", path, MaxKeysFileBytes)
	}
	return ParseKeys(bytes.NewReader(data), path)
}

// pemType is the PEM block type of a signing key file (PKCS #8).
const pemType = "PRIVATE KEY"

// EncodeSigningKey returns key as a PEM PKCS #8 private key, the form of
// a signing key file (openssl reads it too).
func EncodeSigningKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// WriteSigningKey creates path with mode 0600 and writes key to it. It
// refuses to replace an existing file: that would lose the key every
// token it signed depends on.
func WriteSigningKey(path string, key ed25519.PrivateKey) error {
	data, err := EncodeSigningKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("signing key file %s exists: choose another path, or delete it first if no token signed by it is still needed", path)
		}
		return fmt.Errorf("creating the signing key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing the signing key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the signing key file %s: %w", path, err)
	}
	return nil
}

// LoadSigningKey reads a signing key file written by WriteSigningKey.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key file: %w", err)
	}
	return ParseSigningKey(data, path)
}

// ParseSigningKey decodes a signing key file's contents; source names it
// in errors.
func ParseSigningKey(data []byte, source string) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("signing key file %s holds no PEM %q block: give the file weir token keygen --key wrote", source, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key file %s: %v", source, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key file %s holds a %T, not an Ed25519 key: give the file weir token keygen --key wrote", source, k)
	}
	return key, nil
}
