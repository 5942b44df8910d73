package admin

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeAudit writes n records to a new audit log at path and closes it.
func writeAudit(t *testing.T, path string, n int) {
	t.Helper()
	a, err := OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		a.Write(AuditRecord{Action: "purge", Who: fmt.Sprintf("w%d", i), Status: 200, Result: "ok"})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func chainBreak(t *testing.T, files ...string) *ChainBreak {
	t.Helper()
	_, err := VerifyAuditChain(files)
	var b *ChainBreak
	if err != nil && !errors.As(err, &b) {
		t.Fatalf("VerifyAuditChain: %v, want a *ChainBreak or nil", err)
	}
	return b
}

func TestAuditChainIntact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAudit(t, path, 5)
	res, err := VerifyAuditChain([]string{path})
	if err != nil || res.Lines != 5 || res.Start != GenesisHash || !strings.HasPrefix(res.Head, "sha256:") {
		t.Fatalf("VerifyAuditChain = %+v, %v; want 5 lines from the genesis value", res, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), `{"prev":"`+GenesisHash+`","time":"`) {
		t.Errorf("first line %q does not start with the genesis prev", strings.SplitN(string(data), "\n", 2)[0])
	}
	// Reopening the log (a restart) continues the chain.
	a, err := OpenAudit(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "after-restart"})
	a.Close()
	if res, err := VerifyAuditChain([]string{path}); err != nil || res.Lines != 6 {
		t.Errorf("after a restart: %+v, %v; want 6 lines in one chain", res, err)
	}
}

// TestAuditChainShowsTampering: each kind of tampering breaks the chain
// at the line it touches, with a reason.
func TestAuditChainShowsTampering(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.jsonl")
	writeAudit(t, orig, 6)
	data, _ := os.ReadFile(orig)
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last '\n'
	join := func(ls ...string) string { return strings.Join(ls, "") }
	other := filepath.Join(dir, "other.jsonl")
	writeAudit(t, other, 2)
	otherData, _ := os.ReadFile(other)
	for _, tc := range []struct {
		name    string
		content string
		line    int
		reason  string
	}{
		{"a field edited", join(lines[0], lines[1], strings.Replace(lines[2], `"who":"w2"`, `"who":"w9"`, 1), lines[3], lines[4], lines[5]), 4, "is not the hash of the line before it"},
		{"a line deleted", join(lines[0], lines[1], lines[3], lines[4], lines[5]), 3, "is not the hash of the line before it"},
		{"two lines swapped", join(lines[0], lines[2], lines[1], lines[3], lines[4], lines[5]), 2, "is not the hash of the line before it"},
		{"a line inserted", join(lines[0], lines[1], lines[1], lines[2], lines[3], lines[4], lines[5]), 3, "is not the hash of the line before it"},
		{"the prev edited", join(lines[0], flipPrev(lines[1]), lines[2]), 2, "is not the hash of the line before it"},
		{"the end cut mid-line", join(lines[0], lines[1], lines[2][:20]), 3, "cut short"},
		{"JSON broken", join(lines[0], strings.Replace(lines[1], `"who"`, `"who`, 1)), 2, "not valid JSON"},
		{"a line without prev", join(lines[0], `{"who":"x"}`+"\n"), 2, `does not start with {"prev"`},
		{"a new chain spliced in", join(lines[0], lines[1], string(otherData)), 3, "starts a new chain in the middle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			os.WriteFile(path, []byte(tc.content), 0o600)
			b := chainBreak(t, path)
			if b == nil || b.Line != tc.line || b.File != path || !strings.Contains(b.Reason, tc.reason) {
				t.Errorf("break %v, want line %d saying %q", b, tc.line, tc.reason)
			}
		})
	}
	// The newest line edited is beyond the chain: Head changes, though.
	res1, _ := VerifyAuditChain([]string{orig})
	edited := filepath.Join(dir, "edited.jsonl")
	os.WriteFile(edited, []byte(join(lines[0], lines[1], lines[2], lines[3], lines[4], strings.Replace(lines[5], `"w5"`, `"w6"`, 1))), 0o600)
	if res2, err := VerifyAuditChain([]string{edited}); err != nil || res2.Head == res1.Head {
		t.Errorf("an edit of the newest line: %v, head %s vs %s; want the chain intact but its head changed", err, res2.Head, res1.Head)
	}
}

// TestAuditRotationKeepsEveryLine: writers in parallel with rotation by
// size lose no line, and the chain verifies across the rotated files,
// given oldest first; given out of order, it breaks at a file's first
// line. A SIGHUP-style Reopen after an external rename chains too.
func TestAuditRotationKeepsEveryLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := OpenAuditWith(path, slog.New(slog.DiscardHandler), AuditOptions{MaxSize: 4 << 10, MaxFiles: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a.Write(AuditRecord{Action: "purge", Who: fmt.Sprintf("w%d-%d", w, i), Status: 200, Result: "ok"})
			}
		}()
	}
	wg.Wait()
	if err := os.Rename(path, path+".ext"); err != nil { // as logrotate would
		t.Fatal(err)
	}
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Write(AuditRecord{Action: "purge", Who: "after-reopen"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Errors() != 0 {
		t.Fatalf("%d write errors", a.Errors())
	}
	var files []string
	for i := 1000; i >= 1; i-- {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, i)); err == nil {
			files = append(files, fmt.Sprintf("%s.%d", path, i))
		}
	}
	if len(files) < 10 {
		t.Fatalf("%d rotated files, want many with 4 KiB files", len(files))
	}
	files = append(files, path+".ext", path)
	res, err := VerifyAuditChain(files)
	if err != nil || res.Lines != writers*each+1 || res.Start != GenesisHash {
		t.Fatalf("VerifyAuditChain over %d files = %+v, %v; want %d lines from the genesis value", len(files), res, err, writers*each+1)
	}
	seen := map[string]bool{}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			who := bytes.SplitN(bytes.SplitN(line, []byte(`"who":"`), 2)[1], []byte(`"`), 2)[0]
			seen[string(who)] = true
		}
	}
	if len(seen) != writers*each+1 {
		t.Errorf("%d distinct records in the files, want %d", len(seen), writers*each+1)
	}
	swapped := append([]string{files[1], files[0]}, files[2:]...)
	if b := chainBreak(t, swapped...); b == nil || b.File != files[0] || b.Line != 1 || !strings.Contains(b.Reason, "oldest first") {
		t.Errorf("files out of order: %v, want a break at the first line of %s", b, files[0])
	}
	missing := append([]string{files[0]}, files[2:]...)
	if b := chainBreak(t, missing...); b == nil || b.File != files[2] || b.Line != 1 {
		t.Errorf("a file missing: %v, want a break at the first line of %s", b, files[2])
	}
	// The oldest files may be gone: the chain then starts elsewhere.
	if res, err := VerifyAuditChain(files[3:]); err != nil || res.Start == GenesisHash {
		t.Errorf("without the oldest files: %+v, %v; want an intact chain that does not start at genesis", res, err)
	}
}

// TestAuditRotationDropsTheOldest: MaxFiles bounds the rotated files.
func TestAuditRotationDropsTheOldest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := OpenAuditWith(path, slog.New(slog.DiscardHandler), AuditOptions{MaxSize: 1, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.Write(AuditRecord{Action: "purge", Who: fmt.Sprintf("r%d", i)})
	}
	a.Close()
	for i, want := range map[int]bool{1: true, 2: true, 3: true, 4: false} {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, i)); (err == nil) != want {
			t.Errorf("%s.%d exists: %v, want %v", path, i, err == nil, want)
		}
	}
	if res, err := VerifyAuditChain([]string{path + ".3", path + ".2", path + ".1"}); err != nil || res.Lines != 3 {
		t.Errorf("the kept files: %+v, %v; want 3 chained lines", res, err)
	}
}

// TestAuditResumesAfterRotationAndCut: a restart after a rotation
// continues from PATH.1; a log whose last line was cut gets a newline
// before the next record, and the cut line is where the chain breaks.
func TestAuditResumesAfterRotationAndCut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeAudit(t, path, 3)
	os.Rename(path, path+".1")
	writeAudit(t, path, 2) // a restart onto a new, empty file
	if res, err := VerifyAuditChain([]string{path + ".1", path}); err != nil || res.Lines != 5 {
		t.Errorf("after a restart onto an empty file: %+v, %v; want 5 lines chained from PATH.1", res, err)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)-10], 0o600) // the process stopped mid-write
	writeAudit(t, path, 1)
	b := chainBreak(t, path+".1", path)
	if b == nil || b.Line != 2 || !strings.Contains(b.Reason, "not valid JSON") {
		t.Errorf("after a cut line: %v, want the break at the cut line 2", b)
	}
	data, _ = os.ReadFile(path)
	if n := bytes.Count(data, []byte("\n")); n != 3 {
		t.Errorf("%d lines after the cut one was ended, want 3", n)
	}
}

// flipPrev changes the first hex digit of line's prev.
func flipPrev(line string) string {
	i := len(chainPrefix)
	d := byte('0')
	if line[i] == '0' {
		d = '1'
	}
	return line[:i] + string(d) + line[i+1:]
}
