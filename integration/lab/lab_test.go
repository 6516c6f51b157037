package lab

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func newTestLab(t *testing.T) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := New(ctx, Options{Origins: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLabForwardsAndCaptures(t *testing.T) {
	l := newTestLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.EnableKernelForwarding(ctx); err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	o, err := StartOrigin(l.Internet, l.Origins4, ca, []string{"a.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	capt, err := StartCapture(ctx, l.Gateway, GatewayOutsideIf, "tcp")
	if err != nil {
		t.Fatal(err)
	}
	c := l.Client.HTTPClient(ca.Pool())
	req, _ := httpsRequest("https://" + l.Origins4[0].String() + "/")
	req.Host = "a.example"
	c.Transport.(*httpTransport).TLSClientConfig.ServerName = "a.example"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "origin="+l.Origins4[0].String()) {
		t.Fatalf("body %q", body)
	}
	lines := capt.Stop()
	if len(Matching(lines, l.Origins4[0].String()+".443")) == 0 {
		t.Fatalf("capture missed the request: %q", lines)
	}
	if o.Accepted(l.Origins4[0]) != 1 {
		t.Fatalf("accepted %d", o.Accepted(l.Origins4[0]))
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	l, err := New(ctx, Options{Origins: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Gateway.Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("process survived Close")
	}
	out, _ := l.Client.Command(ctx, "true").CombinedOutput()
	if !strings.Contains(string(out), "Cannot open network namespace") && !strings.Contains(string(out), "No such file") {
		t.Fatalf("namespace still usable after Close: %q", out)
	}
}

type httpTransport = http.Transport

func httpsRequest(url string) (*http.Request, error) { return http.NewRequest("GET", url, nil) }
