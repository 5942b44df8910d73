// Package logfile is an append-only log file that is reopened after it
// was rotated: the audit log and the access log are written to one. A
// rotation renames the file away, then asks for a reopen (on SIGHUP);
// the old name keeps what was written before, and the path starts anew.
package logfile

import (
	"errors"
	"os"
	"sync"
)

// ErrClosed is returned by Write and Reopen after Close.
var ErrClosed = errors.New("the log file is closed")

// File is a log file opened for appending. Writes are serialized, so
// lines written in one call never interleave. It is safe for concurrent
// use.
type File struct {
	path string
	mode os.FileMode
	// mu guards f and closed, and orders writes with Reopen and Close.
	mu     sync.Mutex
	f      *os.File
	closed bool
}

// Open opens path for appending, creating it with mode when it is
// missing. Its errors are the os package's, which name the path.
func Open(path string, mode os.FileMode) (*File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, mode)
	if err != nil {
		return nil, err
	}
	return &File{path: path, mode: mode, f: f}, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Write appends p in one write call.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	return f.f.Write(p)
}

// Stat describes the open file (which, after a rename, the path may no
// longer name).
func (f *File) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	return f.f.Stat()
}

// Reopen opens the path again and writes there from now on, as after a
// rotation. When the path cannot be opened, the file open before stays
// in use and the error says why. An error closing the file rotated away
// comes after the switch, as the *os.PathError of its Close (Op
// "close").
func (f *File) Reopen() error {
	nf, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, f.mode)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		nf.Close()
		return ErrClosed
	}
	old := f.f
	f.f = nf
	return old.Close()
}

// Close closes the file; closing again does nothing.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return f.f.Close()
}
