package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Describe says, in short phrases an operator reads, what rule i does
// when it matches: its route, header actions, redirect or response, and
// cache settings, in that order. It allocates; it is for explaining, not
// for the request path.
func (s *Set) Describe(i int) []string {
	c := &s.rules[i]
	var out []string
	if c.hasRoute {
		d := "route to origin " + quoteOr(c.route.Origin, "(the host's)")
		if c.route.StripPrefix != "" {
			d += ", strip path prefix " + fmt.Sprintf("%q", c.route.StripPrefix)
		}
		if c.route.AddPrefix != "" {
			d += ", add path prefix " + fmt.Sprintf("%q", c.route.AddPrefix)
		}
		out = append(out, d)
	}
	if d := headerOps("request", c.reqRemove, reqOpNames(c.reqSet), reqOpNames(c.reqAdd)); d != "" {
		out = append(out, d)
	}
	if d := headerOps("response", c.respRemove, respOpNames(c.respSet), respOpNames(c.respAdd)); d != "" {
		out = append(out, d)
	}
	if c.redirect != nil {
		out = append(out, fmt.Sprintf("redirect %d to %q", c.redirStatus, c.redirLoc))
	}
	if c.respond != nil {
		out = append(out, fmt.Sprintf("respond %d (%d bytes of %s)", c.respond.Status, len(c.respond.Body), c.respond.ContentType))
	}
	if c.hasCache {
		var parts []string
		if c.cache.Bypass {
			parts = append(parts, "bypass the cache")
		}
		if c.cache.TTL > 0 {
			parts = append(parts, "ttl "+c.cache.TTL.String())
		}
		switch {
		case c.cache.StaleIfError > 0:
			parts = append(parts, "stale_if_error "+c.cache.StaleIfError.String())
		case c.cache.StaleIfError < 0:
			parts = append(parts, "no stale_if_error")
		}
		if len(parts) > 0 {
			out = append(out, "cache: "+strings.Join(parts, ", "))
		}
	}
	if !c.keySafe && (c.hasRoute || c.reqFields || c.cache.TTL != 0 || c.cache.StaleIfError != 0) {
		out = append(out, "changes what is fetched on conditions the cache key does not hold: where that change is in force, requests bypass the cache (rule-not-keyed)")
	}
	return out
}

// Matches returns the indexes of the rules m matched, in rule order.
func (s *Set) Matches(m *Result) []int {
	var out []int
	if s == nil {
		return nil
	}
	for i := range s.rules {
		if m.matched.has(i) {
			out = append(out, i)
		}
	}
	return out
}

func quoteOr(s, none string) string {
	if s == "" {
		return none
	}
	return fmt.Sprintf("%q", s)
}

func headerOps(which string, remove, set, add []string) string {
	var parts []string
	if len(remove) > 0 {
		parts = append(parts, "remove "+strings.Join(remove, ", "))
	}
	if len(set) > 0 {
		parts = append(parts, "set "+strings.Join(set, ", "))
	}
	if len(add) > 0 {
		parts = append(parts, "add "+strings.Join(add, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return which + " headers: " + strings.Join(parts, "; ")
}

func reqOpNames(ops []reqOp) []string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.name
	}
	slices.Sort(names)
	return names
}

func respOpNames(ops []respOp) []string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.name
	}
	slices.Sort(names)
	return names
}
