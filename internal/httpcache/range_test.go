package httpcache

import "testing"

func TestParseRange(t *testing.T) {
	tests := []struct {
		name          string
		h             string
		size          int64
		start, length int64
		res           RangeResult
	}{
		{"§14.2 absent", "", 100, 0, 0, RangeNone},
		{"§14.1.2 first byte", "bytes=0-0", 100, 0, 1, RangeSatisfiable},
		{"§14.1.2 first-last", "bytes=10-19", 100, 10, 10, RangeSatisfiable},
		{"§14.1.2 last byte", "bytes=99-99", 100, 99, 1, RangeSatisfiable},
		{"§14.1.2 last-pos past the end is clamped", "bytes=90-1000", 100, 90, 10, RangeSatisfiable},
		{"§14.1.2 open-ended", "bytes=5-", 100, 5, 95, RangeSatisfiable},
		{"§14.1.3 open-ended past end", "bytes=100-", 100, 0, 0, RangeUnsatisfiable},
		{"§14.1.3 first-pos past end", "bytes=500-600", 100, 0, 0, RangeUnsatisfiable},
		{"§14.1.3 huge first-pos", "bytes=9999999999999999999999-", 100, 0, 0, RangeUnsatisfiable},
		{"§14.1.2 huge last-pos", "bytes=0-9999999999999999999999", 100, 0, 100, RangeSatisfiable},
		{"§14.1.2 suffix", "bytes=-10", 100, 90, 10, RangeSatisfiable},
		{"§14.1.2 suffix longer than representation", "bytes=-500", 100, 0, 100, RangeSatisfiable},
		{"§14.1.2 huge suffix", "bytes=-99999999999999999999999", 100, 0, 100, RangeSatisfiable},
		{"§14.1.3 suffix zero is unsatisfiable", "bytes=-0", 100, 0, 0, RangeUnsatisfiable},
		{"§14.1.3 empty representation", "bytes=0-", 0, 0, 0, RangeUnsatisfiable},
		{"§14.1.3 suffix of empty representation", "bytes=-5", 0, 0, 0, RangeUnsatisfiable},
		{"§14.1.1 last-pos before first-pos is invalid", "bytes=10-5", 100, 0, 0, RangeNone},
		{"§14.1.1 multiple ranges not supported", "bytes=1-2,3-4", 100, 0, 0, RangeNone},
		{"§14.1.1 multiple ranges with OWS", "bytes=1-2, 3-4", 100, 0, 0, RangeNone},
		{"§14.1 unknown unit", "items=0-1", 100, 0, 0, RangeNone},
		{"§14.1 unit is case-insensitive", "Bytes=0-1", 100, 0, 2, RangeSatisfiable},
		{"§14.1.1 OWS around list members", "bytes= 0-1 ", 100, 0, 2, RangeSatisfiable},
		{"§14.1.1 empty list elements", "bytes=,0-1,", 100, 0, 2, RangeSatisfiable},
		{"§14.1.1 no whitespace inside a range-spec", "bytes=0 - 1", 100, 0, 0, RangeNone},
		{"§14.1.1 no whitespace before =", "bytes =0-1", 100, 0, 0, RangeNone},
		{"§14.1.1 empty set", "bytes=", 100, 0, 0, RangeNone},
		{"§14.1.1 only a dash", "bytes=-", 100, 0, 0, RangeNone},
		{"§14.1.1 negative numbers", "bytes=--5", 100, 0, 0, RangeNone},
		{"§14.1.1 plus sign", "bytes=+1-2", 100, 0, 0, RangeNone},
		{"§14.1.1 no dash", "bytes=5", 100, 0, 0, RangeNone},
		{"§14.1.1 garbage", "bytes=a-b", 100, 0, 0, RangeNone},
		{"unknown size", "bytes=0-1", -1, 0, 0, RangeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, length, res := ParseRange(tt.h, tt.size)
			if start != tt.start || length != tt.length || res != tt.res {
				t.Errorf("ParseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.h, tt.size, start, length, res, tt.start, tt.length, tt.res)
			}
		})
	}
}
