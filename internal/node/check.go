package node

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/site"
)

// Check validates cfg offline, as a start would, without binding an
// address or reaching an origin: the settings (Validate), then every file
// they name (the tokens file, the cluster key file, each certificate and
// key pair, each CA bundle), then the sites, compiled as a start would
// compile them. It returns every problem, one per line, each naming the
// setting; none means a node would start with cfg (unless an address is
// in use). `weir check` runs it.
func Check(cfg *config.Config) []string {
	if err := cfg.Validate(); err != nil {
		return lines(err)
	}
	var problems []string
	add := func(setting string, err error) {
		if err != nil {
			for _, l := range lines(err) {
				problems = append(problems, setting+": "+l)
			}
		}
	}
	if path := cfg.AdminTokensFile; path != "" {
		_, err := admin.LoadTokens(path)
		add("admin_tokens_file", err)
	}
	if path := cfg.AdminTokenKeysFile; path != "" {
		_, err := captoken.LoadKeys(path)
		add("admin_token_keys_file", err)
	}
	if cc := cfg.Cluster; cc.Enabled() && !cc.Insecure {
		_, err := cluster.LoadKeyFile(cc.KeyFile)
		add("cluster.key_file", err)
	}
	pair := func(setting, cert, key string) {
		if cert != "" {
			_, err := certs.LoadPair(cert, key)
			add(setting, err)
		}
	}
	pool := func(setting, file string) {
		if file != "" {
			_, err := certs.LoadPool(file)
			add(setting, err)
		}
	}
	for i, c := range cfg.TLS.Certificates {
		pair(fmt.Sprintf("tls.certificates[%d]", i), c.Cert, c.Key)
	}
	pair("admin_tls", cfg.AdminTLS.Cert, cfg.AdminTLS.Key)
	pool("admin_tls.client_ca", cfg.AdminTLS.ClientCA)
	if cfg.Cluster.Enabled() {
		pair("cluster.peer_tls", cfg.Cluster.PeerTLS.Cert, cfg.Cluster.PeerTLS.Key)
		pool("cluster.peer_tls.ca", cfg.Cluster.PeerTLS.CA)
	}
	for i, o := range cfg.Origins {
		pair(fmt.Sprintf("origins[%d].tls", i), o.TLS.Cert, o.TLS.Key)
		pool(fmt.Sprintf("origins[%d].tls.ca", i), o.TLS.CA)
	}
	if len(problems) > 0 {
		return problems
	}
	// The sites, with clients from a registry of their own that is
	// closed at once: no health check runs.
	reg := new(origin.Registry)
	defer reg.Close()
	b := site.Builder{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	snap, err := b.Build(cfg, nil)
	if err != nil {
		return lines(err)
	}
	b.Release(snap)
	return nil
}
