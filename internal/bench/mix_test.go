package bench

import (
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Mix
		err  string
	}{
		{in: "hit=90,miss=5,pass=4,purge=1", want: DefaultMix},
		{in: " HIT=1 , miss=0 ", want: Mix{KindHit: 1}},
		{in: "purge=3", want: Mix{KindPurge: 3}},
		{in: "hit=90,,miss=10,", want: Mix{KindHit: 90, KindMiss: 10}},
		{in: "", err: "no weight above 0"},
		{in: "hit=0", err: "no weight above 0"},
		{in: "hit", err: `"hit": want kind=weight`},
		{in: "hits=3", err: `unknown kind "hits"`},
		{in: "hit=1,hit=2", err: "hit given twice"},
		{in: "miss=-1", err: "want an integer from 0 to 1000000"},
		{in: "miss=1.5,pass=x", err: `weight "x"`},
		{in: "miss=99999999", err: "want an integer"},
	} {
		got, err := ParseMix(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseMix(%q) = %v, %v; want an error mentioning %q", c.in, got, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("ParseMix(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	// Both weights of "miss=1.5,pass=x" are reported at once.
	if _, err := ParseMix("miss=1.5,pass=x"); err == nil || !strings.Contains(err.Error(), `"1.5"`) {
		t.Errorf("every problem is not reported: %v", err)
	}
}

func TestMixPick(t *testing.T) {
	m := Mix{KindHit: 2, KindPass: 1, KindPurge: 1}
	var got [numKinds]int
	for r := range m.total() {
		got[m.pick(r)]++
	}
	if got != [numKinds]int{2, 0, 1, 1} {
		t.Errorf("picks over the whole range = %v, want the weights", got)
	}
}

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"hit=90,miss=5,pass=4,purge=1", "hit", "=", "hit=1,hit=1", "purge=1000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		if m.total() <= 0 {
			t.Fatalf("ParseMix(%q) = %v with no weight", s, m)
		}
		again, err := ParseMix(m.String())
		if err != nil || again != m {
			t.Fatalf("ParseMix(%q) = %v; its String %q parses as %v, %v", s, m, m.String(), again, err)
		}
	})
}
