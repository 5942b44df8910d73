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

	"github.com/weir-cdn/weir/internal/doctor"
	"github.com/weir-cdn/weir/internal/status"
)

// doctorCmd reads running nodes through their admin APIs and prints
// what limits them, the bottleneck first (internal/doctor).
func doctorCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	adminURLs := fs.String("admin", "http://127.0.0.1:9090", "admin API base `URL` of each node to read, comma-separated; https://... for one served over TLS (admin_tls)")
	adminCA := fs.String("admin-ca", "", "PEM `file` of the CAs that sign the admin API's certificate (default: the system's)")
	adminCert := fs.String("admin-cert", "", "PEM `file` of the client certificate to present, for an admin API that requires one (admin_tls.client_ca); needs --admin-key")
	adminKey := fs.String("admin-key", "", "PEM `file` of the client certificate's private key")
	tokenFile := fs.String("token-file", "", "`file` holding a viewer token, when the nodes have tokens (default: $WEIR_TOKEN)")
	sample := fs.Duration("sample", 0, "read the nodes twice this `duration` apart and judge the counters in between (at most 5m); 0 judges them since each node started")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on each call after this `duration`")
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
	token := os.Getenv("WEIR_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("reading the token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	callTimeout := *timeout
	if callTimeout <= 0 {
		callTimeout = -1
	}
	var clients []*status.Client
	for u := range strings.SplitSeq(*adminURLs, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		tlsCfg, err := adminTLS(u, *adminCA, *adminCert, *adminKey)
		if err != nil {
			return err
		}
		c, err := status.NewClient(u, status.ClientOptions{Token: token, Timeout: callTimeout, TLS: tlsCfg,
			AddrHint: "--admin", TLSHint: "--admin-ca, --admin-cert and --admin-key"})
		if err != nil {
			return usageError{fmt.Errorf("--admin %q: want the admin API's base URL, such as http://127.0.0.1:9090", u)}
		}
		defer c.CloseIdleConnections()
		clients = append(clients, c)
	}
	if len(clients) == 0 {
		return usageError{errors.New("--admin: name at least one node's admin API, such as http://127.0.0.1:9090")}
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
