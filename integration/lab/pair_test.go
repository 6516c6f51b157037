package lab

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestPair checks the pair lab's plumbing: each subnet's default route
// leads to the gateway PointSubnet names (or nowhere), the gateways reach
// each other until CutPair and again after HealPair, and Close removes
// every namespace.
func TestPair(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	ctx := testContext(t)
	p, err := NewPair(ctx, Options{Origins: 1, Cleanup: t.Cleanup})
	if err != nil {
		t.Fatal(err)
	}
	// A "server on the internet" that each gateway answers itself, so
	// that the answer names the gateway the client's route led to.
	far := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.99"), 80)
	for i, g := range p.Gateways {
		if _, err := g.Run(ctx, "ip", "addr", "add", far.Addr().String()+"/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		ln, err := g.Listen("tcp", far.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		name := []string{"gw-a", "gw-b"}[i]
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, name)
				c.Close()
			}
		}()
	}
	via := func(client int) string {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		c, err := p.Clients[client].DialContext(dctx, "tcp", far.String())
		if err != nil {
			return "unreachable"
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if a, b := via(0), via(1); a != "gw-a" || b != "gw-b" {
		t.Fatalf("at start client-a goes via %s and client-b via %s, want gw-a and gw-b", a, b)
	}
	if err := p.PointSubnet(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got := via(0); got != "gw-b" {
		t.Errorf("after PointSubnet(0, 1) client-a goes via %s, want gw-b", got)
	}
	if err := p.PointSubnet(ctx, 0, -1); err != nil {
		t.Fatal(err)
	}
	if got := via(0); got != "unreachable" {
		t.Errorf("after a blackhole client-a goes via %s, want unreachable", got)
	}

	ln, err := p.Gateways[1].Listen("tcp", netip.AddrPortFrom(PairGatewayAddr4[1], 9902).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	reach := func() error {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		c, err := p.Gateways[0].DialContext(dctx, "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := reach(); err != nil {
		t.Fatalf("gw-a cannot reach gw-b: %v", err)
	}
	if err := p.CutPair(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reach(); err == nil {
		t.Error("gw-a reaches gw-b after CutPair")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("after CutPair the dial fails with %v, want a timeout (silence, as a security group gives)", err)
	}
	if err := p.HealPair(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reach(); err != nil {
		t.Errorf("gw-a cannot reach gw-b after HealPair: %v", err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ourNamespaces(t); slices.ContainsFunc(left, func(n string) bool { return len(n) > len(p.ID) && n[:len(p.ID)] == p.ID }) {
		t.Errorf("namespaces left after Close: %v", left)
	}
}
