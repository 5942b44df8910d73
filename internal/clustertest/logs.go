package clustertest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// maxLogLines bounds the log a test cluster keeps for a failure report.
const maxLogLines = 5000

// logRing keeps the last maxLogLines log lines of a test cluster, so a
// failed test can show what the nodes said without flooding passing ones.
type logRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func (r *logRing) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < maxLogLines {
		r.lines = append(r.lines, line)
		return len(p), nil
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % maxLogLines
	r.full = true
	return len(p), nil
}

// dump writes the kept lines to tb's log, oldest first.
func (r *logRing) dump(tb testing.TB) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		tb.Logf("clustertest: the %d oldest log lines were dropped", maxLogLines)
	}
	for i := range r.lines {
		tb.Log(r.lines[(r.next+i)%len(r.lines)])
	}
}

// recordLogs returns a logger that keeps the nodes' logs (debug level
// included) and prints them if tb fails.
func recordLogs(tb testing.TB) *slog.Logger {
	r := &logRing{}
	tb.Cleanup(func() {
		if tb.Failed() {
			r.dump(tb)
		}
	})
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
