package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weir-cdn/weir/internal/logfile"
)

// AuditRecord is one line of the audit log: one admin call, allowed or
// refused.
type AuditRecord struct {
	// Prev is the hash of the line before this one in the audit log file
	// (see Audit): Write sets it, ignoring what the caller put there. It
	// is read back from a file, and empty in the process log.
	Prev string `json:"prev,omitempty"`
	// Time is when the call was answered; Write fills in the current time
	// when it is zero and always stores it in UTC (RFC 3339 with
	// nanoseconds, as time.Time encodes to JSON).
	Time time.Time `json:"time"`
	// Who is the token's name, "" when the call was not authenticated.
	Who string `json:"who"`
	// Role is the token's role, when known.
	Role string `json:"role,omitempty"`
	// Key is the id of the key that signed a capability token; empty for
	// a token of the tokens file.
	Key string `json:"key,omitempty"`
	// Scope is a scoped capability token's scope, as
	// "hosts [*.example.com], tags [product-*]".
	Scope string `json:"scope,omitempty"`
	// Action is what was asked for, e.g. "purge", "purge.status".
	Action string `json:"action"`
	// What is the call's subject, e.g. the purge request; it is encoded as
	// JSON, so hostile strings in it cannot break the line.
	What any `json:"what,omitempty"`
	// From is the client's remote address.
	From string `json:"from"`
	// Via is the listener the call came in on: "admin" or "edge".
	Via string `json:"via,omitempty"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// Result is "ok", or why the call was refused or failed.
	Result string `json:"result"`
	// ID is the purge id, when one was issued.
	ID string `json:"id,omitempty"`
}

// auditErrorLogEvery bounds how often Audit logs its write errors.
const auditErrorLogEvery = 10 * time.Second

// Audit is an append-only log of admin calls, one JSON line per call, in
// a file or, without one, in the process log. It is safe for concurrent
// use.
//
// In a file the lines form a hash chain: each line starts with
// {"prev":"sha256:HEX", where HEX is the SHA-256 of the line before it
// (its bytes without the '\n'), and the first line of a new log has
// GenesisHash. Editing, deleting, inserting or reordering lines breaks
// the chain at the next line (VerifyAuditChain finds it). The chain runs
// across rotations, by size (AuditOptions.MaxSize) or by renaming the
// file and calling Reopen, and across restarts: a node reopening its log
// continues from the file's last line (or, if the file is new, from the
// last line of FILE.1), and across processes writing the file at once
// (the two sides of an upgrade), which lock each other out and chain
// from each other's lines (see lockOthers).
type Audit struct {
	path     string
	log      *slog.Logger
	now      func() time.Time // the clock; tests replace it
	maxSize  int64
	maxFiles int

	// mu guards the fields below and orders the writes, so that each
	// line's prev is the hash of the line written before it.
	mu          sync.Mutex
	f           *logfile.File // nil when logging to log
	dir         *os.File      // the file's directory, for lockOthers
	size        int64         // bytes in the current file
	last        [sha256.Size]byte
	needNewline bool      // the file ends in a cut line: end it before the next
	rotateAfter time.Time // a failed rotation is retried after it

	errors     atomic.Int64
	lastErrLog atomic.Int64 // Unix nanoseconds of the last logged write error; 0: never
}

// GenesisHash is the prev of the first line of a new audit log.
const GenesisHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Defaults of AuditOptions, which the configuration's audit_log_max_size
// and audit_log_max_files default to.
const (
	DefaultAuditMaxFiles = 10
	// maxAuditLine bounds the last line OpenAudit reads back to continue
	// the chain, and the lines VerifyAuditChain reads.
	maxAuditLine = 64 << 20
)

// AuditOptions configure an audit log file.
type AuditOptions struct {
	// MaxSize rotates the file once it holds this many bytes: it is
	// renamed to PATH.1 (PATH.1 to PATH.2, and so on) and a new PATH is
	// opened, whose first line chains from the last line of the old. 0
	// never rotates (rotate by renaming and Reopen instead).
	MaxSize int64
	// MaxFiles is how many rotated files are kept: PATH.1 to
	// PATH.MaxFiles; a rotation drops the oldest. 0 means
	// DefaultAuditMaxFiles.
	MaxFiles int
}

// OpenAudit opens path for appending (created with mode 0600 if missing),
// or, when path is "", writes each record to log as an Info line with
// message "audit" and the record's fields as attributes (the line's time
// is the record's). A nil log means slog.Default(); log also receives
// write errors. It never rotates by size (see OpenAuditWith).
func OpenAudit(path string, log *slog.Logger) (*Audit, error) {
	return OpenAuditWith(path, log, AuditOptions{})
}

// OpenAuditWith is OpenAudit with rotation by size. It continues the
// chain of the file's last line; a file that ends in a cut line (the
// process stopped mid-write) gets a '\n' before the next record, and the
// cut line stays as a break VerifyAuditChain reports.
func OpenAuditWith(path string, log *slog.Logger, opt AuditOptions) (*Audit, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Audit{path: path, log: log, now: time.Now, maxSize: opt.MaxSize, maxFiles: opt.MaxFiles}
	if a.maxFiles <= 0 {
		a.maxFiles = DefaultAuditMaxFiles
	}
	if path == "" {
		return a, nil
	}
	f, err := logfile.Open(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w: check that its directory exists and is writable, or leave the audit log path empty to log audit records to the process log", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening the audit log's directory, which its writers lock: %w", err)
	}
	a.f, a.dir = f, dir
	if err := a.resume(); err != nil {
		f.Close()
		dir.Close()
		return nil, err
	}
	return a, nil
}

// resume finds the hash the next line chains from: that of the file's
// last line, or of PATH.1's when the file is empty.
func (a *Audit) resume() error {
	line, size, cut, err := lastLine(a.path)
	if err != nil {
		return fmt.Errorf("reading the audit log's last line to continue its chain: %w", err)
	}
	a.size = size
	if size == 0 {
		if line, _, _, err = lastLine(a.path + ".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reading the last line of the rotated audit log to continue its chain: %w", err)
		}
	}
	if line != nil {
		a.last = sha256.Sum256(line)
	}
	a.needNewline = cut
	return nil
}

// lastLine returns the last line of the file at path without its '\n',
// the file's size, and whether the file ends in a cut line (no '\n'). An
// empty or missing file has no line (a missing one also returns an error
// wrapping os.ErrNotExist).
func lastLine(path string) (line []byte, size int64, cut bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, false, err
	}
	size = fi.Size()
	if size == 0 {
		return nil, 0, false, nil
	}
	var tail []byte
	const chunk = 64 << 10
	end := size
	for end > 0 {
		n := min(int64(chunk), end)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, end-n); err != nil {
			return nil, size, false, err
		}
		tail = append(buf, tail...)
		end -= n
		body := bytes.TrimSuffix(tail, []byte{'\n'}) // tail runs to the end of the file
		if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
			return bytes.Clone(body[i+1:]), size, tail[len(tail)-1] != '\n', nil
		}
		if len(tail) > maxAuditLine {
			return nil, size, false, fmt.Errorf("%s: the last line is longer than %d bytes: is it an audit log?", path, maxAuditLine)
		}
	}
	return bytes.Clone(bytes.TrimSuffix(tail, []byte{'\n'})), size, tail[len(tail)-1] != '\n', nil
}

// Write appends rec as a single JSON line, chained to the line before it
// (see Audit), in one write call made under a mutex, so lines never
// interleave; it rotates the file when it reaches AuditOptions.MaxSize. A
// failed write is counted (see Errors) and logged at most once per 10 s;
// Write never panics, and blocks callers only for the write itself (and
// a rotation's renames).
func (a *Audit) Write(rec AuditRecord) {
	if rec.Time.IsZero() {
		rec.Time = a.now()
	}
	rec.Time = rec.Time.UTC()
	rec.Prev = ""
	if a.path == "" {
		a.writeLog(rec)
		return
	}
	body, err := encodeAuditRecord(rec)
	if err != nil {
		a.failed(fmt.Errorf("encoding the record: %w", err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	unlock, err := a.lockOthers()
	if err != nil {
		a.failed(a.writeError(err))
		return
	}
	defer unlock()
	if err := a.follow(); err != nil {
		a.failed(a.writeError(err))
		return
	}
	if err := a.append(body); err != nil {
		a.failed(a.writeError(err))
		return
	}
	if a.maxSize > 0 && a.size >= a.maxSize && !a.now().Before(a.rotateAfter) {
		if err := a.rotate(); err != nil {
			a.rotateAfter = a.now().Add(auditErrorLogEvery)
			a.failed(err)
		}
	}
}

// lockOthers takes an exclusive advisory lock (flock(2)) on the audit
// log's directory, which every process writing the log takes around each
// write and rotation: during an upgrade the old process and the new one
// both write it. The directory, not the file, because a rotation
// replaces the file. a.mu is held.
func (a *Audit) lockOthers() (unlock func(), err error) {
	fd := int(a.dir.Fd())
	if fd < 0 {
		return nil, logfile.ErrClosed
	}
	for {
		if err = syscall.Flock(fd, syscall.LOCK_EX); err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("locking the audit log's directory %s: %w", a.dir.Name(), err)
	}
	return func() { syscall.Flock(fd, syscall.LOCK_UN) }, nil
}

// follow catches up with what another process writing the log did since
// this one last wrote: if it rotated the file away, write to the new file
// at the path; if it appended, chain from its last line rather than fork
// the chain. a.mu and the lock of lockOthers are held.
func (a *Audit) follow() error {
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	if pi, err := os.Stat(a.path); err != nil || !os.SameFile(fi, pi) {
		// Renamed away. Whoever wrote the old file's last line, this
		// process (its size is what this process left) or another one
		// that then rotated it to PATH.1, the new file chains from it,
		// unless another process already wrote there.
		othersWroteOld := fi.Size() != a.size
		var pe *os.PathError
		if err := a.f.Reopen(); err != nil && !(errors.As(err, &pe) && pe.Op == "close") {
			return fmt.Errorf("following the audit log to its new file after a rotation: %w", err)
		}
		nfi, err := a.f.Stat()
		if err != nil {
			return err
		}
		if nfi.Size() > 0 || othersWroteOld {
			return a.resume()
		}
		a.size, a.needNewline = 0, false // on from the last line in memory
		return nil
	}
	if fi.Size() != a.size {
		return a.resume()
	}
	return nil
}

// append writes body, a record without its chain field, chained to the
// line before it. a.mu is held.
func (a *Audit) append(body []byte) error {
	if a.needNewline {
		if _, err := a.f.Write([]byte{'\n'}); err != nil {
			return err
		}
		a.size++
		a.needNewline = false
	}
	// body is {"time":...}\n: the chain field goes first.
	line := make([]byte, 0, len(body)+len(GenesisHash)+12)
	line = append(line, `{"prev":"sha256:`...)
	line = hex.AppendEncode(line, a.last[:])
	line = append(line, `",`...)
	line = append(line, body[1:]...)
	n, err := a.f.Write(line)
	a.size += int64(n)
	if n > 0 {
		// Even a cut line is in the file now: the next one chains
		// from it, and the cut shows as a break where it happened.
		a.last = sha256.Sum256(bytes.TrimSuffix(line[:n], []byte{'\n'}))
		a.needNewline = n < len(line)
	}
	return err
}

func (a *Audit) writeError(err error) error {
	if errors.Is(err, logfile.ErrClosed) {
		return errors.New("the audit log is closed")
	}
	return err
}

// rotate renames the full file to PATH.1, shifting the older ones up to
// PATH.maxFiles (dropping the oldest), and opens a new PATH. The chain
// continues: the last hash stays in memory. a.mu is held.
func (a *Audit) rotate() error {
	for i := a.maxFiles - 1; i >= 1; i-- {
		from, to := fmt.Sprintf("%s.%d", a.path, i), fmt.Sprintf("%s.%d", a.path, i+1)
		if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating the audit log: %w; still writing to %s", err, a.path)
		}
	}
	if err := os.Rename(a.path, a.path+".1"); err != nil {
		return fmt.Errorf("rotating the audit log: %w; still writing to %s", err, a.path)
	}
	var pe *os.PathError
	if err := a.f.Reopen(); err != nil && !(errors.As(err, &pe) && pe.Op == "close") {
		return fmt.Errorf("rotating the audit log: opening a new %s: %w; still writing to %s.1", a.path, err, a.path)
	}
	a.size = 0
	a.log.Info("audit log rotated; the new file's first line chains from the last line of the old",
		"path", a.path, "rotated_to", a.path+".1", "head", "sha256:"+hex.EncodeToString(a.last[:]))
	return nil
}

// encodeAuditRecord encodes rec as one JSON line. JSON escapes control
// characters in strings, so the line has exactly one '\n', at its end. If
// What cannot be encoded, the record is still written, with What replaced
// by the reason, rather than lost.
func encodeAuditRecord(rec AuditRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep URLs with & readable
	if err := enc.Encode(rec); err != nil {
		buf.Reset()
		rec.What = "unencodable: " + err.Error()
		if err2 := enc.Encode(rec); err2 != nil {
			return nil, err2
		}
	}
	return buf.Bytes(), nil
}

// writeLog writes rec to the process log.
func (a *Audit) writeLog(rec AuditRecord) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(rec.Time, slog.LevelInfo, "audit", 0)
	r.AddAttrs(slog.String("who", rec.Who))
	if rec.Role != "" {
		r.AddAttrs(slog.String("role", rec.Role))
	}
	if rec.Key != "" {
		r.AddAttrs(slog.String("key", rec.Key))
	}
	if rec.Scope != "" {
		r.AddAttrs(slog.String("scope", rec.Scope))
	}
	r.AddAttrs(slog.String("action", rec.Action))
	if rec.What != nil {
		r.AddAttrs(slog.Any("what", rec.What))
	}
	r.AddAttrs(slog.String("from", rec.From))
	if rec.Via != "" {
		r.AddAttrs(slog.String("via", rec.Via))
	}
	r.AddAttrs(slog.Int("status", rec.Status), slog.String("result", rec.Result))
	if rec.ID != "" {
		r.AddAttrs(slog.String("id", rec.ID))
	}
	if err := a.log.Handler().Handle(ctx, r); err != nil {
		a.failed(err)
	}
}

// failed counts a write error and logs it unless one was logged in the
// last auditErrorLogEvery.
func (a *Audit) failed(err error) {
	n := a.errors.Add(1)
	now := a.now().UnixNano()
	last := a.lastErrLog.Load()
	if last != 0 && now-last < int64(auditErrorLogEvery) {
		return
	}
	if !a.lastErrLog.CompareAndSwap(last, now) {
		return // another writer is logging it
	}
	where := a.path
	if where == "" {
		where = "the process log"
	}
	a.log.Error("audit record lost: writing the audit log failed; check free space and permissions",
		"path", where, "err", err, "errors", n, "quiet_for", auditErrorLogEvery)
}

// Errors returns how many records could not be written.
func (a *Audit) Errors() int64 { return a.errors.Load() }

// Reopen closes the audit log file and opens its path again, so that a
// rotated file (renamed by logrotate or similar) is replaced by a new one.
// On error the old file stays in use. It does nothing for an audit log
// that writes to the process log.
func (a *Audit) Reopen() error {
	if a.path == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var pe *os.PathError
	err := a.f.Reopen()
	if err == nil || errors.As(err, &pe) && pe.Op == "close" {
		// The new file's first line chains from the last line written,
		// kept in memory; a new file has no cut line to end.
		a.size, a.needNewline = 0, false
		if fi, serr := os.Stat(a.path); serr == nil && fi.Size() > 0 {
			a.size = fi.Size() // not renamed away: writing on at its end
			_, _, a.needNewline, _ = lastLine(a.path)
		}
	}
	switch {
	case errors.Is(err, logfile.ErrClosed):
		return errors.New("the audit log is closed")
	case errors.As(err, &pe) && pe.Op == "close":
		return fmt.Errorf("closing the rotated audit log: %w", err)
	case err != nil:
		return fmt.Errorf("reopening the audit log %s: %w; still writing to the file opened before", a.path, err)
	}
	return nil
}

// Close closes the audit log file; later writes fail and are counted.
// Closing again, or closing an audit log that writes to the process log,
// does nothing.
func (a *Audit) Close() error {
	if a.f == nil {
		return nil
	}
	a.dir.Close()
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("closing the audit log %s: %w", a.path, err)
	}
	return nil
}
