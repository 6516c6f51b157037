package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/egressd/egressd/gateway"
	"github.com/egressd/egressd/gateway/admin"
	"github.com/egressd/egressd/gateway/dnscache"
	"github.com/egressd/egressd/gateway/splice"
	"github.com/egressd/egressd/nat"
	"github.com/egressd/egressd/policy/config"
)

// fdsPerConnection is what one idle proxied connection holds: its two
// sockets. The relay engine takes a pipe (two fds) only while a direction
// is moving bytes, from fdReserve.
const fdsPerConnection = 2

// fdReserve is kept for listeners, the resolver, the admin server, logs,
// and the splice pipes of the connections that are moving bytes.
const fdReserve = 1024

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfigPath, "config file")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "egressd run: unexpected argument %q (usage: egressd run [-c FILE])\n", fs.Arg(0))
		return exitError
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	out := newLogOutput(stderr, cfg.Log.Level, cfg.Log.Format)
	defer out.Close()
	d := &daemon{path: *path, out: out, log: newLogger(out)}
	d.cfg.Store(cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if stopProfiles := startProfiles(d.log); stopProfiles != nil {
		defer stopProfiles()
	}
	if err := d.run(ctx); err != nil {
		d.log.Error().Err(err).Msg("egressd stopped")
		return exitError
	}
	return exitOK
}

// daemon is one `egressd run`.
type daemon struct {
	path string
	out  *logOutput
	log  zerolog.Logger
	cfg  atomic.Pointer[config.Config]
	hash [32]byte // of the config file last loaded

	reg      *prometheus.Registry
	gw       *gateway.Gateway
	resolver resolverSwitch
	tables   *nat.Tables
	serving  atomic.Bool
	maxByFDs int
	reloads  *prometheus.CounterVec
	reloadMu sync.Mutex
	ready    *admin.Readiness
}

func (d *daemon) run(ctx context.Context) (err error) {
	cfg := d.cfg.Load()
	if data, err := os.ReadFile(d.path); err == nil {
		d.hash = sha256.Sum256(data)
	}
	bi := readBuildInfo()
	d.log.Info().Str("version", bi.Version).Str("commit", bi.Commit).Str("config", d.path).
		Str("mode", cfg.Policy.Mode.String()).Str("upstream_mode", string(cfg.Upstream.Mode)).Msg("egressd starting")

	d.maxByFDs = d.raiseFileLimit()
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egressd_config_reloads_total", Help: "Config reloads by result (success, error).",
	}, []string{"result"})
	d.reg.MustRegister(d.reloads)
	d.reloads.WithLabelValues("success").Add(0)
	d.reloads.WithLabelValues("error").Add(0)
	d.registerDNSMetrics()

	if err := d.setResolver(ctx, cfg); err != nil {
		return err
	}

	httpLn, err := listen("listen.http", cfg.Listen.HTTP)
	if err != nil {
		return err
	}
	defer httpLn.Close()
	tlsLn, err := listen("listen.tls", cfg.Listen.TLS)
	if err != nil {
		return err
	}
	defer tlsLn.Close()

	if cfg.Intercept.NFTables {
		if err := d.installRules(cfg, httpLn, tlsLn); err != nil {
			return err
		}
		defer d.removeRules()
	} else {
		d.log.Warn().Msg("intercept.nftables is false: no rules installed; redirect traffic to the listeners yourself")
	}

	engine, err := splice.NewEngine(splice.Options{})
	if err != nil {
		return fmt.Errorf("starting the relay engine: %w", err)
	}
	defer engine.Close()
	d.gw = gateway.New(gateway.Options{
		Log:      d.log,
		Metrics:  gateway.NewMetrics(d.reg),
		Resolver: &d.resolver,
		Engine:   engine,
	}, d.settings(cfg))

	d.ready = d.readiness()
	if cfg.Listen.Admin != "" {
		stopAdmin, err := d.serveAdmin(cfg.Listen.Admin)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}

	// Not ctx: a stop signal ends the loop below, which closes the
	// listeners only once the ha peer has taken over (stopHA).
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	errc := make(chan error, 2)
	go func() { errc <- d.gw.ServeHTTP(serveCtx, httpLn) }()
	go func() { errc <- d.gw.ServeTLS(serveCtx, tlsLn) }()
	d.serving.Store(true)
	d.log.Info().Str("http", httpLn.Addr().String()).Str("tls", tlsLn.Addr().String()).
		Str("admin", cfg.Listen.Admin).Int("max_connections", d.settings(cfg).MaxConnections).
		Msg("egressd serving")

	stopHA := func(context.Context) {}
	if cfg.HA.Enabled {
		if stopHA, err = d.startHA(ctx, serveCtx, cfg.HA); err != nil {
			return err
		}
	}
	defer stopHA(context.Background())

	go d.watchConfig(serveCtx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var serveErr error
	running := 2 // the two serve goroutines
loop:
	for {
		select {
		case <-hup:
			d.reload("SIGHUP")
		case err := <-errc:
			serveErr = err
			running--
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	// A second stop signal cuts the hand-over and the drain short.
	again, stopAgain := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopAgain()
	// With ha, keep serving until the peer has taken over the routes
	// (its checks are refused from now on); then stop accepting and let
	// the open connections drain.
	stopHA(again)
	stopServing()
	// Both accept loops must have returned before Drain waits for the
	// connections they started.
	for ; running > 0; running-- {
		if err := <-errc; err != nil && serveErr == nil {
			serveErr = err
		}
	}
	d.serving.Store(false)
	drain := d.cfg.Load().Limits.DrainTimeout
	d.log.Info().Int64("open_connections", d.gw.Active()).Dur("drain_timeout", drain).Msg("stopping: no new connections; draining")
	dctx, cancel := context.WithTimeout(again, drain)
	defer cancel()
	if n := d.gw.Drain(dctx); n > 0 {
		d.log.Warn().Int("closed", n).Msg("drain timeout: closed the connections still open")
	}
	return serveErr
}

// listen opens one of the listeners with an error that says what to fix.
func listen(key, addr string) (net.Listener, error) {
	// No TCP keep-alive probes: limits.idle_timeout ends silent
	// connections, and the four setsockopt calls per accepted connection
	// are measurable under churn.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s %s: address already in use (is another egressd running? choose a free port for %s)", key, addr, key)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("%s %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)", key, addr)
		}
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return ln, nil
}

func listenPort(ln net.Listener) uint16 {
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// installRules installs the nftables table and turns forwarding on.
func (d *daemon) installRules(cfg *config.Config, httpLn, tlsLn net.Listener) error {
	t, err := nat.New()
	if err != nil {
		return err
	}
	rs := nat.Ruleset{
		Sources:        cfg.Intercept.Sources,
		HTTPPorts:      cfg.Intercept.HTTPPorts,
		TLSPorts:       cfg.Intercept.TLSPorts,
		HTTPListenPort: listenPort(httpLn),
		TLSListenPort:  listenPort(tlsLn),
		Other:          nat.Other(cfg.Intercept.Other),
	}
	if err := t.Install(rs); err != nil {
		return err
	}
	d.tables = t
	routes, err := nat.DefaultRoutes()
	if err != nil {
		d.log.Warn().Err(err).Msg("cannot read the routing table")
	}
	var ifaces []string
	for _, r := range routes {
		gw := "(on link)"
		if r.Gateway.IsValid() {
			gw = r.Gateway.String()
		}
		d.log.Info().Str("interface", r.Interface).Str("gateway", gw).Str("family", r.Family).
			Msg("default route (upstream connections leave here)")
		ifaces = append(ifaces, r.Interface)
	}
	if len(routes) == 0 {
		d.log.Warn().Msg("no default route: allowed connections will fail to reach the internet")
	}
	if err := nat.EnableForwarding(ifaces); err != nil {
		_ = t.Remove()
		return err
	}
	d.log.Info().Str("table", "inet egressd").Str("rules", rs.Describe()).Msg("nftables table installed; forwarding on, ICMP redirects off")
	return nil
}

// removeRules removes the table and turns forwarding off: a stopped
// gateway forwards nothing (fail closed).
func (d *daemon) removeRules() {
	if err := d.tables.Remove(); err != nil {
		d.log.Error().Err(err).Msg("removing nftables table inet egressd failed; remove it with `nft delete table inet egressd`")
	}
	if err := nat.DisableForwarding(); err != nil {
		d.log.Error().Err(err).Msg("turning forwarding off failed")
	}
	d.log.Info().Msg("nftables table removed; forwarding off")
}

// raiseFileLimit raises the soft open-file limit to the hard limit and
// returns how many connections that allows.
func (d *daemon) raiseFileLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		d.log.Warn().Err(err).Msg("cannot read the open-file limit")
		return 0
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			lim.Cur = old
			d.log.Warn().Err(err).Msg("cannot raise the open-file limit")
		}
	}
	maxConns := max(int(lim.Cur)-fdReserve, 0) / fdsPerConnection
	d.log.Info().Uint64("nofile", lim.Cur).Int("connections_allowed", maxConns).Msg("open-file limit")
	return maxConns
}

// settings derives the gateway's reloadable settings from a config.
func (d *daemon) settings(cfg *config.Config) *gateway.Settings {
	maxConns := cfg.Limits.MaxConnections
	if d.maxByFDs > 0 && maxConns > d.maxByFDs {
		maxConns = d.maxByFDs
	}
	return &gateway.Settings{
		Policy:         cfg.Compiled,
		UpstreamMode:   gateway.UpstreamMode(cfg.Upstream.Mode),
		DialTimeout:    cfg.Upstream.DialTimeout,
		SniffTimeout:   cfg.Limits.SniffTimeout,
		IdleTimeout:    cfg.Limits.IdleTimeout,
		MaxConnections: maxConns,
	}
}

// setResolver points the DNS cache at upstream.resolver (or the system's)
// and checks that it answers.
func (d *daemon) setResolver(ctx context.Context, cfg *config.Config) error {
	server := cfg.Upstream.Resolver
	if server == "" {
		var err error
		if server, err = config.SystemResolver("/etc/resolv.conf"); err != nil {
			return err
		}
	}
	if cur := d.resolver.current(); cur != nil && cur.Server() == server {
		return nil
	}
	c, err := dnscache.New(dnscache.Options{Server: server})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Probe(pctx); err != nil {
		return fmt.Errorf("resolver %s does not answer: %w (set upstream.resolver to a DNS server the gateway can reach)", server, err)
	}
	d.resolver.set(c)
	d.log.Info().Str("resolver", server).Msg("resolver answers")
	return nil
}

func (d *daemon) registerDNSMetrics() {
	d.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "egressd_dns_cache_hits_total", Help: "Lookups answered from the DNS cache.",
		}, func() float64 { return float64(d.resolver.stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "egressd_dns_cache_misses_total", Help: "Lookups that asked the resolver.",
		}, func() float64 { return float64(d.resolver.stats().Misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "egressd_dns_errors_total", Help: "Resolver failures (timeout, SERVFAIL, unreachable).",
		}, func() float64 { return float64(d.resolver.stats().Errors) }),
	)
}

// readiness returns the checks behind /readyz and the ha health endpoint:
// listeners serving, resolver answering, nftables table in place.
func (d *daemon) readiness() *admin.Readiness {
	checks := []admin.Check{
		{Name: "listeners", Run: func(context.Context) error {
			if !d.serving.Load() {
				return errors.New("not serving")
			}
			return nil
		}},
		{Name: "resolver", Run: func(ctx context.Context) error {
			c := d.resolver.current()
			if c == nil {
				return errors.New("no resolver")
			}
			return c.Probe(ctx)
		}},
	}
	if d.tables != nil {
		checks = append(checks, admin.Check{Name: "nftables", Run: func(context.Context) error {
			ok, err := d.tables.Installed()
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("table inet egressd is missing (removed by hand? restart egressd)")
			}
			return nil
		}})
	}
	return admin.NewReadiness(checks, time.Second)
}

func (d *daemon) serveAdmin(addr string) (stop func(), err error) {
	ln, err := listen("listen.admin", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           admin.Handler(d.reg, d.ready),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("admin endpoint failed")
		}
	}()
	d.log.Info().Str("admin", ln.Addr().String()).Msg("admin endpoint: /metrics /healthz /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// reload validates the config file and swaps it in; an invalid file is
// refused and the running config stays.
func (d *daemon) reload(trigger string) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	data, _ := os.ReadFile(d.path)
	d.hash = sha256.Sum256(data)
	old := d.cfg.Load()
	cfg, err := config.Load(d.path)
	if err != nil {
		d.reloads.WithLabelValues("error").Inc()
		ev := d.log.Error().Str("trigger", trigger).Str("config", d.path)
		var errs config.Errors
		if errors.As(err, &errs) {
			lines := make([]string, len(errs))
			for i, e := range errs {
				lines[i] = e.Error()
			}
			ev = ev.Strs("errors", lines)
		} else {
			ev = ev.Err(err)
		}
		ev.Msg("config reload refused: keeping the running config")
		return
	}
	if changed := cfg.RestartRequired(old); len(changed) > 0 {
		d.log.Warn().Strs("keys", changed).Msg("these settings take effect only after a restart; keeping their running values")
		cfg.Listen, cfg.Intercept, cfg.HA = old.Listen, old.Intercept, old.HA
	}
	if err := d.setResolver(context.Background(), cfg); err != nil {
		d.reloads.WithLabelValues("error").Inc()
		d.log.Error().Err(err).Str("trigger", trigger).Msg("config reload refused: keeping the running config")
		return
	}
	d.out.set(cfg.Log.Level, cfg.Log.Format)
	d.cfg.Store(cfg)
	revoked := d.gw.Update(d.settings(cfg))
	d.reloads.WithLabelValues("success").Inc()
	d.log.Info().Str("trigger", trigger).Str("mode", cfg.Policy.Mode.String()).
		Int("allow_entries", len(cfg.Policy.Allow)).Int("groups", len(cfg.Policy.Groups)).
		Int("revoked_connections", revoked).Msg("config reloaded")
}

// watchConfig reloads when the config file's content changes. It watches
// the directory, not the file, so that editors that save by renaming a new
// file over the old one (and Kubernetes' symlink swaps) are seen.
func (d *daemon) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn().Err(err).Msg("cannot watch the config file; reload with SIGHUP")
		return
	}
	defer w.Close()
	dir := filepath.Dir(d.path)
	if err := w.Add(dir); err != nil {
		d.log.Warn().Err(err).Str("dir", dir).Msg("cannot watch the config directory; reload with SIGHUP")
		return
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			debounce = time.After(200 * time.Millisecond) // editors write in several steps
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn().Err(err).Msg("config watch error")
		case <-debounce:
			data, err := os.ReadFile(d.path)
			if err != nil {
				continue // mid-rename; the next event will tell
			}
			d.reloadMu.Lock()
			same := sha256.Sum256(data) == d.hash
			d.reloadMu.Unlock()
			if !same {
				d.reload("file change")
			}
		}
	}
}

// resolverSwitch lets a reload point the gateway at another resolver.
type resolverSwitch struct {
	p    atomic.Pointer[dnscache.Cache]
	mu   sync.Mutex
	base dnscache.Stats // counts of caches replaced by a reload
}

func (r *resolverSwitch) current() *dnscache.Cache { return r.p.Load() }

func (r *resolverSwitch) set(c *dnscache.Cache) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.p.Load(); old != nil {
		s := old.Stats()
		r.base.Hits += s.Hits
		r.base.Misses += s.Misses
		r.base.Errors += s.Errors
	}
	r.p.Store(c)
}

func (r *resolverSwitch) stats() dnscache.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.base
	if c := r.p.Load(); c != nil {
		cs := c.Stats()
		s.Hits += cs.Hits
		s.Misses += cs.Misses
		s.Errors += cs.Errors
	}
	return s
}

func (r *resolverSwitch) Lookup(ctx context.Context, name string, family dnscache.Family) ([]netip.Addr, error) {
	return r.p.Load().Lookup(ctx, name, family)
}
