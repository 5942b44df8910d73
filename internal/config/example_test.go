package config_test

import (
	"fmt"

	"github.com/weir-cdn/weir/internal/config"
)

func ExampleParse() {
	data := []byte(`
cache:
  max_size: 1GiB
origins:
  - name: app
    url: http://127.0.0.1:3000
hosts:
  - match: [example.com, "*.example.com"]
    origin: app
    default_ttl: 5m
    key:
      drop_params: ["utm_*"]
`)
	c, err := config.Parse(data, "weir.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Cache.MaxSize, c.Cache.MaxObjectSize, c.Listen)
	fmt.Println(c.Origins[0].Name, c.Origins[0].ConnectTimeout, c.Hosts[0].DefaultTTL)
	// Output:
	// 1GiB 16MiB :8080
	// app 3s 5m
}

func ExampleParse_errors() {
	_, err := config.Parse([]byte("cache:\n  max_sise: 1GiB\n  max_variants: many\n"), "weir.yaml")
	fmt.Println(err)
	// Output:
	// weir.yaml:2: unknown key "max_sise" in cache (known keys: max_size, max_object_size, hit_for_pass_ttl, max_variants, heuristic_fraction, heuristic_max, disk, refresh_ahead); did you mean "max_size"?
	// weir.yaml:3: cache.max_variants: cannot use "many" as a whole number
}

func ExampleConfig_Validate() {
	c := config.Default()
	c.Origins = []config.Origin{{Name: "default", URL: "http://127.0.0.1:8000/"}}
	c.Hosts = []config.Host{{Match: []string{"example.com:443"}, Origin: "api"}}
	fmt.Println(c.Validate())
	// Output:
	// origins[0].url: "http://127.0.0.1:8000/" has a path ("/"); an origin URL names only scheme, host and port: write "http://127.0.0.1:8000"
	// hosts[0].match[0]: "example.com:443" must not include a port (ports are ignored when matching); write "example.com"
	// hosts[0].origin: unknown origin "api" (defined origins: default)
}

func ExampleConfig_Validate_cluster() {
	c := config.Default()
	c.SetOrigin("http://127.0.0.1:8000")
	c.Cluster.Join = []string{"10.0.0.2:7946"}
	fmt.Println(c.Validate())

	c.Cluster.Listen = ":7946"
	c.Cluster.PeerListen = ":7947"
	c.Cluster.KeyFile = "/etc/weir/cluster.key"
	fmt.Println(c.Validate(), c.Cluster.Enabled())
	// Output:
	// cluster.listen: empty, so this node runs standalone, but cluster.join is set; set cluster.listen (flag --cluster-listen) to this node's gossip address, such as ":7946", to enable the cluster, or remove it
	// <nil> true
}

func ExampleConfig_SetOrigin() {
	c := config.Default()
	c.SetOrigin("http://127.0.0.1:8000")
	fmt.Println(c.Validate())
	fmt.Println(c.Origins[0].Name, c.Origins[0].URL, c.Hosts[0].Match, c.Hosts[0].Origin)
	// Output:
	// <nil>
	// default http://127.0.0.1:8000 [*] default
}

func ExampleRouter_Route() {
	r := config.NewRouter([]config.Host{
		{Match: []string{"example.com"}},
		{Match: []string{"*.example.com"}},
		{Match: []string{"*"}},
	})
	for _, host := range []string{"Example.com:8080", "img.cdn.example.com", "example.org"} {
		fmt.Println(host, "→", r.Route(host))
	}
	// Output:
	// Example.com:8080 → 0
	// img.cdn.example.com → 1
	// example.org → 2
}

func ExampleParseSize() {
	for _, s := range []string{"65536", "256MiB", "1.5 GiB", "10MB", "256M"} {
		size, err := config.ParseSize(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(int64(size), size)
	}
	// Output:
	// 65536 64KiB
	// 268435456 256MiB
	// 1610612736 1536MiB
	// 10000000 10000000B
	// size "256M" has unknown unit "M"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)
}
