package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/weir-cdn/weir/internal/doctor"
)

// doctorCmd reads running nodes through their admin APIs and prints
// what limits them, the bottleneck first (internal/doctor).
func doctorCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	admin := registerAdmin(fs, true, "a viewer token, when the nodes have tokens", 10*time.Second, "give up on each call after this `duration`")
	sample := fs.Duration("sample", 0, "read the nodes twice this `duration` apart and judge the counters in between (at most 5m); 0 judges them since each node started")
	asJSON := fs.Bool("json", false, "print the report as JSON (fields: nodes, window_ns, requests, findings[].kind, node, site, what, evidence, change, yaml, effect, gain)")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: weir doctor --admin URL[,URL...] [--sample DURATION] [--json] [--admin-ca FILE] [--admin-cert FILE --admin-key FILE] [--token-file FILE]")
			fmt.Fprintln(os.Stdout, "Names the one bottleneck of the nodes read, with its evidence and the change that removes it, then the next ones by expected gain.")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q: the nodes are named with --admin URL[,URL...]", fs.Args())}
	}
	if *sample < 0 || *sample > doctor.MaxSample {
		return usageError{fmt.Errorf("--sample %v: want from 0 to %v", *sample, doctor.MaxSample)}
	}
	token, err := admin.token(false)
	if err != nil {
		return err
	}
	clients, err := admin.clients(token)
	if err != nil {
		return err
	}
	for _, c := range clients {
		defer c.CloseIdleConnections()
	}
	nodes, err := doctor.Collect(ctx, clients, *sample)
	if err != nil {
		return err
	}
	rep := doctor.Analyze(nodes, doctor.Thresholds{})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout)
}
