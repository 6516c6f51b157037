// Package lab builds a throw-away network out of Linux network namespaces,
// so that egressd can be run, tested, demonstrated and benchmarked as it is
// deployed — as its clients' default gateway — without touching the host's
// own network. The integration tests, `egressd demo` and the benchmarks all
// use it.
//
// # Topology
//
//	 client ns                 gateway ns (egressd)                        internet ns
//	+------------------+      +------------------------------------+      +-----------------------------+
//	| c0               |-veth-| gin                gout            |-veth-| inet0                       |
//	| 10.77.1.2        |      | 10.77.1.1          198.51.100.1    |      | 198.51.100.2, DNS .53       |
//	| 2001:db8:77:1::2 |      | 2001:db8:77:1::1   2001:db8:100::1 |      | 2001:db8:100::2, DNS ::53   |
//	+------------------+      +------------------------------------+      | lo: origins 203.0.113.10... |
//	                                                                      |     2001:db8:203::10...     |
//	                                                                      +-----------------------------+
//
// The client's default routes (IPv4 and IPv6) point at the gateway, the
// gateway's at the internet namespace — so egressd finds its default route
// on GatewayOutsideIf — and the internet namespace routes the client
// network back through the gateway: a complete routed path. The gateway
// forwards nothing until egressd (or [Lab.EnableKernelForwarding], for a
// baseline) turns forwarding on.
//
// # Address plan
//
//	client    c0     10.77.1.2/24     2001:db8:77:1::2/64  ClientAddr4, ClientAddr6 (in ClientNet4/6)
//	                 10.77.1.3/24     2001:db8:77:1::3/64  OtherClientAddr4/6: never the default
//	                                                       source; bind to it with DialWith
//	gateway   gin    10.77.1.1/24     2001:db8:77:1::1/64  GatewayInsideAddr4/6
//	          gout   198.51.100.1/24  2001:db8:100::1/64   GatewayOutsideAddr4/6
//	internet  inet0  198.51.100.2/24  2001:db8:100::2/64   InternetAddr4/6
//	                 198.51.100.53    2001:db8:100::53     DNSAddr4/6 (port 53)
//	          lo     203.0.113.10…    2001:db8:203::10…    Lab.Origins4/6 (Options.Origins of each,
//	                                                       10 by default: .10–.19, ::10–::19)
//
// Every lab uses the same plan: each lab is its own set of namespaces, so
// labs side by side do not collide. Only 10.77.0.0/16 and documentation
// ranges (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are used. IPv6
// runs without duplicate address detection, and New returns only once every
// link is up, so the first packet of a test is not lost.
//
// # Safety
//
// Nothing is connected to the host's namespace: no veth has an end there
// and no route leads there. The sockets this package opens from Go are
// opened inside a lab namespace ([Netns.Listen], [Netns.ListenPacket],
// [Netns.DialContext]), and those refuse host names, since Go's resolver
// would run on other threads, in the host's namespace.
//
// Namespaces are named "egd<pid>x<random>-<role>" after the process that
// made them. [Lab.Close] stops what the lab started (servers, captures,
// processes by process group), kills any other process left in its
// namespaces by PID and deletes the namespaces; it is safe to call twice
// and after a failed [New]. [Sweep] deletes the namespaces of labs whose
// process has died without cleaning up.
//
// # Servers and tools
//
// [StartDNS] answers A/AAAA questions from a table the caller sets.
// [StartOrigin] serves HTTP on :80, HTTPS on :443 (with certificates from a
// private [CA]) and a TCP/UDP echo on :22 on each origin address; every
// HTTP answer names the address that served it. [Netns.Start] runs a
// program such as egressd in a namespace and keeps its output.
// [StartCapture] runs tcpdump on an interface and returns once it listens.
//
// A lab needs root; [Check] says what is missing, for a test to skip.
//
//	l, err := lab.New(ctx, lab.Options{Cleanup: t.Cleanup})
//	dns, err := lab.StartDNS(l.Internet, lab.DNSAddr4, lab.DNSAddr6)
//	dns.SetRecords("allowed.example", l.Origins4[0], l.Origins6[0])
//	ca, err := lab.NewCA()
//	origin, err := lab.StartOrigin(l.Internet, append(l.Origins4, l.Origins6...), ca, []string{"allowed.example"})
//	gw, err := l.Gateway.Start("/path/to/egressd", "run", "-c", cfgPath)
//	err = gw.WaitFor(ctx, `"message":"egressd serving"`)
//	resp, err := l.Client.HTTPClientResolving(ca.Pool(), map[string]netip.Addr{
//		"allowed.example": l.Origins4[0]}).Get("https://allowed.example/")
package lab
