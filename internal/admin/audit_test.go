package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readAuditLines returns the audit file's lines, failing unless the file
// ends in a newline and every line is one JSON object.
func readAuditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("audit file does not end in a newline: %q", data)
	}
	var out []map[string]any
	for i, line := range strings.Split(string(data[:len(data)-1]), "\n") {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&m); err != nil || dec.More() {
			t.Fatalf("line %d is not one JSON object (%v): %q", i+1, err, line)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", fi.Mode().Perm())
	}

	hostile := "https://example.com/a?b=1&c=2\n{\"who\":\"root\",\"action\":\"purge\"}\r\n\u2028<x>"
	at := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("X", 3600))
	a.Write(AuditRecord{Time: at, Who: "ci", Role: "purge", Action: "purge",
		What: map[string][]string{"urls": {hostile}}, From: "192.0.2.1:5555", Via: "admin", Status: 202, Result: "ok", ID: "n1.1.7"})
	before := time.Now()
	a.Write(AuditRecord{Action: "purge", From: "192.0.2.2:1", Status: 401, Result: "missing Authorization header"})
	a.Write(AuditRecord{Action: "purge", What: func() {}, Status: 500, Result: "failed"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	lines := readAuditLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	first := lines[0]
	if first["time"] != "2025-03-04T04:06:07.00000089Z" || first["who"] != "ci" || first["role"] != "purge" ||
		first["via"] != "admin" || first["status"] != 202.0 || first["result"] != "ok" || first["id"] != "n1.1.7" {
		t.Errorf("first record: %v", first)
	}
	if got := first["what"].(map[string]any)["urls"].([]any)[0]; got != hostile {
		t.Errorf("what.urls[0] = %q, want the hostile URL back intact", got)
	}
	second := lines[1]
	if _, ok := second["who"]; !ok || second["who"] != "" {
		t.Errorf("unauthenticated record: who = %v, want present and empty", second["who"])
	}
	for _, k := range []string{"role", "what", "via", "id"} {
		if _, ok := second[k]; ok {
			t.Errorf("unauthenticated record has %q though it is empty: %v", k, second)
		}
	}
	when, err := time.Parse(time.RFC3339Nano, second["time"].(string))
	if err != nil || when.Before(before.Add(-time.Second)) || time.Since(when) > time.Minute || !strings.HasSuffix(second["time"].(string), "Z") {
		t.Errorf("zero Time became %v (%v); want now, in UTC", second["time"], err)
	}
	if what, _ := lines[2]["what"].(string); !strings.HasPrefix(what, "unencodable: ") || lines[2]["status"] != 500.0 {
		t.Errorf("record with an unencodable What: %v; want it written with the reason", lines[2])
	}
	if a.Errors() != 0 {
		t.Errorf("Errors() = %d, want 0", a.Errors())
	}

	// Reopening appends.
	a, err = OpenAudit(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge.status", Status: 200, Result: "ok"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := readAuditLines(t, path); len(lines) != 4 || lines[0]["id"] != "n1.1.7" || lines[3]["action"] != "purge.status" {
		t.Errorf("after reopening: %v; want the old lines kept and one appended", lines)
	}

	if _, err := OpenAudit(filepath.Join(t.TempDir(), "no", "such", "dir", "audit.log"), nil); err == nil || !strings.Contains(err.Error(), "audit.log") {
		t.Errorf("OpenAudit in a missing directory: %v; want an error naming the file", err)
	}
}

func TestAuditConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAudit(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 100
	// Large records, so a line is written in more than one piece if the
	// writes are not serialized.
	pad := strings.Repeat("x", 16<<10)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				a.Write(AuditRecord{Who: fmt.Sprint("w", w), Action: "purge", What: pad, Status: 202, Result: "ok", ID: fmt.Sprint(w, ".", i)})
			}
		})
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readAuditLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	seen := make(map[string]bool)
	for _, l := range lines {
		id := l["id"].(string)
		if seen[id] || l["what"] != pad || !strings.HasPrefix(id, strings.TrimPrefix(l["who"].(string), "w")+".") {
			t.Fatalf("bad or duplicated record %s", id)
		}
		seen[id] = true
	}
}

// syncBuffer is a bytes.Buffer safe for a slog handler shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditWriteErrors(t *testing.T) {
	var logs syncBuffer
	a, err := OpenAudit(filepath.Join(t.TempDir(), "audit.log"), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return clock }
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.Write(AuditRecord{Action: "purge"})
	}
	if a.Errors() != 3 {
		t.Errorf("Errors() = %d after 3 failed writes", a.Errors())
	}
	if n := len(logs.lines(t)); n != 1 {
		t.Fatalf("%d error lines logged for 3 failures within 10 s, want 1", n)
	}
	clock = clock.Add(10*time.Second - 1)
	a.Write(AuditRecord{Action: "purge"})
	if n := len(logs.lines(t)); n != 1 {
		t.Fatalf("%d error lines logged before 10 s passed, want 1", n)
	}
	clock = clock.Add(1)
	a.Write(AuditRecord{Action: "purge"})
	got := logs.lines(t)
	if len(got) != 2 || a.Errors() != 5 {
		t.Fatalf("after 10 s: %d lines, %d errors; want 2 and 5", len(got), a.Errors())
	}
	if got[1]["level"] != "ERROR" || got[1]["errors"] != 5.0 || !strings.Contains(got[1]["err"].(string), "closed") {
		t.Errorf("error line %v: want level ERROR, errors 5 and the reason", got[1])
	}
}

func TestAuditToLog(t *testing.T) {
	var logs syncBuffer
	a, err := OpenAudit("", slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	a.Write(AuditRecord{Time: at, Who: "ci", Role: "purge", Action: "purge", What: map[string]any{"tags": []string{"a\n{b"}},
		From: "192.0.2.1:5555", Via: "edge", Status: 202, Result: "ok", ID: "n1.1.7"})
	a.Write(AuditRecord{Time: at, Action: "purge", From: "192.0.2.2:1", Status: 401, Result: "unknown bearer token"})
	if err := a.Close(); err != nil {
		t.Errorf("Close of a log-backed audit: %v", err)
	}
	got := logs.lines(t)
	if len(got) != 2 {
		t.Fatalf("%d log lines, want 2", len(got))
	}
	want := map[string]any{"time": "2025-03-04T05:06:07.000000008Z", "level": "INFO", "msg": "audit",
		"who": "ci", "role": "purge", "action": "purge", "what": map[string]any{"tags": []any{"a\n{b"}},
		"from": "192.0.2.1:5555", "via": "edge", "status": 202.0, "result": "ok", "id": "n1.1.7"}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("log line\n got %v\nwant %v", got[0], want)
	}
	want = map[string]any{"time": "2025-03-04T05:06:07.000000008Z", "level": "INFO", "msg": "audit",
		"who": "", "action": "purge", "from": "192.0.2.2:1", "status": 401.0, "result": "unknown bearer token"}
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("log line\n got %v\nwant %v", got[1], want)
	}
	if a.Errors() != 0 {
		t.Errorf("Errors() = %d", a.Errors())
	}
}

// TestAuditReopenAfterRotation: once the file is renamed away, the next
// record goes to a new file at the path (another process writing the log
// may have rotated it), chained to the last line of the renamed one, and
// Reopen after the rename changes nothing more.
func TestAuditReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	a, err := OpenAudit(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write(AuditRecord{Action: "purge", Who: "before"})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "renamed"})
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "after"})
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if strings.Count(string(old), "\n") != 1 || !strings.Contains(string(old), `"who":"before"`) {
		t.Errorf("rotated file = %q, want only the record written before the rename", old)
	}
	if strings.Count(string(cur), "\n") != 2 || !strings.Contains(string(cur), `"who":"renamed"`) || !strings.Contains(string(cur), `"who":"after"`) {
		t.Errorf("new file = %q, want the records written after the rename", cur)
	}
	if _, err := VerifyAuditChain([]string{path + ".1", path}); err != nil {
		t.Errorf("the chain across the rename: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode: %v %v, want 0600", fi.Mode(), err)
	}
}

// TestAuditTwoWritersKeepOneChain: two processes writing one audit log,
// as the old and the new process do during an upgrade (two opens of the
// file stand for them: the lock is per open file), interleave their
// records into one unbroken chain, across rotations by size that either
// of them makes.
func TestAuditTwoWritersKeepOneChain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	open := func() *Audit {
		a, err := OpenAuditWith(path, nil, AuditOptions{MaxSize: 4 << 10, MaxFiles: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	old, upgraded := open(), open()
	const each = 200
	var wg sync.WaitGroup
	for i, a := range []*Audit{old, upgraded} {
		wg.Go(func() {
			for n := range each {
				a.Write(AuditRecord{Action: "purge", Who: fmt.Sprintf("writer-%d", i), What: strconv.Itoa(n)})
			}
		})
	}
	wg.Wait()
	if old.Errors()+upgraded.Errors() != 0 {
		t.Fatalf("write errors: %d and %d", old.Errors(), upgraded.Errors())
	}
	files, err := filepath.Glob(path + ".*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("rotated files %v: the test wants rotations during the writes", files)
	}
	// Oldest first: PATH.N ... PATH.1, then PATH.
	slices.SortFunc(files, func(x, y string) int {
		nx, _ := strconv.Atoi(x[len(path)+1:])
		ny, _ := strconv.Atoi(y[len(path)+1:])
		return ny - nx
	})
	files = append(files, path)
	res, err := VerifyAuditChain(files)
	if err != nil {
		t.Fatalf("the chain of two writers: %v", err)
	}
	if res.Lines != 2*each {
		t.Errorf("the chain holds %d lines, want %d", res.Lines, 2*each)
	}
}

// TestAuditFollowsAnExternalRename: a log renamed away under a name of
// its own (logrotate's dateext) while an older size rotation left PATH.1
// chains on from the renamed file's last line, not PATH.1's.
func TestAuditFollowsAnExternalRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	a, err := OpenAuditWith(path, nil, AuditOptions{MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := os.WriteFile(path+".1", []byte(`{"prev":"`+GenesisHash+`","time":"2026-01-01T00:00:00Z","who":"older"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "before"})
	renamed := path + "-20261204"
	if err := os.Rename(path, renamed); err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "after"})
	if _, err := VerifyAuditChain([]string{renamed, path}); err != nil {
		t.Errorf("the chain across the rename: %v", err)
	}
}
