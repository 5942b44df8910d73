// Package upgrade replaces a running weir process with a new one, started
// from the binary at the old one's path, without refusing a connection:
// the old process hands its listening sockets to the new one (they are
// the same kernel sockets, so connections waiting in the accept queue
// are served by whichever process accepts them), lets go of what cannot
// be shared (the gossip port) when the new process asks, and stops only
// once the new process says it serves. If the new process fails to start
// or is not ready within Options.ReadyTimeout, it is killed and the old
// one serves on, as before.
//
// The same Upgrader serves both sides: New finds the handoff a parent
// left in the environment (EnvVar); Listen takes an inherited socket or
// binds a new one; Ready tells the parent. Upgrade starts the next
// process; Exit is closed once that process is ready.
package upgrade

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The refusals of Upgrade.
var (
	ErrInProgress = errors.New("an upgrade is already in progress")
	ErrUpgraded   = errors.New("this process has handed over to its upgrade and is stopping")
	ErrStopped    = errors.New("the process is stopping")
	ErrNotServing = errors.New("this process is not serving yet (Ready was not called)")
	ErrNotReady   = errors.New("the new process did not become ready")
)

// DefaultReadyTimeout is how long Upgrade waits for the new process to
// be ready: long enough to read its configuration and files, bind and
// join, and short enough that a hung start is noticed.
const DefaultReadyTimeout = 30 * time.Second

// answerTimeout bounds one exchange on the control socket, and the wait
// for a killed process to exit.
const answerTimeout = 5 * time.Second

// Options configure an Upgrader.
type Options struct {
	// Exe is the binary Upgrade starts; "" is the one this process was
	// started from, found at New (its path, so a new file installed
	// there is what starts).
	Exe string
	// Args are the new process's arguments; nil is this process's.
	Args []string
	// Env is the new process's environment (EnvVar is set over it); nil
	// is this process's at the time of the upgrade.
	Env []string
	// Stdout and Stderr are the new process's; nil is this process's.
	// They are files, not any writer: the new process outlives this
	// one, so it cannot write through a pipe this process reads.
	Stdout, Stderr *os.File
	// ReadyTimeout bounds the wait for the new process to be ready; 0 is
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// PIDFile, when set, is written with this process's PID at Ready (so
	// the new process's PID is there before the old one exits), written
	// back by a parent whose upgrade failed, and removed at Stop if it
	// still names this process.
	PIDFile string
	// Seeds, when set, returns the gossip addresses handed to the new
	// process (the members this one knows), which Seeds reads there.
	Seeds func() []string
	// OnRelease, when set, lets go of what the new process asks for
	// ("gossip": leave the cluster and close the gossip port) before it
	// binds it. An error is the new process's error. Nil refuses.
	OnRelease func(what string) error
	// OnReclaim, when set, is told of each thing released for an upgrade
	// that then failed, newest first.
	OnReclaim func(what string)
	// Log receives the upgrade's progress; nil is slog.Default().
	Log *slog.Logger
}

// Upgrader hands a process's listeners to its upgrade, and takes them
// over from the process it upgrades. Its methods are safe for concurrent
// use.
type Upgrader struct {
	opt Options
	exe string
	log *slog.Logger

	// ctlMu orders the child's messages to its parent.
	ctlMu  sync.Mutex
	parent *control // nil when not started by an upgrade, or after Ready
	seeds  []string

	mu        sync.Mutex
	inherited map[string]inheritedListener // handed over and not yet claimed
	listeners map[string][]record          // what the next upgrade hands over: the newest open of each
	ready     bool
	upgrading bool
	upgraded  bool
	stopped   bool
	running   sync.WaitGroup // Upgrade calls under way

	exit     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

type inheritedListener struct {
	inherited
	ln net.Listener
}

type record struct {
	network, addr string
	ln            net.Listener
}

// New returns an Upgrader. If this process was started by an upgrade, it
// takes the sockets and control socket its parent handed over (and
// clears EnvVar, so they are not handed on by mistake); a broken handoff
// is an error, and the process should exit, which its parent sees.
func New(opt Options) (*Upgrader, error) {
	u := &Upgrader{
		opt:       opt,
		exe:       opt.Exe,
		log:       opt.Log,
		inherited: map[string]inheritedListener{},
		listeners: map[string][]record{},
		exit:      make(chan struct{}),
		stop:      make(chan struct{}),
	}
	if u.log == nil {
		u.log = slog.Default()
	}
	if u.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("upgrade: finding this binary's path, which an upgrade starts: %w", err)
		}
		u.exe = exe
	}
	v, ok := os.LookupEnv(EnvVar)
	if !ok {
		return u, nil
	}
	os.Unsetenv(EnvVar)
	h, err := parseHandoff(v)
	if err != nil {
		return nil, err
	}
	if err := u.inherit(h); err != nil {
		u.closeInherited()
		return nil, err
	}
	return u, nil
}

// inherit opens the descriptors h names.
func (u *Upgrader) inherit(h handoff) error {
	f := os.NewFile(uintptr(h.Control), "upgrade control")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("upgrade: the control socket (descriptor %d) from the old process: %w", h.Control, err)
	}
	u.parent = newControl(c)
	for _, l := range h.Listeners {
		f := os.NewFile(uintptr(l.FD), "inherited "+l.Name)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("upgrade: the %s listener (descriptor %d, %s) from the old process: %w", l.Name, l.FD, l.Bound, err)
		}
		u.inherited[l.Name] = inheritedListener{inherited: l, ln: ln}
	}
	u.seeds = h.Seeds
	return nil
}

// HasParent reports whether this process was started by an upgrade and
// has not yet told its parent it is ready.
func (u *Upgrader) HasParent() bool {
	u.ctlMu.Lock()
	defer u.ctlMu.Unlock()
	return u.parent != nil
}

// Seeds returns the gossip addresses the parent knew, or nil.
func (u *Upgrader) Seeds() []string { return slices.Clone(u.seeds) }

// Listen returns the listener named name: the one inherited from the
// parent under that name when it matches network and addr (see
// inherited.matches), else a new one bound to addr. An inherited one
// whose address changed is closed. The listener is handed over at the
// next upgrade, until a later Listen for the same name replaces it; if
// that one is closed again (a reload that bound a new address, then
// failed, closes it and keeps the old), the newest one still open is
// handed over.
func (u *Upgrader) Listen(name, network, addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if in, ok := u.inherited[name]; ok {
		delete(u.inherited, name)
		if in.matches(network, addr) {
			u.record(name, record{network: network, addr: addr, ln: in.ln})
			u.log.Debug("upgrade: serving on the inherited listener", "listener", name, "addr", in.Bound)
			return in.ln, nil
		}
		in.ln.Close()
		u.log.Info("upgrade: the listener's address changed; closed the inherited socket and binding the new address",
			"listener", name, "inherited", in.Bound, "addr", addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	u.record(name, record{network: network, addr: addr, ln: ln})
	return ln, nil
}

// maxRecords bounds the listeners remembered per name: the newest, and
// those it may have replaced in a reload not yet committed or undone.
const maxRecords = 4

// record remembers r as the newest listener named name. u.mu is held.
func (u *Upgrader) record(name string, r record) {
	rs := append(u.listeners[name], r)
	if len(rs) > maxRecords {
		rs = slices.Clone(rs[len(rs)-maxRecords:])
	}
	u.listeners[name] = rs
}

// Release asks the parent to let go of what (see Options.OnRelease),
// waiting until ctx ends. Without a parent it does nothing.
func (u *Upgrader) Release(ctx context.Context, what string) error {
	u.ctlMu.Lock()
	defer u.ctlMu.Unlock()
	if u.parent == nil {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(answerTimeout)
	}
	if err := u.parent.call(message{verb: "release", arg: what}, deadline); err != nil {
		return fmt.Errorf("upgrade: asking the old process to release %s: %w", what, err)
	}
	return nil
}

// Ready says this process serves: it closes inherited listeners nothing
// claimed, writes Options.PIDFile, and tells the parent, if any, which
// then stops. An error from the parent means it gave up on this process
// (it kills it): stop. Calls after the first do nothing.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	if u.ready {
		u.mu.Unlock()
		return nil
	}
	u.ready = true
	u.mu.Unlock()
	u.closeInherited()
	if u.opt.PIDFile != "" {
		if err := WritePIDFile(u.opt.PIDFile, os.Getpid()); err != nil {
			return err
		}
	}
	u.ctlMu.Lock()
	defer u.ctlMu.Unlock()
	if u.parent == nil {
		return nil
	}
	err := u.parent.call(message{verb: "ready", arg: strconv.Itoa(os.Getpid())}, time.Now().Add(answerTimeout))
	u.parent.close()
	u.parent = nil
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	u.log.Info("upgrade: took over from the old process, which now stops", "pid", os.Getpid())
	return nil
}

// closeInherited closes the inherited listeners nothing claimed: at
// Ready, those of addresses dropped from the configuration, which stop
// accepting; at Stop, what a process that failed to start left.
func (u *Upgrader) closeInherited() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, in := range u.inherited {
		in.ln.Close()
		delete(u.inherited, name)
		u.log.Info("upgrade: closed an inherited listener nothing took over", "listener", name, "addr", in.Bound)
	}
}

// Exit is closed once an upgrade succeeded: the new process serves, and
// this one should stop accepting, finish what it serves, and exit.
func (u *Upgrader) Exit() <-chan struct{} { return u.exit }

// Upgrade starts the next process and hands it the listeners; it returns
// nil once that process is ready (and Exit is closed), or why not, in
// which case the new process is gone and this one serves on.
func (u *Upgrader) Upgrade() error {
	u.mu.Lock()
	switch {
	case u.stopped:
		u.mu.Unlock()
		return ErrStopped
	case u.upgraded:
		u.mu.Unlock()
		return ErrUpgraded
	case u.upgrading:
		u.mu.Unlock()
		return ErrInProgress
	case !u.ready:
		u.mu.Unlock()
		return ErrNotServing
	}
	u.upgrading = true
	u.running.Add(1)
	files, listeners := u.files()
	u.mu.Unlock()
	defer u.running.Done()

	err := u.spawn(files, listeners)
	u.mu.Lock()
	u.upgrading = false
	if err == nil {
		u.upgraded = true
		close(u.exit)
	}
	u.mu.Unlock()
	return err
}

// files duplicates the descriptors of the listeners to hand over,
// counting from 4 (3 is the control socket), and forgets closed ones.
// u.mu is held.
func (u *Upgrader) files() ([]int, []inherited) {
	var fds []int
	var hand []inherited
	names := make([]string, 0, len(u.listeners))
	for name := range u.listeners {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rs := u.listeners[name]
		// The newest still open; closed ones are forgotten.
		for i := len(rs) - 1; i >= 0; i-- {
			r := rs[i]
			sc, ok := r.ln.(syscall.Conn)
			if !ok {
				continue
			}
			fd, err := dupFD(sc)
			if err != nil { // closed: a reload moved it, or undid a move
				rs = slices.Delete(rs, i, i+1)
				continue
			}
			hand = append(hand, inherited{Name: name, FD: 4 + len(fds), Network: r.network, Addr: r.addr, Bound: r.ln.Addr().String()})
			fds = append(fds, fd)
			break
		}
		if len(rs) == 0 {
			delete(u.listeners, name)
		} else {
			u.listeners[name] = rs
		}
	}
	return fds, hand
}

// dupFD duplicates c's descriptor, close-on-exec. Unlike File and Fd, it
// leaves the socket in non-blocking mode: that mode belongs to the
// socket, shared by every descriptor of it, so putting a handed-over
// listener in blocking mode would leave this process's accept loop stuck
// in a system call its Close then waits for, after a failed upgrade.
func dupFD(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			derr = errno
			return
		}
		dup = int(r)
	}); err != nil {
		return -1, err
	}
	return dup, derr
}

// closeFDs closes descriptors of dupFD.
func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// spawn starts the new process with the listeners' descriptors fds and
// waits for it to be ready.
//
// It starts the process with syscall.StartProcess rather than os/exec,
// whose ExtraFiles go through os.File.Fd, which puts each socket in
// blocking mode (see dupFD).
func (u *Upgrader) spawn(fds []int, hand []inherited) error {
	defer func() { closeFDs(fds) }()
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("upgrade: creating the control socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "upgrade control"), pair[1]
	defer func() {
		if theirs >= 0 {
			syscall.Close(theirs)
		}
	}()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return fmt.Errorf("upgrade: creating the control socket: %w", err)
	}
	ctl := newControl(c)
	defer ctl.close()

	h := handoff{Control: 3, Listeners: hand}
	if u.opt.Seeds != nil {
		h.Seeds = u.opt.Seeds()
	}
	stdio, err := u.stdio()
	if err != nil {
		return fmt.Errorf("upgrade: %w; this process serves on", err)
	}
	defer closeFDs(stdio)
	files := make([]uintptr, 0, 4+len(fds))
	for _, fd := range append(append(stdio, theirs), fds...) {
		files = append(files, uintptr(fd))
	}
	pid, _, err := syscall.StartProcess(u.exe, append([]string{u.exe}, u.args()...), &syscall.ProcAttr{
		Env:   append(withoutVar(u.env(), EnvVar), EnvVar+"="+h.encode()),
		Files: files,
	})
	if err != nil {
		return fmt.Errorf("upgrade: starting %s: %w; this process serves on", u.exe, err)
	}
	syscall.Close(theirs)
	theirs = -1
	closeFDs(fds)
	fds = nil
	proc, err := os.FindProcess(pid)
	if err != nil { // never on Unix
		return fmt.Errorf("upgrade: the new process (pid %d): %w", pid, err)
	}
	u.log.Info("upgrade: started the new process; waiting for it to be ready", "exe", u.exe, "pid", pid,
		"listeners", len(hand), "ready_timeout", u.readyTimeout().String())

	exited := make(chan error, 1)
	go func() { exited <- waitExit(proc) }() // reaps the child whenever it exits
	msgs := make(chan received)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			m, err := ctl.recv(time.Time{})
			select {
			case msgs <- received{m, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var released []string
	gone := false // the child was reaped
	fail := func(err error) error {
		if !gone {
			proc.Kill()
			select {
			case <-exited:
			case <-time.After(answerTimeout):
			}
		}
		for _, what := range slices.Backward(released) {
			if u.opt.OnReclaim != nil {
				u.opt.OnReclaim(what)
			}
		}
		if u.opt.PIDFile != "" {
			if werr := WritePIDFile(u.opt.PIDFile, os.Getpid()); werr != nil {
				u.log.Error("upgrade: could not write this process's PID back to the PID file", "error", werr.Error())
			}
		}
		return fmt.Errorf("upgrade: %w; this process serves on (pid %d)", err, os.Getpid())
	}
	timer := time.NewTimer(u.readyTimeout())
	defer timer.Stop()
	for {
		select {
		case r := <-msgs:
			if r.err != nil {
				// Closed: the child exited or gave up; its status says more.
				select {
				case err := <-exited:
					gone = true
					return fail(fmt.Errorf("the new process (pid %d) exited before it was ready: %v", pid, err))
				case <-time.After(answerTimeout):
				}
				return fail(fmt.Errorf("the new process (pid %d) broke the control socket before it was ready: %w", pid, r.err))
			}
			switch r.m.verb {
			case "release":
				err := errors.New("nothing can be released")
				if u.opt.OnRelease != nil {
					err = u.opt.OnRelease(r.m.arg)
				}
				answer := message{verb: "ok"}
				if err != nil {
					answer = message{verb: "error", arg: err.Error()}
				} else {
					released = append(released, r.m.arg)
					u.log.Info("upgrade: released for the new process", "what", r.m.arg, "pid", pid)
				}
				if serr := ctl.send(answer, answerTimeout); serr != nil {
					return fail(fmt.Errorf("answering the new process (pid %d): %w", pid, serr))
				}
			case "ready":
				if serr := ctl.send(message{verb: "ok"}, answerTimeout); serr != nil {
					return fail(fmt.Errorf("answering the new process (pid %d) that it may serve: %w", pid, serr))
				}
				u.log.Info("upgrade: the new process is ready; this process stops accepting and drains", "pid", pid)
				return nil
			default:
				return fail(fmt.Errorf("the new process (pid %d) sent %q", pid, r.m))
			}
		case err := <-exited:
			gone = true
			return fail(fmt.Errorf("the new process (pid %d) exited before it was ready: %v", pid, err))
		case <-timer.C:
			return fail(fmt.Errorf("%w within %s (pid %d, killed)", ErrNotReady, u.readyTimeout(), pid))
		case <-u.stop:
			return fail(fmt.Errorf("%w (pid %d, killed)", ErrStopped, pid))
		}
	}
}

// stdio returns descriptors for the new process's standard input
// (/dev/null), output and error, to close once it started.
func (u *Upgrader) stdio() ([]int, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	fds := make([]int, 0, 3)
	for _, f := range []*os.File{null, cmp.Or(u.opt.Stdout, os.Stdout), cmp.Or(u.opt.Stderr, os.Stderr)} {
		fd, err := dupFD(f)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("handing %s to the new process: %w", f.Name(), err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// waitExit waits for p to exit and returns what exec.Cmd.Wait would: nil
// for exit status 0, else an error naming how it ended.
func waitExit(p *os.Process) error {
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("%s", st)
	}
	return nil
}

type received struct {
	m   message
	err error
}

func (u *Upgrader) readyTimeout() time.Duration {
	if u.opt.ReadyTimeout > 0 {
		return u.opt.ReadyTimeout
	}
	return DefaultReadyTimeout
}

func (u *Upgrader) args() []string {
	if u.opt.Args != nil {
		return u.opt.Args
	}
	return os.Args[1:]
}

func (u *Upgrader) env() []string {
	if u.opt.Env != nil {
		return u.opt.Env
	}
	return os.Environ()
}

// withoutVar returns env without name's entries.
func withoutVar(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

// Stop ends the Upgrader: an upgrade under way is abandoned (its process
// killed) and waited for, unclaimed inherited listeners close, and the
// PID file is removed if it still names this process. It is safe to call
// more than once.
func (u *Upgrader) Stop() {
	u.stopOnce.Do(func() {
		u.mu.Lock()
		u.stopped = true
		u.mu.Unlock()
		close(u.stop)
		u.running.Wait()
		u.closeInherited()
		u.ctlMu.Lock()
		if u.parent != nil {
			u.parent.close()
			u.parent = nil
		}
		u.ctlMu.Unlock()
		if u.opt.PIDFile != "" {
			removeOwnPIDFile(u.opt.PIDFile, os.Getpid())
		}
	})
}
