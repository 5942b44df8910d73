package bench_test

import (
	"fmt"
	"time"

	"github.com/weir-cdn/weir/internal/bench"
)

func ExampleHistogram() {
	var h bench.Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	// Quantiles are within 0.4% of the exact 500ms and 990ms.
	fmt.Println(h.Count(), h.Quantile(0.5).Round(time.Millisecond), h.Quantile(0.99).Round(time.Millisecond), h.Quantile(1))
	// Output:
	// 1000 500ms 992ms 1s
}
