package store

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func codecObject() *Object {
	o := &Object{
		Header:               NewHeader(http.Header{"Content-Type": {"text/html"}, "Etag": {`"x"`}, "Set-Cookie": {"a=1", "b=2"}}, "https://example.com/a?b"),
		Status:               203,
		ResponseTime:         time.Now().UnixNano(),
		InitialAge:           3 * time.Second,
		Lifetime:             time.Hour,
		StaleWhileRevalidate: time.Minute,
		StaleIfError:         2 * time.Minute,
		Keep:                 10 * time.Minute,
		Epoch:                42,
		Gen:                  7,
		NoCache:              true,
		StaleIfErrorOverride: true,
		Source:               3,
		Extra:                &Extra{Tags: []string{"t1", "t2"}, SurrogateControl: []string{"max-age=60"}},
	}
	o.soft.Store(true)
	return o
}

func TestCodecRoundTrip(t *testing.T) {
	for _, o := range []*Object{codecObject(), {Header: NewHeader(nil, "k"), Vary: &VaryIndex{Fields: []string{"Accept-Encoding"}, Gen: 9}}} {
		p := EncodeObject(nil, o)
		got, err := DecodeObject(p, Bytes("body"), 77)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key() != o.Key() || got.Status != o.Status || got.ResponseTime != o.ResponseTime || got.InitialAge != o.InitialAge ||
			got.Lifetime != o.Lifetime || got.StaleWhileRevalidate != o.StaleWhileRevalidate || got.StaleIfError != o.StaleIfError ||
			got.Keep != o.Keep || got.Epoch != o.Epoch || got.Gen != o.Gen || got.NoCache != o.NoCache || got.MustRevalidate != o.MustRevalidate ||
			got.StaleIfErrorOverride != o.StaleIfErrorOverride || got.Source != o.Source || got.SoftPurged() != o.SoftPurged() || got.LowerRef() != 77 {
			t.Fatalf("decoded %+v, want %+v", got, o)
		}
		if diff := cmp.Diff(o.Header.Clone(), got.Header.Clone()); diff != "" {
			t.Fatalf("header (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(o.Extra, got.Extra); diff != "" {
			t.Fatalf("extra (-want +got):\n%s", diff)
		}
		if (o.Vary == nil) != (got.Vary == nil) || (o.Vary != nil && (got.Vary.Gen != o.Vary.Gen || !cmp.Equal(got.Vary.Fields, o.Vary.Fields))) {
			t.Fatalf("vary %+v, want %+v", got.Vary, o.Vary)
		}
		// Every truncation is an error, never a panic.
		for i := range p {
			if _, err := DecodeObject(p[:i], nil, 0); err == nil {
				t.Fatalf("%d of %d bytes decoded without an error", i, len(p))
			}
		}
	}
}

// FuzzDecodeObject: metadata read back from a disk is untrusted: whatever
// the bytes, DecodeObject returns an object or an error, and what it
// returns encodes to the same bytes.
func FuzzDecodeObject(f *testing.F) {
	f.Add(EncodeObject(nil, codecObject()))
	f.Add(EncodeObject(nil, &Object{Header: NewHeader(nil, "k"), Vary: &VaryIndex{Fields: []string{"A"}}}))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		o, err := DecodeObject(p, nil, 0)
		if err != nil {
			return
		}
		again, err := DecodeObject(EncodeObject(nil, o), nil, 0)
		if err != nil || again.Key() != o.Key() || again.Status != o.Status || again.Header.Len() != o.Header.Len() {
			t.Fatalf("re-encoding a decoded object: %v", err)
		}
	})
}
