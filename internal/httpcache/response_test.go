package httpcache

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is the reference time of the tests: the Date of most responses.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// httpDate formats t0+d as an IMF-fixdate.
func httpDate(d time.Duration) string { return t0.Add(d).Format(http.TimeFormat) }

// hdr builds a header from name, value pairs, canonicalizing names as
// net/http does. A name may repeat to add field lines.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestEvaluateResponse(t *testing.T) {
	date := httpDate(0)
	tests := []struct {
		name   string
		method string // "" means GET
		req    http.Header
		status int // 0 means 200
		resp   http.Header
		now    time.Time // zero means t0
		rules  Rules
		want   Policy
	}{
		// RFC 9111 §3: what may be stored at all.
		{name: "§3 HEAD is not stored", method: "HEAD", resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonMethod}},
		{name: "§3 POST is not stored", method: "POST", resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonMethod}},
		{name: "§3 method is case-sensitive", method: "get", resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonMethod}},
		{name: "§3 1xx is not final", status: 103, resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonStatus}},
		{name: "§3 304 is not stored as a response", status: 304, resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonStatus}},
		{name: "§3 status out of range", status: 600, resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonStatus}},
		{name: "§3.3 206 is never stored as a full response", status: 206, resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonPartial}},
		{name: "§5.2.1.5 request no-store", req: hdr("Cache-Control", "no-store"), resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonRequestNoStore}},
		{name: "§5.2.2.5 no-store", resp: hdr("Cache-Control", "no-store, max-age=60"),
			want: Policy{Reason: ReasonNoStore}},
		{name: "§5.2.2.5 NO-STORE in upper case", resp: hdr("Cache-Control", "max-age=60", "Cache-Control", "NO-STORE"),
			want: Policy{Reason: ReasonNoStore}},
		{name: "§5.2.2.3 must-understand overrides no-store for an understood status", resp: hdr("Cache-Control", "must-understand, no-store, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§5.2.2.3 must-understand with 302", status: 302, resp: hdr("Cache-Control", "must-understand, no-store, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§5.2.2.3 must-understand with a status not understood", status: 299, resp: hdr("Cache-Control", "must-understand, max-age=60"),
			want: Policy{Reason: ReasonMustUnderstand}},
		{name: "§5.2.2.3 must-understand with 500", status: 500, resp: hdr("Cache-Control", "must-understand, no-store, max-age=60"),
			want: Policy{Reason: ReasonMustUnderstand}},
		{name: "§5.2.2.7 private", resp: hdr("Cache-Control", "private, max-age=60"),
			want: Policy{Reason: ReasonPrivate}},
		{name: "§5.2.2.7 private=\"Set-Cookie\" strips the field and allows storing", resp: hdr("Cache-Control", `private="Set-Cookie", max-age=60`, "Set-Cookie", "a=b"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StripFields: []string{"Set-Cookie"}}},
		{name: "§5.2.2.4 no-cache=\"Set-Cookie\" strips the field", resp: hdr("Cache-Control", `no-cache="Set-Cookie", max-age=60`, "Set-Cookie", "a=b"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StripFields: []string{"Set-Cookie"}}},
		{name: "§3.1 private and no-cache fields merged", resp: hdr("Cache-Control", `private="X-User", no-cache="Set-Cookie, x-user", max-age=60`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StripFields: []string{"X-User", "Set-Cookie"}}},
		{name: "§3 Set-Cookie not stored by default", resp: hdr("Cache-Control", "max-age=60", "Set-Cookie", "a=b"),
			want: Policy{Reason: ReasonSetCookie}},
		{name: "§3 Set-Cookie stored when the operator allows it, without the cookie", resp: hdr("Cache-Control", "max-age=60", "Set-Cookie", "a=b"), rules: Rules{StoreSetCookie: true},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StripFields: []string{"Set-Cookie"}}},
		{name: "§3.5 Authorization without permission", req: hdr("Authorization", "Bearer x"), resp: hdr("Cache-Control", "max-age=60"),
			want: Policy{Reason: ReasonAuthorization}},
		{name: "§3.5 Authorization with s-maxage", req: hdr("Authorization", "Bearer x"), resp: hdr("Cache-Control", "s-maxage=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "§3.5 Authorization with public", req: hdr("Authorization", "Bearer x"), resp: hdr("Cache-Control", "public, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§3.5 Authorization with must-revalidate", req: hdr("Authorization", "Bearer x"), resp: hdr("Cache-Control", "must-revalidate, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§4.1 Vary: *", resp: hdr("Cache-Control", "max-age=60", "Vary", "Accept-Encoding, *"),
			want: Policy{Reason: ReasonVaryStar}},
		{name: "§4.1 Vary without star", resp: hdr("Cache-Control", "max-age=60", "Vary", "Accept-Encoding"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},

		// RFC 9111 §4.2.1: explicit freshness, shared cache precedence.
		{name: "§4.2.1 s-maxage beats max-age in a shared cache", resp: hdr("Cache-Control", "max-age=60, s-maxage=600"),
			want: Policy{Storable: true, Lifetime: 10 * time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "§5.3 max-age beats Expires", resp: hdr("Cache-Control", "max-age=60", "Date", date, "Expires", httpDate(time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§4.2.1 Expires minus Date", resp: hdr("Date", date, "Expires", httpDate(time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceExpires}},
		{name: "§4.2.1 Expires relative to Date, not to now", resp: hdr("Date", date, "Expires", httpDate(time.Hour)), now: t0.Add(50 * time.Minute),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceExpires}},
		{name: "§4.2.1 Expires with missing Date uses now", resp: hdr("Expires", httpDate(time.Hour)), now: t0.Add(50 * time.Minute),
			want: Policy{Storable: true, Lifetime: 10 * time.Minute, Source: SourceExpires}},
		{name: "§4.2.1 Expires with invalid Date uses now", resp: hdr("Date", "yesterday", "Expires", httpDate(time.Hour)), now: t0.Add(30 * time.Minute),
			want: Policy{Storable: true, Lifetime: 30 * time.Minute, Source: SourceExpires}},
		{name: "§4.2.1 Expires before Date with validator", resp: hdr("Date", date, "Expires", httpDate(-time.Hour), "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§4.2.1 Expires before Date without validator", resp: hdr("Date", date, "Expires", httpDate(-time.Hour)),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§5.3 Expires 0 is in the past", resp: hdr("Date", date, "Expires", "0", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires -1 is in the past", resp: hdr("Date", date, "Expires", "-1", "Last-Modified", httpDate(-time.Hour)),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires garbage is in the past", resp: hdr("Date", date, "Expires", "next tuesday", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires empty is in the past", resp: hdr("Date", date, "Expires", "", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 two Expires field lines are invalid: stale", resp: hdr("Date", date, "Expires", httpDate(time.Hour), "Expires", httpDate(2*time.Hour), "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 two equal Expires field lines are invalid too", resp: hdr("Date", date, "Expires", httpDate(time.Hour), "Expires", httpDate(time.Hour), "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires with a second date after a comma is invalid", resp: hdr("Date", date, "Expires", httpDate(time.Hour)+", "+httpDate(2*time.Hour), "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires with a doubled space is invalid", resp: hdr("Date", date, "Expires", "Thu,  01 Jan 2037 00:00:00 GMT", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires with a one-digit hour is invalid", resp: hdr("Date", date, "Expires", "Thu, 01 Jan 2037 0:00:00 GMT", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires with a one-digit day is invalid", resp: hdr("Date", date, "Expires", "Thu, 1 Jan 2037 00:00:00 GMT", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 Expires with a trailing comment is invalid", resp: hdr("Date", date, "Expires", "Thu, 01 Jan 2037 00:00:00 GMT (new year)", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§4.2 Expires in a zone other than GMT is invalid", resp: hdr("Date", date, "Expires", "Mon, 01 Jan 2024 01:00:00 UTC", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§4.2 Expires in RFC 850 form with a zone other than GMT is invalid", resp: hdr("Date", date, "Expires", "Monday, 01-Jan-24 01:00:00 PST", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§4.2 Expires matched case-insensitively", resp: hdr("Date", date, "Expires", "MON, 01 JAN 2024 01:00:00 gmt"),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceExpires}},
		{name: "§5.3 invalid Expires without validator or stale window cannot be reused", resp: hdr("Date", date, "Expires", "Thu, 01 Jan 2037 0:00:00 GMT"),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§5.3 invalid Expires is stored for the operator's stale-if-error", resp: hdr("Date", date, "Expires", "0"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires, StaleIfError: time.Hour}},
		{name: "§5.3 invalid Expires is explicit: no heuristic from Last-Modified", resp: hdr("Date", date, "Expires", "0", "Last-Modified", httpDate(-10*time.Hour)),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 invalid Expires is explicit: no DefaultTTL", resp: hdr("Date", date, "Expires", "soon", "Etag", `"v1"`), rules: Rules{DefaultTTL: time.Hour},
			want: Policy{Storable: true, Lifetime: 0, Source: SourceExpires}},
		{name: "§5.3 max-age wins over an invalid Expires", resp: hdr("Cache-Control", "max-age=60", "Date", date, "Expires", "0"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§5.3 max-age wins over two Expires field lines", resp: hdr("Cache-Control", "max-age=60", "Date", date, "Expires", httpDate(-time.Hour), "Expires", httpDate(time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§5.3 s-maxage wins over an invalid Expires", resp: hdr("Cache-Control", "s-maxage=60", "Date", date, "Expires", "Thu,  01 Jan 2037 00:00:00 GMT"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "§1.2.2 Expires centuries ahead is capped at 2^31 seconds", resp: hdr("Date", date, "Expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
			want: Policy{Storable: true, Lifetime: maxDelta, Source: SourceExpires}},
		{name: "§1.2.2 DefaultTTL beyond 2^31 seconds is capped", resp: hdr("Date", date), rules: Rules{DefaultTTL: 1 << 62},
			want: Policy{Storable: true, Lifetime: maxDelta, Source: SourceDefaultTTL}},
		{name: "§5.3 Expires in RFC 850 form", resp: hdr("Date", date, "Expires", "Monday, 01-Jan-24 01:00:00 GMT"),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceExpires}},
		{name: "§5.3 Expires in asctime form", resp: hdr("Date", date, "Expires", "Mon Jan  1 02:00:00 2024"),
			want: Policy{Storable: true, Lifetime: 2 * time.Hour, Source: SourceExpires}},
		{name: "§4.2.1 invalid max-age is stale", resp: hdr("Cache-Control", "max-age=abc", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge}},
		{name: "§4.2.1 max-age=0 with must-revalidate and validator", resp: hdr("Cache-Control", "max-age=0, must-revalidate", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§4.2.1 max-age=0 without validator cannot be reused", resp: hdr("Cache-Control", "max-age=0"),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.1 max-age=0 with an invalid Last-Modified has no validator", resp: hdr("Cache-Control", "max-age=0", "Last-Modified", "yesterday", "Etag", " "),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.1 max-age=0 with an unquoted ETag has no validator (RFC 9110 §8.8.3)", resp: hdr("Cache-Control", "max-age=0", "Etag", "v1"),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.1 max-age=0 with a weak ETag has a validator", resp: hdr("Cache-Control", "max-age=0", "Etag", `W/"v1"`),
			want: Policy{Storable: true, Source: SourceMaxAge}},
		{name: "§5.2 max-age with OWS before = is invalid: stale", resp: hdr("Cache-Control", "max-age =3600", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge}},
		{name: "§5.2 max-age with an unterminated quoted-string is invalid: stale", resp: hdr("Cache-Control", `max-age="3600`, "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge}},
		{name: "§5.2 quoted max-age is accepted", resp: hdr("Cache-Control", `max-age="3600"`),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceMaxAge}},
		{name: "§4.2.1 max-age=0 with a valid Last-Modified", resp: hdr("Cache-Control", "max-age=0", "Last-Modified", httpDate(-time.Hour)),
			want: Policy{Storable: true, Source: SourceMaxAge}},
		{name: "RFC 5861 max-age=0 without validator kept for stale-while-revalidate", resp: hdr("Cache-Control", "max-age=0, stale-while-revalidate=30"),
			want: Policy{Storable: true, Source: SourceMaxAge, StaleWhileRevalidate: 30 * time.Second}},
		{name: "RFC 5861 max-age=0 without validator kept for the operator's stale-if-error", resp: hdr("Cache-Control", "max-age=0"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Source: SourceMaxAge, StaleIfError: time.Hour}},
		{name: "§4.2.1 302 not heuristically cacheable but cacheable with max-age", status: 302, resp: hdr("Cache-Control", "max-age=60", "Location", "/x"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§4.2.1 500 with max-age is stored", status: 500, resp: hdr("Cache-Control", "max-age=5"),
			want: Policy{Storable: true, Lifetime: 5 * time.Second, Source: SourceMaxAge}},

		// RFC 9111 §4.2.2: heuristic freshness.
		{name: "§4.2.2 heuristic 10% of Date minus Last-Modified", resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 heuristics turned off", resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)), rules: Rules{NoHeuristic: true},
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 heuristics off falls back to the default TTL", resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)), rules: Rules{NoHeuristic: true, DefaultTTL: time.Minute},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceDefaultTTL}},
		{name: "§4.2.2 heuristic fraction from rules", resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)), rules: Rules{HeuristicFraction: 0.5},
			want: Policy{Storable: true, Lifetime: 5 * time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 heuristic capped at a day by default", resp: hdr("Date", date, "Last-Modified", httpDate(-100*24*time.Hour)),
			want: Policy{Storable: true, Lifetime: 24 * time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 heuristic capped by rules", resp: hdr("Date", date, "Last-Modified", httpDate(-100*time.Hour)), rules: Rules{HeuristicMax: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 heuristic with Last-Modified in the future", resp: hdr("Date", date, "Last-Modified", httpDate(time.Hour)),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceHeuristic}},
		{name: "§4.2.2 heuristic without Date uses now", resp: hdr("Last-Modified", httpDate(-10*time.Hour)), now: t0.Add(10 * time.Hour),
			want: Policy{Storable: true, Lifetime: 2 * time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 404 heuristically cacheable", status: 404, resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 302 not heuristically cacheable", status: 302, resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour), "Location", "/x"),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 302 with public is heuristically cacheable", status: 302, resp: hdr("Cache-Control", "public", "Date", date, "Last-Modified", httpDate(-10*time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 invalid Last-Modified is no basis", resp: hdr("Date", date, "Last-Modified", "long ago"),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 200 without any freshness information", resp: hdr("Date", date, "Etag", `"v1"`),
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 DefaultTTL for a 200 without freshness", resp: hdr("Date", date), rules: Rules{DefaultTTL: 5 * time.Minute},
			want: Policy{Storable: true, Lifetime: 5 * time.Minute, Source: SourceDefaultTTL}},
		{name: "§4.2.2 heuristic beats DefaultTTL", resp: hdr("Date", date, "Last-Modified", httpDate(-10*time.Hour)), rules: Rules{DefaultTTL: 5 * time.Minute},
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic}},
		{name: "§4.2.2 DefaultTTL never applies to a 500", status: 500, resp: hdr("Date", date), rules: Rules{DefaultTTL: 5 * time.Minute},
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 DefaultTTL never applies to a 307", status: 307, resp: hdr("Date", date), rules: Rules{DefaultTTL: 5 * time.Minute},
			want: Policy{Reason: ReasonNoFreshness}},
		{name: "§4.2.2 DefaultTTL for a 404", status: 404, resp: hdr("Date", date), rules: Rules{DefaultTTL: 5 * time.Minute},
			want: Policy{Storable: true, Lifetime: 5 * time.Minute, Source: SourceDefaultTTL}},

		// RFC 9111 §5.2.2 and RFC 5861: reuse flags and stale windows.
		{name: "§5.2.2.4 no-cache with max-age", resp: hdr("Cache-Control", "no-cache, max-age=60, stale-while-revalidate=30", "Etag", `"v1"`), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, NoCache: true}},
		{name: "§5.2.2.4 no-cache forbids even its own stale-if-error", resp: hdr("Cache-Control", "no-cache, max-age=60, stale-if-error=600", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, NoCache: true}},
		{name: "§5.2.2.4 no-cache forbids the operator's windows", resp: hdr("Cache-Control", "no-cache, max-age=60", "Etag", `"v1"`), rules: Rules{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, NoCache: true}},
		{name: "§5.2.2.4 qualified no-cache does not forbid stale windows", resp: hdr("Cache-Control", `no-cache="X-A", max-age=60, stale-if-error=600`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StaleIfError: 10 * time.Minute, StripFields: []string{"X-A"}}},
		{name: "RFC 5861 stale windows from the response", resp: hdr("Cache-Control", "max-age=60, stale-while-revalidate=30, stale-if-error=600"), rules: Rules{StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 10 * time.Minute}},
		{name: "RFC 5861 stale windows from the rules", resp: hdr("Cache-Control", "max-age=60"), rules: Rules{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{name: "RFC 5861 explicit zero beats the rules", resp: hdr("Cache-Control", "max-age=60, stale-while-revalidate=0"), rules: Rules{StaleWhileRevalidate: time.Minute},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "§5.2.2.2 must-revalidate disables stale-while-revalidate", resp: hdr("Cache-Control", "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=60"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.8 proxy-revalidate disables stale windows", resp: hdr("Cache-Control", "max-age=60, proxy-revalidate"), rules: Rules{StaleWhileRevalidate: time.Minute},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.2 must-revalidate disables the operator's windows", resp: hdr("Cache-Control", "max-age=60, must-revalidate"), rules: Rules{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.2 must-revalidate beats an explicit stale-if-error (RFC 5861 §4 does not lift it)", resp: hdr("Cache-Control", "max-age=60, must-revalidate, stale-if-error=600"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.8 proxy-revalidate disables the operator's stale-if-error", resp: hdr("Cache-Control", "max-age=60, proxy-revalidate"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.8 proxy-revalidate beats explicit stale windows (RFC 5861 §3, §4)", resp: hdr("Cache-Control", "max-age=60, proxy-revalidate, stale-while-revalidate=30, stale-if-error=600"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.10 s-maxage with explicit stale-if-error keeps that window only", resp: hdr("Cache-Control", "s-maxage=60, stale-if-error=600"), rules: Rules{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, StaleIfError: 10 * time.Minute}},
		{name: "§5.2.2.10 s-maxage with proxy-revalidate and explicit windows serves no stale", resp: hdr("Cache-Control", "s-maxage=60, proxy-revalidate, stale-while-revalidate=30"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.10 s-maxage with no-cache and explicit windows serves no stale", resp: hdr("Cache-Control", "s-maxage=60, no-cache, stale-if-error=600", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, NoCache: true}},
		{name: "RFC 5861 operator windows beyond 2^31 seconds are capped", resp: hdr("Cache-Control", "max-age=60"), rules: Rules{StaleWhileRevalidate: 1 << 62, StaleIfError: 1 << 62},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StaleWhileRevalidate: maxDelta, StaleIfError: maxDelta}},
		{name: "§5.2.2.10 s-maxage disables the operator's stale windows", resp: hdr("Cache-Control", "s-maxage=60"), rules: Rules{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "§5.2.2.10 s-maxage with explicit stale-while-revalidate keeps that window only", resp: hdr("Cache-Control", "s-maxage=60, stale-while-revalidate=30"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, StaleWhileRevalidate: 30 * time.Second}},
		{name: "§5.2.2.10 s-maxage with stale-if-error and must-revalidate serves no stale", resp: hdr("Cache-Control", "s-maxage=60, stale-if-error=30, must-revalidate"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true}},
		{name: "RFC 5861 negative rules count as zero", resp: hdr("Cache-Control", "max-age=60"), rules: Rules{StaleWhileRevalidate: -time.Minute, StaleIfError: -time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},

		// RFC 9213: targeted fields.
		{name: "RFC 9213 §2.1 CDN-Cache-Control overrides Cache-Control: private", resp: hdr("Cache-Control", "private", "Cdn-Cache-Control", "max-age=600"),
			want: Policy{Storable: true, Lifetime: 10 * time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 CDN-Cache-Control overrides Cache-Control: no-store", resp: hdr("Cache-Control", "no-store", "Cdn-Cache-Control", "max-age=600"),
			want: Policy{Storable: true, Lifetime: 10 * time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 CDN-Cache-Control no-store overrides Cache-Control", resp: hdr("Cache-Control", "public, max-age=600", "Cdn-Cache-Control", "no-store"),
			want: Policy{Reason: ReasonNoStore, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 CDN-Cache-Control ignores Expires", resp: hdr("Cdn-Cache-Control", "public", "Date", date, "Expires", httpDate(time.Hour)),
			want: Policy{Reason: ReasonNoFreshness, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 CDN-Cache-Control beats Surrogate-Control", resp: hdr("Cdn-Cache-Control", "max-age=60", "Surrogate-Control", "max-age=600"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 Surrogate-Control when CDN-Cache-Control absent", resp: hdr("Cache-Control", "no-cache, private", "Surrogate-Control", "max-age=600"),
			want: Policy{Storable: true, Lifetime: 10 * time.Minute, Source: SourceMaxAge, Targeted: TargetSurrogateControl}},
		{name: "RFC 9213 §2.1 empty CDN-Cache-Control ignored", resp: hdr("Cache-Control", "max-age=60", "Cdn-Cache-Control", ""),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 unparseable CDN-Cache-Control ignored", resp: hdr("Cache-Control", "max-age=60", "Cdn-Cache-Control", " , @@"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 empty CDN-Cache-Control falls to Surrogate-Control", resp: hdr("Cache-Control", "max-age=60", "Cdn-Cache-Control", "", "Surrogate-Control", "max-age=5"),
			want: Policy{Storable: true, Lifetime: 5 * time.Second, Source: SourceMaxAge, Targeted: TargetSurrogateControl}},
		{name: "RFC 9213 §2.1 targeted s-maxage and Authorization", req: hdr("Authorization", "Basic x"), resp: hdr("Cache-Control", "private", "Cdn-Cache-Control", "s-maxage=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceSMaxAge, MustRevalidate: true, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 targeted stale-while-revalidate", resp: hdr("Cache-Control", "max-age=5", "Cdn-Cache-Control", "max-age=60, stale-while-revalidate=30"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StaleWhileRevalidate: 30 * time.Second, Targeted: TargetCDNCacheControl}},

		// RFC 9213 §2.1: CDN-Cache-Control is a Structured Field Dictionary
		// (RFC 8941 §3.2); one that fails to parse is ignored as a whole.
		{name: "RFC 9213 §2.1 invalid dictionary (stray characters) ignored", resp: hdr("Cache-Control", "no-store", "Cdn-Cache-Control", "max-age=10000, &&&&&"),
			want: Policy{Reason: ReasonNoStore}},
		{name: "RFC 9213 §2.1 OWS before = fails the dictionary", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age =100"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 OWS after = fails the dictionary", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age= 100"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 upper-case key fails the dictionary (RFC 8941 §3.2)", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "MaX-aGe=3600"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 trailing comma fails the dictionary", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age=3600,"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 unterminated string fails the dictionary", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", `max-age=3600, private="Set-Cookie`),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 16-digit integer fails the dictionary (RFC 8941 §3.3.1)", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age=1000000000000000"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 field lines that combined do not parse are ignored", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age=3600", "Cdn-Cache-Control", "@"),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 empty field line beside a valid one makes a trailing comma", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age=3600", "Cdn-Cache-Control", ""),
			want: Policy{Storable: true, Lifetime: time.Second, Source: SourceMaxAge}},
		{name: "RFC 9213 §2.1 invalid CDN-Cache-Control falls to Surrogate-Control", resp: hdr("Cache-Control", "max-age=1", "Cdn-Cache-Control", "max-age=60;", "Surrogate-Control", "max-age=5"),
			want: Policy{Storable: true, Lifetime: 5 * time.Second, Source: SourceMaxAge, Targeted: TargetSurrogateControl}},
		{name: "RFC 9213 §2.2 Surrogate-Control, no structured field, keeps its tolerant parsing: OWS around =", resp: hdr("Cache-Control", "max-age=1", "Surrogate-Control", "max-age = 60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetSurrogateControl}},
		{name: "RFC 9213 §2.2 Surrogate-Control, no structured field, keeps its tolerant parsing: device target ignored", resp: hdr("Cache-Control", "max-age=1", "Surrogate-Control", "max-age=60;edge1, no-store;other"),
			want: Policy{Reason: ReasonNoStore, Targeted: TargetSurrogateControl}},
		{name: "RFC 9213 §2.1 field lines are combined (RFC 8941 §4.2)", resp: hdr("Cache-Control", "max-age=60", "Cdn-Cache-Control", "max-age=600", "Cdn-Cache-Control", "private"),
			want: Policy{Reason: ReasonPrivate, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 duplicate key: the last wins (RFC 8941 §4.2.2)", resp: hdr("Cdn-Cache-Control", "max-age=60, max-age=10"),
			want: Policy{Storable: true, Lifetime: 10 * time.Second, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 parameters are ignored", resp: hdr("Cdn-Cache-Control", "max-age=60;foo=bar;baz"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.2 unknown members ignored", resp: hdr("Cdn-Cache-Control", "foobar, max-age=3600"),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §3.1 a lone unknown member still replaces Cache-Control", resp: hdr("Cache-Control", "no-store", "Cdn-Cache-Control", "none", "Date", date, "Last-Modified", httpDate(-10*time.Hour)),
			want: Policy{Storable: true, Lifetime: time.Hour, Source: SourceHeuristic, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 max-age of 2^31 kept", resp: hdr("Cdn-Cache-Control", "max-age=2147483648"),
			want: Policy{Storable: true, Lifetime: maxDelta, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 larger max-age clamped (RFC 9111 §1.2.2)", resp: hdr("Cdn-Cache-Control", "max-age=99999999999"),
			want: Policy{Storable: true, Lifetime: maxDelta, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 String max-age is invalid: stale, not Cache-Control", resp: hdr("Cache-Control", "no-store", "Cdn-Cache-Control", `max-age="10000"`),
			want: Policy{Reason: ReasonNoFreshness, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 String max-age with a validator is stored stale", resp: hdr("Cdn-Cache-Control", `max-age="60"`, "Etag", `"v1"`), rules: Rules{DefaultTTL: time.Hour},
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 Decimal max-age is not coerced", resp: hdr("Cdn-Cache-Control", "max-age=60.0", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 negative max-age is invalid", resp: hdr("Cdn-Cache-Control", "max-age=-1", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 max-age without a value is invalid", resp: hdr("Cdn-Cache-Control", "max-age", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: 0, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 String stale-while-revalidate is invalid, not the operator's", resp: hdr("Cdn-Cache-Control", `max-age=60, stale-while-revalidate="30"`), rules: Rules{StaleWhileRevalidate: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 no-store=?0 is false", resp: hdr("Cache-Control", "no-store", "Cdn-Cache-Control", "no-store=?0, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 no-store=?1 is true", resp: hdr("Cdn-Cache-Control", "no-store=?1, max-age=60"),
			want: Policy{Reason: ReasonNoStore, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 no-store with a wrongly typed value still forbids storing", resp: hdr("Cdn-Cache-Control", "no-store=1, max-age=60"),
			want: Policy{Reason: ReasonNoStore, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 later no-store=?0 replaces no-store (RFC 8941 §4.2.2)", resp: hdr("Cdn-Cache-Control", "no-store, max-age=60, no-store=?0"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 public with a wrongly typed value grants nothing", req: hdr("Authorization", "Bearer x"), resp: hdr("Cdn-Cache-Control", "public=1, max-age=60"),
			want: Policy{Reason: ReasonAuthorization, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 public as Boolean true", req: hdr("Authorization", "Bearer x"), resp: hdr("Cdn-Cache-Control", "public, max-age=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 private as a String is qualified", resp: hdr("Cdn-Cache-Control", `private="Set-Cookie", max-age=60`, "Set-Cookie", "a=b"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, StripFields: []string{"Set-Cookie"}, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 private as a Token is unqualified", resp: hdr("Cdn-Cache-Control", "private=Set-Cookie, max-age=60"),
			want: Policy{Reason: ReasonPrivate, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 no-cache as an Inner List is unqualified", resp: hdr("Cdn-Cache-Control", `no-cache=("Set-Cookie"), max-age=60`, "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, NoCache: true, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.1 must-revalidate with a wrongly typed value still applies", resp: hdr("Cdn-Cache-Control", "max-age=60, must-revalidate=yes, stale-if-error=60"),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.2 targeted must-revalidate beats stale-if-error (RFC 9111 §5.2.2.2)", resp: hdr("Cache-Control", "max-age=60, stale-if-error=60", "Cdn-Cache-Control", "max-age=60, must-revalidate, stale-if-error=600"), rules: Rules{StaleIfError: time.Hour},
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, MustRevalidate: true, Targeted: TargetCDNCacheControl}},
		{name: "RFC 9213 §2.2 targeted no-cache forbids stale-if-error (RFC 9111 §5.2.2.4)", resp: hdr("Cdn-Cache-Control", "max-age=60, no-cache, stale-if-error=600", "Etag", `"v1"`),
			want: Policy{Storable: true, Lifetime: time.Minute, Source: SourceMaxAge, NoCache: true, Targeted: TargetCDNCacheControl}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status := tt.status
			if status == 0 {
				status = 200
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			got := EvaluateResponse(method, tt.req, status, tt.resp, now, tt.rules)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EvaluateResponse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateResponseDoesNotModifyInputs(t *testing.T) {
	req := hdr("Authorization", "x", "Cache-Control", "max-age=0")
	resp := hdr("Cache-Control", `public, private="Set-Cookie", max-age=60`, "Set-Cookie", "a=b", "Vary", "Accept")
	reqCopy, respCopy := req.Clone(), resp.Clone()
	EvaluateResponse("GET", req, 200, resp, t0, Rules{})
	if diff := cmp.Diff(reqCopy, req); diff != "" {
		t.Errorf("request header changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(respCopy, resp); diff != "" {
		t.Errorf("response header changed (-want +got):\n%s", diff)
	}
}
