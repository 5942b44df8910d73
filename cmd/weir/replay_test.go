package main

import (
	"strings"
	"testing"
	"time"
)

// TestReplayCommand: weir replay reads a real node's journal with the
// token from $WEIR_TOKEN and prints the state at --at with the purge it
// recorded; a node that does not answer, or flags it cannot read, fail
// with a message that names them.
func TestReplayCommand(t *testing.T) {
	n, _, _, _ := purgeNode(t, "s3cret", nil)
	t.Setenv("WEIR_TOKEN", "s3cret")
	admin := "http://" + n.AdminAddr()
	code, id, errOut := runCmd("purge", "--admin", admin, "--tag", "t")
	if code != 0 {
		t.Fatalf("weir purge: exit %d, %s", code, errOut)
	}
	id = strings.TrimSpace(id)
	code, out, errOut := runCmd("replay", "--admin", admin, "--at", "now", "--window", "1h")
	if code != 0 {
		t.Fatalf("weir replay: exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"Cluster state at", "purge-test", "Weir-Time header", "purge " + id + " issued by purge-test", "no node lagging",
		"Decisions that led there (1)", "purge-issued"} {
		if !strings.Contains(out, want) {
			t.Errorf("weir replay printed no %q:\n%s", want, out)
		}
	}
	// --at before the purge: nothing had happened yet.
	before := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, out, _ := runCmd("replay", "--admin", admin, "--at", before, "--after", "0s"); code != 0 || !strings.Contains(out, "Decisions that led there (0)") {
		t.Errorf("weir replay an hour ago: exit %d\n%s", code, out)
	}

	t.Setenv("WEIR_TOKEN", "wrong")
	if code, _, errOut := runCmd("replay", "--admin", admin, "--at", "now"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("with a wrong token: exit %d, %q; want 1 and the 401", code, errOut)
	}
	t.Setenv("WEIR_TOKEN", "s3cret")
	if code, _, errOut := runCmd("replay", "--admin", admin+",http://127.0.0.1:1", "--at", "now"); code != 1 || !strings.Contains(errOut, "journal of http://127.0.0.1:1") {
		t.Errorf("with a node that does not answer: exit %d, %q", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin", admin}, "--at is required"},
		{[]string{"--admin", admin, "--at", "yesterday"}, `--at "yesterday" is not an RFC 3339 time`},
		{[]string{"--admin", admin, "--at", "now", "--window", "0s"}, "want a positive window"},
		{[]string{"--admin", " , ", "--at", "now"}, "--admin names no node"},
		{[]string{"--admin", "127.0.0.1:9090", "--at", "now"}, `--admin "127.0.0.1:9090": want each node's admin API base URL`},
		{[]string{"--at", "now", "extra"}, `unexpected argument "extra"`},
	} {
		if code, _, errOut := runCmd(append([]string{"replay"}, c.args...)...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("weir replay %v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}
