package httpcache

import (
	"math"
	"net/http"
	"time"
)

// CorrectedInitialAge implements the corrected_initial_age of RFC 9111 §4.2.3 from the Age and Date
// fields and the request/response times. Never negative.
//
// requestTime is when the cache sent the request that produced the
// response and responseTime when the response was received. A missing or
// invalid Date gives an apparent_age of 0; a missing or invalid Age gives an
// age_value of 0 (§5.1). A response_time before request_time, as a clock
// step can cause, gives a response_delay of 0.
func CorrectedInitialAge(respHeader http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparentAge time.Duration
	if date, ok := headerDate(respHeader, "Date"); ok {
		apparentAge = max(0, responseTime.Sub(date))
	}
	responseDelay := max(0, responseTime.Sub(requestTime))
	correctedAgeValue := addSaturating(ageValue(respHeader), responseDelay)
	return max(apparentAge, correctedAgeValue)
}

// CurrentAge is corrected_initial_age + resident_time (§4.2.3).
// A now before responseTime gives a resident_time of 0.
func CurrentAge(initialAge time.Duration, responseTime, now time.Time) time.Duration {
	return addSaturating(max(0, initialAge), max(0, now.Sub(responseTime)))
}

// ageValue parses the first Age field line (RFC 9111 §5.1) as
// delta-seconds, clamped to MaxDeltaSeconds; invalid values count as 0.
func ageValue(h http.Header) time.Duration {
	v := h["Age"]
	if len(v) == 0 {
		return 0
	}
	n, ok := parseDigits(trimOWS(v[0]), MaxDeltaSeconds)
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
