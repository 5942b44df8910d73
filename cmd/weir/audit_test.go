package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/admin"
)

// TestAuditVerify: weir audit verify exits 0 with a count on an intact
// chain across a rotation, and 1 naming the file and line after an edit.
func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := admin.OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"a", "b", "c"} {
		a.Write(admin.AuditRecord{Action: "purge", Who: who, Status: 200, Result: "ok"})
	}
	os.Rename(path, path+".1")
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Write(admin.AuditRecord{Action: "purge", Who: "d", Status: 200, Result: "ok"})
	a.Close()

	code, out, errOut := runCmd("audit", "verify", path+".1", path)
	if code != 0 || !strings.Contains(out, "ok: 4 lines intact in 2 files; head sha256:") {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	data, _ := os.ReadFile(path + ".1")
	os.WriteFile(path+".1", []byte(strings.Replace(string(data), `"who":"b"`, `"who":"x"`, 1)), 0o600)
	code, out, _ = runCmd("audit", "verify", path+".1", path)
	if code != 1 || !strings.Contains(out, "BROKEN at "+path+".1 line 3: the line's prev") {
		t.Errorf("verify after an edit: exit %d, %q; want 1 naming line 3", code, out)
	}
	code, out, _ = runCmd("audit", "verify", path)
	if code != 0 || !strings.Contains(out, "the chain starts in an earlier file") {
		t.Errorf("verify of the newest file alone: exit %d, %q; want ok, starting in an earlier file", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit"}, 2, "give a subcommand"},
		{[]string{"audit", "check"}, 2, `unknown subcommand "check"`},
		{[]string{"audit", "verify"}, 2, "oldest first"},
		{[]string{"audit", "verify", path + ".missing"}, 1, "no such file"},
	} {
		code, _, errOut := runCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("weir %v: exit %d, stderr %q; want %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
