package config_test

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/config"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want config.Size
	}{
		{"0", 0},
		{"65536", 65536},
		{"  65536 ", 65536},
		{"1B", 1},
		{"1b", 1},
		{"1KB", 1000},
		{"2MB", 2_000_000},
		{"1GB", 1_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"1KiB", 1024},
		{"256MiB", 256 << 20},
		{"256mib", 256 << 20},
		{"256 MiB", 256 << 20},
		{"256MIB", 256 << 20},
		{"1.5GiB", 3 << 29},
		{".5KiB", 512},
		{"5.KiB", 5 << 10},
		{"0.001KB", 1},
		{"2TiB", 2 << 40},
		{"8388607TiB", 8388607 << 40},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := config.ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `empty size; write a byte count like 65536 or a number with a unit like 256MiB`},
		{"  ", `empty size; write a byte count like 65536 or a number with a unit like 256MiB`},
		{"-1", `size "-1" is negative; sizes are byte counts`},
		{"MiB", `size "MiB" does not start with a number; write a byte count like 65536 or a number with a unit like 256MiB`},
		{".", `size "." does not start with a number; write a byte count like 65536 or a number with a unit like 256MiB`},
		{"1.2.3MiB", `size "1.2.3MiB" does not start with a number; write a byte count like 65536 or a number with a unit like 256MiB`},
		{"256M", `size "256M" has unknown unit "M"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`},
		{"1PiB", `size "1PiB" has unknown unit "PiB"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`},
		{"1e9", `size "1e9" has unknown unit "e9"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`},
		{"0x10", `size "0x10" has unknown unit "x10"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`},
		{"1.5", `size "1.5" is not a whole number of bytes`},
		{"0.1KiB", `size "0.1KiB" is not a whole number of bytes`},
		{"9223372036854775808", `size "9223372036854775808" is too large (the maximum is 9223372036854775807 bytes)`},
		{"8388608TiB", `size "8388608TiB" is too large (the maximum is 9223372036854775807 bytes)`},
		{"11111111111111111111111111111111111111111111111111111111111111111", `size "11111111111111111111"... is too long to be a byte count`},
	}
	for _, tt := range tests {
		got, err := config.ParseSize(tt.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want error %q", tt.in, got, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseSize(%q) error:\n got %q\nwant %q", tt.in, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   config.Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536 * config.KiB, "1536KiB"},
		{256 * config.MiB, "256MiB"},
		{3 * config.GiB / 2, "1536MiB"},
		{4 * config.TiB, "4TiB"},
		{2048 * config.TiB, "2048TiB"},
		{-2 * config.KiB, "-2KiB"},
		{math.MaxInt64, "9223372036854775807B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		back, err := config.ParseSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (round trip)", tt.want, back, err, tt.in)
		}
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0.0", 0},
		{"0s", 0},
		{"10s", 10 * time.Second},
		{"1m30s", 90 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"24h", 24 * time.Hour},
		{" 2h ", 2 * time.Hour},
		{"-5s", -5 * time.Second},
	}
	for _, tt := range tests {
		var d config.Duration
		if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.Std() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.Std(), err, tt.want)
		}
	}

	errs := []struct{ in, want string }{
		{"", `empty duration; write one like "10s", "1m30s" or "24h"`},
		{"10", `duration "10" has no unit; write "10s" for seconds (units: ns, us, ms, s, m, h)`},
		{"1.5", `duration "1.5" has no unit; write "1.5s" for seconds (units: ns, us, ms, s, m, h)`},
		{"1d", `duration "1d" uses days, which are not supported; write hours, such as "24h"`},
		{"ten seconds", `invalid duration "ten seconds"; write one like "10s", "1m30s" or "24h" (units: ns, us, ms, s, m, h)`},
		{"10sec", `invalid duration "10sec"; write one like "10s", "1m30s" or "24h" (units: ns, us, ms, s, m, h)`},
	}
	for _, tt := range errs {
		var d config.Duration
		err := d.UnmarshalText([]byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("UnmarshalText(%q) error = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{10 * time.Second, "10s"},
		{2 * time.Minute, "2m"},
		{90 * time.Second, "1m30s"},
		{24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{-3 * time.Minute, "-3m"},
	}
	for _, tt := range tests {
		d := config.Duration(tt.in)
		if got := d.String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		var back config.Duration
		if err := back.UnmarshalText([]byte(tt.want)); err != nil || back != d {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v (round trip)", tt.want, back, err, d)
		}
	}
}

// TestMarshalRoundTrip checks that a Config written as YAML (for example
// by a future "weir config dump") parses back to the same Config.
func TestMarshalRoundTrip(t *testing.T) {
	c := config.Default()
	c.SetOrigin("http://127.0.0.1:8000")
	c.Hosts[0].DefaultTTL = config.Duration(5 * time.Minute)
	c.Hosts[0].Key.DropParams = []string{"utm_*"}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(out, "dump.yaml")
	if err != nil {
		t.Fatalf("Parse of marshaled config:\n%s\nerror: %v", out, err)
	}
	if diff := cmp.Diff(c, back, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip through YAML changed the config (-before +after):\n%s\nYAML:\n%s", diff, out)
	}
}
