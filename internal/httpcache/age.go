package httpcache

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// maxDelta is MaxDeltaSeconds as a duration: 2^31 seconds, over 68 years,
// which RFC 9111 §1.2.2 says "represents infinity". No age computed by
// CorrectedInitialAge and no Policy lifetime or window exceeds it, so a
// caller can add ages and lifetimes in time.Duration without overflowing.
const maxDelta = MaxDeltaSeconds * time.Second

// CorrectedInitialAge implements the corrected_initial_age of RFC 9111 §4.2.3 from the Age and Date
// fields and the request/response times. Never negative.
//
// requestTime is when the cache sent the request that produced the
// response and responseTime when the response was received. A missing or
// invalid Date gives an apparent_age of 0; a missing Age gives an
// age_value of 0. A response_time before request_time, as a clock step
// can cause, gives a response_delay of 0.
//
// The Age is read as §5.1 says: a list-based value ("7200, 0", or several
// field lines) counts as its first member, and a first member that is not
// a non-negative integer (a sign, a fraction, letters, an empty value) is
// ignored, as if there were no Age. A valid Age beyond 2^31 counts as
// 2^31 (§1.2.2).
//
// The result never exceeds 2147483648 seconds: §1.2.2 asks that any
// calculation that overflows count as that value, and an apparent_age of
// centuries (a Date in year 1) means nothing more. CorrectedInitialAge
// does not allocate.
func CorrectedInitialAge(respHeader http.Header, requestTime, responseTime time.Time) time.Duration {
	age := ageValue(respHeader)
	var apparentAge time.Duration
	if date, ok := headerDate(respHeader, "Date"); ok {
		apparentAge = max(0, responseTime.Sub(date))
	}
	responseDelay := max(0, responseTime.Sub(requestTime))
	correctedAgeValue := addSaturating(age, responseDelay)
	return min(max(apparentAge, correctedAgeValue), maxDelta)
}

// CurrentAge is corrected_initial_age + resident_time (§4.2.3).
// A now before responseTime gives a resident_time of 0.
func CurrentAge(initialAge time.Duration, responseTime, now time.Time) time.Duration {
	return addSaturating(max(0, initialAge), max(0, now.Sub(responseTime)))
}

// ageValue parses the Age field (RFC 9111 §5.1): the first member of
// its first field line as delta-seconds, clamped to MaxDeltaSeconds
// (§1.2.2); 0 when absent or invalid.
func ageValue(h http.Header) time.Duration {
	v := h["Age"]
	if len(v) == 0 {
		return 0
	}
	first := v[0]
	if i := strings.IndexByte(first, ','); i >= 0 {
		first = first[:i]
	}
	n, ok := parseDigits(trimOWS(first), MaxDeltaSeconds)
	if !ok {
		return 0
	}
	return time.Duration(n) * time.Second
}

// addSaturating adds two non-negative durations without overflowing.
func addSaturating(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
