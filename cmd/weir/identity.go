package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
)

const identityUsage = `Usage:
  weir identity ca --out CA-FILE
      makes an identity CA: its key goes to CA-FILE (keep it offline),
      and its public key, for cluster.identity.ca, to stdout
  weir identity issue --ca-key CA-FILE --node NAME --out FILE [--valid 8760h]
      makes node NAME's identity (its key and the CA's certificate) for
      cluster.identity.file; prints its fingerprint, as /cluster shows it
`

// identityCmd runs "weir identity".
func identityCmd(args []string, stdout io.Writer, now time.Time) error {
	if len(args) == 0 {
		return usageError{errors.New("give a subcommand: ca or issue\n\n" + identityUsage)}
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("out", "", "`file` to write (created, never overwritten, mode 0600)")
	switch args[0] {
	case "ca":
		if err := parseIdentityFlags(fs, args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return usageError{errors.New("--out is required: the CA key's file")}
		}
		ca, err := cluster.NewCA()
		if err != nil {
			return err
		}
		if err := writeNew(*out, ca.File()); err != nil {
			return err
		}
		fmt.Fprintln(stdout, ca.PublicKey())
		return nil
	case "issue":
		caFile := fs.String("ca-key", "", "the CA key `file` from weir identity ca")
		node := fs.String("node", "", "the node's `name` (its node setting)")
		valid := fs.Duration("valid", cluster.DefaultIdentityValidity, "how long the certificate is valid")
		if err := parseIdentityFlags(fs, args[1:]); err != nil {
			return err
		}
		if *caFile == "" || *node == "" || *out == "" {
			return usageError{errors.New("--ca-key, --node and --out are required")}
		}
		data, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		ca, err := cluster.ParseCAFile(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *caFile, err)
		}
		file, err := ca.Issue(*node, now, *valid)
		if err != nil {
			return err
		}
		id, err := cluster.ParseIdentityFile(file)
		if err != nil {
			return err
		}
		if err := writeNew(*out, file); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s valid until %s\n", *node, id.Cert().Fingerprint(), id.Cert().NotAfter.UTC().Format(time.RFC3339))
		return nil
	case "help", "-h", "--help":
		// The usage, and the flags of issue, which has every flag ca has.
		return identityCmd([]string{"issue", "-h"}, stdout, now)
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want ca or issue\n\n%s", args[0], identityUsage)}
}

// parseIdentityFlags parses an identity subcommand's flags.
func parseIdentityFlags(fs *flag.FlagSet, args []string) error {
	return parseSubcommandFlags(fs, args, "identity", identityUsage)
}

// writeNew writes a secret file that must not exist yet.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w (weir never overwrites a key file: give another --out)", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
