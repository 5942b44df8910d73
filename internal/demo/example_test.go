package demo_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/weir-cdn/weir/internal/demo"
)

func ExampleOrigin() {
	srv := httptest.NewServer(demo.NewOrigin())
	defer srv.Close()

	for range 2 {
		resp, err := srv.Client().Get(srv.URL + "/static/logo.svg")
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status, resp.Header.Get("Cache-Control"), "count", resp.Header.Get("X-Origin-Count"))
	}
	// Output:
	// 200 OK public, max-age=60 count 1
	// 200 OK public, max-age=60 count 2
}

func ExampleRunLoad() {
	origin := demo.NewOrigin()
	srv := httptest.NewServer(origin)
	defer srv.Close()

	// Without a cache in front, every request reaches the origin.
	r, err := demo.RunLoad(context.Background(), demo.LoadConfig{
		BaseURL:        srv.URL,
		Duration:       10 * time.Second,
		MaxRequests:    100,
		Concurrency:    4,
		OriginRequests: origin.Requests,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Requests, "requests,", r.Pass, "passed,", r.OriginRequests, "at the origin, offload", r.OriginOffload())
	fmt.Println("status 200:", r.StatusCounts[http.StatusOK])
	// Output:
	// 100 requests, 100 passed, 100 at the origin, offload 0
	// status 200: 100
}
