package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
	"github.com/weir-cdn/weir/internal/secretfile"
)

const tokenUsage = `Usage:
  weir token keygen --key FILE >> token-keys
  weir token pubkey --key FILE
  weir token issue --key FILE --name NAME --role ROLE --expires DURATION|RFC3339
                   [--host PATTERN ...] [--tag PATTERN ...] [--prefix PATTERN ...]

keygen writes a new Ed25519 signing key to FILE (mode 0600; it refuses to
replace a file) and prints its public key line; append that line to the
nodes' admin_token_keys_file (--admin-token-keys-file) and send SIGHUP.
pubkey prints the line again. issue prints a capability token signed by the
key: "Authorization: Bearer weir1....". See "Capability tokens" in
docs/operations.md.
`

// tokenCmd runs "weir token SUBCOMMAND".
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("give a subcommand: keygen, pubkey or issue\n\n" + tokenUsage)}
	}
	switch args[0] {
	case "keygen":
		return tokenKeygen(args[1:], stdout)
	case "pubkey":
		return tokenPubkey(args[1:], stdout, stderr)
	case "issue":
		return tokenIssue(args[1:], stdout, stderr, time.Now())
	case "help", "-h", "--help":
		// The usage, and the flags of issue, which has every flag the
		// others have.
		return tokenIssue([]string{"-h"}, stdout, stderr, time.Now())
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want keygen, pubkey or issue\n\n%s", args[0], tokenUsage)}
}

// parseTokenFlags parses a token subcommand's flags, which take no
// arguments.
func parseTokenFlags(fs *flag.FlagSet, args []string) error {
	return parseSubcommandFlags(fs, args, "token", tokenUsage)
}

// parseSubcommandFlags parses the flags of the subcommand fs.Name() of
// weir cmd, which take no arguments; -h prints usage and the flags on
// stdout.
func parseSubcommandFlags(fs *flag.FlagSet, args []string, cmd, usage string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprint(os.Stdout, usage+"\nFlags of weir "+cmd+" "+fs.Name()+":\n")
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func tokenKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	keyFile := fs.String("key", "", "signing key `file` to create (mode 0600); keep it off the nodes")
	if err := parseTokenFlags(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usageError{errors.New("--key FILE is required: where to write the new signing key")}
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate a key: %w", err)
	}
	if err := captoken.WriteSigningKey(*keyFile, key); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "# weir token key %s, created %s; its signing key is %s\n%s\n",
		captoken.KeyID(pub), time.Now().UTC().Format(time.RFC3339), *keyFile, captoken.KeyLine(pub))
	return err
}

// loadSigningKey reads --key, warning on stderr when others may read it.
func loadSigningKey(path string, stderr io.Writer) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, usageError{errors.New("--key FILE is required: the signing key file weir token keygen wrote")}
	}
	if warn := secretfile.ModeWarning(path, "can issue admin API tokens"); warn != "" {
		fmt.Fprintf(stderr, "warning: %s\n", warn)
	}
	return captoken.LoadSigningKey(path)
}

func tokenPubkey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pubkey", flag.ContinueOnError)
	keyFile := fs.String("key", "", "signing key `file`")
	if err := parseTokenFlags(fs, args); err != nil {
		return err
	}
	key, err := loadSigningKey(*keyFile, stderr)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, captoken.KeyLine(key.Public().(ed25519.PublicKey)))
	return err
}

func tokenIssue(args []string, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	keyFile := fs.String("key", "", "signing key `file` (weir token keygen)")
	name := fs.String("name", "", "who holds the token, as the audit log shows it (printable ASCII, no spaces)")
	roleName := fs.String("role", "", "`role`: viewer, purge, operator or admin")
	expires := fs.String("expires", "", "when the token expires: a `duration` from now (90m, 24h, 30d) or an RFC 3339 time")
	var hosts, tags, prefixes listFlag
	fs.Var(&hosts, "host", "scope: purge only on this host `pattern` (example.com, *.example.com; repeatable)")
	fs.Var(&tags, "tag", "scope: purge only tags matching this `pattern` (product-*; repeatable)")
	fs.Var(&prefixes, "prefix", "scope: purge only URLs matching this `pattern` (example.com/img/*; repeatable)")
	if err := parseTokenFlags(fs, args); err != nil {
		return err
	}
	if *name == "" || *roleName == "" || *expires == "" {
		return usageError{errors.New("--name, --role and --expires are required")}
	}
	role, err := admin.ParseRole(*roleName)
	if err != nil {
		return usageError{fmt.Errorf("--role: %v", err)}
	}
	exp, err := parseExpiry(*expires, now)
	if err != nil {
		return usageError{fmt.Errorf("--expires %q: %v", *expires, err)}
	}
	scope := captoken.Scope{Hosts: hosts, Tags: tags}
	for _, p := range prefixes {
		// A purge covers both schemes, so the pattern has none.
		p = strings.TrimPrefix(strings.TrimPrefix(p, "https://"), "http://")
		scope.Prefixes = append(scope.Prefixes, p)
	}
	if !scope.Empty() && role == admin.RoleAdmin {
		return usageError{errors.New("--role admin with a scope: a scoped token can never make admin calls (reload, profiles); use --role operator, or drop --host, --tag and --prefix")}
	}
	if err := scope.Validate(); err != nil {
		return usageError{err}
	}
	key, err := loadSigningKey(*keyFile, stderr)
	if err != nil {
		return err
	}
	token, err := captoken.Issue(key, captoken.Claims{Name: *name, Role: role.String(), Scope: scope,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: exp.Unix()})
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stderr, "token %q: role %s, %s, expires %s, key %s\n", *name, role, scope,
		exp.UTC().Format(time.RFC3339), captoken.KeyID(key.Public().(ed25519.PublicKey)))
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// parseExpiry reads --expires: a Go duration, a whole number of days
// ("30d"), or an RFC 3339 time; it must be in the future and within
// captoken.MaxLifetime.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	var exp time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return exp, errors.New("want a whole number of days, such as 30d")
		}
		exp = now.Add(time.Duration(n) * 24 * time.Hour)
	} else if d, err := time.ParseDuration(s); err == nil {
		exp = now.Add(d)
	} else if t, err := time.Parse(time.RFC3339, s); err == nil {
		exp = t
	} else {
		return exp, errors.New("want a duration from now (90m, 24h, 30d) or an RFC 3339 time (2026-12-31T00:00:00Z)")
	}
	if !exp.After(now) {
		return exp, fmt.Errorf("%s is not in the future", exp.UTC().Format(time.RFC3339))
	}
	if exp.Sub(now) > captoken.MaxLifetime {
		return exp, fmt.Errorf("the token would live longer than %d days, the most a token may: tokens are revoked only by removing their key, so keep them short", int(captoken.MaxLifetime.Hours()/24))
	}
	return exp, nil
}
