package httpcache

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestCorrectedInitialAge(t *testing.T) {
	tests := []struct {
		name              string
		resp              http.Header
		request, response time.Duration // offsets from t0
		want              time.Duration
	}{
		{"§4.2.3 no Age, no Date, no delay", hdr(), 0, 0, 0},
		{"§4.2.3 response_delay counts", hdr(), 0, 2 * time.Second, 2 * time.Second},
		{"§4.2.3 Age plus response_delay", hdr("Age", "100"), 0, 2 * time.Second, 102 * time.Second},
		{"§4.2.3 apparent_age from Date", hdr("Date", httpDate(0)), 10 * time.Second, 11 * time.Second, 11 * time.Second},
		{"§4.2.3 larger of apparent and corrected age", hdr("Date", httpDate(0), "Age", "5"), 10 * time.Second, 11 * time.Second, 11 * time.Second},
		{"§4.2.3 Age beats a small apparent age", hdr("Date", httpDate(0), "Age", "50"), 10 * time.Second, 11 * time.Second, 51 * time.Second},
		{"§4.2.3 Date in the future (origin clock ahead) gives apparent_age 0", hdr("Date", httpDate(time.Hour), "Age", "3"), 0, time.Second, 4 * time.Second},
		{"§4.2.3 Date far in the past (origin clock behind)", hdr("Date", httpDate(-time.Hour)), 0, 0, time.Hour},
		{"§4.2.3 response before request (clock step) gives no delay", hdr("Age", "7"), 5 * time.Second, 0, 7 * time.Second},
		// RFC 9111 §5.1: a list-based Age counts as its first member; an
		// invalid value is ignored.
		{"§5.1 negative Age is ignored", hdr("Age", "-5"), 0, time.Second, time.Second},
		{"§5.1 Age with letters is ignored", hdr("Age", "abc"), 0, 0, 0},
		{"§5.1 Age with a fraction is ignored", hdr("Age", "1.5"), 0, 0, 0},
		{"§5.1 Age with a plus sign is ignored", hdr("Age", "+5"), 0, 0, 0},
		{"§5.1 empty Age is ignored", hdr("Age", ""), 0, 0, 0},
		{"§5.1 a list in one Age line counts as its first member", hdr("Age", "7200, 0"), 0, 0, 7200 * time.Second},
		{"§5.1 a list of zeros in one Age line", hdr("Age", "0, 0"), 0, 0, 0},
		{"§5.1 two Age field lines: the first", hdr("Age", "0", "Age", "7200"), 0, 0, 0},
		{"§5.1 two Age field lines, the first large", hdr("Age", "7200", "Age", "0"), 0, 0, 7200 * time.Second},
		{"§5.1 an invalid Age leaves the Date to decide", hdr("Date", httpDate(0), "Age", "x"), 0, time.Second, time.Second},
		{"§5.1 OWS around Age is not part of the value", hdr("Age", " 5\t"), 0, 0, 5 * time.Second},
		{"§5.1 leading zeros are digits", hdr("Age", "007"), 0, 0, 7 * time.Second},
		{"§1.2.2 Age of 2^31 kept", hdr("Age", "2147483648"), 0, 0, maxDelta},
		{"§1.2.2 huge Age clamped", hdr("Age", "99999999999999999999"), 0, 0, maxDelta},
		{"§1.2.2 huge Age plus response_delay stays at 2^31", hdr("Age", "2147483648"), 0, time.Hour, maxDelta},
		{"§1.2.2 apparent_age from a Date in year 1 capped at 2^31", hdr("Date", "Mon, 01 Jan 0001 00:00:00 GMT"), 0, 0, maxDelta},
		{"§4.2.3 invalid Date ignored", hdr("Date", "now", "Age", "1"), 0, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CorrectedInitialAge(tt.resp, t0.Add(tt.request), t0.Add(tt.response))
			if got != tt.want {
				t.Errorf("CorrectedInitialAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCurrentAge(t *testing.T) {
	tests := []struct {
		name     string
		initial  time.Duration
		received time.Duration
		now      time.Duration
		want     time.Duration
	}{
		{"§4.2.3 resident time added", 5 * time.Second, 0, 10 * time.Second, 15 * time.Second},
		{"§4.2.3 now before response time", 5 * time.Second, 10 * time.Second, 0, 5 * time.Second},
		{"§4.2.3 negative initial age treated as 0", -time.Second, 0, time.Second, time.Second},
		{"§4.2.3 saturates", math.MaxInt64 - 1, 0, time.Hour, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CurrentAge(tt.initial, t0.Add(tt.received), t0.Add(tt.now)); got != tt.want {
				t.Errorf("CurrentAge = %v, want %v", got, tt.want)
			}
		})
	}
}
