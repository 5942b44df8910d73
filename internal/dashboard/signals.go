package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// SignalsPath is where a cluster member serves its Signals on the peer
// listener, to signed GET requests only.
const SignalsPath = "/_weir/signals"

// Bounds of a Signals document read from a peer.
const (
	// MaxSignalsBytes bounds the body; a document is about 1 KiB.
	MaxSignalsBytes = 16 << 10
	// maxSignalsBounds bounds the latency histogram's buckets.
	maxSignalsBounds = 64
	// SignalsVersion is the version of the document this node writes and
	// reads.
	SignalsVersion = 1
)

// Signals are one node's golden-signal counters at one moment, the
// document of GET /_weir/signals: counters since the node started, so the
// reader derives rates over its own window, and the edge's latency
// histogram as cumulative bucket counts, which add up across nodes (the
// cluster's p50 and p99 come from the summed buckets, never from
// averaged quantiles).
type Signals struct {
	Version int `json:"v"`
	// Time is when the counters were read, Unix nanoseconds on the
	// node's clock; rates use differences of it only, so clock skew
	// between nodes does not matter.
	Time     int64  `json:"t"`
	Requests uint64 `json:"req"`
	Errors   uint64 `json:"err"`
	// Hits and Misses count as CacheView does.
	Hits   uint64 `json:"hit"`
	Misses uint64 `json:"miss"`
	// Origin counts the exchanges with the origins.
	Origin   uint64 `json:"origin"`
	InFlight int64  `json:"in_flight"`
	// Saturation is origin work in flight over the adaptive limit, null
	// when the limiter is off.
	Saturation *float64 `json:"sat"`
	// Bounds are the latency buckets' upper bounds in seconds, Cumulative
	// the observations at or under each, Count all of them.
	Bounds     []float64 `json:"lat_bounds"`
	Cumulative []uint64  `json:"lat_cum"`
	Count      uint64    `json:"lat_n"`
}

// SignalsOf returns the Signals of a node's edge counters e, its origin
// clients' counters and its adaptive limit (inFlight over limit; limit 0
// when the limiter is off), read at t.
func SignalsOf(t time.Time, e *telemetry.HTTPTotals, origins []origin.Traffic, inFlight, limit int) Signals {
	s := Signals{Version: SignalsVersion, Time: t.UnixNano(), Errors: e.Errors, InFlight: e.InFlight}
	for c := range telemetry.CacheResults {
		s.Requests += e.Requests[c]
	}
	s.Hits, s.Misses = hitsMisses(e)
	for _, o := range origins {
		s.Origin += o.Responses + o.Errors
	}
	if limit > 0 {
		s.Saturation = ratio(float64(inFlight), float64(limit))
	}
	all := sumHist(e.Durations[:])
	s.Bounds, s.Cumulative, s.Count = all.Bounds, all.Cumulative, all.Count
	if s.Bounds == nil {
		s.Bounds, s.Cumulative = []float64{}, []uint64{}
	}
	return s
}

// signalsOfSample is the Signals of this node's own sample.
func signalsOfSample(s *Sample) Signals {
	inFlight, limit := 0, 0
	if ov := s.Status.Overload; ov != nil {
		inFlight, limit = ov.InFlight, ov.Limit
	}
	return SignalsOf(s.Time, &s.Edge, s.Origins, inFlight, limit)
}

// DecodeSignals parses and checks a Signals document from a peer, which
// is untrusted: at most MaxSignalsBytes, version SignalsVersion, at most
// 64 latency buckets with finite increasing bounds and counts that do not
// decrease and do not exceed the total, a saturation that is finite and
// not negative. Unknown fields are ignored, for newer writers.
func DecodeSignals(b []byte) (Signals, error) {
	var s Signals
	if len(b) > MaxSignalsBytes {
		return s, fmt.Errorf("signals document is %d bytes, over the limit of %d", len(b), MaxSignalsBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&s); err != nil {
		return Signals{}, fmt.Errorf("signals document is not valid JSON: %w", err)
	}
	if dec.More() {
		return Signals{}, errors.New("signals document has data after its JSON object")
	}
	if err := s.check(); err != nil {
		return Signals{}, fmt.Errorf("signals document refused: %w", err)
	}
	return s, nil
}

func (s *Signals) check() error {
	if s.Version != SignalsVersion {
		return fmt.Errorf("version %d, this node reads %d: upgrade the older nodes", s.Version, SignalsVersion)
	}
	if s.Time <= 0 {
		return fmt.Errorf("time %d is not a Unix time in nanoseconds", s.Time)
	}
	if s.InFlight < 0 {
		return fmt.Errorf("in_flight %d is negative", s.InFlight)
	}
	if s.Saturation != nil && (math.IsNaN(*s.Saturation) || math.IsInf(*s.Saturation, 0) || *s.Saturation < 0) {
		return errors.New("sat is not a finite number at or above 0")
	}
	if len(s.Bounds) > maxSignalsBounds {
		return fmt.Errorf("%d latency buckets, over the limit of %d", len(s.Bounds), maxSignalsBounds)
	}
	if len(s.Cumulative) != len(s.Bounds) {
		return fmt.Errorf("%d latency counts for %d buckets", len(s.Cumulative), len(s.Bounds))
	}
	for i, b := range s.Bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 || (i > 0 && b <= s.Bounds[i-1]) {
			return fmt.Errorf("latency bound %d (%v) is not finite, positive and above the one before", i, b)
		}
		if i > 0 && s.Cumulative[i] < s.Cumulative[i-1] {
			return fmt.Errorf("latency count %d decreases", i)
		}
	}
	if n := len(s.Cumulative); n > 0 && s.Cumulative[n-1] > s.Count {
		return fmt.Errorf("latency counts exceed the total %d", s.Count)
	}
	return nil
}
