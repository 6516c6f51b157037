package dnscache

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// server answers A/AAAA for "a.example." with the given TTL and counts
// questions; "fail.example." gets SERVFAIL.
func server(t *testing.T, ttl uint32) (addr string, asked *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	asked = new(atomic.Int64)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "fail.example.":
			m.Rcode = dns.RcodeServerFailure
		case q.Name == "." && q.Qtype == dns.TypeNS:
		case q.Name != "a.example.":
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.ParseIP("203.0.113.7")})
		case q.Qtype == dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.ParseIP("2001:db8::7")})
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), asked
}

func TestCacheHonoursTTLWithinBounds(t *testing.T) {
	addr, asked := server(t, 30)
	now := time.Unix(1000, 0)
	c, err := New(Options{Server: addr, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		got, err := c.Lookup(ctx, "a.example", IPv4)
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("203.0.113.7") {
			t.Fatalf("lookup: %v %v", got, err)
		}
	}
	if asked.Load() != 1 {
		t.Fatalf("asked %d times within the TTL, want 1", asked.Load())
	}
	if got, err := c.Lookup(ctx, "a.example", IPv6); err != nil || got[0] != netip.MustParseAddr("2001:db8::7") {
		t.Fatalf("AAAA: %v %v", got, err)
	}
	now = now.Add(31 * time.Second)
	if _, err := c.Lookup(ctx, "a.example", IPv4); err != nil || asked.Load() != 3 {
		t.Fatalf("after the TTL: asked %d, err %v", asked.Load(), err)
	}
	if s := c.Stats(); s.Hits != 2 || s.Misses != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheZeroTTLIsClampedAndErrorsAreTyped(t *testing.T) {
	addr, asked := server(t, 0)
	now := time.Unix(1000, 0)
	c, _ := New(Options{Server: addr, Now: func() time.Time { return now }})
	ctx := context.Background()
	c.Lookup(ctx, "a.example", IPv4)
	c.Lookup(ctx, "a.example", IPv4)
	if asked.Load() != 1 {
		t.Fatalf("a zero TTL sent every lookup to the resolver (%d)", asked.Load())
	}
	if _, err := c.Lookup(ctx, "nx.example", IPv4); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("NXDOMAIN: %v", err)
	}
	if _, err := c.Lookup(ctx, "fail.example", IPv4); !errors.Is(err, ErrResolver) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	if err := c.Probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
}

func TestResolverDownIsErrResolver(t *testing.T) {
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	addr := pc.LocalAddr().String()
	pc.Close() // nothing answers
	c, _ := New(Options{Server: addr, Timeout: 200 * time.Millisecond})
	if _, err := c.Lookup(context.Background(), "a.example", IPv4); !errors.Is(err, ErrResolver) {
		t.Fatalf("got %v", err)
	}
	if err := c.Probe(context.Background()); !errors.Is(err, ErrResolver) {
		t.Fatalf("probe: %v", err)
	}
}
