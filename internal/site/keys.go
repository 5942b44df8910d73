package site

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/weir-cdn/weir/internal/cachekey"
)

// PrimaryKey returns the cache key under which a GET of rawURL is stored
// (before Vary), as the host's key rules normalize it. rawURL may omit the
// scheme ("example.com/a?b=1" means http).
func (s *Snapshot) PrimaryKey(rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + strings.TrimPrefix(rawURL, "//")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("key %s is not a URL: %v; give a URL such as http://example.com/path?query", Quote(rawURL), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("key %s: scheme %q is not http or https", Quote(rawURL), u.Scheme)
	}
	st := s.Route(u.Host)
	if st == nil {
		return "", fmt.Errorf("key %s: no hosts entry matches host %s", Quote(rawURL), Quote(u.Host))
	}
	return string(st.Key.AppendPrimary(nil, u.Scheme, u.Host, pathOf(u), u.RawQuery)), nil
}

// PurgeURL returns the primary keys a purge of rawURL removes: the URL as
// its host's key rules normalize it, under http and under https.
func (s *Snapshot) PurgeURL(rawURL string) ([]string, error) {
	u, st, err := s.purgeTarget(rawURL)
	if err != nil {
		return nil, err
	}
	path := pathOf(u)
	return []string{
		string(st.Key.AppendPrimary(nil, "http", u.Host, path, u.RawQuery)),
		string(st.Key.AppendPrimary(nil, "https", u.Host, path, u.RawQuery)),
	}, nil
}

// PurgePrefix returns the scheme-less key prefix ("host/path") that a
// prefix purge of rawURL matches, under both schemes.
func (s *Snapshot) PurgePrefix(rawURL string) (string, error) {
	u, st, err := s.purgeTarget(rawURL)
	if err != nil {
		return "", err
	}
	k := string(st.Key.AppendPrimary(nil, "http", u.Host, pathOf(u), u.RawQuery))
	return strings.TrimPrefix(k, "http://"), nil
}

// PurgeHost returns the scheme-less key prefix ("host/") of everything
// cached for host, whatever the configuration: every site's key rules
// normalize host names alike.
func PurgeHost(host string) (string, error) {
	if strings.ContainsAny(host, "/?#@ \t") || host == "" {
		return "", fmt.Errorf("host %s is not a host name (with an optional port); give it without scheme or path, such as example.com", Quote(host))
	}
	k := string(hostKey.AppendPrimary(nil, "http", host, "/", ""))
	return strings.TrimPrefix(k, "http://"), nil
}

// hostKey normalizes host names the way every site's key rules do.
var hostKey = func() *cachekey.Normalizer {
	n, err := cachekey.Compile(cachekey.Rules{})
	if err != nil {
		panic(err)
	}
	return n
}()

// purgeTarget parses a URL a purge names and finds its site.
func (s *Snapshot) purgeTarget(rawURL string) (*url.URL, *Site, error) {
	if !strings.Contains(rawURL, "://") {
		return nil, nil, fmt.Errorf("URL %s has no scheme; give an absolute URL such as https://example.com/path", Quote(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("URL %s does not parse: %v", Quote(rawURL), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, nil, fmt.Errorf("URL %s: scheme %q is not http or https", Quote(rawURL), u.Scheme)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("URL %s has no host", Quote(rawURL))
	}
	st := s.Route(u.Host)
	if st == nil {
		return nil, nil, fmt.Errorf("URL %s: no hosts entry matches host %s, so nothing of it is cached", Quote(rawURL), Quote(u.Host))
	}
	return u, st, nil
}

// pathOf returns u's escaped path, "/" when it has none.
func pathOf(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// Quote quotes s for an error message: at most 200 bytes, control
// characters and double quotes replaced by '?'.
func Quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}
