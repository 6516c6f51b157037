package integration

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// leftovers lists the namespaces of a lab made by pid.
func leftovers(t *testing.T, pid int) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "egd"+strconv.Itoa(pid)+"x") {
			left = append(left, line)
		}
	}
	return left
}

func TestDemoRunsAndLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, egressdBin, "demo")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	report := string(out)
	for _, want := range []string{
		"client saw:   HTTP 200, body: origin=203.0.113.10 host=allowed.example",
		"connection reset by egressd (denied)",
		"0 packets to 203.0.113.11",
		"0 packets to 203.0.113.17",
		"decision=deny reason=not_allowed host=denied.example",
		"Lab removed",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("namespaces left behind: %v", left)
	}
}

func TestDemoCleansUpOnCtrlC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command(egressdBin, "demo")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	serving, scanned := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "egressd runs in the gateway namespace") {
				once = true
				close(serving)
			}
		}
	}()
	// Interrupt while the lab and egressd are up.
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("demo never got egressd serving")
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	pw.Close()
	<-scanned
	if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("namespaces left after Ctrl-C: %v\n%s", left, out.String())
	}
	if !strings.Contains(out.String(), "Lab removed") {
		t.Fatalf("no cleanup message:\n%s", out.String())
	}
}
