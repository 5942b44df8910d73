package body

import (
	"bytes"
	"testing"
)

// TestFillAtAnyOffset: filling a stream piecewise, from offsets that are
// not multiples of 8, gives the same bytes as filling it at once, which is
// what lets the loader check a body chunk by chunk as it arrives.
func TestFillAtAnyOffset(t *testing.T) {
	seed := Seed("/o/16k/42")
	whole := make([]byte, 1000)
	Fill(whole, seed, 0)
	for _, cut := range []int{1, 3, 7, 8, 9, 64, 333, 999} {
		got := make([]byte, len(whole))
		for off := 0; off < len(got); off += cut {
			end := min(off+cut, len(got))
			Fill(got[off:end], seed, int64(off))
		}
		if !bytes.Equal(got, whole) {
			t.Errorf("filled in chunks of %d: the bytes differ from one fill", cut)
		}
	}
	other := make([]byte, len(whole))
	Fill(other, Seed("/o/16k/43"), 0)
	if bytes.Equal(other, whole) {
		t.Error("two paths gave the same stream")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"16k": 16 << 10, "1m": 1 << 20, "1G": 1 << 30, "4096": 4096, "0": 0} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "2g", "1.5m", "16kb"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded; want an error", in)
		}
	}
}
