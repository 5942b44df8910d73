package logfile

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRotation: after a rename and Reopen, the old name keeps what was
// written before and the path gets only what came after, with the mode
// asked for.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	f, err := Open(path, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("still the old file\n"))
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("after\n"))
	if got := read(t, path+".1"); got != "before\nstill the old file\n" {
		t.Errorf("rotated file %q", got)
	}
	if got := read(t, path); got != "after\n" {
		t.Errorf("new file %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("new file mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
}

// TestOpenAppends: an existing file is appended to, not truncated.
func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("added\n"))
	f.Close()
	if got := read(t, path); got != "kept\nadded\n" {
		t.Errorf("file %q", got)
	}
}

// TestReopenFailureKeepsTheOldFile: when the path cannot be opened again
// (its directory is gone), writes go on to the file open before.
func TestReopenFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	os.Mkdir(sub, 0o700)
	path := filepath.Join(sub, "x.log")
	f, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen succeeded without a directory")
	}
	if _, err := f.Write([]byte("on\n")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(moved, "x.log")); got != "on\n" {
		t.Errorf("old file %q", got)
	}
}

func TestClosed(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "x.log"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := f.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close: %v", err)
	}
}

// TestConcurrentWritesAndReopens: lines written while the file is
// reopened are each whole, in one file or the other (run with -race).
func TestConcurrentWritesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	f, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const writers, lines = 4, 200
	line := []byte("0123456789abcdef\n")
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range lines {
				f.Write(line)
			}
		})
	}
	for i := range 5 {
		os.Rename(path, path+"."+string(rune('0'+i)))
		if err := f.Reopen(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	total := 0
	matches, _ := filepath.Glob(path + "*")
	for _, m := range matches {
		s := read(t, m)
		if len(s)%len(line) != 0 {
			t.Errorf("%s holds a torn line: %d bytes", m, len(s))
		}
		total += len(s) / len(line)
	}
	if total != writers*lines {
		t.Errorf("%d lines in all, want %d", total, writers*lines)
	}
}
