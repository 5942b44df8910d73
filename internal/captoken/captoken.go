// Package captoken is Weir's capability tokens: bearer tokens for the
// admin API that carry their own name, role, scope and lifetime, signed
// with Ed25519, so that a node verifies them against a file of trusted
// public keys without a lookup in the tokens file.
//
// A token is
//
//	weir1.<payload>.<signature>
//
// where payload is the unpadded base64url (RFC 4648 §5) of a JSON
// object (Claims) and signature the unpadded base64url of the Ed25519
// signature of the bytes "weir1.<payload>". Every character is one of
// A-Z a-z 0-9 - _ and '.', so a token is an RFC 6750 b64token and goes in
// "Authorization: Bearer TOKEN" as it is.
package captoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Prefix starts every capability token; the "1" is the format's version.
const Prefix = "weir1."

// Limits of a token.
const (
	// MaxTokenBytes bounds a whole token.
	MaxTokenBytes = 8 << 10
	// MaxLifetime bounds how long a token may be valid, from its
	// not-before time to its expiry: a token is revoked only by removing
	// its key, so none may live for ever.
	MaxLifetime = 400 * 24 * time.Hour
	// Skew is how far the issuer's clock and the verifier's may differ:
	// a token is accepted from Skew before its not-before time until Skew
	// after its expiry.
	Skew = time.Minute
	// MaxNameBytes bounds a token's name, as in a tokens file.
	MaxNameBytes = 64
)

// Claims is what a token says about its holder. Times are Unix seconds.
type Claims struct {
	// KeyID names the key that signed the token (see KeyID).
	KeyID string `json:"kid"`
	// Name is the holder's name, as the audit log shows it: printable
	// ASCII without spaces, at most MaxNameBytes.
	Name string `json:"name"`
	// Role is the role's name, as a tokens file writes it; this package
	// does not interpret it.
	Role string `json:"role"`
	// Scope restricts what the token may purge; empty means unscoped.
	Scope Scope `json:"scope,omitzero"`
	// IssuedAt is when the token was made.
	IssuedAt int64 `json:"iat"`
	// NotBefore is when the token starts being valid.
	NotBefore int64 `json:"nbf"`
	// Expires is when the token stops being valid.
	Expires int64 `json:"exp"`
}

// ExpiresAt returns Expires as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// check validates the claims themselves, not the time.
func (c *Claims) check() error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	if c.Role == "" {
		return errors.New("the token has no role")
	}
	if c.IssuedAt <= 0 || c.NotBefore <= 0 || c.Expires <= 0 {
		return errors.New("the token lacks its issued-at, not-before or expiry time")
	}
	if c.Expires <= c.NotBefore {
		return errors.New("the token expires before it starts being valid")
	}
	if life := time.Duration(c.Expires-c.NotBefore) * time.Second; c.Expires-c.NotBefore > int64(MaxLifetime/time.Second) {
		return fmt.Errorf("the token is valid for %s, longer than the %s allowed: issue one with a shorter --expires", life.Round(time.Hour), MaxLifetime)
	}
	if err := c.Scope.Validate(); err != nil {
		return fmt.Errorf("the token's scope: %w", err)
	}
	return nil
}

// CheckName checks a token's name: printable ASCII without spaces, at
// most MaxNameBytes bytes.
func CheckName(name string) error {
	if name == "" {
		return errors.New("the token has no name: give it one that says who holds it")
	}
	if len(name) > MaxNameBytes {
		return fmt.Errorf("the token's name is %d bytes long, at most %d are allowed", len(name), MaxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("the token's name has byte %#02x at offset %d: names are printable ASCII without spaces", c, i)
		}
	}
	return nil
}

// Issue signs c with key and returns the token. It sets c.KeyID to key's
// id and refuses claims that Verify would refuse whatever the time (see
// Claims).
func Issue(key ed25519.PrivateKey, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("captoken: the signing key is not an Ed25519 private key")
	}
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	if err := c.check(); err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("captoken: encoding the claims: %w", err)
	}
	signed := Prefix + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(key, []byte(signed))
	token := signed + "." + base64.RawURLEncoding.EncodeToString(sig)
	if len(token) > MaxTokenBytes {
		return "", fmt.Errorf("the token would be %d bytes long, at most %d are allowed: use fewer or shorter scope patterns", len(token), MaxTokenBytes)
	}
	return token, nil
}

// Is reports whether token has the form of a capability token (its
// prefix), without checking anything else.
func Is(token string) bool { return strings.HasPrefix(token, Prefix) }

// Error is why a token was refused. Its text says what failed and what to
// do, and never includes the token.
type Error struct {
	// Reason is the message.
	Reason string
	// Expired is set when the token is well formed and signed, but
	// outside its validity period.
	Expired bool
}

func (e *Error) Error() string { return e.Reason }

func refuse(format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Parse decodes token's claims without verifying its signature or its
// times, and returns them with the signed bytes and the signature. It is
// what Verify starts with, and never trusts what it returns.
func Parse(token string) (c *Claims, signed, sig []byte, err error) {
	if len(token) > MaxTokenBytes {
		return nil, nil, nil, refuse("the capability token is %d bytes long, longer than the %d a token may be: was it copied with something else?", len(token), MaxTokenBytes)
	}
	rest, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return nil, nil, nil, refuse("not a capability token: it does not start with %q", Prefix)
	}
	payloadText, sigText, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigText, ".") {
		return nil, nil, nil, refuse("malformed capability token: want weir1.PAYLOAD.SIGNATURE, three parts separated by dots; copy the whole token that weir token issue printed")
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(payloadText)
	if err != nil {
		return nil, nil, nil, refuse("malformed capability token: its payload is not unpadded base64url (%v); copy the whole token that weir token issue printed", err)
	}
	sig, err = base64.RawURLEncoding.Strict().DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, nil, refuse("malformed capability token: its signature is not %d bytes of unpadded base64url; copy the whole token that weir token issue printed", ed25519.SignatureSize)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields() // a field this version does not know may be a restriction it would ignore
	c = new(Claims)
	if err := dec.Decode(c); err != nil {
		return nil, nil, nil, refuse("malformed capability token: its claims do not decode (%v); was it issued by a newer weir?", err)
	}
	if dec.More() {
		return nil, nil, nil, refuse("malformed capability token: its payload holds more than one JSON document")
	}
	return c, []byte(Prefix + payloadText), sig, nil
}

// Verify checks token: its form, the signature by the trusted key its
// KeyID names, its claims, and that now is within its validity period
// (with Skew either side). The error is an *Error saying what failed.
func Verify(token string, keys *Keys, now time.Time) (*Claims, error) {
	c, signed, sig, err := Parse(token)
	if err != nil {
		return nil, err
	}
	pub, ok := keys.Lookup(c.KeyID)
	if !ok {
		return nil, refuse("capability token %s is signed by key %s, which is not in the trusted token keys file: add the key's line (weir token keygen printed it) and reload, or use a token signed by a trusted key",
			quote(c.Name), quote(c.KeyID))
	}
	if !ed25519.Verify(pub, signed, sig) {
		return nil, refuse("capability token %s does not verify under key %s: it was altered or cut; ask its issuer for a new one", quote(c.Name), c.KeyID)
	}
	if err := c.check(); err != nil {
		return nil, refuse("capability token %s: %v", quote(c.Name), err)
	}
	if nbf := time.Unix(c.NotBefore, 0); now.Add(Skew).Before(nbf) {
		return nil, &Error{Expired: true, Reason: fmt.Sprintf("capability token %s is not valid before %s (now %s): check both clocks, or wait", quote(c.Name), nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if exp := time.Unix(c.Expires, 0); !now.Add(-Skew).Before(exp) {
		return nil, &Error{Expired: true, Reason: fmt.Sprintf("capability token %s expired at %s: issue a new one with weir token issue", quote(c.Name), exp.UTC().Format(time.RFC3339))}
	}
	return c, nil
}
