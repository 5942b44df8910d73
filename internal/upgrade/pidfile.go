package upgrade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WritePIDFile writes pid and a newline to path, atomically: a reader
// (systemd's PIDFile=) sees the old PID or the new, never a torn file.
func WritePIDFile(path string, pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the PID file %s: %w: check that its directory exists and is writable", path, err)
	}
	_, werr := tmp.WriteString(strconv.Itoa(pid) + "\n")
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the PID file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the PID file %s: %w", path, err)
	}
	return nil
}

// ReadPIDFile returns the PID in path.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("the PID file %s holds %q, not a PID", path, b)
	}
	return pid, nil
}

// removeOwnPIDFile removes path if it holds pid: after an upgrade it
// holds the new process's, which stays.
func removeOwnPIDFile(path string, pid int) {
	if got, err := ReadPIDFile(path); err == nil && got == pid {
		os.Remove(path)
	}
}
