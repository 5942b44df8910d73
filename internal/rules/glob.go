package rules

import (
	"fmt"
	"strings"
)

// globPattern is a compiled path glob: "*" matches a run of bytes other
// than "/", "**" any run, "?" one byte other than "/".
type globPattern struct {
	pattern string
	fold    bool
}

// globProblem returns why p is not a usable path glob, or "".
func globProblem(p string) string {
	switch {
	case p == "":
		return "empty"
	case p[0] != '/' && p[0] != '*':
		return fmt.Sprintf("%q must start with \"/\" (or a \"*\")", p)
	case strings.Contains(p, "***"):
		return fmt.Sprintf("%q has \"***\"; use \"*\" within a segment or \"**\" across segments", p)
	case len(p) > 1024:
		return "is longer than 1024 bytes"
	}
	return ""
}

// match reports whether s matches the glob. It runs without recursion
// in O(len(pattern)·len(s)): on a mismatch it backtracks to the last
// "**" or, within its segment, to the last "*".
func (g *globPattern) match(s string) bool {
	p := g.pattern
	px, sx := 0, 0
	// The resume points of the last "*" (within a segment) and of the
	// last "**".
	starPx, starSx := -1, -1
	dblPx, dblSx := -1, -1
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; {
			case c == '*' && px+1 < len(p) && p[px+1] == '*':
				dblPx, dblSx = px, sx+1
				starPx = -1
				px += 2
				continue
			case c == '*':
				starPx, starSx = px, sx+1
				px++
				continue
			case c == '?':
				if sx < len(s) && s[sx] != '/' {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && (s[sx] == c || g.fold && lower(s[sx]) == lower(c)) {
					px++
					sx++
					continue
				}
			}
		}
		// Mismatch: let the last "*" absorb one more byte if it is not a
		// "/", else the last "**" absorb one more.
		if starPx >= 0 && starSx <= len(s) && s[starSx-1] != '/' {
			px, sx = starPx, starSx
			continue
		}
		if dblPx >= 0 && dblSx <= len(s) {
			px, sx = dblPx, dblSx
			starPx = -1
			continue
		}
		return false
	}
	return true
}

// valueMatch reports whether v matches pattern, a glob where "*" is any
// run of bytes and "?" one byte; a pattern without them must equal v.
func valueMatch(pattern string, glob bool, v string) bool {
	if !glob {
		return pattern == v
	}
	px, vx := 0, 0
	starPx, starVx := -1, -1
	for px < len(pattern) || vx < len(v) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starVx = px, vx+1
				px++
				continue
			case '?':
				if vx < len(v) {
					px++
					vx++
					continue
				}
			default:
				if vx < len(v) && v[vx] == c {
					px++
					vx++
					continue
				}
			}
		}
		if starPx >= 0 && starVx <= len(v) {
			px, vx = starPx, starVx
			continue
		}
		return false
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with prefix, ASCII letters
// compared without case when fold is set.
func hasPrefixFold(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if !fold {
		return s[:len(prefix)] == prefix
	}
	return equalFold(s[:len(prefix)], prefix)
}

// equalFold reports whether a and b are equal up to ASCII case.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}
