package purge

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// Log bounds: how many entries a node keeps for others to pull, and how
// many node incarnations it remembers.
const (
	// DefaultMaxEntries is the configuration's purge.max_log_entries
	// default, defined there once.
	DefaultMaxEntries = config.DefaultPurgeLogEntries
	// MaxLogBytes bounds the memory of the retained entries, whatever
	// their count: one purge may name 10000 URLs.
	MaxLogBytes = 64 << 20
	maxStreams  = 4096
	// streamForget is how long the high-water mark of a stream with no
	// retained entries is remembered.
	streamForget = 24 * time.Hour
)

// Log is a node's record of the purges it has applied, per issuing node
// incarnation (stream): a high-water mark (every sequence number up to it
// applied), the numbers applied above it, and the entries still retained
// so that other nodes can pull what they missed. It is safe for
// concurrent use.
type Log struct {
	mu         sync.Mutex
	streams    map[stream]*streamLog
	total      int
	bytes      int
	maxEntries int
	retention  time.Duration
	own        stream
}

type streamLog struct {
	hw    uint64
	above map[uint64]struct{}
	// entries are the retained entries, by sequence number.
	entries []Entry
	// compacted is the highest sequence number dropped from entries (or
	// skipped through a gap): a node below it cannot catch up from here.
	compacted uint64
	// resumed is the mark a checkpoint resumed the stream at: the
	// entries up to it were applied before this process, and are not
	// here (see Unretained).
	resumed uint64
	touched time.Time
}

// NewLog returns an empty log for the node whose own stream is own.
func NewLog(own stream, maxEntries int, retention time.Duration) *Log {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &Log{streams: make(map[stream]*streamLog), maxEntries: maxEntries, retention: retention, own: own}
}

// Add records e as applied and reports whether it is new: false when it
// was applied before. The caller applies new entries to the store.
func (l *Log) Add(e Entry, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := e.stream()
	sl := l.streams[s]
	if sl == nil {
		if len(l.streams) >= maxStreams {
			l.forgetOldestStream()
		}
		sl = &streamLog{}
		l.streams[s] = sl
	}
	if e.Seq <= sl.hw {
		return false
	}
	if _, dup := sl.above[e.Seq]; dup {
		return false
	}
	if e.Seq == sl.hw+1 {
		sl.hw++
		sl.advance()
	} else {
		if sl.above == nil {
			sl.above = make(map[uint64]struct{})
		}
		sl.above[e.Seq] = struct{}{}
	}
	sl.touched = now
	i, _ := slices.BinarySearchFunc(sl.entries, e.Seq, func(x Entry, seq uint64) int { return cmp.Compare(x.Seq, seq) })
	sl.entries = slices.Insert(sl.entries, i, e)
	l.total++
	l.bytes += e.size()
	for l.total > l.maxEntries || (l.bytes > MaxLogBytes && l.total > 1) {
		l.dropOldest()
	}
	return true
}

// SkipTo records that everything of m's stream up to m.HW is covered
// without the entries, after a gap: the caller has purged everything
// instead.
func (l *Log) SkipTo(m Mark, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := stream{m.Node, m.Inc}
	sl := l.streams[s]
	if sl == nil {
		sl = &streamLog{}
		l.streams[s] = sl
	}
	if m.HW > sl.hw {
		sl.hw = m.HW
	}
	for seq := range sl.above {
		if seq <= sl.hw {
			delete(sl.above, seq)
		}
	}
	sl.advance()
	sl.compacted = max(sl.compacted, m.HW)
	sl.touched = now
}

// Resume records that everything of m's stream up to m.HW was applied
// before this process started (a checkpoint kept across a restart). It
// raises the mark without claiming the entries are gone, so other nodes
// are not told of a gap.
func (l *Log) Resume(m Mark, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := stream{m.Node, m.Inc}
	sl := l.streams[st]
	if sl == nil {
		if len(l.streams) >= maxStreams {
			return
		}
		sl = &streamLog{}
		l.streams[st] = sl
	}
	sl.hw = max(sl.hw, m.HW)
	sl.resumed = max(sl.resumed, m.HW)
	sl.advance()
	sl.touched = now
}

// Unretained returns the streams whose marks this log claims without
// the entries a node at marks lacks, and without a gap: those resumed
// from a checkpoint (Resume), whose entries another member serves.
func (l *Log) Unretained(marks []Mark) []Mark {
	have := make(map[stream]uint64, len(marks))
	for _, m := range marks {
		have[stream{m.Node, m.Inc}] = m.HW
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Mark
	for s, sl := range l.streams {
		if sl.resumed > have[s] && sl.resumed > sl.compacted {
			out = append(out, Mark{Node: s.Node, Inc: s.Inc, HW: sl.resumed})
		}
	}
	return out
}

// advance moves hw over the sequence numbers applied just above it.
func (sl *streamLog) advance() {
	for {
		if _, ok := sl.above[sl.hw+1]; !ok {
			return
		}
		delete(sl.above, sl.hw+1)
		sl.hw++
	}
}

// Marks returns the high-water mark of every stream.
func (l *Log) Marks() []Mark {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Mark, 0, len(l.streams))
	for s, sl := range l.streams {
		out = append(out, Mark{Node: s.Node, Inc: s.Inc, HW: sl.hw})
	}
	return out
}

// HW returns the high-water mark of one stream.
func (l *Log) HW(node string, inc uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl := l.streams[stream{node, inc}]; sl != nil {
		return sl.hw
	}
	return 0
}

// Missing returns, for a node that reports marks, the retained entries it
// has not applied (at most limit; more is true when some were left out)
// and the gaps: streams where it is behind what this log still retains,
// which it can only cover by purging everything.
func (l *Log) Missing(marks []Mark, limit int) (entries []Entry, gaps []Mark, more bool) {
	have := make(map[stream]uint64, len(marks))
	for _, m := range marks {
		have[stream{m.Node, m.Inc}] = m.HW
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]stream, 0, len(l.streams))
	for s := range l.streams {
		keys = append(keys, s)
	}
	// Oldest streams first, so a paginated pull makes progress in order.
	slices.SortFunc(keys, func(a, b stream) int { return cmp.Or(cmp.Compare(a.Inc, b.Inc), cmp.Compare(a.Node, b.Node)) })
	for _, s := range keys {
		sl := l.streams[s]
		hw := have[s]
		if sl.compacted > hw {
			gaps = append(gaps, Mark{Node: s.Node, Inc: s.Inc, HW: sl.compacted})
			hw = sl.compacted
		}
		i, _ := slices.BinarySearchFunc(sl.entries, hw+1, func(x Entry, seq uint64) int { return cmp.Compare(x.Seq, seq) })
		for _, e := range sl.entries[i:] {
			if len(entries) >= limit {
				return entries, gaps, true
			}
			entries = append(entries, e)
		}
	}
	return entries, gaps, false
}

// Compact drops entries that every member has applied (covered maps a
// stream to the lowest high-water mark among all live members, when all
// of them are known) and entries older than the retention window, and
// forgets streams idle for a day.
func (l *Log) Compact(covered map[stream]uint64, now time.Time) (dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.retention).UnixNano()
	for s, sl := range l.streams {
		upTo, known := covered[s]
		n := 0
		for n < len(sl.entries) {
			e := &sl.entries[n]
			if (known && e.Seq <= upTo) || (l.retention > 0 && e.Time < cutoff) {
				sl.compacted = max(sl.compacted, e.Seq)
				l.bytes -= e.size()
				n++
				continue
			}
			break
		}
		if n > 0 {
			sl.entries = slices.Delete(sl.entries, 0, n)
			l.total -= n
			dropped += n
		}
		if len(sl.entries) == 0 && s != l.own && now.Sub(sl.touched) > streamForget {
			delete(l.streams, s)
		}
	}
	return dropped
}

// Entry returns a copy of the retained entry seq of node's stream inc,
// or nil and whether it was compacted away.
func (l *Log) Entry(node string, inc, seq uint64) (*Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sl := l.streams[stream{node, inc}]
	if sl == nil {
		return nil, false
	}
	i, ok := slices.BinarySearchFunc(sl.entries, seq, func(x Entry, seq uint64) int { return cmp.Compare(x.Seq, seq) })
	if !ok {
		return nil, seq <= sl.compacted
	}
	e := sl.entries[i]
	return &e, false
}

// Len returns the number of retained entries.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// dropOldest drops the oldest retained entry of any stream.
func (l *Log) dropOldest() {
	var oldest *streamLog
	for _, sl := range l.streams {
		if len(sl.entries) > 0 && (oldest == nil || sl.entries[0].Time < oldest.entries[0].Time) {
			oldest = sl
		}
	}
	if oldest == nil {
		l.total, l.bytes = 0, 0
		return
	}
	oldest.compacted = max(oldest.compacted, oldest.entries[0].Seq)
	l.bytes -= oldest.entries[0].size()
	oldest.entries = slices.Delete(oldest.entries, 0, 1)
	l.total--
}

// forgetOldestStream forgets the stream touched least recently, other
// than this node's own.
func (l *Log) forgetOldestStream() {
	var victim stream
	var at time.Time
	found := false
	for s, sl := range l.streams {
		if s != l.own && (!found || sl.touched.Before(at)) {
			victim, at, found = s, sl.touched, true
		}
	}
	if found {
		for i := range l.streams[victim].entries {
			l.bytes -= l.streams[victim].entries[i].size()
		}
		l.total -= len(l.streams[victim].entries)
		delete(l.streams, victim)
	}
}
