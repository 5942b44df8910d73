package httpcache

import (
	"net/http"
	"time"
)

// minHTTPDateLen is shorter than any string http.ParseTime accepts: the
// shortest is an asctime-date with one-digit day and hour,
// "Sun Nov 6 8:49:37 1994" (22 bytes). Shorter values, such as the common
// "Expires: 0", are rejected without the cost of the slow path.
const minHTTPDateLen = 20

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7). It accepts exactly
// what http.ParseTime accepts and returns the same instant, but parses the
// preferred IMF-fixdate form without allocating; the obsolete RFC 850 and
// asctime forms fall back to http.ParseTime.
func parseHTTPDate(s string) (time.Time, bool) {
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	if len(s) < minHTTPDateLen {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// dayNames and monthNames are the case-sensitive names of an IMF-fixdate
// (RFC 9110 §5.6.7).
var (
	dayNames   = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	monthNames = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT" exactly. It
// accepts a subset of what http.ParseTime accepts (as time.Parse does, the
// day name is checked for syntax only) and rejects the rest, which the
// caller then hands to the slow path.
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	dayOK := false
	for _, d := range dayNames {
		if s[:3] == d {
			dayOK = true
			break
		}
	}
	if !dayOK {
		return time.Time{}, false
	}
	month := 0
	for i, m := range monthNames {
		if s[8:11] == m {
			month = i + 1
			break
		}
	}
	day, ok1 := twoDigits(s[5:7])
	year, ok2 := twoDigits(s[12:14])
	year2, ok3 := twoDigits(s[14:16])
	hour, ok4 := twoDigits(s[17:19])
	minute, ok5 := twoDigits(s[20:22])
	sec, ok6 := twoDigits(s[23:25])
	if month == 0 || !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false
	}
	year = year*100 + year2
	if day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

// twoDigits parses exactly two ASCII digits.
func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// daysIn returns the number of days of month in year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// headerDate parses the first field line of the date-valued field key,
// which must be in canonical form. RFC 9111 §4.2.1 lets a cache use the
// first occurrence of a duplicated field.
func headerDate(h http.Header, key string) (time.Time, bool) {
	v := h[key]
	if len(v) == 0 {
		return time.Time{}, false
	}
	return parseHTTPDate(trimOWS(v[0]))
}
