package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/bench"
)

const benchUsage = `Usage: weir bench [--duration D] [--rate N] [--requests N] [--json] [flags] URL...

Sends requests to the URLs (in turn: the edges of a cluster) at a constant
rate, open loop: request i is due at start + i/rate whatever the answers
before it, and its latency runs from that time to the response's last byte.
Keys are Zipf-distributed: URL/k/<key>, or {key} in the URL where it goes.
The mix (--mix hit=90,miss=5,pass=4,purge=1) weighs GETs of those keys,
GETs of keys never asked before (URL/k/miss-<run>-<n>), POSTs of keys of
their own (URL/k/pass-<n>: uncacheable) and PURGEs of the keys (with
"Authorization: Bearer $WEIR_TOKEN" when it is set). Works against any
HTTP cache: the hit ratio is read from Cache-Status, X-Cache-Status,
X-Cache, X-Varnish or Age (docs/benchmarks.md). With --admin, the origin
requests of Weir nodes are counted from their /metrics.

Exit status: 0 when the run got responses (errors are in the report), 1
when nothing answered or the run could not start, 2 for a bad command line.

Flags:
`

// benchCmd runs `weir bench`.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := bench.Config{}
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "schedule requests for this `duration`")
	fs.Float64Var(&cfg.Rate, "rate", bench.DefaultRate, "`N` requests per second, at fixed intervals from the start")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this `number` of requests, or at --duration if sooner; 0 for no bound but --duration")
	asJSON := fs.Bool("json", false, "print one JSON document (fields in docs/benchmarks.md) and no progress line")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "`requests` in flight at most (as many more wait in a queue); a request due when both are full is dropped and counted as overload_client")
	fs.IntVar(&cfg.Keys, "keys", bench.DefaultKeys, "distinct cacheable `keys`, drawn Zipf-distributed")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", bench.DefaultZipfS, "Zipf `exponent` of key popularity, above 1: larger is more skewed")
	mix := fs.String("mix", bench.DefaultMix.String(), "`weights` of the kinds of request: hit (GET of a key), miss (GET of a new key), pass (POST), purge (PURGE)")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "give up on a request after this `duration`, counted as a timeout")
	fs.Uint64Var(&cfg.Seed, "seed", bench.DefaultSeed, "`seed` of the key and mix draws: the same seed asks for the same keys in the same order")
	var headers listFlag
	fs.Var(&headers, "header", "add this `header` (\"Name: value\") to every request, repeatable; Host: sets the site name")
	admins := fs.String("admin", "", "comma-separated admin API `URLs` of the Weir nodes behind the URLs, to count origin requests from weir_origin_requests_total (token from $WEIR_TOKEN)")
	tokenFile := fs.String("token-file", "", "`file` holding the API token for PURGE and --admin (default: $WEIR_TOKEN)")
	fs.SetOutput(io.Discard)
	var urls []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stdout)
				fmt.Fprint(os.Stdout, benchUsage)
				fs.PrintDefaults()
				return err
			}
			return usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		// Flags may follow the URLs, as in weir bench URL --json.
		urls, rest = append(urls, fs.Arg(0)), fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if cfg.Mix, err = bench.ParseMix(*mix); err != nil {
		return usageError{fmt.Errorf("--mix %q: %w", *mix, err)}
	}
	if cfg.Concurrency == 0 || cfg.Keys == 0 || cfg.Timeout == 0 || cfg.Seed == 0 {
		// 0 would mean the default to the engine; on the command line it
		// is a mistake.
		return usageError{fmt.Errorf("--concurrency, --keys, --timeout and --seed must be above 0 (got %d, %d, %v, %d)", cfg.Concurrency, cfg.Keys, cfg.Timeout, cfg.Seed)}
	}
	if cfg.Header, err = parseHeaders(headers); err != nil {
		return usageError{err}
	}
	cfg.Targets = urls
	cfg.Token, err = benchToken(*tokenFile)
	if err != nil {
		return err
	}
	if cfg.Token == "" && cfg.Mix[bench.KindPurge] > 0 && !*asJSON {
		fmt.Fprintln(stderr, "weir bench: no API token ($WEIR_TOKEN, --token-file): caches that need one (Weir does) refuse the PURGEs of the mix, counted as status_4xx; set one, or leave purge out of --mix")
	}
	if *admins != "" {
		hc := &http.Client{Timeout: 10 * time.Second}
		var list []string
		for a := range strings.SplitSeq(*admins, ",") {
			if a = strings.TrimRight(strings.TrimSpace(a), "/"); a == "" {
				continue
			}
			if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
				return usageError{fmt.Errorf("--admin %q: want the admin API's base URL, such as http://127.0.0.1:9090", a)}
			}
			list = append(list, a)
		}
		token := cfg.Token
		cfg.OriginRequests = func(ctx context.Context) (float64, error) {
			var sum float64
			for _, a := range list {
				n, err := bench.OriginRequests(ctx, hc, a, token)
				if err != nil {
					return 0, err
				}
				sum += n
			}
			return sum, nil
		}
	}
	if !*asJSON && isTerminal(stderr) {
		cfg.Progress = func(p bench.Progress) { fmt.Fprintf(stderr, "\r%-72s", bench.ProgressLine(p)) }
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	res, runErr := bench.Run(ctx, cfg)
	if cfg.Progress != nil {
		fmt.Fprintf(stderr, "\r%72s\r", "")
	}
	if res == nil {
		return runErr // nothing was sent
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if res.Answered == 0 {
		return fmt.Errorf("no response from %s in %d requests (errors: %s): is the URL right, and the cache up?", strings.Join(cfg.Targets, ", "), res.Scheduled, errorsText(res.Errors))
	}
	return nil
}

// errorsText lists the error kinds that happened.
func errorsText(m map[string]int64) string {
	var parts []string
	for _, k := range []string{"connect", "timeout", "reset", "status_4xx", "status_5xx", "overload_client", "other"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// parseHeaders reads --header "Name: value" flags.
func parseHeaders(list []string) (http.Header, error) {
	h := http.Header{}
	for _, l := range list {
		name, value, ok := strings.Cut(l, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("--header %q: want \"Name: value\", such as --header 'Host: www.example.com'", l)
		}
		h.Add(name, value)
	}
	return h, nil
}

// benchToken is the API token from --token-file or $WEIR_TOKEN, or ""
// when neither is given: a bench needs none unless it purges or reads
// the metrics of a node that requires one.
func benchToken(file string) (string, error) {
	if file == "" && os.Getenv("WEIR_TOKEN") == "" {
		return "", nil
	}
	return readToken(file)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
