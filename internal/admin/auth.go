package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/captoken"
)

// Role is what a token may do on the admin API. Roles are ordered: each
// includes everything the roles below it may do.
type Role int

// The roles, weakest first. The zero Role is not a role and allows nothing.
// Which role each call needs is listed in docs/operations.md ("Tokens and
// roles").
const (
	// RoleViewer may read: /status, /cluster, /metrics, purge status.
	RoleViewer Role = iota + 1
	// RolePurge may also purge URLs, prefixes below a host's root, and
	// tags.
	RolePurge
	// RoleOperator may also purge whole hosts: a host purge, a prefix
	// purge of a host's root ("/", the same blast radius), and a purge
	// of everything.
	RoleOperator
	// RoleAdmin may do everything, including reloading the configuration
	// and reading Go profiles.
	RoleAdmin
)

// validRoles lists the role names in the order error messages give them.
const validRoles = `"viewer", "purge", "operator" or "admin"`

// ParseRole parses a role name as written in a tokens file: "viewer",
// "purge", "operator" or "admin", exactly and in lower case.
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "purge":
		return RolePurge, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	shown := strconv.Quote(s)
	if len(s) > 16 { // perhaps a hash or a token in the wrong field: do not echo it
		shown = fmt.Sprintf("(a %d-byte value)", len(s))
	}
	return 0, fmt.Errorf("unknown role %s: use one of %s (lower case)", shown, validRoles)
}

// String returns the role's name as ParseRole accepts it, or "Role(N)" for
// a value that is not a role.
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RolePurge:
		return "purge"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// valid reports whether r is one of the defined roles.
func (r Role) valid() bool { return r >= RoleViewer && r <= RoleAdmin }

// Allows reports whether a principal with role r may make a call that
// needs role need: r must be need or a stronger role. A value that is not
// a defined role, on either side, allows nothing.
func (r Role) Allows(need Role) bool {
	return r.valid() && need.valid() && r >= need
}

// Limits of the tokens file.
const (
	// MaxTokenNameBytes bounds a token's NAME in a tokens file.
	MaxTokenNameBytes = 64
	// MaxTokensFileBytes bounds the size of a tokens file LoadTokens reads.
	MaxTokensFileBytes = 1 << 20
	// maxTokensLineBytes bounds one line of a tokens file.
	maxTokensLineBytes = 64 << 10
)

// tokenEntry is one token of a tokens file.
type tokenEntry struct {
	name string
	role Role
	line int // where it was defined, for duplicate errors
}

// Tokens is an immutable set of tokens, as read from a tokens file. Only
// the SHA-256 of each token is kept. The zero value and nil hold no tokens.
type Tokens struct {
	byHash map[[sha256.Size]byte]tokenEntry
}

// ParseTokens reads a tokens file: one token per line as
// "NAME ROLE SHA256-HEX", fields separated by spaces or tabs, where
// SHA256-HEX is the 64-hex-digit SHA-256 of the token in either case (see
// HashToken; `printf %s TOKEN | sha256sum` gives the same). Blank lines and
// lines whose first non-blank character is '#' are ignored; a trailing
// "\r" (CRLF line ends) is dropped. NAME is printable ASCII without
// spaces, at most MaxTokenNameBytes bytes, unique in the file; hashes are
// unique too. source names the file in errors, which say "source:line:"
// and what is wrong, and never echo a hash in full. An empty file is
// valid: it holds no tokens, so every call is refused.
//
// The tokens themselves are what clients send as "Authorization: Bearer
// TOKEN", so they must use only the characters A-Z a-z 0-9 - . _ ~ + /
// with optional trailing '=' (RFC 6750's b64token); the file cannot check
// this because it holds only hashes.
func ParseTokens(r io.Reader, source string) (*Tokens, error) {
	t := &Tokens{byHash: make(map[[sha256.Size]byte]tokenEntry)}
	names := make(map[string]int)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxTokensLineBytes)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text() // without "\n", and without one "\r" before it
		if isBlankOrComment(text) {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", source, line, fmt.Sprintf(format, args...))
		}
		fields := strings.FieldsFunc(text, func(c rune) bool { return c == ' ' || c == '\t' })
		if len(fields) != 3 {
			return nil, fail("want 3 fields \"NAME ROLE SHA256-HEX\" separated by spaces, got %d; start the line with '#' to make it a comment", len(fields))
		}
		name, roleText, hashText := fields[0], fields[1], fields[2]
		if err := checkTokenName(name); err != nil {
			return nil, fail("%v", err)
		}
		role, err := ParseRole(roleText)
		if err != nil {
			return nil, fail("token %s: %v", abbrev(name), err)
		}
		sum, err := parseHash(hashText)
		if err != nil {
			return nil, fail("token %s: %v", abbrev(name), err)
		}
		if first, dup := names[name]; dup {
			return nil, fail("duplicate name %s (first on line %d): give each token its own name", abbrev(name), first)
		}
		if prev, dup := t.byHash[sum]; dup {
			return nil, fail("token %s has the same hash (%s...) as token %s on line %d: give each client its own token",
				abbrev(name), hex.EncodeToString(sum[:4]), abbrev(prev.name), prev.line)
		}
		names[name] = line
		t.byHash[sum] = tokenEntry{name: name, role: role, line: line}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes: a token line is \"NAME ROLE SHA256-HEX\"", source, line+1, maxTokensLineBytes)
		}
		return nil, fmt.Errorf("%s: reading tokens after line %d: %w", source, line, err)
	}
	return t, nil
}

// isBlankOrComment reports whether a tokens file line holds no token.
func isBlankOrComment(line string) bool {
	rest := strings.TrimLeft(line, " \t")
	return rest == "" || rest[0] == '#'
}

// checkTokenName checks a NAME field.
func checkTokenName(name string) error {
	if len(name) > MaxTokenNameBytes {
		return fmt.Errorf("name %s is %d bytes long, at most %d are allowed: shorten it", abbrev(name), len(name), MaxTokenNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("name %s has byte %#02x at offset %d: names are printable ASCII without spaces", abbrev(name), c, i)
		}
	}
	return nil
}

// parseHash decodes a SHA256-HEX field. Its errors never echo the field:
// it may hold a hash, or, by mistake, the token itself.
func parseHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(s) != 2*sha256.Size {
		return sum, fmt.Errorf("SHA256-HEX is %d characters, want %d hex digits: put the output of `printf %%s TOKEN | sha256sum` there, not the token",
			len(s), 2*sha256.Size)
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return sum, fmt.Errorf("SHA256-HEX has a non-hex character at offset %d: want %d hex digits (0-9, a-f, either case)",
				i, 2*sha256.Size)
		}
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil { // cannot fail after the checks above
		return sum, fmt.Errorf("SHA256-HEX: %v", err)
	}
	return sum, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// abbrev quotes a NAME from a tokens file for an error message. A name
// that could be a hash — longer than a name may be, or with a run of 32 or
// more hex digits — is cut to its first 8 bytes, so errors never echo a
// hash in full.
func abbrev(s string) string {
	const keep = 8
	hexRun, longest := 0, 0
	for i := 0; i < len(s); i++ {
		if isHexDigit(s[i]) {
			hexRun++
			longest = max(longest, hexRun)
		} else {
			hexRun = 0
		}
	}
	if len(s) <= MaxTokenNameBytes && longest < 32 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:keep]) + "..."
}

// LoadTokens reads the tokens file at path (see ParseTokens). It refuses a
// file larger than MaxTokensFileBytes.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin tokens file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokensFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("admin tokens file %s: %w", path, err)
	}
	if len(data) > MaxTokensFileBytes {
		return nil, fmt.Errorf("admin tokens file %s is larger than %d bytes: is it the right file? A token takes one line of about 100 bytes", path, MaxTokensFileBytes)
	}
	return ParseTokens(bytes.NewReader(data), path)
}

// Len returns how many tokens t holds.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byHash)
}

// Lookup finds token: it hashes the token with SHA-256 and looks the hash
// up, so which token was sent influences only the hash, never how far a
// comparison of secret bytes runs.
func (t *Tokens) Lookup(token string) (name string, role Role, ok bool) {
	if t == nil {
		return "", 0, false
	}
	e, ok := t.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return "", 0, false
	}
	return e.name, e.role, true
}

// HashToken returns the lower-case hex SHA-256 of token: the SHA256-HEX
// field of its line in a tokens file.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Authenticator checks bearer tokens: tokens listed (hashed) in a tokens
// file, and capability tokens (package captoken) signed by a key listed
// in a trusted keys file. Both files can be re-read (on reload). It is
// safe for concurrent use.
type Authenticator struct {
	path     string
	keysPath string
	now      func() time.Time
	tokens   atomic.Pointer[Tokens]
	keys     atomic.Pointer[captoken.Keys]
}

// AuthOptions configure an Authenticator.
type AuthOptions struct {
	// TokensFile is the tokens file's path (see ParseTokens); "" means
	// none.
	TokensFile string
	// KeysFile is the trusted token keys file's path (see
	// captoken.ParseKeys); "" means capability tokens are not accepted.
	KeysFile string
	// Now is the clock capability tokens are checked against; nil means
	// time.Now.
	Now func() time.Time
}

// NewAuthenticator loads the tokens file at path, without capability
// tokens (see NewAuthenticatorWith).
func NewAuthenticator(path string) (*Authenticator, error) {
	return NewAuthenticatorWith(AuthOptions{TokensFile: path})
}

// NewAuthenticatorWith loads the files opt names. With neither file there
// are no tokens: every call that needs one is refused with 401 and a
// message saying to set --admin-tokens-file.
func NewAuthenticatorWith(opt AuthOptions) (*Authenticator, error) {
	a := &Authenticator{path: opt.TokensFile, keysPath: opt.KeysFile, now: opt.Now}
	if a.now == nil {
		a.now = time.Now
	}
	a.tokens.Store(&Tokens{})
	a.keys.Store(&captoken.Keys{})
	if a.path != "" {
		t, err := LoadTokens(a.path)
		if err != nil {
			return nil, err
		}
		a.tokens.Store(t)
	}
	if a.keysPath != "" {
		k, err := captoken.LoadKeys(a.keysPath)
		if err != nil {
			return nil, err
		}
		a.keys.Store(k)
	}
	return a, nil
}

// Reload re-reads the tokens file. On error it keeps the tokens it had and
// returns the error. Without a tokens file (path "") it does nothing.
func (a *Authenticator) Reload() error {
	if a.path == "" {
		return nil
	}
	t, err := LoadTokens(a.path)
	if err != nil {
		return fmt.Errorf("%w (keeping the %d tokens loaded before)", err, a.tokens.Load().Len())
	}
	a.tokens.Store(t)
	return nil
}

// ReloadKeys re-reads the trusted token keys file, as Reload does the
// tokens file: on error it keeps the keys it had and returns the error;
// without a keys file it does nothing. Removing a key's line and
// reloading revokes every token that key signed.
func (a *Authenticator) ReloadKeys() error {
	if a.keysPath == "" {
		return nil
	}
	k, err := captoken.LoadKeys(a.keysPath)
	if err != nil {
		return fmt.Errorf("%w (keeping the %d keys loaded before)", err, a.keys.Load().Len())
	}
	a.keys.Store(k)
	return nil
}

// Path returns the tokens file's path, "" when there is none.
func (a *Authenticator) Path() string { return a.path }

// KeysPath returns the trusted token keys file's path, "" when there is
// none.
func (a *Authenticator) KeysPath() string { return a.keysPath }

// Configured reports whether tokens are configured at all: a tokens file
// or a trusted keys file. Without either, the admin API's reads stay
// open (see Options.Auth).
func (a *Authenticator) Configured() bool { return a != nil && (a.path != "" || a.keysPath != "") }

// Tokens returns the tokens currently in force.
func (a *Authenticator) Tokens() *Tokens { return a.tokens.Load() }

// Principal is who made a call: the name and role of the token sent, and
// for a capability token its key and scope.
type Principal struct {
	// Name is the token's NAME in the tokens file, or the name a
	// capability token carries.
	Name string
	// Role is the token's role.
	Role Role
	// KeyID is the id of the key that signed a capability token; "" for
	// a token of the tokens file.
	KeyID string
	// Scope is a scoped capability token's scope; nil means unscoped.
	Scope *captoken.Scope
}

// Scoped reports whether p may purge only within a scope.
func (p Principal) Scoped() bool { return p.Scope != nil }

// AuthError is why a call was refused: Status is 401 (no usable
// credentials) or 403 (known token, insufficient role).
type AuthError struct {
	// Status is the HTTP status to answer with.
	Status int
	// Reason says what was wrong and what to do; it never includes the token.
	Reason string
}

// Error returns the reason.
func (e *AuthError) Error() string { return e.Reason }

func unauthorized(reason string) *AuthError {
	return &AuthError{Status: http.StatusUnauthorized, Reason: reason}
}

func forbidden(reason string) *AuthError {
	return &AuthError{Status: http.StatusForbidden, Reason: reason}
}

// Authorize checks r's "Authorization: Bearer <token>" header and that
// the token's role allows need. It returns the principal, or an
// *AuthError with Status 401 when the header is missing or malformed (not
// the Bearer scheme, which is matched case-insensitively; an empty token
// or more than one; a token with characters outside RFC 6750's b64token;
// several Authorization fields) or the token is unknown, expired or not
// signed by a trusted key, and 403 when the token is known but its role
// does not allow need — the Principal is then still returned filled in,
// for the audit log.
//
// A scoped capability token passes Authorize only for RoleViewer: the
// calls that need more act on something, and only a caller that checks
// what against Principal.Scope may let a scoped token act
// (AuthorizeScoped). So a new endpoint is closed to scoped tokens unless
// it says otherwise.
func (a *Authenticator) Authorize(r *http.Request, need Role) (Principal, error) {
	p, err := a.AuthorizeScoped(r, need)
	if err == nil && p.Scoped() && need > RoleViewer {
		return p, forbidden(fmt.Sprintf("token %q is scoped (%s), and a scoped token may only purge within its scope and read: this call needs an unscoped token with role %s",
			p.Name, p.Scope, need))
	}
	return p, err
}

// AuthorizeScoped is Authorize for a caller that checks what a scoped
// token acts on against Principal.Scope itself (the purge API). A scoped
// token acts with at most RoleOperator, whatever role it carries: it can
// never make a call that needs RoleAdmin (reload, profiles).
func (a *Authenticator) AuthorizeScoped(r *http.Request, need Role) (Principal, error) {
	if !a.Configured() {
		return Principal{}, unauthorized("the admin API has no tokens configured, so every call is refused: set --admin-tokens-file to a file of \"NAME ROLE SHA256-HEX\" lines, or --admin-token-keys-file to a file of trusted capability token keys")
	}
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return Principal{}, unauthorized("missing Authorization header: send \"Authorization: Bearer TOKEN\"")
	case len(values) > 1:
		return Principal{}, unauthorized(fmt.Sprintf("%d Authorization header fields: send exactly one, \"Authorization: Bearer TOKEN\"", len(values)))
	}
	token, aerr := bearerToken(values[0])
	if aerr != nil {
		return Principal{}, aerr
	}
	p, aerr := a.identify(token)
	if aerr != nil {
		return p, aerr
	}
	if p.Scoped() && need == RoleAdmin {
		return p, forbidden(fmt.Sprintf("token %q is scoped (%s), and scoped tokens can never make calls that need role admin: use an unscoped admin token", p.Name, p.Scope))
	}
	if !p.Role.Allows(need) {
		return p, forbidden(fmt.Sprintf("token %q has role %s, and this call needs role %s: use a token with that role", p.Name, p.Role, need))
	}
	return p, nil
}

// identify finds who token belongs to: a capability token when it has
// that form and a keys file is set, else a token of the tokens file.
func (a *Authenticator) identify(token string) (Principal, *AuthError) {
	if captoken.Is(token) && a.keysPath != "" {
		c, err := captoken.Verify(token, a.keys.Load(), a.now())
		if err != nil {
			return Principal{}, unauthorized(err.Error())
		}
		role, err := ParseRole(c.Role)
		if err != nil {
			return Principal{}, unauthorized(fmt.Sprintf("capability token %q: %v; issue a new one with weir token issue", c.Name, err))
		}
		p := Principal{Name: c.Name, Role: role, KeyID: c.KeyID}
		if !c.Scope.Empty() {
			p.Scope = &c.Scope
		}
		return p, nil
	}
	tokens := a.tokens.Load()
	if a.path == "" { // a keys file, then, and token is not a capability token
		return Principal{}, unauthorized("unknown bearer token: this node accepts only capability tokens (weir1....), as it has no admin tokens file")
	}
	if tokens.Len() == 0 && a.keysPath == "" {
		return Principal{}, unauthorized("the admin tokens file has no tokens, so every call is refused: add a \"NAME ROLE SHA256-HEX\" line and reload")
	}
	name, role, ok := tokens.Lookup(token)
	if !ok {
		if captoken.Is(token) {
			return Principal{}, unauthorized("unknown bearer token: it looks like a capability token, but this node has no trusted token keys: set --admin-token-keys-file (admin_token_keys_file)")
		}
		return Principal{}, unauthorized("unknown bearer token: check the token, and that its SHA-256 is in the admin tokens file")
	}
	return Principal{Name: name, Role: role}, nil
}

// bearerToken extracts the token from an Authorization field value:
// "Bearer" (any case), one or more spaces, and one b64token. Errors never
// echo any part of the value: a client that forgot the scheme sent the
// token where the scheme goes.
func bearerToken(v string) (string, *AuthError) {
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", unauthorized("the Authorization header does not use the Bearer scheme: send \"Authorization: Bearer TOKEN\"")
	}
	token := strings.TrimLeft(rest, " ")
	if token == "" {
		return "", unauthorized("empty bearer token: send \"Authorization: Bearer TOKEN\"")
	}
	if !isB64Token(token) {
		return "", unauthorized("malformed bearer token: send exactly one token after \"Bearer \", using only A-Z a-z 0-9 - . _ ~ + / and trailing =")
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// WriteAuthError answers a refused call: err's status, a JSON body
// {"error": reason}, Cache-Control: no-store, and for 401
// `WWW-Authenticate: Bearer realm="weir"`. A nil err answers 401.
func WriteAuthError(w http.ResponseWriter, err *AuthError) {
	if err == nil {
		err = unauthorized("unauthorized")
	}
	if err.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
	}
	WriteJSON(w, err.Status, ErrorDoc{err.Reason})
}
