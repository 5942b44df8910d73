package httpcache

// Limits of ParseSurrogateKeys.
const (
	MaxSurrogateKeyLen = 256 // bytes in one tag
	MaxSurrogateKeys   = 128 // tags kept from one response
)

// ParseSurrogateKeys splits Surrogate-Key field lines into tags (space-separated, deduplicated, order kept),
// dropping tags longer than 256 bytes or containing control characters, and keeping at most 128 tags.
//
// SP and HTAB both separate tags. It returns nil when there is no tag.
func ParseSurrogateKeys(values []string) []string {
	var out []string
	for _, line := range values {
		for i := 0; i < len(line); {
			for i < len(line) && isOWS(line[i]) {
				i++
			}
			start := i
			valid := true
			for i < len(line) && !isOWS(line[i]) {
				if c := line[i]; c < 0x20 || c == 0x7f {
					valid = false
				}
				i++
			}
			tag := line[start:i]
			if tag == "" || !valid || len(tag) > MaxSurrogateKeyLen || containsString(out, tag) {
				continue
			}
			out = append(out, tag)
			if len(out) == MaxSurrogateKeys {
				return out
			}
		}
	}
	return out
}
