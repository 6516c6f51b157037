package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a long-running program started in a namespace of a lab, such
// as egressd itself. Its standard output and error are kept together and
// can be read while it runs. The lab's Close kills it.
type Process struct {
	// Name is the program, as given to Start.
	Name string

	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error // of cmd.Wait, once done is closed
}

// Start starts name with args inside the namespace, in a process group of
// its own, with output captured (Output, WaitFor). The program gets SIGKILL
// if this process dies, and Close of the lab kills it and its group.
//
// For environment variables, a working directory or standard input, build
// the command with Command and use StartCommand.
func (n *Netns) Start(name string, args ...string) (*Process, error) {
	return n.StartCommand(n.Command(context.Background(), name, args...))
}

// StartCommand starts cmd, which must come from n.Command, as Start does.
// The caller may have set its Env, Dir and Stdin; Stdout and Stderr, if
// set, receive a copy of the output. If cmd was made with a context, ending
// the context kills the process group.
func (n *Netns) StartCommand(cmd *exec.Cmd) (*Process, error) {
	if len(cmd.Args) < 5 || !slices.Equal(cmd.Args[1:4], []string{"netns", "exec", n.Name}) || cmd.Process != nil {
		return nil, fmt.Errorf("lab: StartCommand in %s wants an unstarted command from (*Netns).Command, got %q", n.Name, cmd.Args)
	}
	p := &Process{Name: cmd.Args[4], cmd: cmd, done: make(chan struct{})}
	var stdout, stderr io.Writer = &p.out, &p.out
	if cmd.Stdout != nil {
		stdout = io.MultiWriter(&p.out, cmd.Stdout)
	}
	if cmd.Stderr != nil {
		stderr = io.MultiWriter(&p.out, cmd.Stderr)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A process group of its own, so that Kill reaches its children too;
	// ip netns exec execs the program, so the group is the program's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Children that keep the output pipe open must not block Wait.
	cmd.WaitDelay = 2 * time.Second
	if n.lab != nil {
		// Refuse before starting: a closed lab would leak the process.
		if err := n.lab.track(p); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		close(p.done)
		p.err = err
		return nil, fmt.Errorf("starting %s in namespace %s: %w", p.Name, n.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the program's process ID (also its process group ID).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Output is everything the program wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the program (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("signal %v to %s: %w", sig, p.Name, os.ErrProcessDone)
	}
	return p.cmd.Process.Signal(sig)
}

// Kill kills the program and its process group and waits (a few seconds
// at most) for it to end.
func (p *Process) Kill() {
	p.kill()
	p.waitKilled(5 * time.Second)
}

func (p *Process) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

func (p *Process) waitKilled(d time.Duration) {
	select {
	case <-p.done:
	case <-time.After(d):
	}
}

// Wait waits for the program to exit, or for ctx to end, and returns its
// exit error (nil for status 0).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d) still running: %w", p.Name, p.PID(), ctx.Err())
	}
}

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitFor waits until the output contains s. It fails when the program
// exits or ctx ends first; the error includes the output so far.
func (p *Process) WaitFor(ctx context.Context, s string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), s) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.Name, p.err, s, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("%s did not print %q: %w; output:\n%s", p.Name, s, ctx.Err(), p.Output())
		case <-tick.C:
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
