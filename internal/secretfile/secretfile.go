// Package secretfile warns about secret files (the cluster key file, TLS
// private keys) that users other than their owner can read.
package secretfile

import (
	"fmt"
	"os"
	"runtime"
)

// ModeWarning returns a warning when users other than the file's owner
// may read or write it, or "" (also when it cannot be stat'ed: loading it
// says why, and on Windows, where permission bits say little). exposes
// says what they could do, as in "can read the private key".
func ModeWarning(path, exposes string) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("key file %s has mode %04o, so users other than its owner %s: run chmod 600 %s", path, perm, exposes, path)
}
