package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
)

// logAdapter turns memberlist's log lines ("[LEVEL] memberlist: text")
// into structured records, and notices the suspicions it reports:
// memberlist has no callback for them.
type logAdapter struct {
	c *Cluster
}

func newLogAdapter(c *Cluster) *log.Logger {
	return log.New(logAdapter{c}, "", 0)
}

var (
	suspectPrefix = []byte("Suspect ")
	closedConn    = []byte("use of closed network connection")
)

func (a logAdapter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level, msg := slog.LevelInfo, line
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			switch string(line[1:end]) {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = bytes.TrimSpace(line[end+1:])
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if level > slog.LevelDebug && bytes.Contains(msg, closedConn) {
		level = slog.LevelDebug // the transport is shutting down
	}
	// "Suspect NAME has failed, no acks received"
	if rest, ok := bytes.CutPrefix(msg, suspectPrefix); ok {
		if name, _, ok := strings.Cut(string(rest), " has failed"); ok {
			a.c.suspected(name)
		}
	}
	if a.c.log.Enabled(context.Background(), level) {
		a.c.log.Log(context.Background(), level, string(msg), "source", "memberlist")
	}
	return len(p), nil
}

// gate is a slog.Handler that drops records once closed. memberlist's
// goroutines may still run for a moment after its Shutdown returns, and
// call our delegates and logger: nothing the cluster logs may reach the
// caller's handler after Close.
type gate struct {
	slog.Handler
	mu     *sync.RWMutex
	closed *bool
}

func (g gate) Handle(ctx context.Context, r slog.Record) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if *g.closed {
		return nil
	}
	return g.Handler.Handle(ctx, r)
}

func (g gate) WithAttrs(attrs []slog.Attr) slog.Handler {
	return gate{g.Handler.WithAttrs(attrs), g.mu, g.closed}
}

func (g gate) WithGroup(name string) slog.Handler {
	return gate{g.Handler.WithGroup(name), g.mu, g.closed}
}
