// Package dnscache resolves the names egressd dials and caches the answers
// for their TTL, so that the resolver is not on the per-connection path.
//
// It asks one configured DNS server directly (github.com/miekg/dns) instead
// of going through the system resolver: the gateway must use the resolver the
// operator named, see TTLs, and tell "no such name" from "resolver down".
// Concurrent lookups of the same name share one query.
package dnscache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the TTL bounds. A zero TTL from an authoritative CDN would
// otherwise send every connection to the resolver; a week-long TTL would pin
// addresses a CDN has long moved away from.
const (
	DefaultMinTTL      = 5 * time.Second
	DefaultMaxTTL      = time.Hour
	DefaultNegativeTTL = 10 * time.Second
	defaultTimeout     = 3 * time.Second
	maxEntries         = 100_000
)

// ErrNoAddress is returned when the name exists but has no address of the
// asked family, or does not exist at all (NXDOMAIN).
var ErrNoAddress = errors.New("dns: name has no address")

// ErrResolver is returned when the resolver could not be asked or failed
// (timeout, SERVFAIL, REFUSED): the name's addresses are unknown.
var ErrResolver = errors.New("dns: resolver failed")

// Family selects A (IPv4) or AAAA (IPv6) records.
type Family uint8

const (
	IPv4 Family = iota // A records
	IPv6               // AAAA records
)

func (f Family) qtype() uint16 {
	if f == IPv6 {
		return dns.TypeAAAA
	}
	return dns.TypeA
}

func (f Family) String() string {
	if f == IPv6 {
		return "AAAA"
	}
	return "A"
}

// Options configure a Cache. The zero value of each field means its default.
type Options struct {
	Server      string        // "ip:port" of the DNS server; required
	Timeout     time.Duration // per query, UDP then TCP on truncation
	MinTTL      time.Duration
	MaxTTL      time.Duration
	NegativeTTL time.Duration // how long "no address" is remembered
	// Dial opens the UDP/TCP socket to the server. Tests use it to open
	// sockets inside a network namespace; nil uses net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Now  func() time.Time
}

// Stats counts cache use since the cache was made.
type Stats struct {
	Hits, Misses, Errors uint64
}

// Cache is a TTL-honouring cache of A and AAAA answers. It is safe for
// concurrent use.
type Cache struct {
	opts Options

	mu      sync.Mutex
	entries map[key]*entry

	hits, misses, errs atomic.Uint64
}

type key struct {
	name   string
	family Family
}

type entry struct {
	ready   chan struct{} // closed when addrs/err are set
	addrs   []netip.Addr
	err     error
	expires time.Time
}

// New returns a cache that asks opts.Server.
func New(opts Options) (*Cache, error) {
	if _, err := netip.ParseAddrPort(opts.Server); err != nil {
		return nil, fmt.Errorf("dns: resolver %q is not ip:port: %w", opts.Server, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.MinTTL <= 0 {
		opts.MinTTL = DefaultMinTTL
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dial == nil {
		var d net.Dialer
		opts.Dial = d.DialContext
	}
	return &Cache{opts: opts, entries: make(map[key]*entry)}, nil
}

// Server is the resolver's address.
func (c *Cache) Server() string { return c.opts.Server }

// Stats returns the hit and miss counters.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errs.Load()}
}

// Lookup returns the addresses of name (a normalised host name) for the
// family, from the cache when fresh. Errors wrap ErrNoAddress or ErrResolver.
// Resolver failures are not cached, so the next connection asks again.
func (c *Cache) Lookup(ctx context.Context, name string, family Family) ([]netip.Addr, error) {
	k := key{name, family}
	now := c.opts.Now()
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok {
		select {
		case <-e.ready:
			if now.Before(e.expires) {
				c.mu.Unlock()
				c.hits.Add(1)
				return e.addrs, e.err
			}
			ok = false // expired: ask again below
		default:
			// Another goroutine is asking: wait for its answer.
			c.mu.Unlock()
			c.hits.Add(1)
			select {
			case <-e.ready:
				return e.addrs, e.err
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %s %s: %w", ErrResolver, family, name, ctx.Err())
			}
		}
	}
	if len(c.entries) >= maxEntries {
		c.evictExpiredLocked(now)
	}
	e = &entry{ready: make(chan struct{})}
	c.entries[k] = e
	c.mu.Unlock()
	c.misses.Add(1)

	addrs, ttl, err := c.query(ctx, name, family)
	e.addrs, e.err = addrs, err
	switch {
	case err == nil:
		e.expires = c.opts.Now().Add(clamp(ttl, c.opts.MinTTL, c.opts.MaxTTL))
	case errors.Is(err, ErrNoAddress):
		e.expires = c.opts.Now().Add(c.opts.NegativeTTL)
	default:
		c.errs.Add(1)
		e.expires = time.Time{} // waiters get the error; the next lookup asks again
	}
	close(e.ready)
	return addrs, err
}

func (c *Cache) evictExpiredLocked(now time.Time) {
	for k, e := range c.entries {
		select {
		case <-e.ready:
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		default:
		}
	}
	if len(c.entries) >= maxEntries {
		clear(c.entries) // pathological: a flood of distinct names
	}
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// Probe asks the resolver for the root's NS records: it answers when the
// resolver is reachable and working. Used by readiness checks.
func (c *Cache) Probe(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.RecursionDesired = true
	in, err := c.exchange(ctx, m)
	if err != nil {
		return err
	}
	if in.Rcode == dns.RcodeServerFailure || in.Rcode == dns.RcodeRefused {
		return fmt.Errorf("%w: %s answered %s", ErrResolver, c.opts.Server, dns.RcodeToString[in.Rcode])
	}
	return nil
}

func (c *Cache) query(ctx context.Context, name string, family Family) ([]netip.Addr, time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), family.qtype())
	m.RecursionDesired = true
	in, err := c.exchange(ctx, m)
	if err != nil {
		return nil, 0, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, 0, fmt.Errorf("%w: %s %s: no such name", ErrNoAddress, family, name)
	default:
		return nil, 0, fmt.Errorf("%w: %s %s: %s answered %s", ErrResolver, family, name, c.opts.Server, dns.RcodeToString[in.Rcode])
	}
	var addrs []netip.Addr
	ttl := c.opts.MaxTTL
	for _, rr := range in.Answer {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			if family == IPv4 {
				ip = rr.A
			}
		case *dns.AAAA:
			if family == IPv6 {
				ip = rr.AAAA
			}
		case *dns.CNAME:
			// The recursive resolver followed the chain; its TTLs still
			// bound the answer's lifetime.
			ttl = min(ttl, time.Duration(rr.Hdr.Ttl)*time.Second)
			continue
		default:
			continue
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addrs = append(addrs, a.Unmap())
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if len(addrs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s %s: no %s records", ErrNoAddress, family, name, family)
	}
	return addrs, ttl, nil
}

// exchange sends m over UDP and retries over TCP when the answer is truncated.
func (c *Cache) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	in, err := c.exchangeOver(ctx, "udp", m)
	if err == nil && in.Truncated {
		in, err = c.exchangeOver(ctx, "tcp", m)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: asking %s: %w (check upstream.resolver and that the gateway can reach it)", ErrResolver, c.opts.Server, err)
	}
	return in, nil
}

func (c *Cache) exchangeOver(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	nc, err := c.opts.Dial(ctx, network, c.opts.Server)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	conn := &dns.Conn{Conn: nc}
	if err := conn.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		in, err := conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		if in.Id == m.Id {
			return in, nil
		}
	}
}
