package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/logfile"
)

// AuditRecord is one line of the audit log: one admin call, allowed or
// refused.
type AuditRecord struct {
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
type Audit struct {
	path string
	log  *slog.Logger
	now  func() time.Time // the clock; tests replace it

	f *logfile.File // nil when logging to log

	errors     atomic.Int64
	lastErrLog atomic.Int64 // Unix nanoseconds of the last logged write error; 0: never
}

// OpenAudit opens path for appending (created with mode 0600 if missing),
// or, when path is "", writes each record to log as an Info line with
// message "audit" and the record's fields as attributes (the line's time
// is the record's). A nil log means slog.Default(); log also receives
// write errors.
func OpenAudit(path string, log *slog.Logger) (*Audit, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Audit{path: path, log: log, now: time.Now}
	if path == "" {
		return a, nil
	}
	f, err := logfile.Open(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w: check that its directory exists and is writable, or leave the audit log path empty to log audit records to the process log", err)
	}
	a.f = f
	return a, nil
}

// Write appends rec as a single JSON line, in one write call made under a
// mutex, so lines never interleave. A failed write is counted (see
// Errors) and logged at most once per 10 s; Write never panics, and blocks
// callers only for the write itself.
func (a *Audit) Write(rec AuditRecord) {
	if rec.Time.IsZero() {
		rec.Time = a.now()
	}
	rec.Time = rec.Time.UTC()
	if a.path == "" {
		a.writeLog(rec)
		return
	}
	line, err := encodeAuditRecord(rec)
	if err != nil {
		a.failed(fmt.Errorf("encoding the record: %w", err))
		return
	}
	if _, err := a.f.Write(line); err != nil {
		if errors.Is(err, logfile.ErrClosed) {
			err = errors.New("the audit log is closed")
		}
		a.failed(err)
	}
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
	var pe *os.PathError
	switch err := a.f.Reopen(); {
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
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("closing the audit log %s: %w", a.path, err)
	}
	return nil
}
