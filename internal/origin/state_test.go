package origin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTotalsCountExchangesAndFailures(t *testing.T) {
	codes := make(chan int, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(<-codes) }))
	defer srv.Close()
	c := newClient(t, Config{Name: "o", URL: srv.URL})
	for _, code := range []int{200, 404, 500} {
		codes <- code
		resp, err := c.Do(get(context.Background(), "/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A request its caller gave up says nothing of the origin.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if resp, err := c.Do(get(ctx, "/")); err == nil {
		resp.Body.Close()
		t.Fatal("a canceled request succeeded")
	}
	tot := c.Totals()
	if tot.Exchanges != 3 || tot.Failures != 1 || tot.Duration.Count != 4 {
		t.Errorf("totals: %d exchanges, %d failures, %d timed; want 3, 1, 4 (every attempt sent is timed)", tot.Exchanges, tot.Failures, tot.Duration.Count)
	}
}
