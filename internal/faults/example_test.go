package faults_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/weir-cdn/weir/internal/faults"
)

// A path that answers one 503, then recovers.
func ExampleServer() {
	s, err := faults.NewServer()
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Set("/flaky", faults.Fault{Burst5xx: 1})

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for range 2 {
		resp, err := c.Get(s.URL() + "/flaky")
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(b))
	}
	fmt.Println(s.Requests("/flaky"), "requests")
	// Output:
	// 503 /flaky#/flaky#/f
	// 200 /flaky#/flaky#/f
	// 2 requests
}
