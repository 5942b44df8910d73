package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/status"
)

// adminFlags are the flags of the commands that call nodes' admin APIs
// (weir purge, explain, doctor, replay): the node or nodes, the TLS files
// for an admin API served over TLS, the token file and the timeout of
// each call.
type adminFlags struct {
	urls, ca, cert, key, tokenFile *string
	timeout                        *time.Duration
}

// registerAdmin defines the flags on fs. many says --admin takes a
// comma-separated list; tokenUsage says which token the command needs.
func registerAdmin(fs *flag.FlagSet, many bool, tokenUsage string, timeout time.Duration, timeoutUsage string) *adminFlags {
	urlUsage := "admin API base `URL` of any node; https://... for one served over TLS (admin_tls)"
	if many {
		urlUsage = "admin API base `URL`s of the nodes, comma-separated; https://... for one served over TLS (admin_tls)"
	}
	return &adminFlags{
		urls:      fs.String("admin", "http://127.0.0.1:9090", urlUsage),
		ca:        fs.String("admin-ca", "", "PEM `file` of the CAs that sign the admin API's certificate (default: the system's)"),
		cert:      fs.String("admin-cert", "", "PEM `file` of the client certificate to present, for an admin API that requires one (admin_tls.client_ca); needs --admin-key"),
		key:       fs.String("admin-key", "", "PEM `file` of the client certificate's private key"),
		tokenFile: fs.String("token-file", "", "`file` holding "+tokenUsage+" (default: $WEIR_TOKEN)"),
		timeout:   fs.Duration("timeout", timeout, timeoutUsage),
	}
}

// token reads the API token (readToken). Unless required, none is
// fine: the nodes' reads are open until tokens are configured.
func (a *adminFlags) token(required bool) (string, error) {
	if !required && *a.tokenFile == "" {
		if t, err := readToken(""); err == nil {
			return t, nil
		}
		return "", nil
	}
	return readToken(*a.tokenFile)
}

// clients returns a client of each node --admin names, with token; the
// caller closes their idle connections. --timeout 0 (or less) means no
// limit on each call.
func (a *adminFlags) clients(token string) ([]*status.Client, error) {
	callTimeout := *a.timeout
	if callTimeout <= 0 {
		callTimeout = -1
	}
	var out []*status.Client
	for u := range strings.SplitSeq(*a.urls, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		tlsCfg, err := adminTLS(u, *a.ca, *a.cert, *a.key)
		if err != nil {
			return nil, err
		}
		c, err := status.NewClient(u, status.ClientOptions{Token: token, Timeout: callTimeout, TLS: tlsCfg,
			AddrHint: "--admin", TLSHint: "--admin-ca, --admin-cert and --admin-key"})
		if err != nil {
			for _, c := range out {
				c.CloseIdleConnections()
			}
			return nil, usageError{fmt.Errorf("--admin %q: want each node's admin API base URL, such as http://127.0.0.1:9090", u)}
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, usageError{errors.New("--admin names no node: give the admin API base URL of each, comma-separated, such as http://127.0.0.1:9090")}
	}
	return out, nil
}

// client is clients for a command that asks one node.
func (a *adminFlags) client(token string) (*status.Client, error) {
	cs, err := a.clients(token)
	if err != nil {
		return nil, err
	}
	if len(cs) > 1 {
		for _, c := range cs {
			c.CloseIdleConnections()
		}
		return nil, usageError{fmt.Errorf("--admin %q: this command asks one node; give one admin API base URL", *a.urls)}
	}
	return cs[0], nil
}
