package disk

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// counters are the tier's event counts.
type counters struct {
	hits, misses, expired, purged, softened, corrupt, unproven atomic.Int64
	readBytes, readErrors                                      atomic.Int64
	writes, written, admitted, writeErrors                     atomic.Int64
	already, refusedFrequency, refusedQueue, refusedSize       atomic.Int64
	refusedExpired, refusedDegraded, refusedFailed             atomic.Int64
	evictedSegments, evictedObjects, reinserted                atomic.Int64
	sweeps, snapshots                                          atomic.Int64
}

// Stats is a point-in-time view of the tier, for /status.
type Stats struct {
	Path        string   `json:"path"`
	Objects     int      `json:"objects"`
	Bytes       int64    `json:"bytes"`
	MaxBytes    int64    `json:"max_bytes"` // the bound in force: lower than max_size after the filesystem filled up
	MaxObject   int64    `json:"max_object_size"`
	Segments    int      `json:"segments"`
	IndexBytes  int64    `json:"index_bytes"` // RAM the index takes, estimated
	QueuedBytes int64    `json:"queued_bytes"`
	PurgeRules  int      `json:"purge_rules"`
	Degraded    bool     `json:"degraded"`
	Proven      bool     `json:"proven"` // false while objects from before the restart are revalidated before use
	Hits        int64    `json:"hits"`
	Misses      int64    `json:"misses"`
	Written     int64    `json:"written_bytes"`
	Admitted    int64    `json:"admitted_bytes"`
	Corruptions int64    `json:"corruptions"`
	WriteErrors int64    `json:"write_errors"`
	ReadErrors  int64    `json:"read_errors"`
	Recovery    Recovery `json:"recovery"`
	// Error says why the tier could not be opened at start, when it
	// could not: the node serves from memory only.
	Error string `json:"error,omitempty"`
}

// indexEntryBytes is the estimated RAM of one index entry: the map slot
// (hash and entry), the map's spare capacity, the segment manifest's
// hash and the sketch's share (see BenchmarkIndexBytes).
const indexEntryBytes = 113

// Stats returns the current statistics.
func (t *Tier) Stats() Stats {
	t.mu.Lock()
	used, limit, segs := t.used, t.limit, len(t.order)
	t.mu.Unlock()
	n := t.idx.len()
	return Stats{
		Path: t.dir, Objects: n, Bytes: used, MaxBytes: limit, MaxObject: t.cfg.MaxObjectBytes, Segments: segs,
		IndexBytes:  int64(n)*indexEntryBytes + int64(len(t.freq.rows)*len(t.freq.rows[0])),
		QueuedBytes: t.queued.Load(), PurgeRules: t.rules.len(), Degraded: t.Degraded(), Proven: t.proven.Load(),
		Hits: t.stats.hits.Load(), Misses: t.stats.misses.Load(), Written: t.stats.written.Load(),
		Admitted: t.stats.admitted.Load(), Corruptions: t.stats.corrupt.Load(),
		WriteErrors: t.stats.writeErrors.Load(), ReadErrors: t.stats.readErrors.Load(),
		Recovery: t.recovery,
	}
}

var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

var (
	descObjects    = prometheus.NewDesc("weir_disk_objects", "Objects in the disk tier.", nil, nil)
	descBytes      = prometheus.NewDesc("weir_disk_bytes", "Bytes of the disk tier's segment files.", nil, nil)
	descMaxBytes   = prometheus.NewDesc("weir_disk_max_bytes", "The bound on weir_disk_bytes in force: cache.disk.max_size, or less after the filesystem filled up.", nil, nil)
	descIndexBytes = prometheus.NewDesc("weir_disk_index_bytes", "RAM the disk tier's index takes, estimated.", nil, nil)
	descQueued     = prometheus.NewDesc("weir_disk_queued_bytes", "Bytes waiting to be written to disk.", nil, nil)
	descLookups    = prometheus.NewDesc("weir_disk_lookups_total", "Lookups in the disk tier after a memory miss, by result.", []string{"result"}, nil)
	descDropped    = prometheus.NewDesc("weir_disk_dropped_objects_total", "Objects removed from the disk tier, by reason.", []string{"reason"}, nil)
	descCorrupt    = prometheus.NewDesc("weir_disk_corruptions_total", "Records that failed their checksum: dropped and fetched again.", nil, nil)
	descRead       = prometheus.NewDesc("weir_disk_read_seconds", "Time to read a record's head (and a one-chunk body) from disk.", nil, nil)
	descWrite      = prometheus.NewDesc("weir_disk_write_seconds", "Time to write a record to disk.", nil, nil)
	descReadBytes  = prometheus.NewDesc("weir_disk_read_bytes_total", "Bytes read from the disk tier.", nil, nil)
	descWritten    = prometheus.NewDesc("weir_disk_written_bytes_total", "Bytes written to the disk tier: records, reinsertions and the journal.", nil, nil)
	descAdmitted   = prometheus.NewDesc("weir_disk_admitted_bytes_total", "Body bytes of the objects written to the disk tier.", nil, nil)
	descAdmissions = prometheus.NewDesc("weir_disk_admissions_total", "Objects offered to the disk tier, by outcome.", []string{"result"}, nil)
	descErrors     = prometheus.NewDesc("weir_disk_errors_total", "Disk reads and writes that failed.", []string{"op"}, nil)
	descDegraded   = prometheus.NewDesc("weir_disk_degraded", "1 while the disk tier writes nothing after a failure (objects stay in memory only).", nil, nil)
	descUnproven   = prometheus.NewDesc("weir_disk_unproven", "1 while objects kept from before the restart are revalidated before use, until the node proves it missed no purge.", nil, nil)
	descEvicted    = prometheus.NewDesc("weir_disk_evicted_segments_total", "Segments evicted to stay under the bound.", nil, nil)
	descRecovery   = prometheus.NewDesc("weir_disk_recovery_seconds", "How long the last start took to recover the disk tier's index.", nil, nil)
	descRecovered  = prometheus.NewDesc("weir_disk_recovered_objects", "Objects the last start found on disk.", nil, nil)
)

// Collector returns the tier's metrics, read at scrape time.
func (t *Tier) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		st := t.Stats()
		c := &t.stats
		ch <- telemetry.Gauge(descObjects, float64(st.Objects))
		ch <- telemetry.Gauge(descBytes, float64(st.Bytes))
		ch <- telemetry.Gauge(descMaxBytes, float64(st.MaxBytes))
		ch <- telemetry.Gauge(descIndexBytes, float64(st.IndexBytes))
		ch <- telemetry.Gauge(descQueued, float64(st.QueuedBytes))
		ch <- telemetry.Counter(descLookups, float64(c.hits.Load()), "hit")
		ch <- telemetry.Counter(descLookups, float64(c.misses.Load()), "miss")
		ch <- telemetry.Counter(descDropped, float64(c.expired.Load()), "expired")
		ch <- telemetry.Counter(descDropped, float64(c.purged.Load()), "purged")
		ch <- telemetry.Counter(descDropped, float64(c.evictedObjects.Load()), "evicted")
		ch <- telemetry.Counter(descDropped, float64(c.corrupt.Load()), "corrupt")
		ch <- telemetry.Counter(descCorrupt, float64(c.corrupt.Load()))
		ch <- t.readLat.Metric(descRead)
		ch <- t.writeLat.Metric(descWrite)
		ch <- telemetry.Counter(descReadBytes, float64(c.readBytes.Load()))
		ch <- telemetry.Counter(descWritten, float64(c.written.Load()))
		ch <- telemetry.Counter(descAdmitted, float64(c.admitted.Load()))
		for _, a := range []struct {
			name string
			v    *atomic.Int64
		}{{"written", &c.writes}, {"reinserted", &c.reinserted}, {"already_on_disk", &c.already},
			{"refused_frequency", &c.refusedFrequency}, {"refused_queue", &c.refusedQueue},
			{"refused_size", &c.refusedSize}, {"refused_expired", &c.refusedExpired},
			{"refused_degraded", &c.refusedDegraded}, {"refused_no_room", &c.refusedFailed}} {
			ch <- telemetry.Counter(descAdmissions, float64(a.v.Load()), a.name)
		}
		ch <- telemetry.Counter(descErrors, float64(c.readErrors.Load()), "read")
		ch <- telemetry.Counter(descErrors, float64(c.writeErrors.Load()), "write")
		ch <- telemetry.Gauge(descDegraded, b2f(st.Degraded))
		ch <- telemetry.Gauge(descUnproven, b2f(!st.Proven))
		ch <- telemetry.Counter(descEvicted, float64(c.evictedSegments.Load()))
		ch <- telemetry.Gauge(descRecovery, t.recovery.Duration.Seconds())
		ch <- telemetry.Gauge(descRecovered, float64(t.recovery.Objects))
	})
}

// UnopenedCollector returns the one metric of a tier that could not be
// opened at start: weir_disk_degraded at 1, so the alert fires.
func UnopenedCollector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) { ch <- telemetry.Gauge(descDegraded, 1) })
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
