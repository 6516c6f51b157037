// Command bench measures egressd against the kernel's own forwarding,
// nginx (ssl_preread) and HAProxy (req.ssl_sni) in the integration lab's
// namespaces, interleaved over several rounds, and prints a markdown table
// of medians with ratios. Root is needed.
//
//	go run ./integration/bench            # full run (several minutes)
//	go run ./integration/bench -quick     # smoke run (CI)
//
// The load generator (this binary, re-run in the client namespace) sends a
// real Go ClientHello with its post-quantum key share (~1.8 KiB) and then
// asks the server for N bytes: the gateway's peek-decide-splice is measured,
// not TLS crypto.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/integration/lab"
)

type bench struct {
	lab        *lab.Lab
	dir        string
	egressdBin string
	self       string
	target     netip.AddrPort
	server     *bytesServer
	egressd    *lab.Process
	peers      bool
	only       map[string]bool // gateways to run; empty: all
	workloads  map[string]bool
	profileDir string
	strace     string // write an strace -c syscall summary of egressd here
	env        []string

	dur       time.Duration
	idleConns int
	churnConc int
}

// sample is one gateway's measurements in one round.
type sample struct {
	bulk1, bulk8   float64 // Gbit/s
	cpuPerGiB      float64 // gateway processes, ms per GiB (8 conns)
	machinePerGiB  float64 // whole machine, ms per GiB (8 conns)
	connsPerSec    float64
	p50, p99, p999 float64 // ms
	cpuPer1000     float64 // gateway processes, ms per 1000 conns
	machinePer1000 float64
	idleHeld       float64
	rssPerConn     float64 // KiB
	fdsPerConn     float64
	stealPct       float64 // highest steal seen in the round's measurements
	errors         int64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-loadgen" {
		loadgenMain(os.Args[2:])
		return
	}
	rounds := flag.Int("rounds", 3, "interleaved rounds; medians are reported")
	quick := flag.Bool("quick", false, "smoke run: 1 round, short measurements, few idle connections")
	peers := flag.Bool("peers", true, "also measure nginx and HAProxy when installed")
	out := flag.String("o", "", "also write the markdown table to this file")
	only := flag.String("only", "", "comma-separated gateways to run (kernel,egressd,nginx,haproxy)")
	workloads := flag.String("workloads", "bulk,churn,idle", "comma-separated workloads")
	profile := flag.String("profile", "", "write egressd CPU and allocation profiles (pprof) into this directory")
	envFlag := flag.String("env", "", "comma-separated VAR=value for egressd (e.g. GOMAXPROCS=1)")
	strace := flag.String("strace", "", "run egressd under `strace -f -c` and write the syscall summary to this file")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (network namespaces, nftables)")
		os.Exit(1)
	}
	b := &bench{dur: 5 * time.Second, idleConns: 9000, churnConc: 64, peers: *peers,
		only: set(*only), workloads: set(*workloads), profileDir: *profile, strace: *strace}
	if *envFlag != "" {
		b.env = strings.Split(*envFlag, ",")
	}
	if *quick {
		*rounds, b.dur, b.idleConns = 1, time.Second, 200
	}
	table, err := b.run(*rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Println(table)
	if *out != "" {
		_ = os.WriteFile(*out, []byte(table+"\n"), 0o644)
	}
}

func (b *bench) run(rounds int) (string, error) {
	ctx := context.Background()
	var err error
	if b.dir, err = os.MkdirTemp("", "egressd-bench"); err != nil {
		return "", err
	}
	defer os.RemoveAll(b.dir)
	if b.self, err = os.Executable(); err != nil {
		return "", err
	}
	b.egressdBin = filepath.Join(b.dir, "egressd")
	build := exec.Command("go", "build", "-o", b.egressdBin, "./cmd/egressd")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building egressd: %v\n%s", err, out)
	}
	if b.lab, err = lab.New(ctx, lab.Options{Origins: 2}); err != nil {
		return "", err
	}
	defer b.lab.Close()
	dns, err := lab.StartDNS(b.lab.Internet, lab.DNSAddr4)
	if err != nil {
		return "", err
	}
	defer dns.Stop()
	origin := b.lab.Origins4[0]
	dns.SetRecords("bench.example", origin)
	dns.SetRecords("denied.example", b.lab.Origins4[1])
	b.target = netip.AddrPortFrom(origin, 443)
	b.server = &bytesServer{}
	for _, a := range b.lab.Origins4 {
		ln, err := b.lab.Internet.Listen("tcp", netip.AddrPortFrom(a, 443).String())
		if err != nil {
			return "", err
		}
		b.server.serve(ln)
	}
	defer b.server.close()

	var gws []gateway
	for _, gw := range gateways(b) {
		if len(b.only) == 0 || b.only[gw.name] {
			gws = append(gws, gw)
		}
	}
	results := map[string][]sample{}
	for r := 0; r < rounds; r++ {
		for _, gw := range gws {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", r+1, rounds, gw.name)
			stop, err := gw.start(ctx, b)
			if err != nil {
				return "", fmt.Errorf("%s: %w", gw.name, err)
			}
			if r == 0 {
				if err := b.verify(ctx, gw); err != nil {
					stop()
					return "", fmt.Errorf("%s: %w", gw.name, err)
				}
			}
			s, err := b.measure(ctx)
			stop()
			if err != nil {
				return "", fmt.Errorf("%s: %w", gw.name, err)
			}
			fmt.Fprintf(os.Stderr, "  %+v\n", s)
			results[gw.name] = append(results[gw.name], s)
		}
	}
	return report(gws, results, rounds), nil
}

func set(csv string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(csv, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// verify proves that the gateway passes the allowed name and that a denied
// name sends nothing toward the internet (tcpdump on the outside interface,
// live as shown by the allowed connection in the same capture).
func (b *bench) verify(ctx context.Context, gw gateway) error {
	capt, err := lab.StartCapture(ctx, b.lab.Gateway, lab.GatewayOutsideIf, "tcp port 443")
	if err != nil {
		return err
	}
	ok := b.oneRequest(ctx, "bench.example", b.target)
	denied := b.oneRequest(ctx, "denied.example", netip.AddrPortFrom(b.lab.Origins4[1], 443))
	lines := capt.Stop()
	if !ok {
		return fmt.Errorf("allowed name did not pass")
	}
	if len(lab.Matching(lines, b.target.Addr().String())) == 0 {
		return fmt.Errorf("capture saw nothing of the allowed connection")
	}
	if gw.name == "kernel" {
		return nil // plain forwarding filters nothing: the baseline
	}
	if denied {
		return fmt.Errorf("denied name passed")
	}
	if m := lab.Matching(lines, b.lab.Origins4[1].String()); len(m) > 0 {
		return fmt.Errorf("denied name sent %d packets out", len(m))
	}
	fmt.Fprintf(os.Stderr, "  verified: allowed passes, denied sends nothing out\n")
	return nil
}

func (b *bench) oneRequest(ctx context.Context, sni string, to netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := b.lab.Client.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(request(goHello(sni), 16)); err != nil {
		return false
	}
	buf := make([]byte, 16)
	_, err = io.ReadFull(c, buf)
	return err == nil
}

// loadgen runs the load generator in the client namespace.
func (b *bench) loadgen(ctx context.Context, onStderr func(string), args ...string) (loadResult, error) {
	cmd := b.lab.Client.Command(ctx, b.self, append([]string{"-loadgen", "-target", b.target.String()}, args...)...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return loadResult{}, err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if onStderr != nil {
			onStderr(sc.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		return loadResult{}, fmt.Errorf("loadgen %v: %w", args, err)
	}
	var r loadResult
	err := json.Unmarshal(stdout.Bytes(), &r)
	return r, err
}

func (b *bench) measure(ctx context.Context) (sample, error) {
	var s sample
	pids := nsPIDs(b.lab.Gateway.Name)
	steal := func(m machineCPU) {
		if m.total > 0 {
			s.stealPct = math.Max(s.stealPct, 100*m.steal/m.total)
		}
	}
	// bulk, 1 and 8 connections
	for _, n := range []int{1, 8} {
		if !b.workloads["bulk"] {
			break
		}
		c0, m0 := procCPU(pids), readMachineCPU()
		r, err := b.loadgen(ctx, nil, "-mode", "bulk", "-conns", fmt.Sprint(n), "-dur", b.dur.String())
		if err != nil {
			return s, err
		}
		c1, m1 := procCPU(pids), readMachineCPU()
		s.errors += r.Errors
		if r.Errors > 0 && r.Bytes == 0 {
			return s, fmt.Errorf("bulk: %s", r.FirstErr)
		}
		gbps := float64(r.Bytes) * 8 / r.Seconds / 1e9
		gib := float64(r.Bytes) / (1 << 30)
		m := m1.sub(m0)
		steal(m)
		if n == 1 {
			s.bulk1 = gbps
		} else {
			s.bulk8 = gbps
			s.cpuPerGiB = (c1 - c0) / gib
			s.machinePerGiB = m.busy / gib
		}
	}
	if b.workloads["churn"] {
		if err := b.churn(ctx, &s, pids, steal); err != nil {
			return s, err
		}
	}
	if b.workloads["idle"] {
		if err := b.idle(ctx, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (b *bench) churn(ctx context.Context, s *sample, pids []int, steal func(machineCPU)) error {
	c0, m0 := procCPU(pids), readMachineCPU()
	r, err := b.loadgen(ctx, nil, "-mode", "churn", "-conns", fmt.Sprint(b.churnConc), "-dur", b.dur.String())
	if err != nil {
		return err
	}
	c1, m1 := procCPU(pids), readMachineCPU()
	steal(m1.sub(m0))
	s.errors += r.Errors
	s.connsPerSec = float64(r.Conns) / r.Seconds
	s.p50, s.p99, s.p999 = ms(r.P50), ms(r.P99), ms(r.P999)
	if r.Conns > 0 {
		s.cpuPer1000 = (c1 - c0) / float64(r.Conns) * 1000
		s.machinePer1000 = m1.sub(m0).busy / float64(r.Conns) * 1000
	}
	return nil
}

func (b *bench) idle(ctx context.Context, s *sample) error {
	time.Sleep(500 * time.Millisecond) // churned sockets settle
	pids := nsPIDs(b.lab.Gateway.Name)
	rss0, fds0 := procRSS(pids)
	var rss1 float64
	var fds1 int
	held := 0.0
	_, err := b.loadgen(ctx, func(line string) {
		if strings.HasPrefix(line, "holding") {
			time.Sleep(time.Second)
			held = float64(b.server.held.Load())
			rss1, fds1 = procRSS(nsPIDs(b.lab.Gateway.Name))
		}
	}, "-mode", "idle", "-conns", fmt.Sprint(b.idleConns), "-dur", "2s")
	if err != nil {
		return err
	}
	s.idleHeld = held
	if held > 0 {
		s.rssPerConn = (rss1 - rss0) / held
		s.fdsPerConn = float64(fds1-fds0) / held
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pick(ss []sample, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, f(s))
	}
	return median(xs)
}

func report(gws []gateway, res map[string][]sample, rounds int) string {
	var w strings.Builder
	host, _ := os.Hostname()
	_ = host
	cpuModel := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpuModel = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	kernel := res["kernel"]
	k1, k8, kc := pick(kernel, func(s sample) float64 { return s.bulk1 }), pick(kernel, func(s sample) float64 { return s.bulk8 }), pick(kernel, func(s sample) float64 { return s.connsPerSec })
	bestPeerConns, bestPeerCPU := 0.0, math.Inf(1)
	for _, gw := range gws {
		if gw.peer {
			bestPeerConns = math.Max(bestPeerConns, pick(res[gw.name], func(s sample) float64 { return s.connsPerSec }))
			bestPeerCPU = math.Min(bestPeerCPU, pick(res[gw.name], func(s sample) float64 { return s.cpuPer1000 }))
		}
	}
	ratio := func(v, base float64) string {
		if base <= 0 || math.IsInf(base, 0) {
			return "—"
		}
		return fmt.Sprintf("%.2f×", v/base)
	}
	fmt.Fprintf(&w, "Medians of %d interleaved round(s), %s, %d cores, %s.\n\n", rounds, time.Now().UTC().Format("2006-01-02"), numCPU(), cpuModel)
	fmt.Fprintln(&w, "| gateway | 1 conn Gbit/s | ×kernel | 8 conns Gbit/s | ×kernel | gw CPU ms/GiB | machine CPU ms/GiB | conns/s | ×best peer | p50 / p99 / p99.9 ms | gw CPU ms/1000 conns | ×best peer | idle conns held | RSS KiB/conn | fds/conn | max steal % |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, gw := range gws {
		ss := res[gw.name]
		g := func(f func(sample) float64) float64 { return pick(ss, f) }
		b1, b8, cps := g(func(s sample) float64 { return s.bulk1 }), g(func(s sample) float64 { return s.bulk8 }), g(func(s sample) float64 { return s.connsPerSec })
		cpu1000 := g(func(s sample) float64 { return s.cpuPer1000 })
		steal := 0.0
		for _, s := range ss {
			steal = math.Max(steal, s.stealPct)
		}
		idle, rss, fds := "—", "—", "—"
		if gw.name != "kernel" {
			idle = fmt.Sprintf("%.0f", g(func(s sample) float64 { return s.idleHeld }))
			rss = fmt.Sprintf("%.1f", g(func(s sample) float64 { return s.rssPerConn }))
			fds = fmt.Sprintf("%.1f", g(func(s sample) float64 { return s.fdsPerConn }))
		}
		gwCPU, gwCPU1000, peerCPU := fmt.Sprintf("%.0f", g(func(s sample) float64 { return s.cpuPerGiB })), fmt.Sprintf("%.0f", cpu1000), ratio(cpu1000, bestPeerCPU)
		if gw.name == "kernel" {
			gwCPU, gwCPU1000, peerCPU = "(softirq)", "(softirq)", "—"
		}
		fmt.Fprintf(&w, "| %s | %.2f | %s | %.2f | %s | %s | %.0f | %.0f | %s | %.2f / %.2f / %.2f | %s | %s | %s | %s | %s | %.0f%s |\n",
			gw.name, b1, ratio(b1, k1), b8, ratio(b8, k8), gwCPU, g(func(s sample) float64 { return s.machinePerGiB }),
			cps, ratio(cps, bestPeerConns), g(func(s sample) float64 { return s.p50 }), g(func(s sample) float64 { return s.p99 }), g(func(s sample) float64 { return s.p999 }),
			gwCPU1000, peerCPU, idle, rss, fds, steal, map[bool]string{true: " ⚠", false: ""}[steal > 20])
	}
	fmt.Fprintf(&w, "\nKernel: %.0f conns/s. \"×best peer\": against the better of nginx and HAProxy (conns/s: higher is better; CPU: lower is better). ⚠: VM steal above 20%% in a round.\n", kc)
	return w.String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
