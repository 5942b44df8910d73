package httpcache

import (
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	nov6 := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: invalid
	}{
		{"RFC 9110 §5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", nov6},
		{"RFC 9110 §5.6.7 obsolete RFC 850 form", "Sunday, 06-Nov-94 08:49:37 GMT", nov6},
		{"RFC 9110 §5.6.7 obsolete asctime form", "Sun Nov  6 08:49:37 1994", nov6},
		{"RFC 9110 §5.6.7 asctime with a two-digit day", "Sun Nov 16 08:49:37 1994", nov6.AddDate(0, 0, 10)},
		{"RFC 9110 §5.6.7 asctime with a leading zero in the day", "Sun Nov 06 08:49:37 1994", nov6},
		{"RFC 9110 §5.6.7 RFC 850 form for each day name", "Wednesday, 09-Nov-94 08:49:37 GMT", nov6.AddDate(0, 0, 3)},
		{"RFC 9110 §5.6.7 RFC 850 year 68 is 2068", "Sunday, 06-Nov-68 08:49:37 GMT", nov6.AddDate(2068-1994, 0, 0)},
		{"RFC 9110 §5.6.7 RFC 850 year 69 is 1969", "Sunday, 06-Nov-69 08:49:37 GMT", nov6.AddDate(1969-1994, 0, 0)},
		{"RFC 9110 §5.6.7 leap second", "Sun, 06 Nov 1994 23:59:60 GMT", time.Date(1994, 11, 7, 0, 0, 0, 0, time.UTC)},
		{"RFC 9110 §5.6.7 leap day", "Thu, 29 Feb 2024 00:00:00 GMT", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"RFC 9110 §5.6.7 day name is checked for syntax only", "Mon, 06 Nov 1994 08:49:37 GMT", nov6},
		{"RFC 9111 §4.2 names matched case-insensitively", "sun, 06 NOV 1994 08:49:37 gmt", nov6},
		{"RFC 9111 §4.2 RFC 850 form case-insensitively", "SUNDAY, 06-nov-94 08:49:37 Gmt", nov6},
		{"RFC 9111 §4.2 asctime form case-insensitively", "SUN nov  6 08:49:37 1994", nov6},

		{"RFC 9110 §5.6.7 doubled space", "Sun,  06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 doubled space between date and time", "Sun, 06 Nov 1994  08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 one-digit hour", "Sun, 06 Nov 1994 8:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 one-digit day", "Sun, 6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 two-digit year in IMF-fixdate", "Sun, 06 Nov 94 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 trailing comment", "Sun, 06 Nov 1994 08:49:37 GMT (Sunday)", time.Time{}},
		{"RFC 9110 §5.6.7 trailing space", "Sun, 06 Nov 1994 08:49:37 GMT ", time.Time{}},
		{"RFC 9110 §5.6.7 a list of dates", "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 missing comma", "Sun 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 dashes in IMF-fixdate", "Sun, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 periods in the time", "Sun, 06 Nov 1994 08.49.37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 long day name in IMF-fixdate", "Sunday, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 unknown day name", "Sux, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 unknown month", "Sun, 06 Nox 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 day beyond the month", "Thu, 31 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 29 February of a common year", "Wed, 29 Feb 2023 00:00:00 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 day 0", "Sun, 00 Nov 1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 second 61", "Sun, 06 Nov 1994 08:49:61 GMT", time.Time{}},
		{"RFC 9111 §4.2 zone UTC", "Sun, 06 Nov 1994 08:49:37 UTC", time.Time{}},
		{"RFC 9111 §4.2 numeric zone", "Sun, 06 Nov 1994 08:49:37 +0000", time.Time{}},
		{"RFC 9111 §4.2 RFC 850 form with zone PST", "Sunday, 06-Nov-94 08:49:37 PST", time.Time{}},
		{"RFC 9110 §5.6.7 RFC 850 form with a four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 RFC 850 form with a short day name", "Sun, 06-Nov-94 08:49:37 GMT", time.Time{}},
		{"RFC 9110 §5.6.7 asctime with one space before a one-digit day", "Sun Nov 6 08:49:37 1994", time.Time{}},
		{"RFC 9110 §5.6.7 asctime with a one-digit hour", "Sun Nov  6 8:49:37 1994", time.Time{}},
		{"RFC 9110 §5.6.7 asctime with a zone", "Sun Nov  6 08:49:37 1994 GMT", time.Time{}},
		{"RFC 9111 §5.3 zero", "0", time.Time{}},
		{"RFC 9111 §5.3 minus one", "-1", time.Time{}},
		{"RFC 9111 §5.3 empty", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHTTPDate(tt.in)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
			}
			if ok && got.Location() != time.UTC {
				t.Errorf("parseHTTPDate(%q) in %v, want UTC", tt.in, got.Location())
			}
		})
	}
}
