package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpFlags returns the flags `weir cmd -h` lists.
func helpFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w // the flag package prints -h help there
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	runCmd(cmd, "-h")
	os.Stdout = stdout
	w.Close()
	out := <-done
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("weir %s -h listed no flags:\n%s", cmd, out)
	}
	return flags
}

// TestReadmeContractIsTrue: every flag the README's stable command-line
// contract names exists on its command, so scripts written from the
// README work.
func TestReadmeContractIsTrue(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "The command line is a stable contract")
	if !ok {
		t.Fatal("README.md has no stable contract section")
	}
	_, block, _ := strings.Cut(rest, "```\n")
	block, _, _ = strings.Cut(block, "```")
	cmd := ""
	checked := 0
	known := map[string]map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "weir" {
			cmd = f[1]
		}
		for _, m := range regexp.MustCompile(`--([a-z][a-z-]*)`).FindAllStringSubmatch(line, -1) {
			if known[cmd] == nil {
				known[cmd] = helpFlags(t, cmd)
			}
			if !known[cmd][m[1]] {
				t.Errorf("README: weir %s --%s: the command has no such flag", cmd, m[1])
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d flags of the README contract", checked)
	}
}
