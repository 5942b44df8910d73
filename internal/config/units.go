package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/units"
)

// Size is a byte count. In YAML and text it is written as an integer
// ("65536") or a number with a unit, with or without a space: B; KB, MB,
// GB, TB (powers of 1000); KiB, MiB, GiB, TiB (powers of 1024). Units are
// case-insensitive and the number may have a fraction when the result
// is a whole number of bytes ("1.5GiB").
type Size int64

// Size units.
const (
	KB  Size = 1000
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	TB  Size = 1000 * GB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = map[string]Size{
	"": 1, "b": 1,
	"kb": KB, "mb": MB, "gb": GB, "tb": TB,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}

const sizeUnitHelp = "use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"

// ParseSize parses a byte count as Size describes. Negative sizes are
// rejected.
func ParseSize(s string) (Size, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New(`empty size; write a byte count like 65536 or a number with a unit like 256MiB`)
	}
	if len(in) > 64 {
		return 0, fmt.Errorf("size %.20q... is too long to be a byte count", in)
	}
	if in[0] == '-' {
		return 0, fmt.Errorf("size %q is negative; sizes are byte counts", s)
	}
	end := 0
	for end < len(in) && (in[end] >= '0' && in[end] <= '9' || in[end] == '.') {
		end++
	}
	num, unit := in[:end], strings.TrimSpace(in[end:])
	if num == "" || num == "." || strings.Count(num, ".") > 1 {
		return 0, fmt.Errorf("size %q does not start with a number; write a byte count like 65536 or a number with a unit like 256MiB", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q; %s", s, unit, sizeUnitHelp)
	}
	// Compute num × mult exactly: num = digits / 10^scale.
	whole, frac, _ := strings.Cut(num, ".")
	digits, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	digits.Mul(digits, big.NewInt(int64(mult)))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	bytes, rem := new(big.Int).QuoRem(digits, scale, new(big.Int))
	if rem.Sign() != 0 {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	if !bytes.IsInt64() {
		return 0, fmt.Errorf("size %q is too large (the maximum is %d bytes)", s, int64(math.MaxInt64))
	}
	return Size(bytes.Int64()), nil
}

// String formats s in the largest IEC unit that represents it exactly,
// such as "256MiB", "1536KiB" or "1000B"; ParseSize reads it back.
func (s Size) String() string {
	if s == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		size Size
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler: a size is a scalar, an
// integer or a string as ParseSize reads it.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size like 256MiB, found %s", describeNode(n))
	}
	return s.UnmarshalText([]byte(n.Value))
}

// Duration is a time.Duration written as Go does ("10s", "1m30s",
// "250ms", "24h"); "0" means zero. The largest unit is the hour.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String without zero trailing
// units: "24h", "1m30s", "0s".
func (d Duration) String() string { return units.FormatDuration(time.Duration(d)) }

// MarshalText implements encoding.TextMarshaler with String's format.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler as
// units.ParseDuration reads a duration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := units.ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler: a duration is a scalar as
// UnmarshalText reads it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf(`expected a duration like "10s", found %s`, describeNode(n))
	}
	return d.UnmarshalText([]byte(n.Value))
}
