package cluster_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cluster"
)

// secret returns a 32-byte test secret made of one repeated byte.
func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(p []byte) string { return base64.StdEncoding.EncodeToString(p) }

// testKey returns a key with a recognisable secret.
func testKey(id string, b byte) cluster.Key { return cluster.Key{ID: id, Secret: secret(b)} }

func mustKeyring(t testing.TB, keys ...cluster.Key) *cluster.Keyring {
	t.Helper()
	kr, err := cluster.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

// secretForms returns the ways a secret could leak into text.
func secretForms(s []byte) []string {
	forms := []string{
		base64.StdEncoding.EncodeToString(s),
		base64.RawStdEncoding.EncodeToString(s),
		base64.URLEncoding.EncodeToString(s),
		hex.EncodeToString(s),
		fmt.Sprint(s), // [1 2 3 ...]
	}
	if len(s) >= 8 {
		forms = append(forms, string(s))
	}
	return forms
}

func checkNoSecret(t *testing.T, what, text string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range secretForms(s) {
			if len(form) >= 8 && strings.Contains(text, form) {
				t.Errorf("%s contains a secret (%q): %s", what, form, text)
			}
		}
	}
}

func TestParseKeyFile(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []cluster.Key
	}{
		{
			name: "one key",
			file: "k1 " + b64(secret(1)) + "\n",
			want: []cluster.Key{testKey("k1", 1)},
		},
		{
			name: "as written by weir keygen",
			file: "# Weir cluster keys. Keep this file secret (chmod 600).\n" +
				"# The first key encrypts gossip and signs peer requests; the others are still accepted.\n" +
				"k20261122-3f9a  " + b64(secret(7)) + "\n",
			want: []cluster.Key{testKey("k20261122-3f9a", 7)},
		},
		{
			name: "comments, blank lines and several keys in order",
			file: "\n# new\nnew " + b64(secret(2)) + "\n\n   # old, still accepted\n\t\nold " + b64(secret(1)) + "\nolder " + b64(secret(3)),
			want: []cluster.Key{testKey("new", 2), testKey("old", 1), testKey("older", 3)},
		},
		{
			name: "spaces, tabs and CRLF",
			file: "  a.b_c-D9 \t " + b64(secret(4)) + "  \r\n\r\n\tz\t" + b64(secret(5)) + "\r\n",
			want: []cluster.Key{testKey("a.b_c-D9", 4), testKey("z", 5)},
		},
		{
			name: "64-character ID",
			file: strings.Repeat("x", 64) + " " + b64(secret(6)),
			want: []cluster.Key{testKey(strings.Repeat("x", 64), 6)},
		},
		{
			name: "16 keys",
			file: func() string {
				var b strings.Builder
				for i := range 16 {
					fmt.Fprintf(&b, "k%d %s\n", i, b64(secret(byte(i+1))))
				}
				return b.String()
			}(),
			want: func() []cluster.Key {
				var keys []cluster.Key
				for i := range 16 {
					keys = append(keys, testKey(fmt.Sprintf("k%d", i), byte(i+1)))
				}
				return keys
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := cluster.ParseKeyFile([]byte(tt.file))
			if err != nil {
				t.Fatalf("ParseKeyFile: %v", err)
			}
			if diff := cmp.Diff(tt.want, kr.Keys()); diff != "" {
				t.Errorf("Keys() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want[0], kr.Primary()); diff != "" {
				t.Errorf("Primary() mismatch (-want +got):\n%s", diff)
			}
			for _, k := range tt.want {
				got, ok := kr.Lookup(k.ID)
				if !ok || !bytes.Equal(got.Secret, k.Secret) {
					t.Errorf("Lookup(%q) = %v, %v; want the key", k.ID, got, ok)
				}
			}
			if got, ok := kr.Lookup("absent"); ok {
				t.Errorf("Lookup(absent) = %v, true", got)
			}
		})
	}
}

func TestParseKeyFileErrors(t *testing.T) {
	good := b64(secret(9))
	short := b64(secret(8)[:24])
	long := b64(bytes.Repeat([]byte{8}, 33))
	tests := []struct {
		name string
		file string
		want []string // substrings of the error, in order
	}{
		{"empty file", "", []string{"no keys", "weir keygen"}},
		{"only comments", "# a\n\n  # b\n", []string{"no keys", "weir keygen"}},
		{"secret too short", "# c\n\nk1 " + short + "\n", []string{"line 3: key k1 is 24 bytes, want 32: generate a new key with `weir keygen`"}},
		{"secret too long", "k1 " + long, []string{"line 1: key k1 is 33 bytes, want 32"}},
		{"all zero secret", "\nk0 " + b64(make([]byte, 32)), []string{"line 2: key k0 is all zero bytes", "weir keygen"}},
		{"bad base64", "k1 " + good[:10] + "!" + good[11:], []string{"line 1: key k1: secret is not valid base64 (at character 11)"}},
		{"URL-safe base64", "k1 " + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), []string{"line 1: key k1: secret uses URL-safe base64"}},
		{"unpadded base64", "k1 " + base64.RawStdEncoding.EncodeToString(secret(9)), []string{"line 1: key k1: secret lacks its = padding"}},
		{"non-canonical base64", "k1 " + good[:42] + "B=", []string{"line 1: key k1: secret is not valid base64"}},
		{"duplicate ID", "k1 " + good + "\n# x\nk1 " + b64(secret(3)), []string{"line 3: key ID k1 repeats line 1"}},
		{"bad ID character", "k/1 " + good, []string{"line 1: key ID has a character other than", "at byte 2"}},
		{"ID too long", strings.Repeat("x", 65) + " " + good, []string{"line 1: key ID is 65 bytes long, want at most 64"}},
		{"only an ID", "k1\n", []string{"line 1: has 1 field, want 2"}},
		{"only a secret", "\n\n" + good + "\n", []string{"line 3: has 1 field, want 2"}},
		{"secret before ID", good + " k1", []string{"line 1: key ID has a character other than"}},
		{"three fields", "k1 " + good + " " + good, []string{"line 1: has 3 fields, want 2"}},
		{"trailing comment", "k1 " + good + " # primary", []string{"line 1: has 4 fields, want 2: comments go on a line of their own"}},
		{
			name: "18 keys",
			file: func() string {
				var b strings.Builder
				for i := range 18 {
					fmt.Fprintf(&b, "k%d %s\n", i, b64(secret(byte(i+1))))
				}
				return b.String()
			}(),
			want: []string{"line 17: key k16 is key number 17, at most 16 are allowed", "line 18: key k17 is key number 18"},
		},
		{
			name: "every problem reported",
			file: "k1 " + short + "\nk2 " + good + "\nk2 " + good + "\nx " + long,
			want: []string{"line 1: key k1 is 24 bytes", "line 3: key ID k2 repeats line 2", "line 4: key x is 33 bytes"},
		},
		{
			name: "at most 10 problems reported",
			file: strings.Repeat("k1\n", 25),
			want: []string{"line 1:", "line 10:", "and 15 more problems"},
		},
		{"too large", strings.Repeat("#", 64<<10+1), []string{"key file is 65537 bytes, more than the limit of 65536"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := cluster.ParseKeyFile([]byte(tt.file))
			if err == nil {
				t.Fatalf("ParseKeyFile = %v, want an error", kr)
			}
			msg := err.Error()
			rest := msg
			for _, want := range tt.want {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("error %q does not contain %q (after the previous parts)", msg, want)
				}
				rest = rest[i+len(want):]
			}
			// No secret, good or bad, nor any part of one, is quoted.
			for _, s := range []string{good, short, long, good[:20], short[:20], long[:20], good[11:31]} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains secret material %q", msg, s)
				}
			}
		})
	}
}

func TestNewKeyringErrors(t *testing.T) {
	tests := []struct {
		name string
		keys []cluster.Key
		want string
	}{
		{"no keys", nil, "no keys"},
		{"bad ID", []cluster.Key{testKey("a b", 1)}, "keys[0]: key ID has a character other than"},
		{"duplicate ID", []cluster.Key{testKey("a", 1), testKey("a", 2)}, "keys[1]: key ID a repeats keys[0]"},
		{"short secret", []cluster.Key{{ID: "a", Secret: secret(1)[:31]}}, "keys[0]: key a is 31 bytes, want 32"},
		{"nil secret", []cluster.Key{{ID: "a"}}, "keys[0]: key a is 0 bytes, want 32"},
		{"too many", func() []cluster.Key {
			var keys []cluster.Key
			for i := range 17 {
				keys = append(keys, testKey(fmt.Sprint("k", i), byte(i+1)))
			}
			return keys
		}(), "17 keys, at most 16 are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cluster.NewKeyring(tt.keys...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewKeyring error = %v, want one containing %q", err, tt.want)
			}
			for _, k := range tt.keys {
				checkNoSecret(t, "error", err.Error(), k.Secret)
			}
		})
	}
}

func TestKeyringIsImmutable(t *testing.T) {
	in := []cluster.Key{testKey("a", 1), testKey("b", 2)}
	kr := mustKeyring(t, in...)
	in[0].Secret[0] = 99
	kr.Keys()[0].Secret[1] = 99
	kr.Primary().Secret[2] = 99
	k, _ := kr.Lookup("a")
	k.Secret[3] = 99
	if got := kr.Primary().Secret; !bytes.Equal(got, secret(1)) {
		t.Errorf("keyring secret changed through a copy: %v", got)
	}
}

func TestGenerateKey(t *testing.T) {
	random := append(bytes.Repeat([]byte{0xab}, 32), 0x3f, 0x9a)
	// 23:30 on 21 November in New York is 22 November in UTC.
	ny := time.FixedZone("EST", -5*3600)
	now := time.Date(2026, 11, 21, 23, 30, 0, 0, ny)
	k, err := cluster.GenerateKey(bytes.NewReader(random), now)
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.Key{ID: "k20261122-3f9a", Secret: random[:32]}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("GenerateKey mismatch (-want +got):\n%s", diff)
	}

	if _, err := cluster.GenerateKey(bytes.NewReader(random[:20]), now); err == nil {
		t.Error("GenerateKey with a short random source: no error")
	}
	if _, err := cluster.GenerateKey(bytes.NewReader(make([]byte, 34)), now); err == nil {
		t.Error("GenerateKey with an all-zero random source: no error")
	}
	a, err := cluster.GenerateKey(nil, now)
	if err != nil {
		t.Fatalf("GenerateKey(nil): %v", err)
	}
	b, _ := cluster.GenerateKey(rand.Reader, now)
	if bytes.Equal(a.Secret, b.Secret) || len(a.Secret) != 32 {
		t.Errorf("GenerateKey gave secrets of %d bytes, equal: %v", len(a.Secret), bytes.Equal(a.Secret, b.Secret))
	}
}

func TestWriteKeyFile(t *testing.T) {
	var buf bytes.Buffer
	if err := cluster.WriteKeyFile(&buf, testKey("k20261122-3f9a", 1), testKey("k20260101-0000", 2)); err != nil {
		t.Fatal(err)
	}
	want := "# Weir cluster keys. Keep this file secret (chmod 600).\n" +
		"# The first key encrypts gossip and signs peer requests; the others are still accepted.\n" +
		"k20261122-3f9a  " + b64(secret(1)) + "\n" +
		"k20260101-0000  " + b64(secret(2)) + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("WriteKeyFile mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteKeyFileRefusesInvalidKeys(t *testing.T) {
	for name, keys := range map[string][]cluster.Key{
		"no keys":      nil,
		"short secret": {{ID: "a", Secret: []byte("short")}},
		"duplicate ID": {testKey("a", 1), testKey("a", 2)},
		"bad ID":       {testKey("", 1)},
	} {
		var buf bytes.Buffer
		err := cluster.WriteKeyFile(&buf, keys...)
		if err == nil {
			t.Errorf("%s: WriteKeyFile = nil, want an error", name)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: WriteKeyFile wrote %q before failing", name, buf.String())
		}
	}
}

func TestGenerateWriteParseRoundTrip(t *testing.T) {
	now := time.Now()
	var keys []cluster.Key
	for range 3 {
		k, err := cluster.GenerateKey(rand.Reader, now)
		if err != nil {
			t.Fatal(err)
		}
		k.ID += fmt.Sprint(len(keys)) // distinct even if the 4 random hex digits collide
		keys = append(keys, k)
	}
	var buf bytes.Buffer
	if err := cluster.WriteKeyFile(&buf, keys...); err != nil {
		t.Fatal(err)
	}
	kr, err := cluster.ParseKeyFile(buf.Bytes())
	if err != nil {
		t.Fatalf("ParseKeyFile of WriteKeyFile output: %v\n%s", err, buf.String())
	}
	if diff := cmp.Diff(keys, kr.Keys()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestDerive(t *testing.T) {
	a, b := testKey("a", 1), testKey("b", 2)
	ref := func(k cluster.Key, label string) []byte {
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("weir/" + label))
		return m.Sum(nil)
	}
	for _, k := range []cluster.Key{a, b} {
		for _, label := range []string{"gossip/v1", "peer/v1", ""} {
			got := k.Derive(label)
			if len(got) != 32 || !bytes.Equal(got, ref(k, label)) || !bytes.Equal(got, k.Derive(label)) {
				t.Errorf("%v.Derive(%q) = %x, want HMAC-SHA256(secret, \"weir/%s\") = %x", k, label, got, label, ref(k, label))
			}
			if bytes.Equal(got, k.Secret) {
				t.Errorf("%v.Derive(%q) returned the secret", k, label)
			}
		}
	}
	if bytes.Equal(a.Derive("gossip/v1"), a.Derive("peer/v1")) {
		t.Error("Derive gives the same secret for two labels")
	}
	if bytes.Equal(a.Derive("peer/v1"), b.Derive("peer/v1")) {
		t.Error("Derive gives the same secret for two keys")
	}
}

func TestDeriveKnownAnswer(t *testing.T) {
	k := cluster.Key{ID: "k", Secret: []byte("0123456789abcdef0123456789abcdef")}
	// Derived secrets must agree between versions. Computed with:
	// printf %s weir/gossip/v1 | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
	const want = "4b8d90c9da8a3486f5709e30503ee4b94f7fc7642c22a353bacefcaed0305007"
	if got := hex.EncodeToString(k.Derive("gossip/v1")); got != want {
		t.Errorf("Derive(gossip/v1) = %s, want %s", got, want)
	}
}

func TestGossipKeys(t *testing.T) {
	kr := mustKeyring(t, testKey("new", 2), testKey("old", 1))
	got := kr.GossipKeys()
	want := [][]byte{testKey("new", 2).Derive("gossip/v1"), testKey("old", 1).Derive("gossip/v1")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GossipKeys mismatch (-want +got):\n%s", diff)
	}
}

// TestKeysPrintWithoutSecrets checks every common way a key or a keyring
// could end up in a log line.
func TestKeysPrintWithoutSecrets(t *testing.T) {
	k := testKey("k20261122-3f9a", 0x5a)
	kr := mustKeyring(t, k, testKey("old", 0x6b))
	type config struct {
		Key  cluster.Key
		Ptr  *cluster.Key
		Keys []cluster.Key
		Ring *cluster.Keyring
	}
	c := config{Key: k, Ptr: &k, Keys: kr.Keys(), Ring: kr}
	var texts []string
	for _, v := range []any{k, &k, kr, c, &c, []cluster.Key{k}, map[string]cluster.Key{"a": k}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			texts = append(texts, fmt.Sprintf(verb, v, v))
		}
		texts = append(texts, fmt.Sprint(v), fmt.Sprintln(v))
		for _, h := range []func(io.Writer) slog.Handler{
			func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
			func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("msg", "key", v, slog.Any("any", v), slog.Group("g", "key", v))
			texts = append(texts, buf.String())
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Errorf("json.Marshal(%T): %v", v, err)
		}
		texts = append(texts, string(j))
	}
	for _, text := range texts {
		checkNoSecret(t, "printed key", text, secret(0x5a), secret(0x6b))
	}
	if got, want := k.String(), "Key(k20261122-3f9a)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := fmt.Sprintf("%v", kr), "Keyring(k20261122-3f9a, old)"; got != want {
		t.Errorf("keyring %%v = %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%#v", k); !strings.Contains(got, "k20261122-3f9a") || !strings.Contains(got, "redacted") {
		t.Errorf("%%#v = %q, want the ID and <redacted>", got)
	}
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

func TestLoadKeyFile(t *testing.T) {
	path := writeFile(t, "keys", "k1 "+b64(secret(1))+"\n", 0o600)
	kr, err := cluster.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Primary(); got.ID != "k1" || !bytes.Equal(got.Secret, secret(1)) {
		t.Errorf("Primary() = %v %x", got, got.Secret)
	}

	bad := writeFile(t, "bad", "# x\nk1 "+b64(secret(1)[:16])+"\n", 0o600)
	big := writeFile(t, "big", strings.Repeat("#", 64<<10+1), 0o600)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		path string
		want []string
	}{
		{bad, []string{"key file " + bad + ": line 2: key k1 is 16 bytes, want 32"}},
		{big, []string{big, "larger than 64 KiB"}},
		{missing, []string{missing, "does not exist", "weir keygen"}},
		{t.TempDir(), []string{"read key file"}}, // a directory
	} {
		_, err := cluster.LoadKeyFile(tt.path)
		if err == nil {
			t.Errorf("LoadKeyFile(%s): no error", tt.path)
			continue
		}
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("LoadKeyFile(%s) error %q does not contain %q", tt.path, err, want)
			}
		}
		checkNoSecret(t, "error", err.Error(), secret(1)[:16])
	}
}

func TestKeyFileModeWarning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	content := "k1 " + b64(secret(1)) + "\n"
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false},
		{0o400, false},
		{0o644, true},
		{0o640, true},
		{0o604, true},
		{0o620, true},
	} {
		path := writeFile(t, "keys", content, tt.mode)
		got := cluster.KeyFileModeWarning(path)
		if !tt.warn {
			if got != "" {
				t.Errorf("mode %04o: warning %q, want none", tt.mode, got)
			}
			continue
		}
		for _, want := range []string{path, fmt.Sprintf("%04o", tt.mode), "chmod 600"} {
			if !strings.Contains(got, want) {
				t.Errorf("mode %04o: warning %q does not contain %q", tt.mode, got, want)
			}
		}
	}
	if got := cluster.KeyFileModeWarning(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("missing file: warning %q, want none", got)
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte("# c\nk1 " + b64(secret(1)) + "\n\nk2\t" + b64(secret(2)) + "\r\n"))
	f.Add([]byte("k1 " + b64(secret(1)[:24])))
	f.Add([]byte("k1 " + b64(secret(1)) + "\nk1 " + b64(secret(2))))
	f.Add([]byte(b64(secret(3)) + "\n"))
	f.Add([]byte("k1 " + b64(secret(1)) + " # comment"))
	f.Add([]byte("k/1 " + base64.RawURLEncoding.EncodeToString(secret(0xff))))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		kr, err := cluster.ParseKeyFile(data)
		if err != nil {
			checkErrorQuotesNoSecret(t, data, err)
			return
		}
		keys := kr.Keys()
		var buf bytes.Buffer
		if err := cluster.WriteKeyFile(&buf, keys...); err != nil {
			t.Fatalf("WriteKeyFile of parsed keys: %v", err)
		}
		again, err := cluster.ParseKeyFile(buf.Bytes())
		if err != nil {
			t.Fatalf("ParseKeyFile of WriteKeyFile output: %v\n%s", err, buf.String())
		}
		if diff := cmp.Diff(keys, again.Keys()); diff != "" {
			t.Fatalf("keys changed in a round trip (-first +second):\n%s", diff)
		}
	})
}

// checkErrorQuotesNoSecret checks that err quotes no field of data that
// could be a secret. Key IDs may be quoted; so any field that is a part of
// a key ID, or of the error's own wording, is not checked.
func checkErrorQuotesNoSecret(t *testing.T, data []byte, err error) {
	t.Helper()
	msg := err.Error()
	var ids []string
	var candidates []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) == 2 {
			ids = append(ids, fields[0])
			candidates = append(candidates, fields[1])
		} else {
			candidates = append(candidates, fields...)
		}
	}
	for _, c := range candidates {
		if len(c) < 16 || !strings.Contains(msg, c) {
			continue
		}
		quotedAsID := false
		for _, id := range ids {
			if strings.Contains(id, c) {
				quotedAsID = true
			}
		}
		if !quotedAsID {
			t.Fatalf("error quotes %q from the file: %s", c, msg)
		}
	}
}
