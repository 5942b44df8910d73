package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	admins := fs.String("admin", "http://127.0.0.1:9090", "admin API base `URL`s of the nodes, comma-separated; https://... for one served over TLS (admin_tls)")
	adminCA := fs.String("admin-ca", "", "PEM `file` of the CAs that sign the admin APIs' certificates (default: the system's)")
	adminCert := fs.String("admin-cert", "", "PEM `file` of the client certificate to present, for admin APIs that require one; needs --admin-key")
	adminKey := fs.String("admin-key", "", "PEM `file` of the client certificate's private key")
	tokenFile := fs.String("token-file", "", "`file` holding an API token with the viewer role (default: $WEIR_TOKEN; none when the nodes have no tokens)")
	atFlag := fs.String("at", "", "the moment to replay, an RFC 3339 `time` such as 2026-01-02T15:04:05Z, or \"now\" (required)")
	window := fs.Duration("window", 10*time.Minute, "how far before --at to read the decisions that led there")
	after := fs.Duration("after", time.Minute, "how far after --at to read what followed")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on a node after this `duration`")
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
	var urls []string
	for u := range strings.SplitSeq(*admins, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return usageError{errors.New("--admin names no node: give admin URLs, comma-separated")}
	}
	token, err := replayToken(*tokenFile)
	if err != nil {
		return err
	}
	var clients []*status.Client
	for _, u := range urls {
		tlsCfg, err := adminTLS(u, *adminCA, *adminCert, *adminKey)
		if err != nil {
			return err
		}
		c, err := status.NewClient(u, status.ClientOptions{Token: token, Timeout: *timeout, TLS: tlsCfg,
			AddrHint: "--admin", TLSHint: "--admin-ca, --admin-cert and --admin-key"})
		if err != nil {
			return usageError{fmt.Errorf("--admin %q: want each node's admin API base URL, such as http://127.0.0.1:9090", u)}
		}
		defer c.CloseIdleConnections()
		clients = append(clients, c)
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

// replayToken reads the token as readToken does, but none is fine: the
// nodes' reads are open until tokens are configured.
func replayToken(file string) (string, error) {
	if file == "" && os.Getenv("WEIR_TOKEN") == "" {
		return "", nil
	}
	return readToken(file)
}
