package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Capture is tcpdump running on one interface of a namespace, one line per
// packet (-n -tt: numeric addresses, epoch timestamps), e.g.
//
//	1732512345.123456 IP 198.51.100.1.40312 > 203.0.113.10.443: Flags [S], …
//	1732512345.123457 IP6 2001:db8:100::1.40314 > 2001:db8:203::10.443: Flags [S], …
//
// so "> 203.0.113.10.443" matches the packets sent to that address and port.
type Capture struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once tcpdump has exited and its output is read

	mu       sync.Mutex
	lines    []string
	stderr   strings.Builder
	stopping bool
	waitErr  error
}

// StartCapture runs tcpdump on iface in ns with a BPF filter ("" for every
// packet, or e.g. "tcp port 443", "host 203.0.113.11"). It returns once
// tcpdump reports that it is listening, so no packet sent afterwards is
// missed; ctx bounds that wait only (10 s at most). Stop ends it; so does
// the lab's Close.
func StartCapture(ctx context.Context, ns *Netns, iface, filter string) (*Capture, error) {
	args := []string{"-Z", "root", "-n", "-l", "-tt", "--immediate-mode", "-i", iface}
	if strings.TrimSpace(filter) != "" {
		args = append(args, filter)
	}
	cmd := ns.Command(context.Background(), "tcpdump", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	c := &Capture{cmd: cmd, done: make(chan struct{})}
	if ns.lab != nil {
		if err := ns.lab.onClose(c.kill); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		close(c.done)
		return nil, fmt.Errorf("lab: starting tcpdump in namespace %s: %w", ns.Name, err)
	}
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.read(stdout, func(line string) { c.lines = append(c.lines, line) })
	}()
	go func() {
		defer wg.Done()
		seen := false
		c.read(stderr, func(line string) {
			c.stderr.WriteString(line + "\n")
			if !seen && strings.Contains(line, "listening on") {
				seen = true
				close(ready)
			}
		})
	}()
	go func() {
		wg.Wait()
		err := cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("lab: tcpdump on %s in namespace %s exited: %v: %s",
			iface, ns.Name, c.exitErr(), strings.TrimSpace(c.stderrText()))
	case <-ctx.Done():
		c.kill()
		return nil, fmt.Errorf("lab: tcpdump on %s in namespace %s not listening: %w: %s",
			iface, ns.Name, ctx.Err(), strings.TrimSpace(c.stderrText()))
	}
}

// read calls add, under the lock, for each line of r.
func (c *Capture) read(r io.Reader, add func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.mu.Lock()
		add(sc.Text())
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Lines returns the packets seen so far, one line each.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Stop lets packets in flight arrive, ends tcpdump and returns every line.
// Calling it again returns the same lines.
func (c *Capture) Stop() []string {
	c.mu.Lock()
	first := !c.stopping
	c.stopping = true
	c.mu.Unlock()
	if first {
		time.Sleep(100 * time.Millisecond)
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
			c.kill()
		}
	}
	<-c.done
	return c.Lines()
}

// kill ends tcpdump at once (the lab's Close).
func (c *Capture) kill() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

var droppedRE = regexp.MustCompile(`(?m)^([0-9]+) packets? dropped by kernel`)

// Err reports, once tcpdump has ended, whether the lines are incomplete:
// tcpdump died by itself (an interface deleted, say) or the kernel dropped
// packets it could not hand over in time. It is nil while tcpdump runs.
func (c *Capture) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopping {
		return fmt.Errorf("lab: tcpdump ended by itself (%v): %s", c.waitErr, strings.TrimSpace(c.stderr.String()))
	}
	if m := droppedRE.FindStringSubmatch(c.stderr.String()); m != nil && m[1] != "0" {
		return fmt.Errorf("lab: tcpdump: %s packets dropped by kernel; the capture is incomplete", m[1])
	}
	return nil
}

func (c *Capture) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

func (c *Capture) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
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

// CountMatching is the number of lines that contain substr.
func CountMatching(lines []string, substr string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}
