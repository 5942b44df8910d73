package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/status"
)

// explainCmd asks a node's admin API what its edge would do with a GET
// of a URL, and why: GET /debug/explain.
func explainCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	var headers listFlag
	admin := registerAdmin(fs, false, "the API token, a viewer's or better, when the node has tokens", 10*time.Second, "give up after this `duration`")
	asJSON := fs.Bool("json", false, "print the explain document as JSON")
	fs.Var(&headers, "H", "a request `field` to consider, \"Name: value\" (repeatable): Accept-Encoding, Cookie, the fields the key or Vary uses")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: weir explain [--admin URL] [-H 'Name: value']... [--json] URL")
			fmt.Fprintln(os.Stdout, "Says what the node's edge would do with a GET of URL, and why, from what it holds: nothing is fetched or changed.")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("give one URL to explain, such as https://example.com/a.png (flags go before it)")}
	}
	token, err := admin.token(false)
	if err != nil {
		return err
	}
	client, err := admin.client(token)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	doc, err := client.Explain(ctx, fs.Arg(0), headers)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printExplain(stdout, &doc)
	return nil
}

// printExplain writes doc for a person: the verdict first, then the
// evidence.
func printExplain(w io.Writer, doc *status.Explain) {
	n := doc.Next
	fmt.Fprintf(w, "%s  %s\n", doc.URL, strings.ToUpper(n.Action))
	line := "  " + n.Reason
	if n.Status != 0 {
		line += fmt.Sprintf(" (%d)", n.Status)
	}
	fmt.Fprintf(w, "%s: %s\n", line, n.Detail)
	if n.Location != "" {
		fmt.Fprintf(w, "  location: %s\n", n.Location)
	}
	fmt.Fprintf(w, "node:     %s at %s\n", doc.Node, doc.At.UTC().Format(time.RFC3339))
	h := doc.Host
	if !h.Matched {
		fmt.Fprintf(w, "host:     %s matches no hosts entry\n", h.Host)
		return
	}
	fmt.Fprintf(w, "host:     %s -> entry %q (%s match of %q), origin %s\n", h.Host, h.Entry, h.How, h.Pattern, h.Origin)
	for _, r := range doc.Rules {
		fmt.Fprintf(w, "rule:     %s: %s\n", r.Name, strings.Join(r.Does, "; "))
	}
	if k := doc.Key; k != nil {
		fmt.Fprintf(w, "key:      %s\n", printable(k.Primary))
		if len(k.QueryKept) > 0 {
			fmt.Fprintf(w, "  query kept:    %s\n", strings.Join(k.QueryKept, ", "))
		}
		if len(k.QueryDropped) > 0 {
			fmt.Fprintf(w, "  query dropped: %s\n", strings.Join(k.QueryDropped, ", "))
		}
		for _, f := range k.Headers {
			fmt.Fprintf(w, "  header %s: %s\n", f.Name, fieldValue(f.Value, f.Present))
		}
		for _, f := range k.Cookies {
			fmt.Fprintf(w, "  cookie %s: %s\n", f.Name, fieldValue(f.Value, f.Present))
		}
		if len(k.Vary) > 0 {
			fmt.Fprintf(w, "  varies on:     %s\n", strings.Join(k.Vary, ", "))
			fmt.Fprintf(w, "  variant key:   %s\n", printable(k.Variant))
		}
	}
	if o := doc.Object; o != nil {
		src := o.Source
		if src == "" {
			src = "unrecorded"
		}
		fmt.Fprintf(w, "object:   %d, %d bytes, stored %s\n", o.Status, o.Size, o.StoredAt.Format(time.RFC3339))
		fmt.Fprintf(w, "  age %s of lifetime %s (set by %s): ttl %s", secs(o.Age), secs(o.Lifetime), src, secs(o.TTL))
		if o.Fresh {
			fmt.Fprintln(w, ", fresh")
		} else {
			fmt.Fprintln(w, ", stale")
		}
		fmt.Fprintf(w, "  stale-while-revalidate %s, stale-if-error %s", secs(o.StaleWhileRevalidate), secs(o.StaleIfError))
		if o.NoCache {
			fmt.Fprint(w, ", no-cache")
		}
		if o.MustRevalidate {
			fmt.Fprint(w, ", must-revalidate")
		}
		fmt.Fprintln(w)
		if o.ETag != "" || o.LastModified != "" {
			fmt.Fprintf(w, "  validators: etag %s, last-modified %s\n", orNone(o.ETag), orNone(o.LastModified))
		}
		if len(o.Tags) > 0 {
			fmt.Fprintf(w, "  tags: %s\n", strings.Join(o.Tags, " "))
		}
		if o.SoftPurged {
			fmt.Fprintln(w, "  soft-purged")
		}
	} else if doc.Key != nil {
		fmt.Fprintln(w, "object:   none stored")
	}
	if p := doc.Purges; p != nil {
		fmt.Fprintf(w, "purges:   store epoch %d", p.Epoch)
		if doc.Object != nil {
			fmt.Fprintf(w, ", object's %d", doc.Object.Epoch)
		}
		if p.Lagging {
			fmt.Fprint(w, ", LAGGING (missed purges: everything is revalidated)")
		}
		fmt.Fprintln(w)
		for _, pp := range p.Pending {
			kind := "hard"
			if pp.Soft {
				kind = "soft"
			}
			fmt.Fprintf(w, "  pending %s prefix purge %q (epoch %d) covers it\n", kind, pp.Prefix, pp.Epoch)
		}
		if p.HitForPassUntil != nil {
			fmt.Fprintf(w, "  hit-for-pass until %s\n", p.HitForPassUntil.UTC().Format(time.RFC3339))
		}
	}
	if o := doc.Owner; o != nil {
		self := ""
		if o.Self {
			self = " (this node)"
		}
		fmt.Fprintf(w, "owner:    %s%s\n", o.Node, self)
	}
}

// printable shows the NUL separators of a variant key.
func printable(key string) string { return strings.ReplaceAll(key, "\x00", `\0`) }

func fieldValue(v string, present bool) string {
	if !present {
		return "(absent)"
	}
	return fmt.Sprintf("%q", v)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
