package upgrade

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The control socket carries one line per message, child to parent:
//
//	release WHAT   let go of WHAT (e.g. "gossip") so the child can bind it
//	ready PID      the child serves; the parent stops and exits
//
// and parent to child, one answer per message:
//
//	ok
//	error TEXT
const maxLine = 4096

// message is one control line.
type message struct {
	verb string // "release", "ready", "ok" or "error"
	arg  string
}

// parseMessage decodes one control line (without its '\n').
func parseMessage(line string) (message, error) {
	if len(line) > maxLine {
		return message{}, fmt.Errorf("control line of %d bytes, more than %d", len(line), maxLine)
	}
	verb, arg, _ := strings.Cut(line, " ")
	m := message{verb: verb, arg: arg}
	switch verb {
	case "ok":
		if arg != "" {
			return message{}, fmt.Errorf("control line %q: ok takes nothing", line)
		}
	case "error":
	case "release":
		if arg == "" || strings.ContainsAny(arg, " \t\r") {
			return message{}, fmt.Errorf("control line %q: want release WHAT", line)
		}
	case "ready":
		if pid, err := strconv.Atoi(arg); err != nil || pid <= 0 {
			return message{}, fmt.Errorf("control line %q: want ready PID", line)
		}
	default:
		return message{}, fmt.Errorf("control line %q: unknown message", line)
	}
	return m, nil
}

func (m message) String() string {
	if m.arg == "" {
		return m.verb
	}
	return m.verb + " " + m.arg
}

// control is one end of the control socket.
type control struct {
	c net.Conn
	r *bufio.Reader
}

func newControl(c net.Conn) *control {
	return &control{c: c, r: bufio.NewReaderSize(c, maxLine+1)}
}

// send writes m within timeout.
func (c *control) send(m message, timeout time.Duration) error {
	if err := c.c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	text := strings.ReplaceAll(m.String(), "\n", " ")
	_, err := c.c.Write([]byte(text + "\n"))
	return err
}

// recv reads the next message, waiting until deadline (zero: forever).
func (c *control) recv(deadline time.Time) (message, error) {
	if err := c.c.SetReadDeadline(deadline); err != nil {
		return message{}, err
	}
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return message{}, fmt.Errorf("control line longer than %d bytes", maxLine)
	}
	if err != nil {
		return message{}, err
	}
	return parseMessage(strings.TrimSuffix(string(line), "\n"))
}

// call sends m and waits for the answer until deadline: nil for ok, the
// text of an error.
func (c *control) call(m message, deadline time.Time) error {
	if err := c.send(m, time.Until(deadline)); err != nil {
		return fmt.Errorf("telling the old process %q: %w", m, err)
	}
	a, err := c.recv(deadline)
	if err != nil {
		return fmt.Errorf("waiting for the old process to answer %q: %w", m, err)
	}
	switch a.verb {
	case "ok":
		return nil
	case "error":
		return fmt.Errorf("the old process refused %q: %s", m, a.arg)
	}
	return fmt.Errorf("the old process answered %q with %q", m, a)
}

func (c *control) close() error { return c.c.Close() }
