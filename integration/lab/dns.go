package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL of a DNS server's answers until SetTTL.
const DefaultTTL = 60

// DNS is a small DNS server, the lab's "internet" resolver (point egressd's
// upstream.resolver at DNSAddr4). It answers A and AAAA questions from a
// table the caller sets, NXDOMAIN for names not in the table, and counts
// the questions. The root "." has an NS record, for resolver health checks.
// It serves UDP and TCP.
type DNS struct {
	ns    *Netns
	addrs []netip.AddrPort

	mu      sync.Mutex
	records map[string][]netip.Addr // by lower-case FQDN
	ttl     uint32
	silent  bool
	queries int64
	byName  map[string]int64
	servers []*dns.Server
}

// StartDNS serves DNS on each of addrs (UDP and TCP) inside ns, normally
// StartDNS(l.Internet, DNSAddr4, DNSAddr6). The lab's Close stops it.
func StartDNS(ns *Netns, addrs ...netip.AddrPort) (*DNS, error) {
	if len(addrs) == 0 {
		return nil, errors.New("lab: StartDNS needs an address, e.g. lab.DNSAddr4")
	}
	d := &DNS{ns: ns, addrs: addrs, records: map[string][]netip.Addr{},
		ttl: DefaultTTL, byName: map[string]int64{}}
	if err := d.Start(); err != nil {
		return nil, err
	}
	if ns.lab != nil {
		if err := ns.lab.onClose(d.Stop); err != nil {
			d.Stop()
			return nil, err
		}
	}
	return d, nil
}

// Start listens again after Stop; the table and counters are kept.
func (d *DNS) Start() error {
	d.mu.Lock()
	running := len(d.servers) > 0
	d.mu.Unlock()
	if running {
		return errors.New("lab: DNS server already running")
	}
	var servers []*dns.Server
	for _, a := range d.addrs {
		pc, err := d.ns.ListenPacket("udp", a.String())
		if err != nil {
			shutdown(servers)
			return fmt.Errorf("lab: DNS server: %w", err)
		}
		ln, err := d.ns.Listen("tcp", a.String())
		if err != nil {
			pc.Close()
			shutdown(servers)
			return fmt.Errorf("lab: DNS server: %w", err)
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
			started := make(chan struct{})
			failed := make(chan error, 1)
			s.NotifyStartedFunc = func() { close(started) }
			go func() { failed <- s.ActivateAndServe() }()
			select {
			case <-started:
				servers = append(servers, s)
			case err := <-failed:
				shutdown(servers)
				return fmt.Errorf("lab: DNS server on %s: %w", a, err)
			}
		}
	}
	d.mu.Lock()
	d.servers = servers
	d.mu.Unlock()
	return nil
}

// Stop closes the listeners: queries are refused (ICMP port unreachable
// for UDP, RST for TCP) until Start. Calling Stop again does nothing.
func (d *DNS) Stop() {
	d.mu.Lock()
	servers := d.servers
	d.servers = nil
	d.mu.Unlock()
	shutdown(servers)
}

func shutdown(servers []*dns.Server) {
	for _, s := range servers {
		_ = s.Shutdown()
	}
}

// SetRecords sets the addresses of name: A records from the IPv4 ones,
// AAAA from the IPv6 ones. A name with addresses of one family only gets
// an empty answer (NODATA) for the other; no addresses removes the name
// (NXDOMAIN). Names are case-insensitive, with or without the final dot.
func (d *DNS) SetRecords(name string, addrs ...netip.Addr) {
	key := strings.ToLower(dns.Fqdn(name))
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(addrs) == 0 {
		delete(d.records, key)
		return
	}
	d.records[key] = append([]netip.Addr(nil), addrs...)
}

// SetTTL sets the TTL of the answers from now on (default DefaultTTL).
func (d *DNS) SetTTL(seconds uint32) {
	d.mu.Lock()
	d.ttl = seconds
	d.mu.Unlock()
}

// SetSilent makes the server read questions and answer none (on) — a
// resolver that times out rather than refuses — or answer again (off).
// Silent questions are still counted.
func (d *DNS) SetSilent(on bool) {
	d.mu.Lock()
	d.silent = on
	d.mu.Unlock()
}

// Queries is the number of questions received so far.
func (d *DNS) Queries() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// QueriesFor is the number of questions (of any type) about name.
func (d *DNS) QueriesFor(name string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byName[strings.ToLower(dns.Fqdn(name))]
}

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	d.mu.Lock()
	d.queries++
	silent, ttl := d.silent, d.ttl
	var addrs []netip.Addr
	known := false
	if len(req.Question) == 1 {
		q := req.Question[0]
		key := strings.ToLower(q.Name)
		d.byName[key]++
		addrs, known = d.records[key]
	}
	d.mu.Unlock()
	if silent {
		return
	}
	switch {
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	case req.Question[0].Name == ".":
		// The root: readiness probes ask for its NS records.
		if req.Question[0].Qtype == dns.TypeNS {
			m.Answer = append(m.Answer, &dns.NS{Ns: "ns.lab.",
				Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}})
		}
	case !known:
		m.Rcode = dns.RcodeNameError
	default:
		q := req.Question[0]
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
			}
		}
	}
	_ = w.WriteMsg(m)
}
