package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

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
	adminURL := fs.String("admin", "http://127.0.0.1:9090", "admin API base `URL` of any node")
	tokenFile := fs.String("token-file", "", "`file` holding the API token (default: $WEIR_TOKEN)")
	wait := fs.Bool("wait", false, "wait until every node has applied the purge, and print their acknowledgements")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `duration` (each call, and --wait as a whole)")
	fs.BoolVar(&req.Soft, "soft", false, "mark stale (revalidate) instead of removing")
	fs.BoolVar(&req.All, "all", false, "purge everything cached")
	fs.Var(&tags, "tag", "purge objects carrying this surrogate `key` (repeatable)")
	fs.Var(&prefixes, "prefix", "purge every URL starting with this `URL` (repeatable)")
	fs.Var(&hosts, "host", "purge everything cached for this `host` (repeatable)")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: weir purge [flags] [URL...]")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	req.URLs, req.Tags, req.Prefixes, req.Hosts = fs.Args(), tags, prefixes, hosts
	if req.Items() == 0 {
		return usageError{errors.New("nothing to purge: give URLs, --tag, --prefix, --host or --all")}
	}
	token, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	base := strings.TrimRight(*adminURL, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("--admin %q: want the admin API's base URL, such as http://127.0.0.1:9090", *adminURL)}
	}
	client := &http.Client{Timeout: *timeout}
	body, _ := json.Marshal(req)
	var id purge.IDDoc
	if err := call(ctx, client, http.MethodPost, base+"/purge", token, body, &id); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.ID)
	if !*wait {
		return nil
	}
	deadline := time.Now().Add(*timeout)
	for {
		var st purge.StatusDoc
		if err := call(ctx, client, http.MethodGet, base+"/purge/"+url.PathEscape(id.ID), token, nil, &st); err != nil {
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
			return fmt.Errorf("purge %s not complete after %s: waiting for %s; those nodes revalidate everything once they lag past max_purge_lag", id.ID, *timeout, strings.Join(pending, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
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

// call sends one admin API request and decodes its JSON answer into v.
func call(ctx context.Context, c *http.Client, method, u, token string, body []byte, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is a node's admin API listening there? see --admin)", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d: %s", method, u, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %d: %s", method, u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, u, err)
	}
	return nil
}
