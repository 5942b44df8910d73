package journal

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// appendEvent appends e's JSON line (without the newline) to b: the
// same bytes as json.Marshal(e), which it falls back to for what it does
// not write itself (a string that needs escaping, a float, a value of
// another type, a year outside 0–9999). Purges record an event for every
// purge applied and acknowledged, tens of thousands a second in a burst,
// and json.Marshal's reflection over the details map was the largest part
// of their cost.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return appendMarshal(b, e)
	}
	if !plainString(e.Node) || !plainString(string(e.Kind)) {
		return appendMarshal(b, e)
	}
	start := len(b)
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":"`...)
	b = append(b, e.Node...)
	b = append(b, `","kind":"`...)
	b = append(b, e.Kind...)
	b = append(b, '"')
	if len(e.Details) > 0 {
		b = append(b, `,"details":{`...)
		var keys [8]string
		ks := keys[:0]
		for k := range e.Details {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		for i, k := range ks {
			if !plainString(k) {
				return appendMarshal(b[:start], e)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":`...)
			var ok bool
			if b, ok = appendValue(b, e.Details[k]); !ok {
				return appendMarshal(b[:start], e)
			}
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendValue appends v as json.Marshal writes it, when it is a plain
// string, an integer or a bool; ok is false otherwise.
func appendValue(b []byte, v any) (_ []byte, ok bool) {
	switch v := v.(type) {
	case string:
		if !plainString(v) {
			return b, false
		}
		b = append(b, '"')
		b = append(b, v...)
		return append(b, '"'), true
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case int32:
		return strconv.AppendInt(b, int64(v), 10), true
	case uint64:
		return strconv.AppendUint(b, v, 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), true
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), true
	case bool:
		return strconv.AppendBool(b, v), true
	}
	return b, false
}

// plainString reports whether json.Marshal writes s as it is between
// quotes: printable ASCII but the quote, the backslash and the three it
// escapes for HTML (<, >, &).
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendMarshal(b []byte, e *Event) ([]byte, error) {
	line, err := json.Marshal(e)
	if err != nil {
		return b, err
	}
	return append(b, line...), nil
}
