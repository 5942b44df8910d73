package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/weir-cdn/weir/internal/clustertest"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/testkit"
)

// chromium returns the path of a Chromium (or Chrome) binary. Without
// one, the browser test fails in CI (CI=true: .ci/run installs Debian's
// chromium package, so a missing browser is a broken CI, not a reason
// to pass) and when WEIR_BROWSER_TESTS=1 asks for it; elsewhere it is
// skipped with a message saying how to run it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" || os.Getenv("WEIR_BROWSER_TESTS") == "1" {
		t.Fatal("no Chromium on PATH (chromium, chromium-browser, google-chrome): install it with `apt-get install -y chromium`; the dashboard's browser test must run in CI")
	}
	t.Skip("no Chromium on PATH: install it with `apt-get install -y chromium` to run the dashboard's browser test (it is required in CI, and with WEIR_BROWSER_TESTS=1)")
	return ""
}

// artifacts returns the directory for the test's screenshots:
// $WEIR_ARTIFACTS (CI sets /tmp/weir-artifacts), else a temporary one.
func artifacts(t *testing.T) string {
	dir := os.Getenv("WEIR_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory %s (WEIR_ARTIFACTS): %v", dir, err)
	}
	return dir
}

// TestDashboardInChromium opens a real node's dashboard in headless
// Chromium with tokens configured: it logs in with a viewer token, sees
// the numbers move with traffic, the cluster's private aggregates (both
// members' releases), a purge with its acknowledgements by
// the other member, and an origin's breaker opening; no console error or
// uncaught exception is allowed along the way.
func TestDashboardInChromium(t *testing.T) {
	browser := chromium(t)

	var failing atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			panic(http.ErrAbortHandler) // the connection is cut: a gateway failure
		}
		w.Header().Set("Cache-Control", "max-age=300")
		if strings.HasPrefix(r.URL.Path, "/private/") {
			w.Header().Set("Set-Cookie", "session=1")
		}
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer origin.Close()
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, Origin: origin.URL, NoTieredFill: true,
		Configure: func(i int, cfg *config.Config) {
			// The breaker stays open once open, for the page to show it.
			cfg.Origins[0].Breaker.Delay = config.Duration(time.Hour)
			// The private aggregates, over windows short enough to show.
			cfg.Privacy = config.Privacy{Enabled: true, Epsilon: 100, Window: config.Duration(time.Second)}
		}})
	n0 := c.Node(0)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 2200))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()

	var mu sync.Mutex
	var problems []string
	listener := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, "console."+string(e.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(listener))
	defer cancel()
	// The first Run starts the browser, which lives as long as ctx: the
	// deadlines go on each step instead.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", browser, err)
	}
	step := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, d) }
	noProblems := func(stage string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Fatalf("%s: the page logged errors:\n%s", stage, strings.Join(problems, "\n"))
		}
	}
	poll := func(what, expr string) {
		t.Helper()
		sctx, done := step(45 * time.Second)
		defer done()
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			tctx, tdone := step(10 * time.Second)
			defer tdone()
			body, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: the page never showed it (%v); it shows:\n%s", what, err, body)
		}
	}

	// Tokens are configured: the page asks for one, then goes live.
	sctx, done := step(30 * time.Second)
	err := chromedp.Do(sctx, chromedp.Navigate("http://"+n0.AdminAddr()+"/dashboard"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), clustertest.Token), chromedp.Click(chromedp.ID("connect")))
	done()
	if err != nil {
		t.Fatalf("open the dashboard and log in: %v", err)
	}
	poll("the stream going live", `document.getElementById("conn").textContent === "live" && document.getElementById("node").textContent === "node-0"`)
	poll("both members", `document.querySelectorAll("#members tr").length === 2`)
	// The cluster row above one row per node, both with data read over
	// the peer link.
	poll("the cluster's golden signals", `!document.getElementById("golden-cluster").hidden && document.getElementById("golden-cluster-row") !== null &&
		document.getElementById("golden-cluster-row").textContent.startsWith("cluster (2 with data)") && document.querySelectorAll("#golden-rows tr").length === 3 &&
		!document.getElementById("golden-rows").textContent.includes("no data")`)
	// The cluster's private aggregates, both members' releases summed.
	poll("the cluster aggregates", `!document.getElementById("aggregates").hidden && document.querySelectorAll("#aggregates-rows tr").length >= 1 &&
		document.getElementById("aggregates-note").textContent.includes(", 2 members.")`)
	noProblems("after login")

	// Traffic: misses, then hits; the hit ratio and the hosts table move.
	for i := range 5 {
		for range 4 {
			if _, err := c.Get(0, fmt.Sprintf("/obj/%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Get(0, fmt.Sprintf("/private/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	poll("the hits counted", `(() => { const td = document.querySelector("#sites tr td:nth-child(4)"); return td && Number(td.textContent) >= 15; })()`)
	poll("a hit ratio", `document.getElementById("hit-ratio-total").textContent.endsWith("%") && document.getElementById("hit-ratio-total").textContent !== "0.0 %"`)
	poll("the uncacheable reason", `document.getElementById("uncacheable").textContent.includes("set-cookie")`)

	// A hot key: the top keys table samples one request in 64, so 2,000
	// requests miss the sample with a probability of (63/64)^2000, about
	// 2e-14, and the keys above are each requested a few times only.
	for range 2000 {
		if _, err := c.Get(0, "/hot"); err != nil {
			t.Fatal(err)
		}
	}
	poll("the hottest key first in the top keys", `(() => { const td = document.querySelector("#top-keys tr td.key"); return !!td && td.textContent.endsWith("/hot"); })()`)

	// A purge, acknowledged by the other member.
	id, err := c.API(t, 0).Purge(context.Background(), purge.Request{URLs: []string{clustertest.Key("/obj/1")}})
	if err != nil {
		t.Fatal(err)
	}
	poll("purge "+id+" acknowledged by node-1", fmt.Sprintf(`(() => {
		const tr = [...document.querySelectorAll("#purges tr")].find((r) => r.firstChild.textContent === %q);
		if (!tr) return false;
		const ack = tr.querySelector('[data-node="node-1"]');
		return !!ack && ack.textContent.includes("applied") && tr.textContent.includes("/obj/1");
	})()`, id))
	noProblems("after the purge")

	// A fault injected on node-0 is named at the top of the page.
	fault, err := c.API(t, 0).AddFault(context.Background(), inject.Spec{Target: inject.TargetPeers, Delay: inject.Duration(time.Millisecond),
		Loss: 0.01, Hosts: []string{"node-1"}, Percent: 50, Duration: inject.Duration(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	poll("the injected fault", fmt.Sprintf(`(() => { const li = document.querySelector('#faults li[data-fault=%q]'); return !!li && li.textContent.includes("on peers to node-1 (50 %% of messages): delay 1ms, loss 1.0 %%"); })()`, fault.ID))
	noProblems("with a fault injected")

	// The origin fails: node-0's breaker opens, and the page says so.
	failing.Store(true)
	i := 0
	testkit.Until(t, 30*time.Second, func() string {
		i++
		_, _ = c.Get(0, fmt.Sprintf("/down/%d", i))
		st, err := c.API(t, 0).Status(context.Background())
		if err != nil {
			return err.Error()
		}
		if b := st.Origins[0].Servers[0].Breaker; b != "open" {
			return "breaker " + b
		}
		return ""
	})
	poll("the breaker open", `!!document.querySelector("#pools td.state-open")`)
	poll("the breaker alert firing", `!!document.querySelector('[data-alert="WeirOriginBreakerOpen"] b.firing')`)
	noProblems("after the breaker opened")

	sctx, done = step(30 * time.Second)
	shot, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	done()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifacts(t), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the dashboard (breaker open, purge acknowledged): %s", path)
}
