package httpcache

import (
	"net/http"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in one of its three
// forms, exactly as their grammar says, and nothing else:
//
//	IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT
//	rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT
//	asctime-date  Sun Nov  6 08:49:37 1994
//
// Recipients MUST accept all three (RFC 9110 §5.6.7). A doubled or missing
// space, a one-digit day (but for the asctime form's SP DIGIT) or hour, a
// zone other than GMT (RFC 9111 §4.2: a cache SHOULD consider such a date
// invalid), a trailing comment or a second date after a comma make the
// value invalid; http.ParseTime, which this replaces, accepts the first
// two and any zone. Names (day, month, GMT) are matched
// case-insensitively, as RFC 9111 §4.2 asks of a cache recipient. As with
// time.Parse, the day name is checked for syntax only; a day of month
// beyond the end of its month is invalid, and second 60 (a leap second,
// which the grammar allows) is the first second of the next minute.
//
// The two-digit year of an rfc850-date is read as time.Parse reads it:
// 69 to 99 are 1969 to 1999, 00 to 68 are 2000 to 2068. RFC 9110 asks for
// the most recent year with those digits that is not more than 50 years
// in the future, which needs a clock that the pure functions of this
// package do not have.
//
// parseHTTPDate does not allocate.
func parseHTTPDate(s string) (time.Time, bool) {
	switch len(s) {
	case len("Sun, 06 Nov 1994 08:49:37 GMT"):
		return parseIMFFixdate(s)
	case len("Sun Nov  6 08:49:37 1994"):
		return parseASCTime(s)
	}
	return parseRFC850(s)
}

// dayNames and monthNames are the names of RFC 9110 §5.6.7 in lower
// case, for matching with equalFoldASCII.
var (
	dayNames     = [...]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	longDayNames = [...]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	monthNames   = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
)

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' ||
		!isName(s[:3], dayNames[:]) || !equalFoldASCII(s[26:], "gmt") {
		return time.Time{}, false
	}
	day, ok1 := twoDigits(s[5:7])
	hi, ok2 := twoDigits(s[12:14])
	lo, ok3 := twoDigits(s[14:16])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return makeDate(hi*100+lo, s[8:11], day, s[17:25])
}

// parseRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850(s string) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i <= len("wednesday"); i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || !isName(s[:comma], longDayNames[:]) {
		return time.Time{}, false
	}
	r := s[comma+1:] // " 06-Nov-94 08:49:37 GMT"
	if len(r) != 23 || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || r[19] != ' ' ||
		!equalFoldASCII(r[20:], "gmt") {
		return time.Time{}, false
	}
	day, ok1 := twoDigits(r[1:3])
	yy, ok2 := twoDigits(r[8:10])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	year := 2000 + yy
	if yy >= 69 {
		year = 1900 + yy
	}
	return makeDate(year, r[4:7], day, r[11:19])
}

// parseASCTime parses "Sun Nov  6 08:49:37 1994", whose day of month is
// 2DIGIT or SP DIGIT.
func parseASCTime(s string) (time.Time, bool) {
	if len(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !isName(s[:3], dayNames[:]) {
		return time.Time{}, false
	}
	day, ok1 := 0, false
	if s[8] == ' ' {
		if c := s[9]; '0' <= c && c <= '9' {
			day, ok1 = int(c-'0'), true
		}
	} else {
		day, ok1 = twoDigits(s[8:10])
	}
	hi, ok2 := twoDigits(s[20:22])
	lo, ok3 := twoDigits(s[22:24])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return makeDate(hi*100+lo, s[4:7], day, s[11:19])
}

// makeDate checks and assembles the parts of an HTTP-date: the month
// name, and clock as "08:49:37" (time-of-day, RFC 9110 §5.6.7).
func makeDate(year int, month string, day int, clock string) (time.Time, bool) {
	m := 0
	for i, name := range monthNames {
		if equalFoldASCII(month, name) {
			m = i + 1
			break
		}
	}
	if m == 0 || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := twoDigits(clock[0:2])
	minute, ok2 := twoDigits(clock[3:5])
	sec, ok3 := twoDigits(clock[6:8])
	if !ok1 || !ok2 || !ok3 || day < 1 || day > daysIn(m, year) || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(m), day, hour, minute, sec, 0, time.UTC), true
}

// isName reports whether s is one of the lower-case names, ignoring ASCII
// case in s.
func isName(s string, names []string) bool {
	for _, n := range names {
		if equalFoldASCII(s, n) {
			return true
		}
	}
	return false
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
// which must be in canonical form. It serves Date and Last-Modified,
// whose later field lines are ignored (RFC 9111 §4.2.1 lets a cache use
// the first occurrence of duplicated information).
func headerDate(h http.Header, key string) (time.Time, bool) {
	v := h[key]
	if len(v) == 0 {
		return time.Time{}, false
	}
	return parseHTTPDate(trimOWS(v[0]))
}

// expiresDate parses the Expires field (RFC 9111 §5.3), which must be
// present. ok is false when the field value is not one valid HTTP-date:
// anything parseHTTPDate refuses, and also several field lines, since
// Expires is a singleton whose combined lines (RFC 9110 §5.3) form a list
// that is no HTTP-date. The caller takes an invalid Expires as a time in
// the past (§5.3: a cache recipient "MUST interpret invalid date formats,
// especially the value "0", as representing a time in the past"; §4.2.1
// allows treating two Expires field lines as stale).
func expiresDate(h http.Header) (time.Time, bool) {
	v := h["Expires"]
	if len(v) != 1 {
		return time.Time{}, false
	}
	return parseHTTPDate(trimOWS(v[0]))
}
