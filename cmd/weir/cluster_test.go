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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestKeygenWritesAUsableKeyFile(t *testing.T) {
	code, out, errOut := runCmd("keygen")
	if code != 0 {
		t.Fatalf("keygen: exit %d, %s", code, errOut)
	}
	kr, err := cluster.ParseKeyFile([]byte(out))
	if err != nil {
		t.Fatalf("keygen output does not parse: %v\n%s", err, out)
	}
	_, again, _ := runCmd("keygen")
	kr2, _ := cluster.ParseKeyFile([]byte(again))
	if bytes.Equal(kr.Primary().Secret, kr2.Primary().Secret) {
		t.Error("two keygen runs wrote the same key")
	}
}

func TestClusterFlagErrors(t *testing.T) {
	base := []string{"serve", "--origin", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"}, "weir keygen"},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--insecure-cluster"}, "cluster.peer_listen"},
		{[]string{"--join", "127.0.0.1:7946"}, "--cluster-listen"},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0", "--cluster-key-file", "/nonexistent/weir.key"}, "/nonexistent/weir.key"},
	} {
		code, _, errOut := runCmd(append(base, c.args...)...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("weir serve %v: exit %d, stderr %q; want exit 1 mentioning %q", c.args, code, errOut, c.want)
		}
	}
}

// freePort returns a loopback port free for both TCP and UDP, as gossip
// needs, never one handed out before.
func freePort(t testing.TB) int { return testkit.FreePort(t, true) }

// TestThreeNodeClusterFromFlags starts a cluster of three with flags
// alone, as the command-line contract promises, and checks that they
// form one cache.
func TestThreeNodeClusterFromFlags(t *testing.T) {
	var originHits sync.Map
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := originHits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	_, key, _ := runCmd("keygen")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	gossip := []int{freePort(t), freePort(t), freePort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	edges := make([]string, 3)
	admins := make([]string, 3)
	for i := range 3 {
		edges[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		admins[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{
			"--origin", origin.URL, "--listen", edges[i], "--admin-listen", admins[i], "--log-level", "warn",
			"--node", fmt.Sprintf("edge-%d", i),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", gossip[i]),
			"--peer-listen", "127.0.0.1:0",
			"--join", fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", gossip[0], gossip[1]),
			"--cluster-key-file", keyFile,
		}
		wg.Go(func() {
			var out bytes.Buffer
			if err := serve(ctx, args, &out, &out); err != nil {
				t.Errorf("node %d: %v\n%s", i, err, out.String())
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	apis := make([]*status.Client, 3)
	for i := range apis {
		var err error
		if apis[i], err = status.ForAddr(admins[i], status.ClientOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0 // nodes known to see all three members
	testkit.Until(t, 20*time.Second, func() string {
		for ; seen < 3; seen++ {
			doc, err := apis[seen].Cluster(ctx, "")
			if len(doc.Members) != 3 {
				return fmt.Sprintf("node %d sees members %v, want 3 (err %v)", seen, doc.Members, err)
			}
		}
		return ""
	})
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+edges[i]+"/one", nil)
		req.Host = "site.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("edge %d: status %d", i, resp.StatusCode)
		}
	}
	n, _ := originHits.Load("/one")
	if got := n.(*atomic.Int64).Load(); got != 1 {
		t.Errorf("origin saw %d requests for one URL asked at 3 edges, want 1", got)
	}
}

func TestDemoCluster(t *testing.T) {
	code, out, errOut := runCmd("demo", "--nodes", "3", "--load", "1s", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--concurrency", "6", "--keys", "40")
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"edge demo-1", "edge demo-2", "edge demo-3", "Host: weir.demo", "/cluster?key=", "1.00 per distinct object"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
