package origin

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"

	"github.com/weir-cdn/weir/internal/config"
)

// bulkhead bounds the requests in flight to an origin, with a bounded
// queue of requests waiting a bounded time for a slot: a failsafe-go
// bulkhead, plus the queue bound it lacks. It is safe for concurrent use.
type bulkhead struct {
	bh         fsbulkhead.Bulkhead[any]
	maxWaiting int64
	maxWait    time.Duration

	inFlight atomic.Int64 // slots taken
	waiting  atomic.Int64 // requests waiting for a slot
	rejected atomic.Uint64
}

func newBulkhead(b Bulkhead) *bulkhead {
	return &bulkhead{
		bh:         fsbulkhead.New[any](uint(orDefault(b.MaxConcurrent, config.DefaultBulkheadMaxConcurrent))),
		maxWaiting: int64(orDefault(b.MaxWaiting, config.DefaultBulkheadMaxWaiting)),
		maxWait:    orDefault(b.MaxWait, time.Duration(config.DefaultBulkheadMaxWait)),
	}
}

// acquire takes a slot, waiting up to maxWait for one unless the queue is
// full. It returns ErrBulkheadFull, or ctx's error if ctx ends first. A
// taken slot must be given back with release.
func (b *bulkhead) acquire(ctx context.Context) error {
	if b.bh.TryAcquirePermit() {
		b.inFlight.Add(1)
		return nil
	}
	if b.waiting.Add(1) > b.maxWaiting {
		b.waiting.Add(-1)
		b.rejected.Add(1)
		return ErrBulkheadFull
	}
	err := b.bh.AcquirePermitWithMaxWait(ctx, b.maxWait)
	b.waiting.Add(-1)
	switch {
	case err == nil:
		b.inFlight.Add(1)
		return nil
	case errors.Is(err, fsbulkhead.ErrFull):
		b.rejected.Add(1)
		return ErrBulkheadFull
	}
	return err
}

// release gives back a slot taken by acquire.
func (b *bulkhead) release() {
	b.inFlight.Add(-1)
	b.bh.ReleasePermit()
}
