package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/status"
)

// TestExplainCommand: `weir explain` prints a stored URL's verdict and
// its freshness arithmetic, --json the document; a call without the
// token the node needs fails with the node's reason, a bad -H with a
// usage-grade message.
func TestExplainCommand(t *testing.T) {
	n, fetches, _, _ := purgeNode(t, "s3cret", nil)
	page := "http://" + n.EdgeAddr() + "/page?b=2&a=1"
	resp, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	admin := "http://" + n.AdminAddr()

	t.Setenv("WEIR_TOKEN", "s3cret")
	code, out, errOut := runCmd("explain", "--admin", admin, "-H", "Accept-Encoding: gzip", page)
	if code != 0 {
		t.Fatalf("weir explain: exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{page + "  HIT", "fresh: fresh for ", "(set by max-age)", "lifetime 5m0s", `entry "*" (any match of "*")`,
		"key:      http://" + n.EdgeAddr() + "/page?a=1&b=2", "query kept:    b, a", "node:     purge-test"} {
		if !strings.Contains(out, want) {
			t.Errorf("weir explain output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCmd("explain", "--admin", admin, "--json", "http://"+n.EdgeAddr()+"/other")
	var doc status.Explain
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Next.Action != "miss" || doc.Next.Reason != "uri-miss" || doc.Object != nil {
		t.Fatalf("weir explain --json: exit %d, %+v, stderr %s\n%s", code, doc.Next, errOut, out)
	}
	if fetches.Load() != 1 {
		t.Errorf("explaining made %d origin requests", fetches.Load()-1)
	}

	t.Setenv("WEIR_TOKEN", "")
	if code, _, errOut = runCmd("explain", "--admin", admin, page); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("weir explain without a token: exit %d, stderr %q; want 1 and a 401", code, errOut)
	}
	t.Setenv("WEIR_TOKEN", "s3cret")
	if code, _, errOut = runCmd("explain", "--admin", admin, "-H", "nonsense", page); code != 1 || !strings.Contains(errOut, `header "nonsense": want "Name: value"`) {
		t.Errorf("weir explain -H nonsense: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut = runCmd("explain", "--admin", admin); code != 2 || !strings.Contains(errOut, "give one URL") {
		t.Errorf("weir explain without a URL: exit %d, stderr %q", code, errOut)
	}
}
