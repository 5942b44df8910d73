package coalesce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fill writes body into f in pieces of step bytes.
func fill(ctx context.Context, f *Flight[string], body []byte, step int, hint bool) error {
	for len(body) > 0 {
		var h int64
		if hint {
			h = int64(len(body))
		}
		p, err := f.Reserve(ctx, h)
		if err != nil {
			return err
		}
		n := copy(p, body[:min(step, len(body))])
		f.Commit(n)
		body = body[n:]
	}
	return nil
}

// readAll reads a reader's body to the end.
func readAll(ctx context.Context, r *Reader[string]) ([]byte, error) {
	var out []byte
	for {
		p, done, err := r.Next(ctx)
		out = append(out, p...)
		if done {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestJoinMakesOneLeaderPerKey(t *testing.T) {
	g := NewGroup[string]()
	const n = 50
	var wg sync.WaitGroup
	leaders := make(chan *Reader[string], n)
	readers := make(chan *Reader[string], n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, leader := g.Join("k", 1<<20)
			readers <- r
			if leader {
				leaders <- r
			}
		}()
	}
	wg.Wait()
	close(leaders)
	close(readers)
	if got := len(leaders); got != 1 {
		t.Fatalf("leaders = %d, want 1", got)
	}
	ld := <-leaders
	if got := ld.Flight().Readers(); got != n {
		t.Fatalf("readers = %d, want %d", got, n)
	}
	for r := range readers {
		if r.Flight() != ld.Flight() {
			t.Fatal("a reader joined another flight")
		}
		r.Close()
	}
	if g.Len() != 1 {
		t.Fatalf("flight forgotten before it finished")
	}
	ld.Flight().Finish(errors.New("done"), false)
	if g.Len() != 0 {
		t.Fatalf("flight still joinable after Finish")
	}
}

func TestReadersSeeBodyWhileItStreams(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r1, _ := g.Join("k", 1<<20)
	r2, leader := g.Join("k", 1<<20)
	if leader {
		t.Fatal("second joiner became leader")
	}
	f := r1.Flight()
	f.SetHead("200", true)
	if h, err := r2.Head(ctx); err != nil || h != "200" {
		t.Fatalf("Head = %q, %v", h, err)
	}
	// Publish the first part only; a reader must get it before the rest
	// exists.
	if err := fill(ctx, f, []byte("hello "), 3, false); err != nil {
		t.Fatal(err)
	}
	p, done, err := r2.Next(ctx)
	if err != nil || done || !bytes.HasPrefix([]byte("hello "), p) || len(p) == 0 {
		t.Fatalf("Next = %q, %v, %v", p, done, err)
	}
	got := append([]byte(nil), p...)
	errc := make(chan error, 1)
	go func() {
		errc <- fill(ctx, f, []byte("world"), 2, false)
		f.Finish(nil, false)
	}()
	rest, err := readAll(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	if string(got) != "hello world" {
		t.Fatalf("r2 body = %q", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	all, err := readAll(ctx, r1)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("r1 body = %q, %v", all, err)
	}
	r1.Close()
	r2.Close()
}

func TestNotSharedGoesToLeaderOnly(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	leader, _ := g.Join("k", 1<<20)
	waiter, _ := g.Join("k", 1<<20)
	leader.Flight().SetHead("private", false)
	if _, err := waiter.Head(ctx); !errors.Is(err, ErrNotShared) {
		t.Fatalf("waiter Head err = %v, want ErrNotShared", err)
	}
	if h, err := leader.Head(ctx); err != nil || h != "private" {
		t.Fatalf("leader Head = %q, %v", h, err)
	}
	// The flight is forgotten at once: a newcomer leads a new one.
	r3, lead := g.Join("k", 1<<20)
	if !lead || r3.Flight() == leader.Flight() {
		t.Fatal("newcomer joined an unshareable flight")
	}
	r3.Flight().Finish(errors.New("x"), false)
	r3.Close()
	leader.Flight().Finish(nil, false)
	leader.Close()
	waiter.Close()
}

func TestFetchErrorBeforeHeadReachesEveryReader(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r1, _ := g.Join("k", 1<<20)
	r2, _ := g.Join("k", 1<<20)
	boom := errors.New("connection refused")
	r1.Flight().Finish(boom, false)
	for _, r := range []*Reader[string]{r1, r2} {
		if _, err := r.Head(ctx); !errors.Is(err, boom) {
			t.Fatalf("Head err = %v, want %v", err, boom)
		}
		r.Close()
	}
}

func TestFinishWithoutHeadOrErrorIsAnError(t *testing.T) {
	g := NewGroup[string]()
	r, _ := g.Join("k", 1<<20)
	r.Flight().Finish(nil, false)
	if _, err := r.Head(ctxT(t)); err == nil {
		t.Fatal("Head succeeded on a flight that never had a head")
	}
	r.Close()
}

func TestHeadWaitEndsWithContext(t *testing.T) {
	g := NewGroup[string]()
	r1, _ := g.Join("k", 1<<20)
	r2, _ := g.Join("k", 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r2.Head(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Head err = %v", err)
	}
	r2.Close()
	r1.Flight().Finish(errors.New("x"), false)
	r1.Close()
}

func TestMidBodyErrorReachesReaders(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r, _ := g.Join("k", 1<<20)
	f := r.Flight()
	f.SetHead("200", true)
	if err := fill(ctx, f, []byte("part"), 4, false); err != nil {
		t.Fatal(err)
	}
	cut := errors.New("unexpected EOF")
	f.Finish(cut, false)
	got, err := readAll(ctx, r)
	if string(got) != "part" || !errors.Is(err, cut) {
		t.Fatalf("readAll = %q, %v", got, err)
	}
	if _, ok := f.Body(); ok {
		t.Fatal("Body ok after a failed fetch")
	}
	r.Close()
}

func TestBodyOneChunkIsNotCopied(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r, _ := g.Join("k", 1<<20)
	f := r.Flight()
	f.SetHead("200", true)
	want := bytes.Repeat([]byte("x"), 5000)
	if err := fill(ctx, f, want, 1000, true); err != nil {
		t.Fatal(err)
	}
	body, ok := f.Body()
	f.Finish(nil, true)
	if !ok || !bytes.Equal(body, want) {
		t.Fatalf("Body ok=%v len=%d", ok, len(body))
	}
	if cap(body) != len(want) {
		t.Fatalf("one-chunk body has cap %d, want the exact hinted size %d", cap(body), len(want))
	}
	// Multi-chunk bodies are assembled.
	r2, _ := g.Join("k2", 1<<20)
	f2 := r2.Flight()
	f2.SetHead("200", true)
	big := bytes.Repeat([]byte("0123456789"), 10000)
	if err := fill(ctx, f2, big, 7000, false); err != nil {
		t.Fatal(err)
	}
	f2.Finish(nil, true)
	if body, ok := f2.Body(); !ok || !bytes.Equal(body, big) {
		t.Fatalf("multi-chunk Body ok=%v equal=%v", ok, bytes.Equal(body, big))
	}
	f.Forget()
	f2.Forget()
	r.Close()
	r2.Close()
}

func TestOversizedBodyStreamsWithBoundedMemory(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	const keep = 64 << 10
	r, _ := g.Join("big", keep)
	f := r.Flight()
	f.window = 32 << 10
	f.SetHead("200", true)
	total := 4 << 20
	body := make([]byte, total)
	for i := range body {
		body[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	var maxHeld int64
	go func() {
		rest := body
		for len(rest) > 0 {
			p, err := f.Reserve(ctx, 0)
			if err != nil {
				errc <- err
				return
			}
			n := copy(p, rest[:min(len(p), 8<<10, len(rest))])
			f.Commit(n)
			rest = rest[n:]
			f.mu.Lock()
			held := int64(0)
			for _, c := range f.chunks {
				held += int64(cap(c))
			}
			maxHeld = max(maxHeld, held)
			f.mu.Unlock()
		}
		f.Finish(nil, true)
		errc <- nil
	}()
	// Read until the fill has passed the keep limit; newcomers must not
	// join from then on.
	var got []byte
	for f.Size() <= keep {
		p, _, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	// The filler forgets the flight at its next Reserve.
	testkit.Eventually(t, "the flight to stop taking joiners", func() bool { return g.Len() == 0 })
	late, lead := g.Join("big", keep)
	if !lead || late.Flight() == f {
		t.Fatal("a newcomer joined a flight that no longer keeps its body")
	}
	late.Flight().Finish(errors.New("unused"), false)
	late.Close()
	rest, err := readAll(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	if !bytes.Equal(got, body) {
		t.Fatal("streamed body differs")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Body(); ok {
		t.Fatal("Body ok for a body that outgrew the keep limit")
	}
	// Held memory stays around keep + window + one chunk, far below 4 MiB.
	if maxHeld > keep+(32<<10)+(1<<20) {
		t.Fatalf("flight held up to %d bytes, want bounded by keep+window+chunk", maxHeld)
	}
	r.Close()
}

func TestStreamingFillAbandonedWhenReadersLeave(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r, _ := g.Join("k", 1024)
	f := r.Flight()
	f.SetHead("200", true)
	if err := fill(ctx, f, make([]byte, 2048), 512, false); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := f.Reserve(ctx, 0); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Reserve err = %v, want ErrAbandoned", err)
	}
	f.Finish(ErrAbandoned, false)
}

func TestSlowReaderHoldsBackFiller(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r, _ := g.Join("k", 1024)
	f := r.Flight()
	f.window = 4096
	f.SetHead("200", true)
	if err := fill(ctx, f, make([]byte, 4096), 1024, false); err != nil {
		t.Fatal(err)
	}
	// The reader has read nothing: the filler is more than a window ahead
	// and must wait until the context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.Reserve(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve err = %v, want to wait for the reader", err)
	}
	// Reading releases the filler.
	if _, err := readAll(ctxDone(ctx, f), r); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := f.Reserve(ctx, 0); err != nil {
		t.Fatalf("Reserve after the reader caught up: %v", err)
	}
	f.Finish(nil, false)
	r.Close()
}

// ctxDone returns a context cancelled once the reader has caught up with
// everything f has received, so readAll stops instead of waiting for more.
func ctxDone(parent context.Context, f *Flight[string]) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		defer cancel()
		testkit.Within(testkit.EventuallyTimeout, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return ctx.Err() != nil || f.minOffsetLocked() == f.size
		})
	}()
	return ctx
}

func TestManyReadersGetIdenticalBodies(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	const n = 100
	body := bytes.Repeat([]byte("abcdefgh"), 40000)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, leader := g.Join("k", 1<<20)
			defer r.Close()
			if leader {
				go func() {
					r.Flight().SetHead("200", true)
					if err := fill(ctx, r.Flight(), body, 3000+i, false); err != nil {
						r.Flight().Finish(err, false)
						return
					}
					r.Flight().Finish(nil, false)
				}()
			}
			if _, err := r.Head(ctx); err != nil {
				errs <- err
				return
			}
			got, err := readAll(ctx, r)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, body) {
				errs <- fmt.Errorf("reader %d got %d bytes", i, len(got))
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestJoinWhileFlightOutgrowsKeep races joiners against the moment a
// flight stops keeping its body (lock order between group and flight).
func TestJoinWhileFlightOutgrowsKeep(t *testing.T) {
	ctx := ctxT(t)
	for range 50 {
		g := NewGroup[string]()
		r, _ := g.Join("k", 4096)
		f := r.Flight()
		f.window = 1 << 20
		f.SetHead("200", true)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				j, lead := g.Join("k", 4096)
				if lead {
					j.Flight().Finish(errors.New("unused"), false)
				}
				j.Close()
			}
		}()
		if err := fill(ctx, f, make([]byte, 64<<10), 1024, false); err != nil {
			t.Fatal(err)
		}
		f.Finish(nil, false)
		wg.Wait()
		r.Close()
	}
}

// TestStreamBoundsWhatAStalledReaderCosts: a response that will not be
// stored is streamed from the start, so a reader that reads nothing holds
// at most a window and a chunk, however large the body and the keep limit.
func TestStreamBoundsWhatAStalledReaderCosts(t *testing.T) {
	ctx := ctxT(t)
	g := NewGroup[string]()
	r, _ := g.Join("k", 64<<20)
	f := r.Flight()
	f.SetHead("200", false)
	f.Stream()
	f.Stream() // idempotent
	if late, lead := g.Join("k", 64<<20); !lead {
		t.Fatal("a newcomer joined a streaming flight")
	} else {
		late.Flight().Finish(errors.New("unused"), false)
		late.Close()
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var filled int64
	for {
		p, err := f.Reserve(short, 0)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		f.Commit(len(p))
		filled += int64(len(p))
		if filled > 64<<20 {
			t.Fatal("the filler was never held back")
		}
	}
	f.mu.Lock()
	held := int64(0)
	for _, c := range f.chunks {
		held += int64(cap(c))
	}
	f.mu.Unlock()
	if limit := int64(DefaultWindow + 64<<10); held > limit || filled > limit {
		t.Fatalf("a stalled reader holds %d bytes (%d filled), want at most %d", held, filled, limit)
	}
	if _, ok := f.Body(); ok {
		t.Fatal("Body ok for a streamed flight")
	}
	// Reading releases it; the body arrives whole.
	go func() {
		for range 8 {
			p, err := f.Reserve(ctx, 0)
			if err != nil {
				return
			}
			f.Commit(len(p))
		}
		f.Finish(nil, false)
	}()
	rest, err := readAll(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(rest)) < filled {
		t.Fatalf("read %d bytes, want at least the %d filled before", len(rest), filled)
	}
	r.Close()
}
