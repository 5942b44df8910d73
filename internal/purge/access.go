package purge

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weir-cdn/weir/internal/admin"
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
// req needs (see Need). A refused purge is answered 403 and audited.
func (s *Service) permit(w http.ResponseWriter, rec *admin.AuditRecord, who admin.Principal, req *Request) bool {
	if need, item := s.Need(req); !who.Role.Allows(need) {
		s.fail(w, rec, http.StatusForbidden, fmt.Sprintf(
			"%s purges everything cached for a host, which needs role %s; token %q has role %s: purge URLs, narrower prefixes or tags, or use a token with role %s",
			item, need, who.Name, who.Role, need))
		return false
	}
	return true
}
