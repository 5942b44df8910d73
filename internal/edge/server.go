package edge

import (
	"log/slog"
	"net/http"
	"time"
)

// ServerConfig holds the edge listener's limits.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's header, so slowloris
	// clients are cut off. Zero means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Zero
	// means 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header. Zero means 64 KiB.
	MaxHeaderBytes int
}

// NewServer returns the http.Server of the edge listener with its limits.
func NewServer(h http.Handler, cfg ServerConfig, log *slog.Logger) *http.Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
