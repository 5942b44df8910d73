package telemetry

import (
	"fmt"
	"os"
	"sync"
)

// File is a log file that is appended to and can be reopened after it
// was rotated (renamed away): the writer of the access log. It is safe
// for concurrent use; writes are serialized.
type File struct {
	path string
	// mu guards f and serializes writes with Reopen.
	mu sync.Mutex
	f  *os.File
}

// OpenFile opens path for appending, creating it with mode 0640.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file %s: %w (check that its directory exists and is writable)", path, err)
	}
	return &File{path: path, f: f}, nil
}

// Write appends p.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Write(p)
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Reopen opens the path again, as after a rotation; on error the file
// open before stays in use.
func (f *File) Reopen() error {
	nf, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("reopen log file %s: %w", f.path, err)
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}
