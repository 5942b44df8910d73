package status

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/purge"
)

// Limits on what the client reads.
const (
	// DefaultTimeout bounds each call when ClientOptions.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// MaxBodyBytes bounds an answer's body; a longer one is an error, not
	// a document cut short.
	MaxBodyBytes = 16 << 20
	// MaxMessageBytes bounds the server's error message kept in an Error.
	MaxMessageBytes = 1 << 10
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Token is the bearer token. The purge calls always send it (an empty
	// one is refused by the node as empty, which says what is wrong); the
	// other calls send it only when it is not empty, as the node's health,
	// readiness, /status and /cluster need none.
	Token string
	// Timeout bounds every call, from dialing to the last byte of the
	// answer. Zero means DefaultTimeout; a negative one means none, and
	// only the call's context bounds it.
	Timeout time.Duration
	// Transport sends the requests; nil means http.DefaultTransport, or
	// a transport of the client's own with TLS.
	Transport http.RoundTripper
	// TLS, when set, is the TLS client configuration of an https admin
	// API (admin_tls): the CAs that sign the node's certificate, instead
	// of the system's (RootCAs), and a client certificate for a node
	// that requires one (Certificates). Nil means the system's CAs and
	// no certificate. It goes to a transport of the client's own, so it
	// cannot be given with Transport; it is not modified.
	// certs.ClientConfig builds one from files.
	TLS *tls.Config
	// AddrHint names, in the error for a node that does not answer, where
	// the user sets the address the client calls, such as "--admin"; ""
	// names nothing.
	AddrHint string
	// TLSHint names, in the error for a failed TLS handshake, where the
	// user sets the CA and the client certificate, such as "--admin-ca,
	// --admin-cert and --admin-key"; "" names nothing.
	TLSHint string
}

// Client calls one node's admin API and decodes its documents. It is
// safe for concurrent use. Every method blocks until the answer is read,
// the timeout passes or ctx ends; every error is an *Error.
type Client struct {
	base string
	opt  ClientOptions
	hc   *http.Client
}

// NewClient returns a client of the admin API at base, an http or https
// URL such as "http://127.0.0.1:9090" (a trailing slash is ignored).
func NewClient(base string, opt ClientOptions) (*Client, error) {
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin API %q: want the admin API's base URL, such as http://127.0.0.1:9090", base)
	}
	timeout := opt.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0 // http.Client: no timeout
	}
	tr := opt.Transport
	if opt.TLS != nil {
		if tr != nil {
			return nil, errors.New("status: give ClientOptions.Transport or TLS, not both: TLS configures the client's own transport")
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = opt.TLS.Clone()
		t.TLSClientConfig.MinVersion = max(t.TLSClientConfig.MinVersion, tls.VersionTLS12)
		tr = t
	}
	return &Client{base: base, opt: opt, hc: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// ForAddr returns a client of the admin API listening at addr
// (host:port), what node.Node.AdminAddr returns: over plain HTTP, or
// over https when opt.TLS is set.
func ForAddr(addr string, opt ClientOptions) (*Client, error) {
	if opt.TLS != nil {
		return NewClient("https://"+addr, opt)
	}
	return NewClient("http://"+addr, opt)
}

// BaseURL returns the admin API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CloseIdleConnections closes the client's idle connections (see
// http.Client.CloseIdleConnections).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Healthz asks GET /healthz: nil while the node's process serves.
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, false)
	return err
}

// Readyz asks GET /readyz: nil when the node should receive traffic; a
// node that is not ready answers 503, an *Error whose Message says why
// ("not ready: draining for shutdown").
func (c *Client) Readyz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, false)
	return err
}

// Status reads GET /status.
func (c *Client) Status(ctx context.Context) (Node, error) {
	var doc Node
	err := c.get(ctx, "/status", false, &doc)
	return doc, err
}

// Cluster reads GET /cluster; a key (a URL) that is not empty is asked
// about with ?key=, and the answer's Key names its owner. A node that is
// not a cluster member answers 404.
func (c *Client) Cluster(ctx context.Context, key string) (Cluster, error) {
	path := "/cluster"
	if key != "" {
		path += "?key=" + url.QueryEscape(key)
	}
	var doc Cluster
	err := c.get(ctx, path, false, &doc)
	return doc, err
}

// Explain reads GET /debug/explain (role viewer once tokens are
// configured): what the node would do with a GET of rawURL carrying the
// request fields in header ("Name: value" each), and why.
func (c *Client) Explain(ctx context.Context, rawURL string, header []string) (Explain, error) {
	q := url.Values{"url": {rawURL}}
	if len(header) > 0 {
		q["header"] = header
	}
	var doc Explain
	err := c.get(ctx, "/debug/explain?"+q.Encode(), false, &doc)
	return doc, err
}

// Purge issues req with POST /purge (a token with role purge) and
// returns the purge's id.
func (c *Client) Purge(ctx context.Context, req purge.Request) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", &Error{Method: http.MethodPost, URL: c.base + "/purge", Err: err, kind: failEncode}
	}
	b, err := c.do(ctx, http.MethodPost, "/purge", body, true)
	if err != nil {
		return "", err
	}
	var doc purge.IDDoc
	if err := c.decode(http.MethodPost, "/purge", b, &doc); err != nil {
		return "", err
	}
	return doc.ID, nil
}

// PurgeStatus reads GET /purge/{id} (role viewer): the purge's
// acknowledgements by node. Any member answers; the issuing node keeps
// them.
func (c *Client) PurgeStatus(ctx context.Context, id string) (purge.StatusDoc, error) {
	var doc purge.StatusDoc
	err := c.get(ctx, "/purge/"+url.PathEscape(id), true, &doc)
	return doc, err
}

// PurgeStats reads GET /purge (role viewer): the node's purge counters
// and lag, as in Node.Purge.
func (c *Client) PurgeStats(ctx context.Context) (purge.Stats, error) {
	var doc purge.Stats
	err := c.get(ctx, "/purge", true, &doc)
	return doc, err
}

// Reload calls POST /reload (role admin): the node re-reads its
// configuration file and the files it names, and applies what changed.
// A refused reload is an *Error with StatusCode 400 whose Message lists
// every problem.
func (c *Client) Reload(ctx context.Context) (Reload, error) {
	var doc Reload
	b, err := c.do(ctx, http.MethodPost, "/reload", nil, true)
	if err != nil {
		return doc, err
	}
	err = c.decode(http.MethodPost, "/reload", b, &doc)
	return doc, err
}

// Faults lists the node's injected faults (GET /faults).
func (c *Client) Faults(ctx context.Context) (Faults, error) {
	var doc Faults
	err := c.get(ctx, "/faults", false, &doc)
	return doc, err
}

// AddFault injects a fault on the node (POST /faults, role operator).
func (c *Client) AddFault(ctx context.Context, spec inject.Spec) (inject.Fault, error) {
	var f inject.Fault
	body, err := json.Marshal(spec)
	if err != nil {
		return f, &Error{Method: http.MethodPost, URL: c.base + "/faults", Err: err, kind: failEncode}
	}
	b, err := c.do(ctx, http.MethodPost, "/faults", body, true)
	if err != nil {
		return f, err
	}
	err = c.decode(http.MethodPost, "/faults", b, &f)
	return f, err
}

// EndFault ends one of the node's injected faults (DELETE /faults/{id},
// role operator).
func (c *Client) EndFault(ctx context.Context, id string) (inject.Fault, error) {
	var f inject.Fault
	path := "/faults/" + url.PathEscape(id)
	b, err := c.do(ctx, http.MethodDelete, path, nil, true)
	if err != nil {
		return f, err
	}
	err = c.decode(http.MethodDelete, path, b, &f)
	return f, err
}

// Events is a node's answer to GET /debug/events, and when it was
// fetched by the local clock, for estimating the node's clock skew.
type Events struct {
	Events []journal.Event
	// NodeTime is the node's clock when it answered: its Weir-Time
	// header (nanoseconds), or else its Date header (whole seconds);
	// zero when it sent neither.
	NodeTime time.Time
	// Precise is set when NodeTime came from Weir-Time.
	Precise bool
	// Sent and Received bound the call by the local clock.
	Sent, Received time.Time
}

// Events asks GET /debug/events for the events q selects, oldest first.
// A line that is not an event fails the call.
func (c *Client) Events(ctx context.Context, q journal.Query) (Events, error) {
	path := "/debug/events"
	if v := q.Values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	doc := Events{Sent: time.Now()}
	b, h, err := c.send(ctx, http.MethodGet, path, nil, false)
	doc.Received = time.Now()
	if err != nil {
		return doc, err
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(journal.TimeHeader)); err == nil {
		doc.NodeTime, doc.Precise = t, true
	} else if t, err := http.ParseTime(h.Get("Date")); err == nil {
		doc.NodeTime = t
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var e journal.Event
		if err := dec.Decode(&e); err != nil {
			return doc, &Error{Method: http.MethodGet, URL: c.base + path, StatusCode: http.StatusOK, Err: err, kind: failDecode}
		}
		doc.Events = append(doc.Events, e)
	}
	return doc, nil
}

func (c *Client) get(ctx context.Context, path string, auth bool, v any) error {
	b, err := c.do(ctx, http.MethodGet, path, nil, auth)
	if err != nil {
		return err
	}
	return c.decode(http.MethodGet, path, b, v)
}

// do sends one call and returns the body of its 200 answer. auth sends
// the token even when it is empty.
func (c *Client) do(ctx context.Context, method, path string, body []byte, auth bool) ([]byte, error) {
	b, _, err := c.send(ctx, method, path, body, auth)
	return b, err
}

// send is do, also returning the answer's header.
func (c *Client) send(ctx context.Context, method, path string, body []byte, auth bool) ([]byte, http.Header, error) {
	u := c.base + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, &Error{Method: method, URL: u, Err: err, kind: failEncode}
	}
	if auth || c.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opt.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if tlsFailure(err) {
			return nil, nil, &Error{Method: method, URL: u, Err: err, kind: failTLS, hint: c.opt.TLSHint}
		}
		return nil, nil, &Error{Method: method, URL: u, Err: err, kind: failSend, hint: c.opt.AddrHint}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err == nil && len(b) > MaxBodyBytes {
		err = fmt.Errorf("longer than %d bytes", MaxBodyBytes)
	}
	if err != nil {
		return nil, nil, &Error{Method: method, URL: u, StatusCode: resp.StatusCode, Err: err, kind: failRead}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &Error{Method: method, URL: u, StatusCode: resp.StatusCode, Message: message(b), kind: failStatus}
	}
	return b, resp.Header, nil
}

func (c *Client) decode(method, path string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return &Error{Method: method, URL: c.base + path, StatusCode: http.StatusOK, Err: err, kind: failDecode}
	}
	return nil
}

// message returns the server's error message from an error answer's
// body: the "error" of a JSON admin.ErrorDoc, or else the body as text,
// at most MaxMessageBytes of it.
func message(b []byte) string {
	var e admin.ErrorDoc
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	cut := MaxMessageBytes
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes cut)", msg[:cut], len(msg)-cut)
}

// failure is which step of a call failed.
type failure int

const (
	failEncode failure = iota // the request could not be built
	failSend                  // no answer: not sent, refused, or timed out
	failTLS                   // no answer: the TLS handshake failed
	failRead                  // the answer's body could not be read whole
	failStatus                // the answer is not 200
	failDecode                // the 200 answer is not the document
)

// Error is a failed admin API call: what was called, what the node
// answered, and why it failed.
type Error struct {
	// Method and URL are the call.
	Method, URL string
	// StatusCode is the answer's status; 0 when there was no answer.
	StatusCode int
	// Message is the node's error message, when it answered with an error
	// status: the "error" of its JSON body, or its text, cut to
	// MaxMessageBytes. The node's messages say what to do (a 401's names
	// the token's trouble, a 403's the role needed).
	Message string
	// Err is the transport, read or decoding error, when there was one.
	Err error

	kind failure
	hint string
}

// Error says what failed: the call, then the status and the node's
// message, or the error and, when the node did not answer, a hint to
// check the address, or the CA and client certificate when the TLS
// handshake failed.
func (e *Error) Error() string {
	switch e.kind {
	case failSend:
		hint := "is a node's admin API listening there?"
		if e.hint != "" {
			hint += " see " + e.hint
		}
		return fmt.Sprintf("%s %s: %v (%s)", e.Method, e.URL, e.Err, hint)
	case failTLS:
		hint := "does the CA sign the node's certificate for this host, and does the node accept the client certificate?"
		if e.hint != "" {
			hint += " see " + e.hint
		}
		return fmt.Sprintf("%s %s: %v (%s)", e.Method, e.URL, e.Err, hint)
	case failRead:
		return fmt.Sprintf("%s %s: reading the answer: %v", e.Method, e.URL, e.Err)
	case failStatus:
		return fmt.Sprintf("%s %s: %d: %s", e.Method, e.URL, e.StatusCode, e.Message)
	case failDecode:
		return fmt.Sprintf("%s %s: the answer is not the expected JSON: %v", e.Method, e.URL, e.Err)
	default:
		return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err)
	}
}

// tlsFailure reports whether err is a failed TLS handshake: the node's
// certificate refused here, or this client's refused by the node (an
// alert such as "certificate required"), or an answer that is not TLS.
func tlsFailure(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	var opErr *net.OpError
	return errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &recordErr) ||
		errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error")
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the call failed because its timeout or its
// context's deadline passed.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// Doctor reads GET /debug/doctor (role viewer): what the node recorded
// on its fill path for `weir doctor`.
func (c *Client) Doctor(ctx context.Context) (Doctor, error) {
	var doc Doctor
	err := c.get(ctx, "/debug/doctor", false, &doc)
	return doc, err
}

// Metrics reads GET /metrics: the Prometheus text exposition, at most
// MaxBodyBytes.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/metrics", nil, false)
}
