// Package deploy_test checks what deploy/ ships against the code it
// runs: the systemd unit, the container image, the Kubernetes manifests
// and the backup scripts, each with the real tool where it is installed
// (systemd-analyze, podman, kubectl) and a real weir binary.
package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// root is the repository's root directory.
func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// weirBinary returns a static weir built once for the package's tests
// the documented way (build.sh, CGO_ENABLED=0 as the image needs). It
// skips under -short: the first build of a clean cache takes about 40 s.
func weirBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds weir; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("deploy/ targets Linux; this is %s", runtime.GOOS)
	}
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "weir-deploy-test-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "weir")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", filepath.Join(root(t), "build.sh"), "-o", binary.path)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("CGO_ENABLED=0 ./build.sh: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// need skips the test when tool is not installed.
func need(t testing.TB, tool, install string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (%s), so this check cannot run: %v", tool, install, err)
	}
	return p
}

// run runs a command within timeout and returns its combined output,
// failing the test with the output when it fails.
func run(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := runErr(timeout, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
