package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/egressd/egressd/integration/lab"
)

// gateway is one contestant: it makes the lab's gateway namespace pass
// the client's TLS connections to the internet with the bench allowlist
// (bench.example allowed, everything else denied).
type gateway struct {
	name  string
	peer  bool // nginx / HAProxy: the "better peer" baseline
	start func(ctx context.Context, b *bench) (stop func(), err error)
}

func gateways(b *bench) []gateway {
	gws := []gateway{
		{name: "kernel", start: startKernel},
		{name: "egressd", start: startEgressd},
	}
	if _, err := exec.LookPath("nginx"); err == nil && b.peers {
		gws = append(gws, gateway{name: "nginx", peer: true, start: startNginx})
	}
	if _, err := exec.LookPath("haproxy"); err == nil && b.peers {
		gws = append(gws, gateway{name: "haproxy", peer: true, start: startHAProxy})
	}
	return gws
}

func startKernel(ctx context.Context, b *bench) (func(), error) {
	if err := b.lab.EnableKernelForwarding(ctx); err != nil {
		return nil, err
	}
	return func() {
		_, _ = b.lab.Gateway.Run(context.Background(), "sysctl", "-qw", "net.ipv4.ip_forward=0")
	}, nil
}

func startEgressd(ctx context.Context, b *bench) (func(), error) {
	cfg := filepath.Join(b.dir, "egressd.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `listen:
  admin: ""
intercept:
  sources: [%s]
upstream:
  resolver: "%s"
limits:
  drain_timeout: 1s
policy:
  allow: [bench.example]
log:
  level: info
`, lab.ClientNet4, lab.DNSAddr4), 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{b.egressdBin, "run", "-c", cfg}
	if b.profileDir != "" {
		// A profile per run of egressd: the last round's is kept.
		args = append([]string{"EGRESSD_CPUPROFILE=" + filepath.Join(b.profileDir, "cpu.pprof"),
			"EGRESSD_MEMPROFILE=" + filepath.Join(b.profileDir, "allocs.pprof")}, args...)
	}
	args = append(slices.Clone(b.env), args...)
	if b.strace != "" {
		args = append([]string{"strace", "-f", "-c", "-o", b.strace}, args...)
	}
	p, err := b.lab.Gateway.Start("env", args...)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitFor(wctx, "egressd serving"); err != nil {
		p.Kill()
		return nil, err
	}
	b.egressd = p
	return func() {
		if b.strace != "" {
			// Stop the egressd under strace (only this lab's: the PIDs
			// of the gateway namespace), so that strace writes its summary.
			for _, pid := range nsPIDs(b.lab.Gateway.Name) {
				if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "egressd" {
					_ = syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		_ = p.Signal(15)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if p.Wait(sctx) != nil {
			p.Kill()
		}
	}, nil
}

// redirectRules sends the client network's TCP/443 to port 15443, as
// egressd's own table does, for the peers.
func redirectRules(ctx context.Context, b *bench) (func(), error) {
	rules := fmt.Sprintf(`table inet benchpeer {
  chain pre { type nat hook prerouting priority dstnat; ip saddr %s tcp dport 443 redirect to :15443; }
}`, lab.ClientNet4)
	f := filepath.Join(b.dir, "peer.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		return nil, err
	}
	if _, err := b.lab.Gateway.Run(ctx, "nft", "-f", f); err != nil {
		return nil, err
	}
	return func() { _, _ = b.lab.Gateway.Run(context.Background(), "nft", "delete", "table", "inet", "benchpeer") }, nil
}

func startPeer(ctx context.Context, b *bench, name string, args ...string) (func(), error) {
	unredirect, err := redirectRules(ctx, b)
	if err != nil {
		return nil, err
	}
	p, err := b.lab.Gateway.Start(name, args...)
	if err != nil {
		unredirect()
		return nil, err
	}
	// Wait until it accepts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := b.lab.Gateway.DialContext(ctx, "tcp", "127.0.0.1:15443")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			p.Kill()
			unredirect()
			return nil, fmt.Errorf("%s did not start: %v\n%s", name, err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() { p.Kill(); unredirect() }, nil
}

// startNginx: stream module, ssl_preread, a map allowlist whose default
// denies (a dead local address: nothing leaves), the name resolved by the
// lab's DNS (nginx cannot read SO_ORIGINAL_DST).
func startNginx(ctx context.Context, b *bench) (func(), error) {
	conf := filepath.Join(b.dir, "nginx.conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes auto;
worker_rlimit_nofile 20000;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log error;
daemon off;
events { worker_connections 10000; }
stream {
  resolver %[2]s valid=60s;
  map $ssl_preread_server_name $target {
    bench.example bench.example:443;
    default 127.0.0.1:1;
  }
  server {
    listen 15443 reuseport;
    ssl_preread on;
    preread_timeout 5s;
    proxy_pass $target;
    proxy_connect_timeout 5s;
  }
}
`, b.dir, lab.DNSAddr4.Addr()), 0o644)
	if err != nil {
		return nil, err
	}
	return startPeer(ctx, b, "nginx", "-c", conf)
}

// startHAProxy: mode tcp, a proper inspect-delay, req.ssl_sni allowlist,
// forwarding to the original destination (server 0.0.0.0:0).
func startHAProxy(ctx context.Context, b *bench) (func(), error) {
	conf := filepath.Join(b.dir, "haproxy.cfg")
	err := os.WriteFile(conf, []byte(`global
  maxconn 9500 # two fds per connection must fit the 20,000 open-file limit
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend tls
  bind :15443
  tcp-request inspect-delay 5s
  tcp-request content reject if !{ req.ssl_hello_type 1 }
  tcp-request content reject if !{ req.ssl_sni -i bench.example }
  tcp-request content accept
  default_backend original
backend original
  server origin 0.0.0.0:0
`), 0o644)
	if err != nil {
		return nil, err
	}
	return startPeer(ctx, b, "haproxy", "-f", conf, "-db")
}
