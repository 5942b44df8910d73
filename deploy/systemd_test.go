package deploy_test

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// unit reads a systemd unit file: each setting's values in order, by
// "Section.Key".
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", path, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestSystemdUnit: deploy/systemd/weir.service runs weir as its
// comments and docs/operations.md say, with the weir.yaml beside it.
func TestSystemdUnit(t *testing.T) {
	dir := filepath.Join(root(t), "deploy", "systemd")
	u := unit(t, filepath.Join(dir, "weir.service"))
	one := func(key string) string {
		t.Helper()
		if len(u[key]) != 1 {
			t.Errorf("%s is set %d times, want once", key, len(u[key]))
			return ""
		}
		return u[key][0]
	}
	const conf = "/etc/weir/weir.yaml"
	if got := one("Service.ExecStartPre"); got != "/usr/local/bin/weir check --config "+conf {
		t.Errorf("ExecStartPre=%s, want weir check of %s", got, conf)
	}
	start := strings.Fields(one("Service.ExecStart"))
	pidFile := one("Service.PIDFile")
	if !slices.Equal(start, []string{"/usr/local/bin/weir", "serve", "--config", conf, "--pid-file", pidFile}) {
		t.Errorf("ExecStart=%v, want weir serve --config %s --pid-file PIDFile (%s)", start, conf, pidFile)
	}
	if filepath.Dir(pidFile) != "/run/"+one("Service.RuntimeDirectory") {
		t.Errorf("PIDFile=%s is not in the RuntimeDirectory, the one place the dynamic user may write it", pidFile)
	}
	for key, want := range map[string]string{
		"Service.ExecReload": "/bin/kill -HUP $MAINPID", "Service.DynamicUser": "yes",
		"Service.CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "Service.AmbientCapabilities": "CAP_NET_BIND_SERVICE",
		"Service.ProtectSystem": "strict", "Service.NoNewPrivileges": "yes", "Service.StateDirectory": "weir", "Service.LogsDirectory": "weir",
	} {
		if got := one(key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	if _, ok := u["Service.ExecStop"]; ok {
		t.Error("ExecStop is set: SIGTERM is the graceful stop")
	}
	if _, ok := u["Service.KillMode"]; ok {
		t.Error("KillMode is set: the default (control-group) drains both processes of an upgrade")
	}
	if n, err := strconv.Atoi(one("Service.LimitNOFILE")); err != nil || n < 2*config.DefaultMaxConnections {
		t.Errorf("LimitNOFILE=%d (%v) is below twice the edge's max_connections (%d): each client may need an origin or peer connection too", n, err, config.DefaultMaxConnections)
	}

	// The weir.yaml shipped beside the unit loads, validates, and names
	// what the unit provides.
	cfg, err := config.Load(filepath.Join(dir, "weir.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deploy/systemd/weir.yaml: %v", err)
	}
	creds := map[string]string{}
	for _, c := range u["Service.LoadCredential"] {
		name, path, _ := strings.Cut(c, ":")
		creds[name] = path
		if filepath.Dir(path) != "/etc/weir" {
			t.Errorf("LoadCredential=%s: the secrets are kept in /etc/weir", c)
		}
	}
	for setting, path := range map[string]string{"cluster.key_file": cfg.Cluster.KeyFile, "admin_tokens_file": cfg.AdminTokensFile} {
		name, ok := strings.CutPrefix(path, "/run/credentials/weir.service/")
		if _, loaded := creds[name]; !ok || !loaded {
			t.Errorf("%s %q is not a credential the unit loads (%v)", setting, path, creds)
		}
	}
	if got := filepath.Dir(cfg.AuditLog); got != "/var/log/"+one("Service.LogsDirectory") {
		t.Errorf("audit_log %q is not in the LogsDirectory, the one log directory the service may write", cfg.AuditLog)
	}
	stop, err := time.ParseDuration(one("Service.TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	delay := time.Duration(cfg.Server.ShutdownDelay)
	if drain := time.Duration(cfg.Server.ShutdownTimeout) + delay + 3*time.Second; stop <= drain {
		t.Errorf("TimeoutStopSec=%s is not above shutdown_timeout + shutdown_delay + 3s = %s: systemd would kill the drain", stop, drain)
	}
}

// TestSystemdAnalyzeVerify runs deploy/systemd/verify.sh, as CI does:
// systemd-analyze verify and its offline security review of the unit.
func TestSystemdAnalyzeVerify(t *testing.T) {
	need(t, "systemd-analyze", "Debian: apt-get install systemd")
	bin := weirBinary(t)
	out := run(t, time.Minute, "sh", filepath.Join(root(t), "deploy", "systemd", "verify.sh"), bin)
	if !strings.Contains(out, "Overall exposure level") {
		t.Errorf("verify.sh printed %q, want the exposure level", out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
