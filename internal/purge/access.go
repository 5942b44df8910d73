package purge

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
)

// Need returns the role a purge needs, and for operator the item that
// needs it (as "hosts[0] \"example.com\""): purging everything cached
// for a host — a host purge, a prefix purge of a host's root, or a purge
// of everything — needs RoleOperator; URLs, narrower prefixes and tags
// need RolePurge. A prefix is judged by its cache key, as the host's key
// rules normalize it (so "https://Example.com" and
// "https://example.com/?" are the root when the rules make them so); a
// prefix that does not map to a key is left to Issue, which refuses it.
func (s *Service) Need(req *Request) (admin.Role, string) {
	if req.All {
		return admin.RoleOperator, `"all": true`
	}
	if len(req.Hosts) > 0 {
		return admin.RoleOperator, fmt.Sprintf("hosts[0] %q", clip(req.Hosts[0]))
	}
	for i, p := range req.Prefixes {
		k, err := s.opt.Keys.PurgePrefix(p)
		if err == nil && isHostRoot(k) {
			return admin.RoleOperator, fmt.Sprintf("prefixes[%d] %q (the root of its host)", i, clip(p))
		}
	}
	return admin.RolePurge, ""
}

// isHostRoot reports whether a scheme-less key prefix ("host/path") is
// a host's root, "host/": a prefix purge of it purges the whole host.
func isHostRoot(prefix string) bool {
	i := strings.IndexByte(prefix, '/')
	return i >= 0 && prefix[i:] == "/"
}

// permit checks that who may make the purge req: its role allows what
// req needs (see Need), and, for a scoped token, every item is within its
// scope (see OutOfScope). A refused purge is answered 403 and audited.
func (s *Service) permit(w http.ResponseWriter, rec *admin.AuditRecord, who admin.Principal, req *Request) bool {
	if err := req.Validate(); err != nil { // its shape first, as Issue checks it: a bad request is the same 400 for every token
		s.fail(w, rec, http.StatusBadRequest, fmt.Errorf("%w: %w", ErrInvalid, err).Error())
		return false
	}
	if need, item := s.Need(req); !who.Role.Allows(need) {
		s.fail(w, rec, http.StatusForbidden, fmt.Sprintf(
			"%s purges everything cached for a host, which needs role %s; token %q has role %s: purge URLs, narrower prefixes or tags, or use a token with role %s",
			item, need, who.Name, who.Role, need))
		return false
	}
	if !who.Scoped() {
		return true
	}
	item, err := s.OutOfScope(req, *who.Scope)
	switch {
	case err != nil:
		s.fail(w, rec, http.StatusBadRequest, err.Error())
		return false
	case item != "":
		s.fail(w, rec, http.StatusForbidden, fmt.Sprintf(
			"%s is outside the scope of token %q (%s): a scoped token may purge only within its scope; purge that item with a token whose scope covers it",
			item, who.Name, who.Scope))
		return false
	}
	return true
}

// OutOfScope returns the first item of req that scope does not cover, as
// "urls[2] \"https://example.com/a\"", or "" when scope covers them all
// (see captoken.Scope for the rule). Items are judged by the cache keys
// they purge, as the host's key rules normalize them; an item that does
// not map to a key is an error, as it would be for Issue.
func (s *Service) OutOfScope(req *Request, scope captoken.Scope) (string, error) {
	if req.All {
		return `"all": true`, nil
	}
	for i, u := range req.URLs {
		keys, err := s.opt.Keys.PurgeURL(u)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		for _, k := range keys {
			if host, path := splitKey(k); !scope.URL(host, path) {
				return fmt.Sprintf("urls[%d] %q", i, clip(u)), nil
			}
		}
	}
	for i, p := range req.Prefixes {
		k, err := s.opt.Keys.PurgePrefix(p)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if host, path := splitKey(k); !scope.Prefix(host, path) {
			return fmt.Sprintf("prefixes[%d] %q", i, clip(p)), nil
		}
	}
	for i, h := range req.Hosts {
		k, err := s.opt.Keys.PurgeHost(h)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if host, _ := splitKey(k); !scope.Host(host) {
			return fmt.Sprintf("hosts[%d] %q", i, clip(h)), nil
		}
	}
	for i, t := range req.Tags {
		if !scope.Tag(t) {
			return fmt.Sprintf("tags[%d] %q", i, clip(t)), nil
		}
	}
	return "", nil
}

// splitKey splits a cache key ("http://host/path?query") or a key prefix
// ("host/path") into its host and the rest, which starts with '/'.
func splitKey(k string) (host, path string) {
	if _, rest, ok := strings.Cut(k, "://"); ok {
		k = rest
	}
	i := strings.IndexByte(k, '/')
	if i < 0 {
		return k, "/"
	}
	return k[:i], k[i:]
}
