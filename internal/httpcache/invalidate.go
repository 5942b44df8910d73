package httpcache

import (
	"net/http"
	"net/url"
	"strings"
)

// InvalidatesOnUnsafe reports whether a response to method invalidates stored responses (RFC 9111 §4.4):
// method is unsafe (anything but GET, HEAD, OPTIONS, TRACE) and status is
// non-error, which §4.4 defines as 2xx or 3xx. Methods are case-sensitive
// (RFC 9110 §9.1), so "get" is unsafe (a method of unknown safety).
func InvalidatesOnUnsafe(method string, status int) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return status >= 200 && status <= 399
}

// InvalidationTargets returns the target URI plus the Location and Content-Location URIs of resp (resolved against
// target), keeping only those with the same scheme and host (authority, case-insensitive, default port equivalent) as target (§4.4).
// Malformed URIs are skipped. target is absolute.
//
// The results are new URLs without fragments, target first, without
// duplicates. target is not modified.
func InvalidationTargets(target *url.URL, respHeader http.Header) []*url.URL {
	t := *target
	t.Fragment, t.RawFragment = "", ""
	out := []*url.URL{&t}
	for _, key := range [...]string{"Location", "Content-Location"} {
		for _, v := range respHeader[key] {
			v = trimOWS(v)
			if v == "" {
				continue
			}
			ref, err := url.Parse(v)
			if err != nil {
				continue
			}
			u := target.ResolveReference(ref)
			u.Fragment, u.RawFragment = "", ""
			if !sameAuthority(target, u) || containsURL(out, u) {
				continue
			}
			out = append(out, u)
		}
	}
	return out
}

// sameAuthority reports whether a and b have the same scheme and host,
// ignoring case and treating an omitted default port as given
// (RFC 9110 §4.2.3).
func sameAuthority(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOrDefault(a) == portOrDefault(b)
}

// portOrDefault returns the port of u, or the default port of its scheme.
func portOrDefault(u *url.URL) string {
	if p := u.Port(); p != "" {
		return strings.TrimLeft(p, "0")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// containsURL reports whether list holds a URL equal to u.
func containsURL(list []*url.URL, u *url.URL) bool {
	s := u.String()
	for _, v := range list {
		if v.String() == s {
			return true
		}
	}
	return false
}
