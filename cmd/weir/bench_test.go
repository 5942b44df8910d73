package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/bench"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/demo"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/testkit"
)

// benchNode starts a node in front of the demo origin, with a token of
// the purge role (which may read /metrics too).
func benchNode(t *testing.T, token string) *node.Node {
	t.Helper()
	origin := httptest.NewServer(demo.NewOrigin())
	t.Cleanup(origin.Close)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("bench purge "+admin.HashToken(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL)
	cfg.AdminTokensFile = tokens
	cfg.Server.ShutdownDelay = 0
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

func runBench(t *testing.T, args ...string) *bench.Result {
	t.Helper()
	code, out, errOut := runCmd(append([]string{"bench"}, args...)...)
	if code != 0 {
		t.Fatalf("weir bench %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("weir bench --json printed %q: %v", out, err)
	}
	return &res
}

// TestBenchAgainstNode runs weir bench for real against a node and the
// demo origin, and reads its JSON.
func TestBenchAgainstNode(t *testing.T) {
	n := benchNode(t, "s3cret")
	t.Setenv("WEIR_TOKEN", "s3cret")
	edge, adminURL := "http://"+n.EdgeAddr()+"/static", "http://"+n.AdminAddr()

	// At most 16 in flight: below the adaptive limit's start (64), so that
	// the node sheds nothing and every response is a 2xx.
	res := runBench(t, "--requests", "300", "--rate", "500", "--concurrency", "16", "--json", "--admin", adminURL, edge)
	k := res.SentByKind
	overload := res.Errors["overload_client"]
	if res.Scheduled != 300 || res.Sent+overload != 300 || res.Answered != res.Sent || res.Errors["total"] != overload {
		t.Fatalf("scheduled %d sent %d answered %d errors %v status %v: want 300 requests answered, the purges allowed", res.Scheduled, res.Sent, res.Answered, res.Errors, res.Status)
	}
	if k["hit"]+k["miss"]+k["pass"]+k["purge"] != res.Sent {
		t.Errorf("sent_by_kind %v: want it to add up to %d", k, res.Sent)
	}
	// On a machine slow enough to drop requests (the race detector on
	// shared cores), a kind may be left with none.
	if overload == 0 && (k["hit"] == 0 || k["miss"] == 0 || k["pass"] == 0 || k["purge"] == 0) {
		t.Errorf("sent_by_kind %v: want every kind of the default mix", k)
	}
	c := res.Cache
	if c.Hit+c.Miss+c.Stale+c.Revalidated+c.Pass+c.Unknown != k["hit"]+k["miss"] || c.Sources["cache-status"] != k["hit"]+k["miss"] || c.Miss < k["miss"] {
		t.Errorf("cache %+v: want every GET classified from Cache-Status, each new key a miss", c)
	}
	o := res.Origin
	// Every miss key and every POST reached the origin at least once.
	if !o.Known || o.Requests == nil || *o.Requests < k["miss"]+k["pass"] || o.RequestsPerObject == nil {
		t.Errorf("origin %+v: want known, at least %d requests", o, k["miss"]+k["pass"])
	}
	if res.Latency.Count != res.Answered || !(res.Latency.P50 <= res.Latency.P99 && res.Latency.P99 <= res.Latency.Max) || res.Latency.Max <= 0 {
		t.Errorf("latency %+v", res.Latency)
	}

	// The same run twice without purges asks for the same keys: the
	// second finds the first's stored.
	args := []string{"--requests", "200", "--rate", "500", "--concurrency", "16", "--mix", "hit=9,miss=1", "--seed", "7", "--json", edge}
	runBench(t, args...)
	again := runBench(t, args...)
	if again.Cache.HitRatio == nil || *again.Cache.HitRatio < 0.5 || again.Origin.Known {
		t.Errorf("second run: cache %+v origin %+v, want most lookups hits and the origin unknown without --admin", again.Cache, again.Origin)
	}
}

func TestBenchUsage(t *testing.T) {
	t.Setenv("WEIR_TOKEN", "")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no URL"},
		{[]string{"--rate", "0", "http://127.0.0.1:1/"}, 2, "--rate 0"},
		{[]string{"--rate", "2e6", "--duration", "48h", "http://127.0.0.1:1/"}, 2, "--duration 48h0m0s"},
		{[]string{"--mix", "hit=1,bogus=2", "http://127.0.0.1:1/"}, 2, `unknown kind "bogus"`},
		{[]string{"--header", "nocolon", "http://127.0.0.1:1/"}, 2, `--header "nocolon"`},
		{[]string{"--concurrency", "0", "http://127.0.0.1:1/"}, 2, "must be above 0"},
		{[]string{"127.0.0.1:8080"}, 2, "want an http:// or https:// URL"},
		{[]string{"--admin", "127.0.0.1:9090", "http://127.0.0.1:1/"}, 2, "--admin"},
		{[]string{"http://127.0.0.1:1/", "--nope"}, 2, "flag provided but not defined"},
	} {
		code, _, errOut := runCmd(append([]string{"bench"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("weir bench %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// TestBenchNothingAnswers: a target that refuses connections is exit 1,
// with the report and the connect errors, after a bounded run.
func TestBenchNothingAnswers(t *testing.T) {
	t.Setenv("WEIR_TOKEN", "")
	addr := testkit.FreeAddr(t) // nothing listens there
	code, out, errOut := runCmd("bench", "--requests", "3", "--mix", "hit=1", "http://"+addr+"/", "--rate", "100")
	if code != 1 || !strings.Contains(errOut, "no response from http://"+addr) || !strings.Contains(errOut, "connect 3") || !strings.Contains(out, "errors    3: connect 3") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}
