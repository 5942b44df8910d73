package upgrade

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHandoffRoundTrip(t *testing.T) {
	h := handoff{Control: 3, Listeners: []inherited{
		{Name: "edge", FD: 4, Network: "tcp", Addr: ":8080", Bound: "[::]:8080"},
		{Name: "admin", FD: 5, Network: "tcp", Addr: "127.0.0.1:9090", Bound: "127.0.0.1:9090"},
	}, Seeds: []string{"10.0.0.2:7946"}}
	got, err := parseHandoff(h.encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-sent +parsed):\n%s", diff)
	}
}

func TestParseHandoffRefuses(t *testing.T) {
	edge := `{"name":"edge","fd":4,"network":"tcp","addr":":1","bound":"[::]:1"}`
	for _, tc := range []struct{ in, want string }{
		{``, "is not a handoff"},
		{`{"control":3} {}`, "trailing data"},
		{`{"control":3,"extra":1}`, `unknown field "extra"`},
		{`{"control":2}`, "control descriptor 2: want 3 or more"},
		{`{"control":3,"listeners":[{"fd":4,"network":"tcp"}]}`, "listeners[0]: no name"},
		{`{"control":3,"listeners":[` + edge + `,` + strings.Replace(edge, `"fd":4`, `"fd":5`, 1) + `]}`, `listeners[1]: "edge" handed over twice`},
		{`{"control":4,"listeners":[` + edge + `]}`, "listeners[0] (edge): descriptor 4 used twice"},
		{`{"control":3,"listeners":[{"name":"edge","fd":1,"network":"tcp"}]}`, "descriptor 1: want 3 to 67"},
		{`{"control":3,"listeners":[{"name":"edge","fd":4,"network":"udp"}]}`, `network "udp": want tcp`},
		{`{"control":3,"seeds":["10.0.0.1"]}`, "seeds[0]: address 10.0.0.1: missing port"},
	} {
		_, err := parseHandoff(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseHandoff(%s): %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestInheritedMatches(t *testing.T) {
	l := inherited{Name: "edge", Network: "tcp", Addr: ":8080", Bound: "[::]:8080"}
	lo := inherited{Name: "admin", Network: "tcp", Addr: "127.0.0.1:0", Bound: "127.0.0.1:41234"}
	for _, tc := range []struct {
		l       inherited
		network string
		addr    string
		want    bool
	}{
		{l, "tcp", ":8080", true},        // the same request
		{l, "tcp", "0.0.0.0:8080", true}, // another spelling of every address
		{l, "tcp", "[::]:8080", true},    // the bound address
		{l, "tcp", ":8081", false},       // another port
		{l, "tcp", "127.0.0.1:8080", false},
		{l, "tcp4", ":8080", false},
		{lo, "tcp", "127.0.0.1:0", true}, // any port: the one bound
		{lo, "tcp", "127.0.0.1:41234", true},
		{lo, "tcp", "127.0.0.2:41234", false},
		{lo, "tcp", "not an address", false},
	} {
		if got := tc.l.matches(tc.network, tc.addr); got != tc.want {
			t.Errorf("%s listener (asked %s, bound %s) matches %s %s = %v, want %v", tc.l.Name, tc.l.Addr, tc.l.Bound, tc.network, tc.addr, got, tc.want)
		}
	}
}

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want message
		err  string
	}{
		{in: "ok", want: message{verb: "ok"}},
		{in: "error the port is taken", want: message{verb: "error", arg: "the port is taken"}},
		{in: "release gossip", want: message{verb: "release", arg: "gossip"}},
		{in: "ready 4242", want: message{verb: "ready", arg: "4242"}},
		{in: "ok then", err: "ok takes nothing"},
		{in: "release", err: "want release WHAT"},
		{in: "release two things", err: "want release WHAT"},
		{in: "ready -1", err: "want ready PID"},
		{in: "ready", err: "want ready PID"},
		{in: "shutdown", err: "unknown message"},
		{in: strings.Repeat("x", maxLine+1), err: "more than 4096"},
	} {
		got, err := parseMessage(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseMessage(%.40q): %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMessage(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseHandoff: any value is refused or parses to a handoff that
// encodes and parses back to itself.
func FuzzParseHandoff(f *testing.F) {
	f.Add(`{"control":3,"listeners":[{"name":"edge","fd":4,"network":"tcp","addr":":8080","bound":"[::]:8080"}],"seeds":["10.0.0.2:7946"]}`)
	f.Add(`{"control":3}`)
	f.Add(`{"control":3,"listeners":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHandoff(s)
		if err != nil {
			return
		}
		again, err := parseHandoff(h.encode())
		if err != nil {
			t.Fatalf("a parsed handoff does not parse back: %v", err)
		}
		if diff := cmp.Diff(h, again); diff != "" {
			t.Fatalf("round trip changed the handoff:\n%s", diff)
		}
	})
}

// FuzzParseMessage: any line is refused or parses to a message whose
// text parses back to it.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"ok", "error x y", "release gossip", "ready 12", "ready 0x1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMessage(s)
		if err != nil {
			return
		}
		again, err := parseMessage(m.String())
		if err != nil || again != m {
			t.Fatalf("%q parsed to %+v, whose text parses to %+v, %v", s, m, again, err)
		}
	})
}
