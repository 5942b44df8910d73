package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/disk"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// diskParts is the disk tier below the memory store (cache.disk), when
// configured, and what ties it to the purges: the checkpoint of the purge
// log's marks it journals, and the goroutine that lifts the restart's
// probation once the purge service has caught up.
type diskParts struct {
	tier *disk.Tier
	// purge is the purge service, once built, for the checkpoint.
	purge atomic.Pointer[purge.Service]
	stop  chan struct{}
	wg    sync.WaitGroup
	// openErr is why cache.disk.path could not be opened at start: the
	// node then serves from memory only.
	openErr string
}

// startStore opens the disk tier, when configured, and the memory store
// above it.
func (n *Node) startStore() error {
	cfg := store.Config{MaxBytes: int64(n.cfg.Cache.MaxSize), MaxVariants: n.cfg.Cache.MaxVariants}
	if dc := n.cfg.Cache.Disk; dc.Enabled() {
		if n.opt.BeforeDisk != nil {
			if err := n.opt.BeforeDisk(); err != nil {
				return fmt.Errorf("cache.disk: %w", err)
			}
		}
		tier, err := disk.Open(disk.Config{
			Path: dc.Path, MaxBytes: int64(dc.Size()), MaxObjectBytes: int64(dc.ObjectSize()),
			Logger: n.log, Checkpoint: n.diskCheckpoint,
		})
		if err != nil {
			// A disk that cannot be used costs hits, never the node:
			// it serves from memory, and says so until restarted.
			n.disk.openErr = err.Error()
			n.log.Error("disk tier: cannot open cache.disk.path; serving from memory only until restarted (see the runbook WeirDiskDegraded)",
				"path", dc.Path, "error", err.Error())
		} else {
			n.disk.tier = tier
			cfg.Lower = tier
			rec := tier.Recovery()
			n.log.Info("disk tier opened", "path", dc.Path, "objects", rec.Objects, "bytes", rec.Bytes,
				"recovery", rec.Duration.String(), "dropped", rec.Dropped, "cold", rec.Cold)
		}
	}
	n.store = store.New(cfg)
	return nil
}

// diskCheckpoint is what the disk tier journals with its objects: the
// marks of the purges applied so far; nil until the purge service runs.
func (n *Node) diskCheckpoint() []byte {
	if p := n.disk.purge.Load(); p != nil {
		return p.Checkpoint()
	}
	return nil
}

// startProof lifts the disk tier's restart probation once the purge
// service shows the node missed no purge while it was down: at once for
// a standalone node, after the first complete sync round for a member.
func (n *Node) startProof() {
	t := n.disk.tier
	if t == nil {
		return
	}
	n.disk.purge.Store(n.purge)
	if t.Proven() {
		return
	}
	if n.purge.CaughtUp() {
		t.Prove()
		return
	}
	n.disk.stop = make(chan struct{})
	n.disk.wg.Add(1)
	go func() {
		defer n.disk.wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		since := time.Now()
		for {
			select {
			case <-n.disk.stop:
				return
			case <-tick.C:
			}
			if n.purge.CaughtUp() {
				t.Prove()
				n.log.Info("disk tier: the purges missed while down are applied; objects from before the restart are served again without revalidation",
					"after", time.Since(since).Round(time.Millisecond).String())
				return
			}
		}
	}()
}

// flushTimeout bounds the last flush of the objects hit in memory to the
// disk tier when the node stops.
const flushTimeout = 2 * time.Second

// flushToDisk offers the disk tier what is hot in memory and not on disk
// yet, for at most flushTimeout, so that a restart finds it.
func (n *Node) flushToDisk() {
	if n.disk.tier == nil {
		return
	}
	stop := make(chan struct{})
	t := time.AfterFunc(flushTimeout, func() { close(stop) })
	defer t.Stop()
	n.store.Flush(stop)
}

// ReleaseDisk hands the disk tier over to the process upgrading this one:
// purges stop being applied here (the API answers 503, peers keep their
// messages for the new process), what is hot in memory is written, and
// the tier is closed, its last checkpoint and snapshot written, its
// directory unlocked. This process serves on from memory until it exits.
// It reports false when there is no disk tier.
func (n *Node) ReleaseDisk() bool {
	t := n.disk.tier
	if t == nil {
		return false
	}
	n.purge.Hold()
	n.flushToDisk()
	if err := t.Close(); err != nil {
		n.log.Error("disk tier: the index snapshot could not be written for the upgrade; the new process replays the journal instead", "error", err.Error())
	}
	return true
}

// closeDisk stops the proof goroutine and closes the tier, after the
// memory store (whose evictions it may still be writing).
func (n *Node) closeDisk() {
	if n.disk.stop != nil {
		close(n.disk.stop)
		n.disk.wg.Wait()
		n.disk.stop = nil
	}
	if n.disk.tier != nil {
		if err := n.disk.tier.Close(); err != nil {
			n.log.Error("disk tier: the index snapshot could not be written; the next start replays the journal instead", "error", err.Error())
		}
		n.disk.tier = nil
	}
}

// diskCollector returns the disk tier's metrics; none when it is off, and
// only weir_disk_degraded, at 1, when it could not be opened.
func (n *Node) diskCollector() prometheus.Collector {
	switch {
	case n.disk.tier != nil:
		return n.disk.tier.Collector()
	case n.disk.openErr != "":
		return disk.UnopenedCollector()
	}
	return telemetry.Collect(func(chan<- prometheus.Metric) {})
}

// DiskStats returns the disk tier's statistics; false when it is off.
func (n *Node) DiskStats() (disk.Stats, bool) {
	if n.disk.tier == nil {
		if n.disk.openErr != "" {
			return disk.Stats{Path: n.cfg.Cache.Disk.Path, Degraded: true, Error: n.disk.openErr}, true
		}
		return disk.Stats{}, false
	}
	return n.disk.tier.Stats(), true
}
