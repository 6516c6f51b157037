package lab

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Capture is a running tcpdump on one interface of a namespace.
type Capture struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// StartCapture starts tcpdump and returns once it is listening (so that no
// packet sent after StartCapture returns can be missed).
func StartCapture(ctx context.Context, ns *Netns, iface, filter string) (*Capture, error) {
	args := []string{"netns", "exec", ns.Name, "tcpdump", "-Z", "root", "-n", "-l", "--immediate-mode", "-i", iface}
	if filter != "" {
		args = append(args, strings.Fields(filter)...)
	}
	cmd := exec.Command("ip", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting tcpdump in %s: %w", ns.Name, err)
	}
	c := &Capture{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				ready <- ""
				break
			}
		}
		select {
		case ready <- strings.Join(seen, "\n"):
		default:
		}
		for sc.Scan() {
		}
	}()
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case msg := <-ready:
		if msg != "" {
			c.Stop()
			return nil, fmt.Errorf("tcpdump did not start: %s", msg)
		}
	case <-ctx.Done():
		c.Stop()
		return nil, fmt.Errorf("tcpdump not listening: %w", ctx.Err())
	}
	if ns.lab != nil {
		ns.lab.track(&Process{Name: "tcpdump", cmd: cmd, out: &lockedBuffer{}, done: c.done})
	}
	return c, nil
}

// Lines returns the packets seen so far, one line each.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Stop ends the capture (letting tcpdump flush) and returns its lines.
func (c *Capture) Stop() []string {
	time.Sleep(100 * time.Millisecond) // packets in flight reach the capture
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	return c.Lines()
}

// Matching returns the lines that contain substr.
func Matching(lines []string, substr string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}
