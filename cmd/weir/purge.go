package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/purge"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// purgeCmd issues a purge through a node's admin API: POST /purge, then,
// with --wait, GET /purge/{id} until every node has applied it.
func purgeCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	var req purge.Request
	var tags, prefixes, hosts listFlag
	admin := registerAdmin(fs, false, "the API token, with the purge role", 30*time.Second, "give up after this `duration` (each call, and --wait as a whole)")
	wait := fs.Bool("wait", false, "wait until every node has applied the purge, and print their acknowledgements")
	fs.BoolVar(&req.Soft, "soft", false, "mark stale (revalidate) instead of removing")
	fs.BoolVar(&req.All, "all", false, "purge everything cached")
	fs.Var(&tags, "tag", "purge objects carrying this surrogate `key` (repeatable)")
	fs.Var(&prefixes, "prefix", "purge every URL starting with this `URL` (repeatable)")
	fs.Var(&hosts, "host", "purge everything cached for this `host` (repeatable)")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: weir purge [--admin URL [--admin-ca FILE] [--admin-cert FILE --admin-key FILE]] [flags] [URL...]")
			fmt.Fprintln(os.Stdout, "An admin API served over TLS is --admin https://HOST:PORT; one that requires client certificates needs --admin-cert and --admin-key.")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	req.URLs, req.Tags, req.Prefixes, req.Hosts = fs.Args(), tags, prefixes, hosts
	if req.Items() == 0 {
		return usageError{errors.New("nothing to purge: give URLs, --tag, --prefix, --host or --all")}
	}
	token, err := admin.token(true)
	if err != nil {
		return err
	}
	client, err := admin.client(token)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	id, err := client.Purge(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	if !*wait {
		return nil
	}
	deadline := time.Now().Add(*admin.timeout)
	for {
		st, err := client.PurgeStatus(ctx, id)
		if err != nil {
			return err
		}
		if st.Complete {
			for _, n := range st.Nodes {
				fmt.Fprintf(stdout, "  %-24s %-9s %8.1f ms\n", n.Node, n.State, n.LatencyMS)
			}
			fmt.Fprintf(stdout, "complete in %.1f ms\n", st.DurationMS)
			return nil
		}
		if time.Now().After(deadline) {
			var pending []string
			for _, n := range st.Nodes {
				if n.State == "pending" {
					pending = append(pending, n.Node)
				}
			}
			return fmt.Errorf("purge %s not complete after %s: waiting for %s; those nodes revalidate everything once they lag past max_purge_lag", id, *admin.timeout, strings.Join(pending, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// adminTLS returns the TLS client configuration of the admin API at
// adminURL from the --admin-ca, --admin-cert and --admin-key files, or
// nil when none is given (an https admin API is then verified against
// the system's CAs).
func adminTLS(adminURL, ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if u, err := url.Parse(adminURL); err != nil || u.Scheme != "https" {
		return nil, usageError{fmt.Errorf("--admin-ca, --admin-cert and --admin-key are for an admin API over TLS: give --admin https://HOST:PORT (got %q)", adminURL)}
	}
	if (cert == "") != (key == "") {
		return nil, usageError{errors.New("--admin-cert and --admin-key go together: give the client certificate and its key")}
	}
	cfg, err := certs.ClientConfig(certs.ClientOptions{CA: ca, CertFile: cert, KeyFile: key})
	if err != nil {
		return nil, fmt.Errorf("admin API TLS: %w", err)
	}
	return cfg, nil
}

// readToken reads the API token from file, or from $WEIR_TOKEN. It is
// never taken as a flag value, which other users could see in ps.
func readToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := os.Getenv("WEIR_TOKEN"); t != "" {
		return t, nil
	}
	return "", usageError{errors.New("no API token: set WEIR_TOKEN or pass --token-file FILE (a token with the purge role)")}
}
