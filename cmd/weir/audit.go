package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/weir-cdn/weir/internal/admin"
)

const auditUsage = `Usage: weir audit verify FILE [FILE...]

Checks the hash chain of audit log files (audit_log), given oldest first
so that rotated files chain across: weir audit verify audit.jsonl.2
audit.jsonl.1 audit.jsonl. Prints the number of intact lines and the
chain's head hash and exits 0, or prints the first line that breaks the
chain and why and exits 1.
`

// errChainBroken makes "weir audit verify" exit 1 after it printed the
// break.
var errChainBroken = errors.New("the audit chain is broken")

// auditCmd runs "weir audit SUBCOMMAND".
func auditCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("give a subcommand: verify\n\n" + auditUsage)}
	}
	switch args[0] {
	case "verify":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		return usageError{fmt.Errorf("unknown subcommand %q: want verify\n\n%s", args[0], auditUsage)}
	}
	files := args[1:]
	if len(files) == 0 {
		return usageError{errors.New("give the audit log files to verify, oldest first")}
	}
	for _, f := range files {
		if f == "-h" || f == "--help" {
			fmt.Fprint(stdout, auditUsage)
			return nil
		}
	}
	res, err := admin.VerifyAuditChain(files)
	var b *admin.ChainBreak
	if errors.As(err, &b) {
		fmt.Fprintf(stdout, "BROKEN at %s line %d: %s\n(%d lines before it verify)\n", b.File, b.Line, b.Reason, res.Lines)
		return errChainBroken
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %d lines intact in %d files; head %s\n", res.Lines, len(files), res.Head)
	if res.Lines > 0 && res.Start != admin.GenesisHash {
		fmt.Fprintf(stdout, "the chain starts in an earlier file, not given (rotated away?): its first line continues from %s\n", res.Start)
	}
	return nil
}
