package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a logger writing to w at level ("debug", "info",
// "warn", "error") in format ("json" or "text"). Every line logged with a
// request's context carries its request_id and trace_id, and attributes
// whose names say they hold secrets are masked.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	return NewLoggerLevel(w, lv, format)
}

// NewLoggerLevel is NewLogger with a level that can change while the
// logger is in use (a configuration reload sets it).
func NewLoggerLevel(w io.Writer, level *slog.LevelVar, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact}
	var h slog.Handler
	switch format {
	case "", "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	return slog.New(ContextHandler{h}), nil
}

// ContextHandler adds the request_id and trace_id of the request a record
// was logged for (through the ...Context logging calls) to the record.
type ContextHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if req := RequestFrom(ctx); req != nil {
			r.AddAttrs(slog.String("request_id", req.ID))
		}
		if sc := SpanContext(ctx); sc.HasTraceID() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}

// secretKeys are attribute names whose values are never logged.
var secretKeys = []string{"authorization", "cookie", "set-cookie", "set_cookie", "token", "password", "secret", "proxy-authorization"}

// redact masks attributes named like secrets, whatever the caller
// logged.
func redact(groups []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if k == s {
			return slog.String(a.Key, "[redacted]")
		}
	}
	return a
}

// Unfiltered returns h without its level: every record goes to h's
// output whatever h's level. The access log is written through it, since
// an operator who asks for one wants it whatever log_level says.
func Unfiltered(h slog.Handler) slog.Handler { return unfiltered{h} }

type unfiltered struct{ slog.Handler }

func (unfiltered) Enabled(context.Context, slog.Level) bool { return true }

func (u unfiltered) WithAttrs(attrs []slog.Attr) slog.Handler {
	return unfiltered{u.Handler.WithAttrs(attrs)}
}

func (u unfiltered) WithGroup(name string) slog.Handler { return unfiltered{u.Handler.WithGroup(name)} }
