package deploy_test

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestContainerImage builds the image with deploy/container/build.sh and
// podman, from the static binary and without a registry, then runs it on
// the host's network in front of an origin on loopback: it serves, caches
// and runs as 65532, not root.
func TestContainerImage(t *testing.T) {
	podman := need(t, "podman", "Debian: apt-get install podman")
	bin := weirBinary(t)
	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := "weir-test-" + hex.EncodeToString(suffix)
	tag := "localhost/" + id + ":test"

	out, err := runErr(2*time.Minute, []string{"WEIR_BINARY=" + bin, "CONTAINER_TOOL=" + podman}, "sh", filepath.Join(root(t), "deploy", "container", "build.sh"), tag)
	t.Cleanup(func() { runErr(time.Minute, nil, podman, "rmi", "-f", tag) })
	if err != nil {
		t.Fatalf("deploy/container/build.sh %s: %v\n%s", tag, err, out)
	}
	inspect := strings.TrimSpace(run(t, time.Minute, podman, "image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}} {{len .RootFS.Layers}}", tag))
	if inspect != "65532:65532 [/usr/local/bin/weir] 2" {
		t.Errorf("image user, entrypoint and layers = %q, want 65532:65532 [/usr/local/bin/weir] 2 (the CA bundle and the binary, FROM scratch)", inspect)
	}

	// podman run, with what this machine needs: runc where it is
	// installed (crun refuses hosts that mix cgroup v1 and v2), and file
	// and process limits below the test's own, since raising them is not
	// allowed everywhere.
	base := []string{"run", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}
	if _, err := exec.LookPath("runc"); err == nil {
		base = append([]string{"--runtime", "runc"}, base...)
	}
	want := strings.TrimSpace(run(t, time.Minute, bin, "version"))
	if got := strings.TrimSpace(run(t, time.Minute, podman, append(base, "--rm", tag, "version")...)); got != want {
		t.Errorf("weir version in the image = %q, want %q", got, want)
	}

	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from the origin "+r.URL.Path)
	}))
	defer origin.Close()
	edge, admin := freeAddr(t), freeAddr(t)
	out, err = runErr(time.Minute, nil, podman, append(base, "-d", "--name", id, "--network", "host", tag,
		"serve", "--origin", origin.URL, "--listen", edge, "--admin-listen", admin)...)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := runErr(time.Minute, nil, podman, "logs", id)
			t.Logf("podman logs %s:\n%s", id, logs)
		}
		runErr(time.Minute, nil, podman, "rm", "-f", "-t", "2", id)
	})
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	testkit.Until(t, 20*time.Second, func() string {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
	for i, want := range []string{"stored", "hit"} {
		resp, err := http.Get("http://" + edge + "/logo.svg")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cs := resp.Header.Get("Cache-Status"); string(body) != "from the origin /logo.svg" || !strings.Contains(cs, want) {
			t.Errorf("request %d through the container: %s %q, Cache-Status %q; want the origin's body, %s", i+1, resp.Status, body, cs, want)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the origin was asked %d times for one URL, want once", n)
	}
	pid := strings.TrimSpace(run(t, time.Minute, podman, "inspect", "--format", "{{.State.Pid}}", id))
	st, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("the container's process %s: %v", pid, err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == "Uid:" || f[0] == "Gid:") && f[1] != "65532" {
			t.Errorf("the container's process runs with %s, want 65532", line)
		}
	}
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }
