// Package units parses and formats the durations the configuration
// files write, for every package that declares a part of their schema.
package units

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ParseDuration reads a duration as Go writes one ("10s", "1m30s",
// "250ms", "24h"). Besides time.ParseDuration's syntax it accepts "0";
// it rejects other numbers without a unit, and days, with a hint.
func ParseDuration(text string) (time.Duration, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, errors.New(`empty duration; write one like "10s", "1m30s" or "24h"`)
	}
	if len(s) > 64 {
		return 0, fmt.Errorf("duration %.20q... is too long", s)
	}
	if strings.Trim(s, "0123456789.") == "" {
		if strings.Trim(s, "0.") == "" {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %q has no unit; write %q for seconds (units: ns, us, ms, s, m, h)", s, s+"s")
	}
	if strings.HasSuffix(s, "d") {
		return 0, fmt.Errorf("duration %q uses days, which are not supported; write hours, such as %q", s, "24h")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q; write one like \"10s\", \"1m30s\" or \"24h\" (units: ns, us, ms, s, m, h)", s)
	}
	return v, nil
}

// FormatDuration writes d like time.Duration.String without zero
// trailing units: "24h", "1m30s", "0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
