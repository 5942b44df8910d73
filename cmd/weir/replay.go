package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/status"
)

// replayCmd fetches the journals of the nodes named by --admin
// (GET /debug/events around --at), merges them, and prints the cluster's
// state at --at and the decisions that led there.
func replayCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	admin := registerAdmin(fs, true, "an API token with the viewer role, when the nodes have tokens", 10*time.Second, "give up on a node after this `duration`")
	atFlag := fs.String("at", "", "the moment to replay, an RFC 3339 `time` such as 2026-01-02T15:04:05Z, or \"now\" (required)")
	window := fs.Duration("window", 10*time.Minute, "how far before --at to read the decisions that led there")
	after := fs.Duration("after", time.Minute, "how far after --at to read what followed")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: weir replay --admin URL[,URL...] --at TIME [--window 10m] [--after 1m]")
			fmt.Fprintln(os.Stdout, "Merges the nodes' flight recorders (GET /debug/events) and prints the cluster's state at TIME and the decisions that led there.")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: name the nodes with --admin URL,URL", fs.Arg(0))}
	}
	var at time.Time
	switch *atFlag {
	case "":
		return usageError{errors.New("--at is required: the moment to replay, such as --at 2026-01-02T15:04:05Z")}
	case "now":
		at = time.Now()
	default:
		t, err := time.Parse(time.RFC3339Nano, *atFlag)
		if err != nil {
			return usageError{fmt.Errorf("--at %q is not an RFC 3339 time: write it as 2026-01-02T15:04:05Z, or with an offset, 2026-01-02T16:04:05+01:00", *atFlag)}
		}
		at = t
	}
	if *window <= 0 || *after < 0 {
		return usageError{fmt.Errorf("--window %s and --after %s: want a positive window and an --after of 0 or more", *window, *after)}
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
	srcs, err := fetchJournals(ctx, clients, journal.Query{Since: at.Add(-*window), Until: at.Add(*after)})
	if err != nil {
		return err
	}
	return journal.Replay(srcs, at, *window).Write(stdout)
}

// fetchJournals asks every node for the events q selects, at once, and
// fails if any node does not answer: a replay without one node's view
// would mislead.
func fetchJournals(ctx context.Context, clients []*status.Client, q journal.Query) ([]journal.Source, error) {
	srcs := make([]journal.Source, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			doc, err := c.Events(ctx, q)
			if err != nil {
				errs[i] = fmt.Errorf("journal of %s: %w", c.BaseURL(), err)
				return
			}
			srcs[i] = journal.Source{Label: c.BaseURL(), Events: doc.Events, NodeTime: doc.NodeTime,
				Sent: doc.Sent, Received: doc.Received, Precise: doc.Precise}
		})
	}
	wg.Wait()
	return srcs, errors.Join(errs...)
}
