package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestIdentityCommands(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.key")
	code, out, errs := runCmd("identity", "ca", "--out", ca)
	if code != 0 || !strings.HasPrefix(out, "ed25519-pub:") {
		t.Fatalf("identity ca: %d %q %q", code, out, errs)
	}
	if st, err := os.Stat(ca); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the CA key file: %v, %v", st, err)
	}
	id := filepath.Join(dir, "edge-1.identity")
	code, out, errs = runCmd("identity", "issue", "--ca-key", ca, "--node", "edge-1", "--out", id, "--valid", "48h")
	if code != 0 || !strings.HasPrefix(out, "edge-1 ed25519:") {
		t.Fatalf("identity issue: %d %q %q", code, out, errs)
	}
	// Never overwritten: a second issue to the same file fails.
	if code, _, errs = runCmd("identity", "issue", "--ca-key", ca, "--node", "edge-1", "--out", id); code == 0 || !strings.Contains(errs, "never overwrites") {
		t.Errorf("issuing over an identity file: %d %q", code, errs)
	}
	for _, args := range [][]string{
		{"identity"},
		{"identity", "sign"},
		{"identity", "issue", "--node", "edge-1", "--out", filepath.Join(dir, "x")},
		{"identity", "issue", "--ca-key", id, "--node", "edge-1", "--out", filepath.Join(dir, "y")},
		{"identity", "issue", "--ca-key", ca, "--node", "bad name", "--out", filepath.Join(dir, "z")},
	} {
		if code, _, errs := runCmd(args...); code == 0 || errs == "" {
			t.Errorf("weir %v: exit %d, stderr %q; want a failure that says why", args, code, errs)
		}
	}
}

// TestIdentityCARevocation runs three nodes from configuration files
// with identities a CA issued: they sign and check each other's purges;
// revoking one node's identity in the others' files and reloading them
// (what SIGHUP does) cuts it off, and the others carry on.
func TestIdentityCARevocation(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	dir := t.TempDir()
	_, key, _ := runCmd("keygen")
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "identity-test-token"
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops admin "+admin.HashToken(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, "ca.key")
	_, caPub, _ := runCmd("identity", "ca", "--out", caKey)
	caPub = strings.TrimSpace(caPub)
	fingerprints := make([]string, 3)
	gossip := []int{freePort(t), freePort(t), freePort(t)}
	admins := make([]string, 3)
	configs := make([]string, 3)
	writeConfig := func(i int, revoked ...string) {
		t.Helper()
		cfg := fmt.Sprintf(`node: edge-%d
cluster:
  listen: 127.0.0.1:%d
  peer_listen: 127.0.0.1:0
  join: [127.0.0.1:%d]
  key_file: %s
  identity:
    file: %s
    ca: [%q]
    revoked: [%s]
`, i, gossip[i], gossip[0], keyFile, filepath.Join(dir, fmt.Sprintf("edge-%d.identity", i)), caPub, strings.Join(revoked, ", "))
		if err := os.WriteFile(configs[i], []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("edge-%d.identity", i))
		code, line, errs := runCmd("identity", "issue", "--ca-key", caKey, "--node", fmt.Sprintf("edge-%d", i), "--out", out)
		if code != 0 {
			t.Fatalf("issue: %q", errs)
		}
		fingerprints[i] = strings.Fields(line)[1]
		admins[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		configs[i] = filepath.Join(dir, fmt.Sprintf("edge-%d.yaml", i))
		writeConfig(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range 3 {
		args := []string{"--config", configs[i], "--origin", origin.URL, "--listen", "127.0.0.1:0", "--admin-listen", admins[i],
			"--log-level", "warn", "--admin-tokens-file", tokens}
		wg.Go(func() {
			var out bytes.Buffer
			if err := serve(ctx, args, &out, &out); err != nil {
				t.Errorf("node %d: %v\n%s", i, err, out.String())
			}
		})
	}
	apis := make([]*status.Client, 3)
	for i := range apis {
		var err error
		if apis[i], err = status.ForAddr(admins[i], status.ClientOptions{Timeout: 5 * time.Second, Token: token}); err != nil {
			t.Fatal(err)
		}
	}
	members := func(i int) ([]string, map[string]string) {
		doc, err := apis[i].Cluster(ctx, "")
		if err != nil {
			return nil, nil
		}
		var names []string
		ids := map[string]string{}
		for _, m := range doc.Members {
			names = append(names, m.Name)
			ids[m.Name] = m.IdentityBy + " " + m.Identity
		}
		return names, ids
	}
	testkit.Until(t, 30*time.Second, func() string {
		for i := range 3 {
			names, ids := members(i)
			if len(names) != 3 {
				return fmt.Sprintf("node %d sees members %v, want 3", i, names)
			}
			for j := range 3 {
				if want := "ca " + fingerprints[j]; ids[fmt.Sprintf("edge-%d", j)] != want {
					return fmt.Sprintf("node %d shows edge-%d's identity %q, want %q", i, j, ids[fmt.Sprintf("edge-%d", j)], want)
				}
			}
		}
		return ""
	})
	complete := func(id string, targets int) string {
		doc, err := apis[0].PurgeStatus(ctx, id)
		if err != nil {
			return err.Error()
		}
		if !doc.Complete || len(doc.Nodes) != targets {
			return fmt.Sprintf("purge %s: complete %v, nodes %+v", id, doc.Complete, doc.Nodes)
		}
		return ""
	}
	id, err := apis[0].Purge(ctx, purge.Request{URLs: []string{"http://site.example/one"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 10*time.Second, func() string { return complete(id, 3) })

	// Revoke edge-2's identity on edge-0 and edge-1.
	for i := range 2 {
		writeConfig(i, fmt.Sprintf("%q", fingerprints[2]))
		if r, err := apis[i].Reload(ctx); err != nil || r.Result != "ok" {
			t.Fatalf("reload of node %d: %+v, %v", i, r, err)
		}
	}
	testkit.Until(t, 10*time.Second, func() string {
		for i := range 2 {
			names, _ := members(i)
			if !slices.Equal(names, []string{"edge-0", "edge-1"}) {
				return fmt.Sprintf("node %d sees members %v, want edge-0 and edge-1", i, names)
			}
		}
		return ""
	})
	doc, err := apis[0].Cluster(ctx, "")
	if err != nil || !strings.Contains(doc.Refused["edge-2"], "revoked") {
		t.Errorf("edge-0 refuses edge-2 for %q (%v)", doc.Refused["edge-2"], err)
	}
	// The two carry on: a purge completes on both.
	id, err = apis[0].Purge(ctx, purge.Request{URLs: []string{"http://site.example/two"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 10*time.Second, func() string { return complete(id, 2) })
}
