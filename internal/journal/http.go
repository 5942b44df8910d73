package journal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// TimeHeader carries, on every /debug/events answer, the node's wall
// clock when it wrote the answer (RFC 3339 with nanoseconds): replay
// estimates each node's clock skew from it.
const TimeHeader = "Weir-Time"

// ParseQuery reads the query of GET /debug/events: since and until, RFC
// 3339 times (both optional, since not after until), and kind, a comma
// list of kinds (optional). Any other parameter, a repeated one, or a
// value that does not parse is an error that says which and what to send.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	for name, vals := range v {
		switch name {
		case "since", "until", "kind":
		default:
			return q, fmt.Errorf("unknown parameter %q: /debug/events takes since, until (RFC 3339 times) and kind (a comma list)", name)
		}
		if len(vals) > 1 {
			return q, fmt.Errorf("parameter %s given %d times; give it once (kind takes a comma list)", name, len(vals))
		}
	}
	var err error
	if q.Since, err = parseTime("since", v.Get("since")); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", v.Get("until")); err != nil {
		return q, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, fmt.Errorf("until %s is before since %s", q.Until.Format(time.RFC3339Nano), q.Since.Format(time.RFC3339Nano))
	}
	if s := v.Get("kind"); s != "" {
		for k := range strings.SplitSeq(s, ",") {
			kind := Kind(strings.TrimSpace(k))
			if !kind.Known() {
				return q, fmt.Errorf("kind %q is not an event kind; the kinds are %s", truncate(string(kind)), kindList())
			}
			if !slices.Contains(q.Kinds, kind) {
				q.Kinds = append(q.Kinds, kind)
			}
		}
	}
	return q, nil
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time; write it as 2026-01-02T15:04:05Z or with an offset, 2026-01-02T16:04:05.5+01:00", name, truncate(s))
	}
	return t, nil
}

// truncate keeps messages short whatever the client sent.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Values returns q as /debug/events's query parameters.
func (q Query) Values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if len(q.Kinds) > 0 {
		s := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			s[i] = string(k)
		}
		v.Set("kind", strings.Join(s, ","))
	}
	return v
}

// Handler serves GET /debug/events from j: the selected events as JSON
// lines (application/x-ndjson), oldest first, and TimeHeader; a query
// that does not parse is answered 400 with a JSON error. It guards
// nothing: the admin listener puts it behind the viewer role.
func Handler(j *Journal) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseQuery(r.URL.Query())
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(struct {
				Error string `json:"error"`
			}{"/debug/events: " + err.Error()})
			return
		}
		lines := j.Lines(q)
		h := w.Header()
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set(TimeHeader, j.now().Format(time.RFC3339Nano))
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				return // the client went away
			}
		}
	})
}
