// Package httpcache holds the HTTP caching rules of Weir as a shared cache:
// RFC 9111 (HTTP Caching), the parts of RFC 9110 a cache needs
// (conditional requests, ranges, hop-by-hop fields), RFC 5861
// (stale-while-revalidate, stale-if-error), RFC 9213 (CDN-Cache-Control,
// and Surrogate-Control in the same role) and RFC 9211 (Cache-Status).
//
// Everything here is a pure function over plain values (http.Header,
// time.Time, strings and integers): no goroutines, no I/O, no clocks and
// no mutable globals, so every function is safe for concurrent use and
// the rules can be table-tested without a server. The functions on the
// hit path do not allocate for common inputs.
//
// # When a response is received
//
// The edge handler calls, once per response from an origin or a peer:
//
//   - ValidHeaderValue on each field value, to refuse malformed responses;
//   - RemoveHopByHop, before storing or forwarding (RFC 9110 §7.6.1);
//   - EvaluateResponse, which decides whether the response may be stored
//     (RFC 9111 §3) and computes its Policy: the freshness lifetime
//     (§4.2.1, §4.2.2) and its source, whether it must be validated on every
//     use (no-cache) or never served stale (must-revalidate,
//     proxy-revalidate, s-maxage), the stale-while-revalidate and
//     stale-if-error windows (RFC 5861) and the fields not to store. A
//     CDN-Cache-Control field is read as the Structured Field Dictionary it
//     is (RFC 9213 §2.1, RFC 8941), and ignored as a whole when it does not
//     parse; an Expires that is not exactly one HTTP-date means "already
//     expired" (§5.3);
//   - CorrectedInitialAge, from the Age and Date fields and the times the
//     request was sent and the response received (§4.2.3); an Age that is
//     not one non-negative integer makes the response stale on arrival.
//     No age or lifetime exceeds 2^31 seconds, the "infinity" of §1.2.2;
//   - VaryFields, to know which request fields select the variant (§4.1),
//     and ParseSurrogateKeys for purge tags;
//   - for a 304 answering a revalidation, UpdateStoredHeader (§3.2, §4.3.4),
//     then EvaluateResponse on the updated header and CorrectedInitialAge on
//     the 304's own header: freshening restarts the age;
//   - for an unsafe request, InvalidatesOnUnsafe and InvalidationTargets
//     (§4.4).
//
// The store keeps the Policy fields, the response time and the corrected
// initial age with the response; nothing has to be parsed again later.
//
// # At each lookup
//
// For each request, the handler:
//
//   - builds the secondary key with AppendSecondaryKey over the stored
//     Vary fields (§4.1; Accept-Encoding is reduced by
//     NormalizeAcceptEncoding so that it cannot explode the variants);
//   - computes the age with CurrentAge (§4.2.3) and fills a Reuse;
//   - calls Decide, with the request's ParseDirectives when the operator
//     honours client Cache-Control: Fresh (serve), ServeStale (serve and
//     revalidate in the background) or Revalidate (forward first,
//     conditionally when validators exist); if forwarding fails,
//     StaleIfError says whether the stored response may be served;
//   - answers a conditional request with NotModified (RFC 9110 §13) and a
//     range request with IfRangeAllows and ParseRange (RFC 9110 §14);
//   - reports what it did with Status.AppendValue (RFC 9211), with the
//     ttl from Reuse.TTL.
//
// Where the RFCs leave a choice, the function documentation says which was
// made; in doubt, the choice that stores and serves less.
package httpcache
