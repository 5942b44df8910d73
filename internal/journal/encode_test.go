package journal

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestAppendEventIsJSONMarshal: appendEvent writes the bytes
// json.Marshal writes, for what it writes itself and what it leaves to
// json.Marshal.
func TestAppendEventIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)
	for _, e := range []Event{
		{Time: at, Node: "node-0", Kind: PurgeApplied, Details: Details{"id": "node-1.17.42", "from": "node-1"}},
		{Time: at, Node: "n", Kind: PurgeAcked, Details: Details{"id": "a.1.2", "peer": "b", "latency_ms": int64(12), "pending": 3}},
		{Time: at, Node: "n", Kind: Reload},
		{Time: at, Node: "n", Kind: Reload, Details: Details{}},
		{Time: at.In(time.FixedZone("x", -7*3600)), Node: "n", Kind: ShedStart, Details: Details{"ok": true, "u": uint64(math.MaxUint64), "i": math.MinInt64}},
		{Time: at, Node: "n", Kind: FaultStart, Details: Details{"f": 1.5, "nan-free": 1e21, "s": "<b>&</b>", "q": `"\`, "u": "é\u2028", "bad": "\xff"}},
		{Time: at, Node: "<n>", Kind: "k\n", Details: Details{"<": 1}},
		{Time: at, Node: "n", Kind: LimitChanged, Details: Details{"list": []string{"a"}, "nil": nil}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Node: "n", Kind: Reload},
		{},
	} {
		want, wantErr := json.Marshal(e)
		got, err := appendEvent([]byte("prefix"), &e)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%+v: error %v, json.Marshal's %v", e, err, wantErr)
			continue
		}
		if wantErr == nil && string(got) != "prefix"+string(want) {
			t.Errorf("%+v:\n got %s\nwant prefix%s", e, got, want)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("node-0", "purge-applied", "id", "node-1.2.3", int64(5), true)
	f.Add("<", "k", "\x00", "\u2028", int64(-1), false)
	f.Fuzz(func(t *testing.T, node, kind, key, val string, n int64, b bool) {
		e := Event{Time: time.Unix(0, n).UTC(), Node: node, Kind: Kind(kind), Details: Details{key: val, key + "n": n, key + "b": b}}
		want, wantErr := json.Marshal(e)
		got, err := appendEvent(nil, &e)
		if (err != nil) != (wantErr != nil) || (err == nil && string(got) != string(want)) {
			t.Fatalf("%+v:\n got %s (%v)\nwant %s (%v)", e, got, err, want, wantErr)
		}
	})
}

func BenchmarkRecord(b *testing.B) {
	j := New(Options{Node: "node-0"})
	for b.Loop() {
		j.Record(PurgeApplied, Details{"id": "node-1.1733533333000000000.42", "from": "node-1"})
	}
}
