package origin

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// errNoOtherServer is pick's answer when every healthy server was tried;
// it ends retries and never reaches callers.
var errNoOtherServer = errors.New("origin: every healthy server was tried")

// retryableRequest reports whether a request may be sent twice: its method
// is idempotent (RFC 9110 §9.2.2) and it has no body, which could not be
// sent again once read.
func retryableRequest(method string, body io.ReadCloser) bool {
	if body != nil && body != http.NoBody {
		return false
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryableOutcome reports whether an attempt's outcome is worth another
// server: no connection, a broken one, or no response header in time; or
// an answer saying this server could not serve now (502, 503, 504).
func retryableOutcome(resp *http.Response, err error) bool {
	if err != nil {
		var oe *Error
		if !errors.As(err, &oe) {
			return false
		}
		switch oe.Kind() {
		case KindConnect, KindReset, KindTimeout:
			return true
		}
		return false
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// The retry budget's window: budgetBuckets buckets of one second.
const budgetBuckets = 10

// retryBudget caps retries to a share of first tries over the last ten
// seconds, plus a floor allowed whatever the share. Its memory is fixed:
// one counter pair per second of the window. It is safe for concurrent
// use.
type retryBudget struct {
	ratio  float64
	floor  float64 // retries allowed per window whatever the ratio
	mu     sync.Mutex
	bucket [budgetBuckets]budgetBucket // guarded by mu; indexed by second
}

type budgetBucket struct {
	sec            int64 // the Unix second the counts are of
	first, retries int64
}

func newRetryBudget(r Retry) *retryBudget {
	ratio := r.Budget
	if ratio == 0 {
		ratio = config.DefaultRetryBudget
	}
	perSec := r.MinPerSecond
	if perSec == 0 {
		perSec = config.DefaultRetryMinPerSecond
	}
	return &retryBudget{ratio: max(ratio, 0), floor: float64(max(perSec, 0) * budgetBuckets)}
}

// retryAllowed reports whether one more retry fits a budget that allows
// ratio×first + floor retries, of which retries are spent.
func retryAllowed(first, retries int64, ratio, floor float64) bool {
	return float64(retries+1) <= ratio*float64(first)+floor
}

// at returns the bucket of now's second, emptied if it held an older one.
// b.mu must be held.
func (b *retryBudget) at(now time.Time) *budgetBucket {
	sec := now.Unix()
	k := &b.bucket[sec%budgetBuckets]
	if k.sec != sec {
		*k = budgetBucket{sec: sec}
	}
	return k
}

// deposit counts a first try.
func (b *retryBudget) deposit(now time.Time) {
	b.mu.Lock()
	b.at(now).first++
	b.mu.Unlock()
}

// withdraw spends a retry if the budget allows one.
func (b *retryBudget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	var first, retries int64
	sec := now.Unix()
	for _, k := range b.bucket {
		if k.sec > sec-budgetBuckets && k.sec <= sec {
			first += k.first
			retries += k.retries
		}
	}
	if !retryAllowed(first, retries, b.ratio, b.floor) {
		return false
	}
	b.at(now).retries++
	return true
}

// refund gives back a retry withdrawn at now and not made.
func (b *retryBudget) refund(now time.Time) {
	b.mu.Lock()
	if k := b.at(now); k.retries > 0 {
		k.retries--
	}
	b.mu.Unlock()
}
