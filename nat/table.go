package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of egressd's table in the inet family.
const TableName = "egressd"

// Other is what happens to forwarded traffic from the sources that is not
// redirected to egressd.
type Other string

// The values of intercept.other.
const (
	OtherDrop       Other = "drop"
	OtherReject     Other = "reject"
	OtherMasquerade Other = "masquerade"
)

// Ruleset describes the table egressd installs.
type Ruleset struct {
	Sources        []netip.Prefix // client networks, IPv4 and IPv6; must not overlap
	HTTPPorts      []uint16
	TLSPorts       []uint16
	HTTPListenPort uint16 // redirect target of HTTPPorts
	TLSListenPort  uint16 // redirect target of TLSPorts
	Other          Other
}

// Validate says what is wrong with a ruleset.
func (rs Ruleset) Validate() error {
	var errs []error
	if len(rs.Sources) == 0 {
		errs = append(errs, errors.New("no source networks (set intercept.sources)"))
	}
	if rs.HTTPListenPort == 0 || rs.TLSListenPort == 0 {
		errs = append(errs, errors.New("listen ports must not be 0"))
	}
	if len(rs.HTTPPorts)+len(rs.TLSPorts) == 0 {
		errs = append(errs, errors.New("no ports to intercept (set intercept.http_ports or tls_ports)"))
	}
	for _, p := range slices.Concat(rs.HTTPPorts, rs.TLSPorts) {
		if p == 0 {
			errs = append(errs, errors.New("port 0 cannot be intercepted"))
		}
	}
	switch rs.Other {
	case OtherDrop, OtherReject, OtherMasquerade:
	default:
		errs = append(errs, fmt.Errorf("intercept.other %q: valid values are drop, reject, masquerade", rs.Other))
	}
	return errors.Join(errs...)
}

// Tables installs and removes egressd's table.
type Tables struct {
	opts []nftables.ConnOption
}

// Option configures Tables.
type Option func(*Tables)

// WithNetNS makes Tables work in the network namespace open as fd (tests).
func WithNetNS(fd int) Option {
	return func(t *Tables) { t.opts = append(t.opts, nftables.WithNetNSFd(fd)) }
}

// New returns Tables working in the caller's network namespace.
func New(opts ...Option) (*Tables, error) {
	t := &Tables{}
	for _, o := range opts {
		o(t)
	}
	return t, nil
}

func (t *Tables) conn() (*nftables.Conn, error) {
	c, err := nftables.New(t.opts...)
	if err != nil {
		return nil, explain(err)
	}
	return c, nil
}

func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Install replaces any table of the same name with rs, in one batch.
func (t *Tables) Install(rs Ruleset) error {
	if err := rs.Validate(); err != nil {
		return fmt.Errorf("nftables ruleset: %w", err)
	}
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := table()
	// Add-delete-add in one transaction: the add makes the delete valid
	// when no table exists, the delete drops a stale one with everything
	// in it, and the last add starts afresh. All or nothing.
	c.AddTable(tbl)
	c.DelTable(tbl)
	c.AddTable(tbl)
	if err := build(c, tbl, rs); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing nftables table inet %s: %w", TableName, explain(err))
	}
	return nil
}

// Remove deletes the table; it is not an error when there is none.
func (t *Tables) Remove() error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := table()
	c.AddTable(tbl)
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing nftables table inet %s: %w", TableName, explain(err))
	}
	return nil
}

// Installed reports whether the table exists.
func (t *Tables) Installed() (bool, error) {
	c, err := t.conn()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, explain(err)
	}
	for _, tb := range tables {
		if tb.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// Counters returns the packet counts of the named rules (the rule comments:
// redirect_http4, redirect_tls6, other_reject, icmp_redirect_drop, …).
func (t *Tables) Counters() (map[string]uint64, error) {
	c, err := t.conn()
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, chain := range []string{"prerouting", "forward", "postrouting", "output"} {
		rules, err := c.GetRules(table(), &nftables.Chain{Name: chain, Table: table()})
		if err != nil {
			continue // a chain that this ruleset does not have
		}
		for _, r := range rules {
			name, ok := userdata.GetString(r.UserData, userdata.TypeComment)
			if !ok {
				continue
			}
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					out[name] += ctr.Packets
				}
			}
		}
	}
	return out, nil
}

// Describe summarises a ruleset for the start-up log.
func (rs Ruleset) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sources %v: tcp dports %v → :%d, %v → :%d; fib daddr local not intercepted; other forwarded traffic: %s; ICMP redirects dropped",
		rs.Sources, rs.HTTPPorts, rs.HTTPListenPort, rs.TLSPorts, rs.TLSListenPort, rs.Other)
	return b.String()
}

// explain turns netlink errors into what the operator should do.
func explain(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("nftables: operation not permitted (run as root or with CAP_NET_ADMIN): %w", err)
	case errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ENOENT) && strings.Contains(err.Error(), "netlink"):
		return fmt.Errorf("nftables unavailable (kernel without nf_tables? load it with `modprobe nf_tables`): %w", err)
	}
	return err
}

func comment(name string) []byte { return userdata.AppendString(nil, userdata.TypeComment, name) }

// build queues the table's sets, chains and rules on c.
func build(c *nftables.Conn, tbl *nftables.Table, rs Ruleset) error {
	var v4, v6 []netip.Prefix
	for _, p := range rs.Sources {
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	src4 := &nftables.Set{Table: tbl, Name: "sources4", KeyType: nftables.TypeIPAddr, Interval: true}
	src6 := &nftables.Set{Table: tbl, Name: "sources6", KeyType: nftables.TypeIP6Addr, Interval: true}
	if err := c.AddSet(src4, intervalElements(v4)); err != nil {
		return fmt.Errorf("nftables set sources4: %w", err)
	}
	if err := c.AddSet(src6, intervalElements(v6)); err != nil {
		return fmt.Errorf("nftables set sources6: %w", err)
	}
	portSet := func(name string, ports []uint16) (*nftables.Set, error) {
		s := &nftables.Set{Table: tbl, Name: name, KeyType: nftables.TypeInetService}
		var els []nftables.SetElement
		for _, p := range ports {
			els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
		}
		return s, c.AddSet(s, els)
	}
	httpPorts, err := portSet("http_ports", rs.HTTPPorts)
	if err != nil {
		return err
	}
	tlsPorts, err := portSet("tls_ports", rs.TLSPorts)
	if err != nil {
		return err
	}

	drop, accept := nftables.ChainPolicyDrop, nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	rule := func(ch *nftables.Chain, name string, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: exprs, UserData: comment(name)})
	}

	// prerouting: traffic to the gateway itself is never intercepted.
	rule(pre, "local_not_intercepted",
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictReturn})
	type fam struct {
		suffix  string
		nfproto byte
		set     *nftables.Set
		offset  uint32
		length  uint32
	}
	fams := []fam{{"4", unix.NFPROTO_IPV4, src4, 12, 4}, {"6", unix.NFPROTO_IPV6, src6, 8, 16}}
	fromSources := func(f fam) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.offset, Len: f.length},
			&expr.Lookup{SourceRegister: 1, SetName: f.set.Name, SetID: f.set.ID},
		}
	}
	isTCP := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
	for _, f := range fams {
		for _, r := range []struct {
			name  string
			ports *nftables.Set
			to    uint16
		}{{"redirect_http", httpPorts, rs.HTTPListenPort}, {"redirect_tls", tlsPorts, rs.TLSListenPort}} {
			exprs := slices.Concat(fromSources(f), isTCP, []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: r.ports.Name, SetID: r.ports.ID},
				&expr.Counter{},
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.to)},
				&expr.Redir{RegisterProtoMin: 1},
			})
			rule(pre, r.name+f.suffix, exprs...)
		}
	}

	// forward: replies of allowed (masqueraded) flows, then the sources'
	// other traffic per intercept.other; the policy drops the rest.
	rule(fwd, "established",
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept})
	for _, f := range fams {
		switch rs.Other {
		case OtherMasquerade:
			rule(fwd, "other_accept"+f.suffix, append(fromSources(f), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})...)
		case OtherDrop:
			rule(fwd, "other_drop"+f.suffix, append(fromSources(f), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})...)
		case OtherReject:
			rule(fwd, "other_reject_tcp"+f.suffix, slices.Concat(fromSources(f), isTCP, []expr.Any{
				&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})...)
			rule(fwd, "other_reject"+f.suffix, append(fromSources(f), &expr.Counter{},
				&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})...)
		}
	}
	if rs.Other == OtherMasquerade {
		post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: tbl, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
		for _, f := range fams {
			rule(post, "masquerade"+f.suffix, append(fromSources(f), &expr.Counter{}, &expr.Masq{})...)
		}
	}

	// output: a one-armed gateway must not send ICMP redirects telling
	// clients to bypass it.
	for _, r := range []struct {
		name  string
		proto byte
		typ   byte
	}{{"icmp_redirect_drop", unix.IPPROTO_ICMP, 5}, {"icmpv6_redirect_drop", unix.IPPROTO_ICMPV6, 137}} {
		rule(out, r.name,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.typ}},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop})
	}
	return nil
}

// intervalElements renders non-overlapping prefixes as interval set
// elements: the first address, and the address after the last one marked
// as an interval end (omitted at the top of the address space).
func intervalElements(prefixes []netip.Prefix) []nftables.SetElement {
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	var els []nftables.SetElement
	for _, p := range prefixes {
		els = append(els, nftables.SetElement{Key: p.Addr().AsSlice()})
		if next, ok := afterPrefix(p); ok {
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// afterPrefix returns the first address after p, or false when p reaches
// the end of the address space.
func afterPrefix(p netip.Prefix) (netip.Addr, bool) {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := bits; i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	next := last.Next()
	return next, next.IsValid()
}
