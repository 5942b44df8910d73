package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// versionLine is what `weir version` prints.
var versionLine = regexp.MustCompile(`^weir (\S+) \(commit (\S+), \S+\)\n$`)

// TestDocumentedBuildStampsTheCommit: the build the README documents,
// ./build.sh, stamps the checkout's commit and version into the binary
// even with GOFLAGS=-buildvcs=false (as CI and container builds set),
// where a plain go build leaves `weir version` and /status saying
// "commit unknown".
func TestDocumentedBuildStampsTheCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("build.sh is a POSIX shell script")
	}
	for _, tool := range []string{"git", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed, so the stamped build cannot be tried: %v", tool, err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("%s is not a git checkout, so there is no commit to stamp: %v", root, err)
	}
	if real, _ := filepath.EvalSymlinks(root); filepath.Clean(top) != real {
		t.Skipf("%s sits inside another repository (%s), not a checkout of its own", root, top)
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		t.Skipf("the checkout has no commit yet: %v", err)
	}

	// The README's run section builds with the script.
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## Run it in front of your origin\n")
	_, block, _ := strings.Cut(section, "```sh\n")
	first, _, _ := strings.Cut(block, "\n")
	if cmd, _, _ := strings.Cut(first, "#"); strings.TrimSpace(cmd) != "./build.sh" {
		t.Errorf("the README's run section starts with %q, want ./build.sh", first)
	}

	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("sh", filepath.Join(root, "build.sh"), "-o", bin)
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("./build.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("weir version: %v", err)
	}
	m := versionLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("weir version printed %q, want \"weir VERSION (commit COMMIT, GO)\"", out)
	}
	if m[2] != head {
		t.Errorf("weir version says commit %s, want %s (git rev-parse HEAD)", m[2], head)
	}
	// Compared without -dirty: others may edit the tree meanwhile.
	describe, err := git("describe", "--tags", "--always")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSuffix(m[1], "-dirty"); got != describe {
		t.Errorf("weir version says version %s, want %s (git describe --tags --always, with -dirty when modified)", m[1], describe)
	}
}
