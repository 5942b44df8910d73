package httpcache_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/weir-cdn/weir/internal/httpcache"
)

func ExampleEvaluateResponse() {
	received := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	resp := http.Header{}
	resp.Set("Date", received.Format(http.TimeFormat))
	resp.Set("Cache-Control", `max-age=60, s-maxage=600, private="Set-Cookie"`)
	resp.Set("Set-Cookie", "session=abc")
	resp.Set("ETag", `"v1"`)

	p := httpcache.EvaluateResponse(http.MethodGet, http.Header{}, http.StatusOK, resp, received, httpcache.Rules{})
	fmt.Println("storable:", p.Storable)
	fmt.Println("lifetime:", p.Lifetime, "from", p.Source)
	fmt.Println("must revalidate:", p.MustRevalidate)
	fmt.Println("strip:", p.StripFields)

	resp.Set("Cache-Control", "private")
	resp.Set("CDN-Cache-Control", "max-age=300, stale-while-revalidate=30")
	p = httpcache.EvaluateResponse(http.MethodGet, http.Header{}, http.StatusOK, resp, received, httpcache.Rules{StoreSetCookie: true})
	fmt.Println("targeted:", p.Targeted, p.Lifetime, "swr", p.StaleWhileRevalidate)
	// Output:
	// storable: true
	// lifetime: 10m0s from s-maxage
	// must revalidate: true
	// strip: [Set-Cookie]
	// targeted: CDN-Cache-Control 5m0s swr 30s
}

func ExampleDecide() {
	requested := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	received := requested.Add(100 * time.Millisecond)
	resp := http.Header{}
	resp.Set("Date", requested.Format(http.TimeFormat))
	resp.Set("Age", "20")
	resp.Set("Cache-Control", "max-age=60, stale-while-revalidate=30")

	// When the response is received.
	p := httpcache.EvaluateResponse(http.MethodGet, nil, http.StatusOK, resp, received, httpcache.Rules{})
	initialAge := httpcache.CorrectedInitialAge(resp, requested, received)

	// At each lookup.
	for _, after := range []time.Duration{10 * time.Second, 50 * time.Second, 80 * time.Second} {
		r := httpcache.Reuse{
			Lifetime:             p.Lifetime,
			Age:                  httpcache.CurrentAge(initialAge, received, received.Add(after)),
			NoCache:              p.NoCache,
			MustRevalidate:       p.MustRevalidate,
			StaleWhileRevalidate: p.StaleWhileRevalidate,
			StaleIfError:         p.StaleIfError,
		}
		action := httpcache.Decide(r, httpcache.Directives{})
		status := httpcache.Status{Hit: action != httpcache.Revalidate, TTL: r.TTL(), HasTTL: true}
		if action == httpcache.Revalidate {
			status.Fwd = "stale"
		}
		fmt.Printf("%-12s %s\n", action, status.AppendValue(nil, "weir"))
	}

	// A client that accepts staleness, when the operator honours request directives.
	r := httpcache.Reuse{Lifetime: p.Lifetime, Age: 2 * time.Minute}
	fmt.Println(httpcache.Decide(r, httpcache.ParseDirectives([]string{"max-stale=120"})))
	// Output:
	// fresh        weir; hit; ttl=29
	// serve-stale  weir; hit; ttl=-11
	// revalidate   weir; fwd=stale; ttl=-41
	// fresh
}

func ExampleParseRange() {
	start, length, res := httpcache.ParseRange("bytes=-500", 10000)
	fmt.Println(start, length, res)
	_, _, res = httpcache.ParseRange("bytes=20000-", 10000)
	fmt.Println(res)
	// Output:
	// 9500 500 satisfiable
	// unsatisfiable
}

func ExampleAppendSecondaryKey() {
	stored := http.Header{"Vary": {"Accept-Encoding, Accept-Language"}}
	fields, _ := httpcache.VaryFields(stored)
	req := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}
	fmt.Printf("%q\n", httpcache.AppendSecondaryKey(nil, fields, req))
	// Output:
	// "Accept-Encoding=br, gzip, zstd\x00Accept-Language\x01\x00"
}
