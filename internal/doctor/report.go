package doctor

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the report for a person: the bottleneck first, with
// its evidence, change and effect, then the other findings in order.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	window := "since each node started"
	if r.Window > 0 {
		window = "over " + r.Window.Round(time.Millisecond).String()
	}
	fmt.Fprintf(&b, "weir doctor: %d node(s) (%s), %d requests %s\n\n", len(r.Nodes), strings.Join(r.Nodes, ", "), r.Requests, window)
	switch {
	case r.Requests == 0:
		b.WriteString("No requests yet: send traffic (or run with --sample 30s under load) and ask again.\n")
	case len(r.Findings) == 0:
		b.WriteString("No bottleneck found: no finding would improve 1 % of requests or more.\n")
	}
	for i, f := range r.Findings {
		if i == 0 {
			b.WriteString("The bottleneck: " + f.What + "\n")
		} else {
			if i == 1 {
				b.WriteString("\nThen, by expected gain:\n")
			}
			fmt.Fprintf(&b, "\n%d. %s\n", i+1, f.What)
		}
		fmt.Fprintf(&b, "   kind: %s", f.Kind)
		if f.Node != "" {
			fmt.Fprintf(&b, ", node %s", f.Node)
		}
		if f.Site != "" {
			fmt.Fprintf(&b, ", site %s", f.Site)
		}
		b.WriteString("\n   evidence:\n")
		for _, e := range f.Evidence {
			b.WriteString("     - " + e + "\n")
		}
		b.WriteString("   change: " + f.Change + "\n")
		if f.YAML != "" {
			b.WriteString("   in weir.yaml:\n")
			for l := range strings.SplitSeq(strings.TrimRight(f.YAML, "\n"), "\n") {
				b.WriteString("       " + l + "\n")
			}
		}
		fmt.Fprintf(&b, "   effect: %s (gain %s of requests)\n", f.Effect, pct(f.Gain))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
