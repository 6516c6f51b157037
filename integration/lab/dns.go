package lab

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// DNS is an authoritative-style DNS server for the lab's names, answering
// A and AAAA from a table the test controls.
type DNS struct {
	TTL     uint32
	mu      sync.Mutex
	records map[string][]netip.Addr
	queries atomic.Int64
	servers []*dns.Server
	ns      *Netns
	addrs   []netip.AddrPort
}

// StartDNS serves DNS on addrs (UDP and TCP) inside ns.
func StartDNS(ns *Netns, addrs ...netip.AddrPort) (*DNS, error) {
	d := &DNS{TTL: 60, records: map[string][]netip.Addr{}, ns: ns, addrs: addrs}
	return d, d.Start()
}

// Start (re)starts the listeners after Stop.
func (d *DNS) Start() error {
	for _, a := range d.addrs {
		pc, err := d.ns.ListenPacket("udp", a.String())
		if err != nil {
			d.Stop()
			return fmt.Errorf("dns: %w", err)
		}
		ln, err := d.ns.Listen("tcp", a.String())
		if err != nil {
			pc.Close()
			d.Stop()
			return fmt.Errorf("dns: %w", err)
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go func(s *dns.Server) { _ = s.ActivateAndServe() }(s)
			<-started
			d.mu.Lock()
			d.servers = append(d.servers, s)
			d.mu.Unlock()
		}
	}
	return nil
}

// Stop closes the listeners: the resolver becomes unreachable.
func (d *DNS) Stop() {
	d.mu.Lock()
	servers := d.servers
	d.servers = nil
	d.mu.Unlock()
	for _, s := range servers {
		_ = s.Shutdown()
	}
}

// SetRecords sets the addresses of name (A and AAAA by family); none
// removes the name.
func (d *DNS) SetRecords(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[strings.ToLower(dns.Fqdn(name))] = addrs
}

// Queries is how many questions were asked.
func (d *DNS) Queries() int64 { return d.queries.Load() }

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		d.mu.Lock()
		addrs, ok := d.records[strings.ToLower(q.Name)]
		d.mu.Unlock()
		switch {
		case q.Name == "." && q.Qtype == dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: d.TTL}, Ns: "ns.lab."})
		case !ok:
			m.Rcode = dns.RcodeNameError
		default:
			for _, a := range addrs {
				hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: d.TTL}
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
	}
	_ = w.WriteMsg(m)
}
