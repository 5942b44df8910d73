// Package coalesce makes concurrent fills of one key share one fetch.
//
// The first caller for a key creates a Flight and becomes its leader: it
// starts the fetch, publishes the response head with SetHead and streams
// the body into the flight. Every caller, the leader included, reads the
// response through its own Reader, from the first byte, while the body is
// still arriving, so a slow large body reaches every client as it streams
// instead of after it is complete.
//
// A response that must not be shared (one that is not cacheable, such as
// a private or Set-Cookie answer) is given to the leader's reader only;
// the other readers get ErrNotShared and fetch on their own.
//
// While the body fits the keep limit the flight keeps all of it, so
// latecomers can still join and the complete body can be stored. Past the
// limit the flight stops accepting joiners, releases what every reader has
// consumed, and holds the fetch back whenever the slowest reader is more
// than a window behind, so memory stays bounded however large the body.
package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNotShared is returned by Reader.Head to a reader that joined a flight
// whose response turned out not to be shareable. The caller should fetch
// on its own.
var ErrNotShared = errors.New("coalesce: response is not shareable")

// ErrAbandoned is returned to the filler by Reserve when the flight no
// longer has readers and its body is not being kept.
var ErrAbandoned = errors.New("coalesce: no readers left")

// Group tracks the flights in progress. The zero value is not usable;
// create one with NewGroup. A Group is safe for concurrent use.
type Group[H any] struct {
	// mu guards flights. It is taken before a flight's mu, never while
	// holding one.
	mu      sync.Mutex
	flights map[string]*Flight[H]
}

// NewGroup returns an empty group.
func NewGroup[H any]() *Group[H] {
	return &Group[H]{flights: make(map[string]*Flight[H])}
}

// Len returns the number of flights that can still be joined.
func (g *Group[H]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.flights)
}

// Readers returns how many readers wait on the joinable flight for key,
// or 0 when there is none.
func (g *Group[H]) Readers(key string) int {
	g.mu.Lock()
	f := g.flights[key]
	g.mu.Unlock()
	if f == nil {
		return 0
	}
	return f.Readers()
}

// Join returns a reader of the flight for key, creating the flight when
// none can be joined. When leader is true the caller created the flight
// and must fill it (SetHead, Reserve/Commit, Finish), normally from a
// goroutine that does not depend on its own client. keep is the largest
// body the new flight keeps whole; it is ignored when joining.
func (g *Group[H]) Join(key string, keep int64) (r *Reader[H], leader bool) {
	return g.JoinSince(key, keep, 0)
}

// JoinSince is Join that gives a new flight epoch: an opaque number the
// caller compares when it joins a flight (the edge: the purge epoch the
// fill counts from, so that a request after a purge does not join a fill
// from before it). Joining does not change it.
func (g *Group[H]) JoinSince(key string, keep int64, epoch uint64) (r *Reader[H], leader bool) {
	g.mu.Lock()
	f := g.flights[key]
	if f != nil {
		r = &Reader[H]{f: f}
		f.mu.Lock()
		f.readers++
		f.offsets[r] = 0
		f.mu.Unlock()
		g.mu.Unlock()
		return r, false
	}
	f = &Flight[H]{
		key:      key,
		group:    g,
		keep:     keep,
		window:   DefaultWindow,
		readers:  1,
		keepAll:  true,
		headDone: make(chan struct{}),
		offsets:  make(map[*Reader[H]]int64),
	}
	f.epoch.Store(epoch)
	r = &Reader[H]{f: f, leader: true}
	f.offsets[r] = 0
	g.flights[key] = f
	g.mu.Unlock()
	return r, true
}

// forget removes f from the group so that later callers start a new
// flight. It is idempotent.
func (g *Group[H]) forget(f *Flight[H]) {
	g.mu.Lock()
	if g.flights[f.key] == f {
		delete(g.flights, f.key)
	}
	g.mu.Unlock()
}

// DefaultWindow is how far the fetch may run ahead of the slowest reader
// once the body is no longer kept whole: with the chunk being filled, what
// a flight holds for a reader that stopped reading.
const DefaultWindow = 256 << 10

// Flight is one fetch shared by its readers. The filler's methods
// (SetHead, Reserve, Commit, Finish, Forget) must be called from one
// goroutine; readers use their own Reader.
type Flight[H any] struct {
	key   string
	group *Group[H]
	keep  int64
	// epoch is the number JoinSince gave it, lowered by LowerEpoch.
	epoch atomic.Uint64
	// window bounds how far the filler runs ahead of the slowest reader
	// once keepAll is off.
	window int64

	headDone chan struct{} // closed once head or err is set

	// mu guards everything below.
	mu      sync.Mutex
	head    H
	hasHead bool
	shared  bool
	readers int
	// chunks hold the body from offset first on; data below each chunk's
	// len never changes.
	chunks  [][]byte
	first   int64
	size    int64
	keepAll bool
	done    bool
	err     error
	changed chan struct{} // closed on progress when readers wait
	// offsets holds each attached reader's position, so released chunks
	// are only those every reader has passed.
	offsets map[*Reader[H]]int64
}

// Key returns the flight's key.
func (f *Flight[H]) Key() string { return f.key }

// SetHead publishes the response head. When shared is false only the
// leader's reader may use the response, and the flight is forgotten at
// once so that later callers do not wait for it.
func (f *Flight[H]) SetHead(h H, shared bool) {
	if !shared {
		// Forget first: a caller arriving after the readers wake must
		// start its own fetch, not join this one.
		f.Forget()
	}
	f.mu.Lock()
	f.head, f.hasHead, f.shared = h, true, shared
	f.mu.Unlock()
	close(f.headDone)
}

// Stream stops keeping the body whole, as Reserve does once the body
// outgrows the keep limit: the flight takes no new readers, releases
// what every reader has consumed, and holds the filler back while the
// slowest reader is more than a window behind. The filler calls it for a
// response that will not be stored, so that a client that reads slowly
// or not at all costs a window of memory, not the whole body. It is
// idempotent.
func (f *Flight[H]) Stream() {
	f.mu.Lock()
	if !f.keepAll {
		f.mu.Unlock()
		return
	}
	f.keepAll = false
	f.mu.Unlock()
	f.group.forget(f)
	f.mu.Lock()
	f.trimLocked()
	f.mu.Unlock()
}

// Forget stops new callers from joining the flight; readers already
// attached keep reading. The filler calls it once the response is stored
// (so later callers find it in the cache) or known not to be stored; a
// reader may call it too (it takes the group's lock), when it finds the
// flight no longer fit to join.
func (f *Flight[H]) Forget() { f.group.forget(f) }

// Epoch returns the flight's epoch (see JoinSince).
func (f *Flight[H]) Epoch() uint64 { return f.epoch.Load() }

// LowerEpoch lowers the flight's epoch to e, when e is lower.
func (f *Flight[H]) LowerEpoch(e uint64) {
	for {
		cur := f.epoch.Load()
		if e >= cur || f.epoch.CompareAndSwap(cur, e) {
			return
		}
	}
}

// Readers returns how many readers are attached.
func (f *Flight[H]) Readers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readers
}

// Reserve returns space at the end of the body for the filler to read
// into, at least min(want, 1) bytes long. sizeHint, when positive, is the
// number of bytes still expected. Once the body has outgrown the keep
// limit, Reserve waits while the slowest reader is more than a window
// behind, and returns ErrAbandoned when no reader is left; ctx bounds the
// wait.
func (f *Flight[H]) Reserve(ctx context.Context, sizeHint int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keepAll && f.size > f.keep {
		// The body will not be kept whole: stop accepting joiners and
		// start releasing what every reader has consumed. Join takes the
		// group's lock before the flight's, so the flight's is released
		// while forgetting; a reader that joins meanwhile starts at offset
		// 0, which trimming respects.
		f.keepAll = false
		f.mu.Unlock()
		f.group.forget(f)
		f.mu.Lock()
		f.trimLocked()
	}
	for !f.keepAll {
		if f.readers == 0 {
			return nil, ErrAbandoned
		}
		if f.size-f.minOffsetLocked() < f.window {
			break
		}
		ch := f.waitChanLocked()
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			f.mu.Lock()
			return nil, ctx.Err()
		}
		f.mu.Lock()
		f.trimLocked()
	}
	if n := len(f.chunks); n > 0 {
		last := f.chunks[n-1]
		if len(last) < cap(last) {
			return last[len(last):cap(last)], nil
		}
	}
	size := chunkSize(f.size, sizeHint, f.keep)
	if !f.keepAll {
		// Small chunks once streaming, so consumed data is released soon.
		size = min(max(f.window/4, 4<<10), 64<<10)
	}
	f.chunks = append(f.chunks, make([]byte, 0, size))
	last := f.chunks[len(f.chunks)-1]
	return last[:cap(last)], nil
}

// chunkSize picks the size of the next chunk: the whole expected rest when
// it is known and may be kept, else growing chunks from 16 KiB to 1 MiB.
func chunkSize(written, rest, keep int64) int64 {
	if rest > 0 && written+rest <= keep {
		return rest
	}
	size := int64(16 << 10)
	for size < written/4 && size < 1<<20 {
		size *= 2
	}
	return size
}

// Commit makes n bytes written into the slice from the last Reserve
// visible to readers.
func (f *Flight[H]) Commit(n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	last := len(f.chunks) - 1
	f.chunks[last] = f.chunks[last][:len(f.chunks[last])+n]
	f.size += int64(n)
	f.notifyLocked()
	f.mu.Unlock()
}

// Finish ends the flight: err nil means the body is complete. When the
// head was never set, readers get err from Head. Finish forgets the flight
// unless keep is true, in which case the filler calls Forget itself later.
// A filler that stores the response does so before Finish, so that readers
// wake up to a store that already holds it.
func (f *Flight[H]) Finish(err error, keep bool) {
	if !keep {
		// Forget before waking the readers, so that a request made after
		// one of them has answered cannot join the finished flight.
		f.Forget()
	}
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return
	}
	if err == nil && !f.hasHead {
		err = errors.New("coalesce: flight finished without a response")
	}
	f.done, f.err = true, err
	headSet := f.hasHead
	f.notifyLocked()
	f.mu.Unlock()
	if !headSet {
		close(f.headDone)
	}
}

// Body returns the body received so far as one slice, when the flight
// kept all of it and has not failed; else ok is false. The filler calls it
// once the body is complete, to store it before calling Finish. A body
// that arrived in one chunk is returned without copying.
func (f *Flight[H]) Body() (body []byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || !f.keepAll || f.first != 0 {
		return nil, false
	}
	switch len(f.chunks) {
	case 0:
		return []byte{}, true
	case 1:
		return f.chunks[0], true
	}
	body = make([]byte, 0, f.size)
	for _, c := range f.chunks {
		body = append(body, c...)
	}
	return body, true
}

// Size returns the body bytes received so far.
func (f *Flight[H]) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

func (f *Flight[H]) waitChanLocked() chan struct{} {
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

func (f *Flight[H]) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

func (f *Flight[H]) minOffsetLocked() int64 {
	min := f.size
	for _, off := range f.offsets {
		if off < min {
			min = off
		}
	}
	return min
}

// trimLocked releases chunks every reader has passed. Only called once the
// body is no longer kept whole.
func (f *Flight[H]) trimLocked() {
	min := f.minOffsetLocked()
	for len(f.chunks) > 1 {
		c := f.chunks[0]
		if f.first+int64(len(c)) > min {
			break
		}
		f.first += int64(len(c))
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
	}
}

// Reader is one caller's view of a flight. It is not safe for concurrent
// use; Close must be called when done.
type Reader[H any] struct {
	f      *Flight[H]
	leader bool
	off    int64
	closed bool
}

// Leader reports whether this reader created the flight.
func (r *Reader[H]) Leader() bool { return r.leader }

// Flight returns the flight read.
func (r *Reader[H]) Flight() *Flight[H] { return r.f }

// Ready returns a channel closed once the head (or the fetch's error) is
// known, for a caller that waits on something else at the same time.
func (r *Reader[H]) Ready() <-chan struct{} { return r.f.headDone }

// Head waits for the response head. It returns ErrNotShared to a
// non-leader reader of an unshareable response, the fetch error when the
// fetch failed before a head, or ctx's error.
func (r *Reader[H]) Head(ctx context.Context) (H, error) {
	f := r.f
	var zero H
	select {
	case <-f.headDone:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hasHead {
		return zero, f.err
	}
	if !f.shared && !r.leader {
		return zero, ErrNotShared
	}
	return f.head, nil
}

// Next returns the next part of the body, waiting for it to arrive. It
// returns io.EOF-like (nil, nil, true) at the end: done is true when the
// body is complete, err non-nil when the fetch failed mid-body or ctx
// ended. The returned slice must not be modified and stays valid.
func (r *Reader[H]) Next(ctx context.Context) (p []byte, done bool, err error) {
	f := r.f
	f.mu.Lock()
	for {
		if r.off < f.size {
			p = f.sliceLocked(r.off)
			r.off += int64(len(p))
			f.offsets[r] = r.off
			if !f.keepAll {
				f.notifyLocked() // the filler may be waiting for readers to advance
			}
			f.mu.Unlock()
			return p, false, nil
		}
		if f.done {
			err := f.err
			f.mu.Unlock()
			return nil, err == nil, err
		}
		ch := f.waitChanLocked()
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		f.mu.Lock()
	}
}

// sliceLocked returns the committed bytes of the chunk holding off, from
// off on.
func (f *Flight[H]) sliceLocked(off int64) []byte {
	start := f.first
	for _, c := range f.chunks {
		end := start + int64(len(c))
		if off < end {
			return c[off-start : len(c) : len(c)]
		}
		start = end
	}
	return nil
}

// Close detaches the reader. It is idempotent.
func (r *Reader[H]) Close() {
	if r.closed {
		return
	}
	r.closed = true
	f := r.f
	f.mu.Lock()
	f.readers--
	delete(f.offsets, r)
	f.notifyLocked()
	f.mu.Unlock()
}
