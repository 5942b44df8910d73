package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

// roleVar makes the test binary act as the new process of an upgrade.
const roleVar = "WEIR_UPGRADE_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleVar); role != "" {
		os.Exit(child(role))
	}
	os.Exit(m.Run())
}

// child is the new process: "serve" takes the edge listener over, asks
// for the gossip port, says ready and serves until SIGTERM; "exit" fails
// before it is ready; "early" fails before it even looks at what was
// handed over (as a broken binary does); "hang" asks for the gossip port
// and never becomes ready; "new" only runs New (for a broken handoff).
func child(role string) int {
	if role == "early" {
		return 3
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	u, err := New(Options{PIDFile: os.Getenv("WEIR_UPGRADE_TEST_PIDFILE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch role {
	case "exit", "new":
		return 3
	case "hang":
		if err := u.Release(context.Background(), "gossip"); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		<-term
		return 0
	}
	ln, err := u.Listen("edge", "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	if err := u.Release(context.Background(), "gossip"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	seeds := strings.Join(u.Seeds(), ",")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "new %d %s", os.Getpid(), seeds)
	})}
	go srv.Serve(ln)
	if err := u.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 6
	}
	<-term
	srv.Close()
	u.Stop()
	return 0
}

// parent is the process being upgraded, serving "old" on its edge
// listener.
type parent struct {
	u        *Upgrader
	srv      *http.Server
	addr     string
	ln       net.Listener
	pidFile  string
	mu       sync.Mutex
	released []string
	reclaim  []string
}

func newParent(t *testing.T, role string, timeout time.Duration) *parent {
	t.Helper()
	p := &parent{pidFile: filepath.Join(t.TempDir(), "weir.pid")}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	u, err := New(Options{
		Exe:          os.Args[0],
		Args:         []string{"-test.run=^$"},
		Env:          append(os.Environ(), roleVar+"="+role, "WEIR_UPGRADE_TEST_PIDFILE="+p.pidFile),
		Stdout:       null,
		ReadyTimeout: timeout,
		PIDFile:      p.pidFile,
		Seeds:        func() []string { return []string{"10.0.0.2:7946", "10.0.0.3:7946"} },
		OnRelease: func(what string) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.released = append(p.released, what)
			return nil
		},
		OnReclaim: func(what string) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.reclaim = append(p.reclaim, what)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.u = u
	ln, err := u.Listen("edge", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr, p.ln = ln.Addr().String(), ln
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") })}
	go p.srv.Serve(ln)
	if err := u.Upgrade(); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Upgrade before Ready: %v, want ErrNotServing", err)
	}
	if err := u.Ready(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.srv.Close()
		u.Stop()
	})
	return p
}

func (p *parent) lists() (released, reclaimed []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.released), slices.Clone(p.reclaim)
}

func get(c *http.Client, addr string) (string, error) {
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestUpgradeHandsOverWithoutAFailedRequest runs a client load across an
// upgrade: every request is answered, by the old process and then by the
// new one, which got the gossip seeds, asked for the gossip port, and
// wrote its PID to the PID file before the old one was told to exit.
func TestUpgradeHandsOverWithoutAFailedRequest(t *testing.T) {
	checkLeaks(t)
	p := newParent(t, "serve", 20*time.Second)
	if pid, err := ReadPIDFile(p.pidFile); err != nil || pid != os.Getpid() {
		t.Fatalf("PID file before the upgrade: %d, %v; want %d", pid, err, os.Getpid())
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var (
		ok, failed atomic.Int64
		fromNew    atomic.Int64
		firstErr   atomic.Value
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		newBody    atomic.Value
	)
	deadline := time.Now().Add(30 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, err := get(c, p.addr)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
				if strings.HasPrefix(body, "new ") {
					fromNew.Add(1)
					newBody.Store(body)
				}
			}
		}()
	}
	testkit.Eventually(t, "the load reaches the old process", func() bool { return ok.Load() > 100 })

	if err := p.u.Upgrade(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	select {
	case <-p.u.Exit():
	default:
		t.Fatal("Upgrade returned nil but Exit is not closed")
	}
	if err := p.u.Upgrade(); !errors.Is(err, ErrUpgraded) {
		t.Errorf("a second Upgrade: %v, want ErrUpgraded", err)
	}
	childPID, err := ReadPIDFile(p.pidFile)
	if err != nil || childPID == os.Getpid() {
		t.Errorf("PID file after the upgrade: %d, %v; want the new process's", childPID, err)
	}
	// The old process stops accepting and drains, as weir serve does.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := p.srv.Shutdown(sctx); err != nil {
		t.Errorf("draining the old server: %v", err)
	}
	cancel()
	before := fromNew.Load()
	testkit.Eventually(t, "the new process answers the load", func() bool { return fromNew.Load() > before+200 })
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across the upgrade; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	body, _ := newBody.Load().(string)
	if want := fmt.Sprintf("new %d 10.0.0.2:7946,10.0.0.3:7946", childPID); body != want {
		t.Errorf("the new process answered %q, want %q (its PID and the seeds handed over)", body, want)
	}
	if rel, rec := p.lists(); !slices.Equal(rel, []string{"gossip"}) || len(rec) != 0 {
		t.Errorf("released %v, reclaimed %v; want [gossip] and nothing", rel, rec)
	}
	t.Logf("%d requests, %d answered by the new process", ok.Load(), fromNew.Load())

	tr.CloseIdleConnections()
	p.u.Stop()
	if pid, err := ReadPIDFile(p.pidFile); err != nil || pid != childPID {
		t.Errorf("the old process's Stop changed the new one's PID file: %d, %v", pid, err)
	}
	stopProcess(t, childPID)
	if _, err := os.Stat(p.pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the new process left its PID file at its stop: %v", err)
	}
}

// checkLeaks fails t if goroutines it starts outlive it, cleanups
// included (it runs after those registered later).
func checkLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// stopProcess sends pid SIGTERM and waits until it is gone (the
// Upgrader reaps its children).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping pid %d: %v", pid, err)
	}
	testkit.Eventually(t, "the new process exits", func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) })
}

// TestUpgradeFailureKeepsTheOldProcess: a new process that exits before
// it is ready, or hangs, is gone afterwards, and the old process serves
// on with its PID file, gets back what it released, and may upgrade
// again.
func TestUpgradeFailureKeepsTheOldProcess(t *testing.T) {
	for _, tc := range []struct {
		role    string
		want    string
		reclaim []string
	}{
		{"exit", "exited before it was ready: exit status 3", nil},
		{"early", "exited before it was ready: exit status 3", nil},
		{"hang", ErrNotReady.Error() + " within 1s", []string{"gossip"}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			checkLeaks(t)
			p := newParent(t, tc.role, time.Second)
			for attempt := range 2 {
				err := p.u.Upgrade()
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "this process serves on") {
					t.Fatalf("attempt %d: Upgrade: %v, want an error with %q", attempt, err, tc.want)
				}
				select {
				case <-p.u.Exit():
					t.Fatal("Exit closed after a failed upgrade")
				default:
				}
				if body, err := get(http.DefaultClient, p.addr); err != nil || body != "old" {
					t.Fatalf("the old process after a failed upgrade: %q, %v", body, err)
				}
				if pid, err := ReadPIDFile(p.pidFile); err != nil || pid != os.Getpid() {
					t.Fatalf("PID file after a failed upgrade: %d, %v; want %d", pid, err, os.Getpid())
				}
				// In blocking mode, the accept loop would sit in accept(2)
				// and Close would wait for the next connection.
				if !nonBlocking(t, p.ln) {
					t.Fatal("the listener is in blocking mode after a failed upgrade")
				}
			}
			want := slices.Concat(tc.reclaim, tc.reclaim)
			if rel, rec := p.lists(); !slices.Equal(rel, want) || !slices.Equal(rec, want) {
				t.Errorf("released %v, reclaimed %v; want %v both", rel, rec, want)
			}
			http.DefaultClient.CloseIdleConnections()
		})
	}
}

// nonBlocking reports whether ln's socket is in non-blocking mode.
func nonBlocking(t *testing.T, ln net.Listener) bool {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags uintptr
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	}); err != nil || errno != 0 {
		t.Fatalf("fcntl F_GETFL: %v %v", err, errno)
	}
	return flags&syscall.O_NONBLOCK != 0
}

// TestUpgradeRefusals: a second upgrade while one is under way is
// refused, and Stop abandons the one under way (killing its process).
func TestUpgradeRefusals(t *testing.T) {
	checkLeaks(t)
	p := newParent(t, "hang", time.Minute)
	done := make(chan error, 1)
	go func() { done <- p.u.Upgrade() }()
	testkit.Eventually(t, "the new process asks for the gossip port", func() bool {
		rel, _ := p.lists()
		return len(rel) == 1
	})
	if err := p.u.Upgrade(); !errors.Is(err, ErrInProgress) {
		t.Errorf("Upgrade during an upgrade: %v, want ErrInProgress", err)
	}
	p.u.Stop()
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Errorf("the upgrade Stop abandoned: %v, want ErrStopped", err)
	}
	if err := p.u.Upgrade(); !errors.Is(err, ErrStopped) {
		t.Errorf("Upgrade after Stop: %v, want ErrStopped", err)
	}
	if _, err := os.Stat(p.pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left its own PID file: %v", err)
	}
}

// TestBrokenHandoffStopsTheNewProcess: a process started with a handoff
// it cannot use says why and exits before binding anything.
func TestBrokenHandoffStopsTheNewProcess(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"not json", "is not a handoff from a weir process"},
		{`{"control":3,"listeners":[{"name":"edge","fd":9,"network":"tcp","addr":":1","bound":"[::]:1"}]}`, "the control socket (descriptor 3)"},
	} {
		cmd := execSelf(t, "new")
		cmd.Env = append(cmd.Env, EnvVar+"="+tc.value)
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%s: exit %d, output %q; want exit 2 and %q", EnvVar, tc.value, code, out, tc.want)
		}
	}
}

func execSelf(t *testing.T, role string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleVar+"="+role)
	return cmd
}

func exitCode(err error) int {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestPIDFile: written atomically, read back, removed only by its owner.
func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.pid")
	if err := WritePIDFile(path, 1234); err != nil {
		t.Fatal(err)
	}
	if pid, err := ReadPIDFile(path); err != nil || pid != 1234 {
		t.Fatalf("ReadPIDFile: %d, %v", pid, err)
	}
	removeOwnPIDFile(path, 99)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a process removed another's PID file: %v", err)
	}
	removeOwnPIDFile(path, 1234)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the owner's removal left the file: %v", err)
	}
	if err := WritePIDFile(filepath.Join(t.TempDir(), "missing", "weir.pid"), 1); err == nil || !strings.Contains(err.Error(), "check that its directory exists") {
		t.Errorf("writing into a missing directory: %v", err)
	}
	os.WriteFile(path, []byte("nope\n"), 0o644)
	if _, err := ReadPIDFile(path); err == nil || !strings.Contains(err.Error(), "not a PID") {
		t.Errorf("reading a file without a PID: %v", err)
	}
}

// TestUpgradeHandsOverTheNewestOpenListener: a listener bound again under
// the same name and then closed (a reload that moved an address, then
// failed and kept the old one) leaves the one still serving to be handed
// over.
func TestUpgradeHandsOverTheNewestOpenListener(t *testing.T) {
	checkLeaks(t)
	p := newParent(t, "serve", 30*time.Second)
	moved, err := p.u.Listen("edge", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	moved.Close()
	if err := p.u.Upgrade(); err != nil {
		t.Fatal(err)
	}
	childPID, err := ReadPIDFile(p.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	defer stopProcess(t, childPID)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	body, err := get(&http.Client{Transport: tr, Timeout: 5 * time.Second}, p.addr)
	if err != nil || !strings.HasPrefix(body, fmt.Sprintf("new %d ", childPID)) {
		t.Fatalf("the address still served after the upgrade answered %q, %v; want the new process", body, err)
	}
}
