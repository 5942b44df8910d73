package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/weir-cdn/weir/internal/node"
)

// check validates a configuration offline, as `weir serve` with the same
// flags would at start or on reload, and prints the effective
// configuration with every default spelled out (nginx -t, varnishd -C).
func check(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "YAML configuration `file` to check")
	fs.StringVar(&f.origin, "origin", "", "origin `URL`, as given to weir serve")
	quiet := fs.Bool("q", false, "print nothing when the configuration is valid")
	f.register(fs, ":8080", "127.0.0.1:9090")
	f.registerCluster(fs)
	f.registerMemory(fs)
	f.registerDisk(fs)
	f.registerPIDFile(fs) // accepted, so a unit's flags check as they serve
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: weir check --config FILE [the flags of weir serve] [-q]

Checks the configuration weir serve would run with the same flags: the
file's syntax and settings, then every file it names (tokens, cluster
key, certificates and keys, CA bundles), then the sites. Prints the
effective configuration, defaults included, and its hash (the hash
/status shows for the configuration in force). Exits 0 when valid, 1 with
every problem when not, 2 on a mistake in the command line. It binds no
address and reaches no origin.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, &f); err != nil {
		return err
	}
	if !f.set["config"] && !f.set["origin"] {
		return usageError{fmt.Errorf("nothing to check: give --config FILE (and the flags weir serve runs with)")}
	}
	if err := f.checkTLS(); err != nil {
		return err
	}
	cfg, err := f.read()
	if err != nil {
		return err
	}
	name := f.config
	if name == "" {
		name = "the flags"
	}
	if problems := node.Check(cfg); len(problems) > 0 {
		return fmt.Errorf("%s: %d problem(s); weir serve would refuse this configuration:\n  %s", name, len(problems), strings.Join(problems, "\n  "))
	}
	if *quiet {
		return nil
	}
	fmt.Fprintf(stdout, "# weir check: %s is valid.\n# The effective configuration, every default spelled out; hash %s\n", name, cfg.Hash())
	_, err = stdout.Write(cfg.Encode())
	return err
}
