package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		name   string
		header map[string][]string
		want   Outcome
		source Source
	}{
		{"RFC 9211 §2.1 hit", map[string][]string{"Cache-Status": {"weir; hit; ttl=59"}}, OutcomeHit, SourceCacheStatus},
		{"RFC 9211 §2.3 hit with a negative ttl is stale", map[string][]string{"Cache-Status": {"weir; hit; ttl=-3"}}, OutcomeStale, SourceCacheStatus},
		{"RFC 9211 §2.2 fwd=uri-miss", map[string][]string{"Cache-Status": {"weir; fwd=uri-miss; stored"}}, OutcomeMiss, SourceCacheStatus},
		{"RFC 9211 §2.2 fwd=vary-miss", map[string][]string{"Cache-Status": {"weir; fwd=vary-miss"}}, OutcomeMiss, SourceCacheStatus},
		{"RFC 9211 §2.2 fwd=stale is a revalidation", map[string][]string{"Cache-Status": {"weir; fwd=stale; fwd-status=304"}}, OutcomeRevalidated, SourceCacheStatus},
		{"RFC 9211 §2.2 fwd=method is a pass", map[string][]string{"Cache-Status": {"weir; fwd=method"}}, OutcomePass, SourceCacheStatus},
		{"RFC 9211 §2 the last member is nearest the client", map[string][]string{"Cache-Status": {"origin-cache; hit", `edge; fwd=uri-miss; detail="a, b"`}}, OutcomeMiss, SourceCacheStatus},
		{"RFC 9211 §2 one field, two members", map[string][]string{"Cache-Status": {"shield; fwd=uri-miss, edge; hit"}}, OutcomeHit, SourceCacheStatus},
		{"RFC 8941 hit=?0 is not a hit", map[string][]string{"Cache-Status": {"weir; hit=?0; fwd=miss"}}, OutcomeMiss, SourceCacheStatus},
		{"Cache-Status saying nothing falls through", map[string][]string{"Cache-Status": {"weir"}, "X-Cache": {"HIT"}}, OutcomeHit, SourceXCache},
		{"Cache-Status before X-Cache", map[string][]string{"Cache-Status": {"weir; fwd=uri-miss"}, "X-Cache": {"HIT"}}, OutcomeMiss, SourceCacheStatus},
		{"nginx HIT", map[string][]string{"X-Cache-Status": {"HIT"}}, OutcomeHit, SourceXCacheStatus},
		{"nginx EXPIRED is a miss", map[string][]string{"X-Cache-Status": {"EXPIRED"}}, OutcomeMiss, SourceXCacheStatus},
		{"nginx UPDATING is stale", map[string][]string{"X-Cache-Status": {"updating"}}, OutcomeStale, SourceXCacheStatus},
		{"nginx REVALIDATED", map[string][]string{"X-Cache-Status": {"REVALIDATED"}}, OutcomeRevalidated, SourceXCacheStatus},
		{"nginx BYPASS", map[string][]string{"X-Cache-Status": {"BYPASS"}}, OutcomePass, SourceXCacheStatus},
		{"X-Cache-Status before X-Cache and Age", map[string][]string{"X-Cache-Status": {"MISS"}, "X-Cache": {"HIT"}, "Age": {"3"}}, OutcomeMiss, SourceXCacheStatus},
		{"X-Cache of a Varnish VCL", map[string][]string{"X-Cache": {"MISS"}}, OutcomeMiss, SourceXCache},
		{"X-Cache chain: the last is nearest the client", map[string][]string{"X-Cache": {"MISS, HIT"}}, OutcomeHit, SourceXCache},
		{"X-Cache of CloudFront", map[string][]string{"X-Cache": {"Hit from cloudfront"}}, OutcomeHit, SourceXCache},
		{"X-Cache of Squid", map[string][]string{"X-Cache": {"TCP_MISS from proxy"}}, OutcomeMiss, SourceXCache},
		{"X-Cache PASS", map[string][]string{"X-Cache": {"pass"}}, OutcomePass, SourceXCache},
		{"X-Varnish with two ids is a hit", map[string][]string{"X-Varnish": {"32770 3"}, "Age": {"0"}}, OutcomeHit, SourceXVarnish},
		{"X-Varnish with one id", map[string][]string{"X-Varnish": {"32770"}, "Age": {"0"}}, OutcomeMiss, SourceXVarnish},
		{"RFC 9111 §5.1 Age above 0", map[string][]string{"Age": {"12"}}, OutcomeHit, SourceAge},
		{"RFC 9111 §1.2.2 Age too large for an integer", map[string][]string{"Age": {"99999999999999999999999"}}, OutcomeHit, SourceAge},
		{"Age 0", map[string][]string{"Age": {"000"}}, OutcomeMiss, SourceAge},
		{"Age not a number", map[string][]string{"Age": {"-1"}}, OutcomeUnknown, SourceNone},
		{"nothing", map[string][]string{"Server": {"nginx"}}, OutcomeUnknown, SourceNone},
	} {
		h := http.Header{}
		for k, v := range c.header {
			h[http.CanonicalHeaderKey(k)] = v
		}
		if o, s := Classify(h); o != c.want || s != c.source {
			t.Errorf("%s: Classify(%v) = %v from %v, want %v from %v", c.name, c.header, o, s, c.want, c.source)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"weir; hit; ttl=3", `a; fwd=miss; detail="x, \"y"`, "HIT", "1 2", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"Cache-Status", "X-Cache-Status", "X-Cache", "X-Varnish", "Age"} {
			o, s := Classify(http.Header{name: {v}})
			if o < 0 || o >= numOutcomes || s < 0 || s >= numSources || (o == OutcomeUnknown) != (s == SourceNone) {
				t.Fatalf("Classify(%s: %q) = %v, %v", name, v, o, s)
			}
		}
	})
}

func TestClassifyError(t *testing.T) {
	// A real refused connection: a port that was just free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := http.Get("http://" + addr + "/")
	if refused == nil {
		t.Skip("something listens on the port just freed")
	}
	for _, c := range []struct {
		err  error
		want ErrorKind
	}{
		{refused, ErrConnect},
		{&net.DNSError{Err: "no such host", Name: "nope.invalid"}, ErrConnect},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), ErrTimeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, ErrTimeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}, ErrReset},
		{fmt.Errorf("body: %w", io.ErrUnexpectedEOF), ErrReset},
		{io.EOF, ErrReset},
		{errors.New("something else"), ErrOther},
	} {
		if got := classifyError(c.err); got != c.want {
			t.Errorf("classifyError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
