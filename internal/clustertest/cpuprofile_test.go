package clustertest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// cpuSample is one sample of a CPU profile: its stack's function names,
// leaf first, its string labels, and the CPU time it stands for.
type cpuSample struct {
	funcs  []string
	labels map[string]string
	cpu    time.Duration
}

// readCPUProfile reads the samples of a CPU profile as runtime/pprof
// writes it: a gzipped profile.proto (github.com/google/pprof's
// proto/profile.proto) whose second sample value is CPU nanoseconds. Only
// the fields it needs are read: sample (2) with location_id (1) and
// value (2) and label (3: key 1 and str 2), location (4) with id (1) and line (4) with function_id (1),
// function (5) with id (1) and name (2), and string_table (6). Repeated
// integers may come packed or one by one, as the encoder chooses.
func readCPUProfile(r io.Reader) ([]cpuSample, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	type sample struct {
		locs, vals []uint64
		labels     [][2]uint64 // string indexes of key and value
	}
	var (
		samples []sample
		locFns  = map[uint64][]uint64{} // location → function ids, leaf first
		fnName  = map[uint64]uint64{}   // function → string index
		strs    []string
	)
	err = protoFields(raw, func(field int, v uint64, b []byte) error {
		switch field {
		case 2:
			var s sample
			err := protoFields(b, func(f int, v uint64, b []byte) error {
				switch f {
				case 1:
					s.locs = appendInts(s.locs, v, b)
				case 2:
					s.vals = appendInts(s.vals, v, b)
				case 3:
					var kv [2]uint64
					err := protoFields(b, func(f int, v uint64, _ []byte) error {
						if f == 1 || f == 2 {
							kv[f-1] = v
						}
						return nil
					})
					s.labels = append(s.labels, kv)
					return err
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4:
			var id uint64
			var fns []uint64
			err := protoFields(b, func(f int, v uint64, b []byte) error {
				switch f {
				case 1:
					id = v
				case 4:
					return protoFields(b, func(f int, v uint64, _ []byte) error {
						if f == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			locFns[id] = fns
			return err
		case 5:
			var id, name uint64
			err := protoFields(b, func(f int, v uint64, _ []byte) error {
				switch f {
				case 1:
					id = v
				case 2:
					name = v
				}
				return nil
			})
			fnName[id] = name
			return err
		case 6:
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	out := make([]cpuSample, 0, len(samples))
	for _, s := range samples {
		if len(s.vals) < 2 {
			return nil, errors.New("profile: a sample has fewer than two values; not a CPU profile")
		}
		cs := cpuSample{cpu: time.Duration(s.vals[1])}
		for _, kv := range s.labels {
			if kv[0] < uint64(len(strs)) && kv[1] < uint64(len(strs)) {
				if cs.labels == nil {
					cs.labels = make(map[string]string, len(s.labels))
				}
				cs.labels[strs[kv[0]]] = strs[kv[1]]
			}
		}
		for _, l := range s.locs {
			for _, f := range locFns[l] {
				if i := fnName[f]; i < uint64(len(strs)) {
					cs.funcs = append(cs.funcs, strs[i])
				}
			}
		}
		out = append(out, cs)
	}
	return out, nil
}

// appendInts appends a repeated integer field's value: v when it came
// alone, the varints of b when packed.
func appendInts(to []uint64, v uint64, b []byte) []uint64 {
	if b == nil {
		return append(to, v)
	}
	for len(b) > 0 {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return to
		}
		to = append(to, x)
		b = b[n:]
	}
	return to
}

// protoFields calls fn with each field of a protobuf message: its number
// and its value, v for a varint, b (non-nil) for a length-delimited one.
// Fixed-size fields are skipped.
func protoFields(m []byte, fn func(field int, v uint64, b []byte) error) error {
	for len(m) > 0 {
		key, n := binary.Uvarint(m)
		if n <= 0 {
			return errors.New("truncated field key")
		}
		m = m[n:]
		field, wire := int(key>>3), key&7
		switch wire {
		case 0:
			v, n := binary.Uvarint(m)
			if n <= 0 {
				return fmt.Errorf("truncated varint in field %d", field)
			}
			m = m[n:]
			if err := fn(field, v, nil); err != nil {
				return err
			}
		case 1:
			if len(m) < 8 {
				return fmt.Errorf("truncated fixed64 in field %d", field)
			}
			m = m[8:]
		case 2:
			l, n := binary.Uvarint(m)
			if n <= 0 || uint64(len(m)-n) < l {
				return fmt.Errorf("truncated bytes in field %d", field)
			}
			b := m[n : n+int(l)]
			m = m[n+int(l):]
			if b == nil {
				b = []byte{}
			}
			if err := fn(field, 0, b); err != nil {
				return err
			}
		case 5:
			if len(m) < 4 {
				return fmt.Errorf("truncated fixed32 in field %d", field)
			}
			m = m[4:]
		default:
			return fmt.Errorf("wire type %d of field %d is not supported", wire, field)
		}
	}
	return nil
}

// spin burns CPU in a function of its own, for the test below to find.
//
//go:noinline
func spin(d time.Duration) int {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 1000 {
			x += i * i
		}
	}
	return x
}

// TestReadCPUProfile reads a real profile of runtime/pprof and finds in
// it the function that burnt the CPU, with most of the time.
func TestReadCPUProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("a CPU profile is already running: %v", err)
	}
	pprof.Do(context.Background(), pprof.Labels("who", "spinner"), func(context.Context) { spin(300 * time.Millisecond) })
	pprof.StopCPUProfile()
	samples, err := readCPUProfile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var total, spun, labelled time.Duration
	for _, s := range samples {
		total += s.cpu
		if s.labels["who"] == "spinner" {
			labelled += s.cpu
		}
		for _, f := range s.funcs {
			if strings.HasSuffix(f, "clustertest.spin") {
				spun += s.cpu
				break
			}
		}
	}
	if spun < 100*time.Millisecond || spun > total {
		t.Fatalf("spin took %v of %v in the profile, want most of 300ms", spun, total)
	}
	if labelled < spun*9/10 {
		t.Errorf("%v of spin's %v carry its label", labelled, spun)
	}
	if _, err := readCPUProfile(bytes.NewReader([]byte("not gzip"))); err == nil {
		t.Fatal("a profile that is not gzipped was read without error")
	}
}
