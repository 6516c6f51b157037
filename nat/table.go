package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the name of egressd's table in the inet family.
const TableName = "egressd"

// Names of the table's counters: the keys of Tables.Counters. Each counts
// packets of both address families.
const (
	CounterToGateway      = "to_gateway"              // new connections addressed to the gateway itself, not intercepted
	CounterRedirectHTTP   = "redirect_http"           // connections redirected to the HTTP listener
	CounterRedirectTLS    = "redirect_tls"            // connections redirected to the TLS listener
	CounterEstablished    = "established"             // forwarded packets of established or related flows
	CounterOtherDrop      = "other_drop"              // other forwarded packets from sources, dropped
	CounterOtherReject    = "other_reject"            // other forwarded packets from sources, rejected
	CounterOtherForward   = "other_masquerade"        // other forwarded packets from sources, let through
	CounterMasquerade     = "masquerade"              // connections source-NATed in postrouting
	CounterForwardDropped = "forward_dropped"         // forwarded packets not from sources, dropped by the chain policy
	CounterICMPRedirect   = "icmp_redirect_dropped"   // ICMP redirects the gateway tried to send
	CounterICMPv6Redirect = "icmpv6_redirect_dropped" // ICMPv6 redirects the gateway tried to send
)

// ipsDstNAT is IPS_DST_NAT (linux/netfilter/nf_conntrack_common.h): the
// connection's destination was NATed (redirect included).
const ipsDstNAT = 1 << 5

// Names of the sets, for `nft list set inet egressd NAME`.
const (
	setSources4  = "sources4"
	setSources6  = "sources6"
	setHTTPPorts = "http_ports"
	setTLSPorts  = "tls_ports"
)

// Errors that callers may test with errors.Is. The returned errors wrap
// them with the operation and the kernel's answer.
var (
	// ErrNotPermitted: the process lacks CAP_NET_ADMIN in the network namespace.
	ErrNotPermitted = errors.New("nftables: operation not permitted (run as root or with CAP_NET_ADMIN)")
	// ErrUnavailable: the kernel has no nf_tables (or no nfnetlink).
	ErrUnavailable = errors.New("nftables unavailable (kernel lacks nf_tables? try `modprobe nf_tables`)")
	// ErrNotInstalled: the operation needs the table and it is not there.
	ErrNotInstalled = errors.New("nftables table inet " + TableName + " is not installed")
)

// Tables manages the `inet egressd` table. Each method opens its own
// netlink connection and sends at most one batch, so a Tables is safe for
// concurrent use and holds no state besides its options.
type Tables struct {
	opts []nftables.ConnOption
}

// Option configures Tables.
type Option func(*Tables)

// WithNetNS makes Tables work in the network namespace open as fd instead
// of the caller's (tests, labs). The fd must stay open while Tables is used.
func WithNetNS(fd int) Option {
	return func(t *Tables) { t.opts = append(t.opts, nftables.WithNetNSFd(fd)) }
}

// New returns Tables working in the caller's network namespace (or the
// one given by WithNetNS). It does not touch the kernel.
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

// Install validates rs and installs it as the `inet egressd` table in one
// atomic batch. A table of that name left by an earlier or crashed run is
// deleted in the same batch, so there is never a moment without rules and
// never two copies; when the kernel refuses any part, nothing changes.
func (t *Tables) Install(rs Ruleset) error { return t.install(rs, nil) }

// install is Install with a hook that may queue more on the batch (tests).
func (t *Tables) install(rs Ruleset, extra func(*nftables.Conn, *nftables.Table)) error {
	if err := rs.Validate(); err != nil {
		return fmt.Errorf("nftables ruleset: %w", err)
	}
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := table()
	// Add, delete, add: the first add makes the delete valid when there is
	// no table yet (a no-op when there is one), the delete drops a stale
	// table with everything in it, the second add starts afresh.
	c.AddTable(tbl)
	c.DelTable(tbl)
	c.AddTable(tbl)
	if err := build(c, tbl, rs); err != nil {
		return fmt.Errorf("rendering nftables table inet %s: %w", TableName, err)
	}
	if extra != nil {
		extra(c, tbl)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing nftables table inet %s: %w", TableName, t.batchError(err))
	}
	return nil
}

// batchError explains why the kernel refused a batch.
func (t *Tables) batchError(err error) error {
	err = explain(err)
	if errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrUnavailable) {
		return err
	}
	// Without nf_tables a batch fails with EOPNOTSUPP, which also means an
	// expression used in the wrong hook: ask the kernel whether nf_tables
	// answers at all.
	if c, cerr := t.conn(); cerr == nil {
		if _, lerr := c.ListTablesOfFamily(nftables.TableFamilyUnspecified); lerr != nil {
			if lerr = explain(lerr); errors.Is(lerr, syscall.EINVAL) || errors.Is(lerr, ErrUnavailable) {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
	}
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EOPNOTSUPP) {
		return fmt.Errorf("the kernel refused the ruleset for want of something it needs "+
			"(kernel modules nft_fib_inet, nft_redir, nft_masq, nft_reject_inet, nft_ct, nf_nat?): %w", err)
	}
	return err
}

// UpdateSources replaces the elements of the sources4 and sources6 sets
// in one atomic batch; the rest of the table is untouched. It fails with
// ErrNotInstalled when there is no table.
func (t *Tables) UpdateSources(sources []netip.Prefix) error {
	if len(sources) == 0 {
		return errors.New("nftables sources: no source networks: set intercept.sources to the client CIDRs")
	}
	for i, p := range sources {
		if !p.IsValid() {
			return fmt.Errorf("nftables sources: element %d: not a valid CIDR prefix", i)
		}
	}
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := table()
	v4, v6 := splitFamilies(sources)
	for _, s := range []struct {
		set *nftables.Set
		r   []prefixRange
	}{{sourceSet(tbl, setSources4, 1), v4}, {sourceSet(tbl, setSources6, 2), v6}} {
		c.FlushSet(s.set)
		if els := intervalElements(s.r); len(els) > 0 {
			if err := c.SetAddElements(s.set, els); err != nil {
				return fmt.Errorf("rendering set %s: %w", s.set.Name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		err = explain(err)
		if errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("updating sources: %w (call Install first): %w", ErrNotInstalled, err)
		}
		return fmt.Errorf("updating sources in nftables table inet %s: %w", TableName, t.batchError(err))
	}
	return nil
}

// Remove deletes the table and everything in it. It is not an error when
// there is none.
func (t *Tables) Remove() error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := table()
	c.AddTable(tbl) // makes the delete valid when the table is absent
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing nftables table inet %s: %w", TableName, explain(err))
	}
	return nil
}

// Installed reports whether the table exists (for a readiness check:
// someone may have run `nft flush ruleset`).
func (t *Tables) Installed() (bool, error) {
	c, err := t.conn()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		if err = explain(err); errors.Is(err, syscall.EINVAL) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err) // no nf_tables subsystem
		}
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, tb := range tables {
		if tb.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// Counters returns the packet count of each of the table's named counters
// (the Counter* constants; only those the installed Other uses). It fails
// with ErrNotInstalled when there is no table.
func (t *Tables) Counters() (map[string]uint64, error) {
	c, err := t.conn()
	if err != nil {
		return nil, err
	}
	objs, err := c.GetObjects(table())
	if err != nil {
		return nil, fmt.Errorf("reading nftables counters: %w", explain(err))
	}
	out := make(map[string]uint64, len(objs))
	for _, o := range objs {
		if ctr, ok := o.(*nftables.CounterObj); ok {
			out[ctr.Name] = ctr.Packets
		}
	}
	if len(out) == 0 {
		// A dump of a missing table is empty, not an error.
		if ok, err := t.Installed(); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("reading nftables counters: %w", ErrNotInstalled)
		}
	}
	return out, nil
}

// explain turns netlink errors into what the operator should do: no
// CAP_NET_ADMIN, or no netfilter netlink family at all.
func explain(err error) error {
	if err == nil {
		return nil
	}
	// Some google/nftables calls wrap with %v, so look at the text too.
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	case errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EAFNOSUPPORT) ||
		strings.Contains(msg, "protocol not supported"):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func sourceSet(tbl *nftables.Table, name string, id uint32) *nftables.Set {
	kt := nftables.TypeIPAddr
	if name == setSources6 {
		kt = nftables.TypeIP6Addr
	}
	// IDs are set here: they only need to be unique within one batch, and
	// leaving them 0 makes google/nftables take one from a global counter.
	return &nftables.Set{Table: tbl, Name: name, ID: id, KeyType: kt, Interval: true}
}

// family is what the rules need to know about one address family.
type family struct {
	nfproto byte
	sources *nftables.Set
	offset  uint32 // of the source address in the network header
	length  uint32
}

// build queues the table's objects on c: counters, sets, chains, rules.
func build(c *nftables.Conn, tbl *nftables.Table, rs Ruleset) error {
	v4, v6 := splitFamilies(rs.Sources)
	src4 := sourceSet(tbl, setSources4, 1)
	src6 := sourceSet(tbl, setSources6, 2)
	httpPorts := &nftables.Set{Table: tbl, Name: setHTTPPorts, ID: 3, KeyType: nftables.TypeInetService}
	tlsPorts := &nftables.Set{Table: tbl, Name: setTLSPorts, ID: 4, KeyType: nftables.TypeInetService}
	for _, s := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{
		{src4, intervalElements(v4)},
		{src6, intervalElements(v6)},
		{httpPorts, portElements(rs.HTTPPorts)},
		{tlsPorts, portElements(rs.TLSPorts)},
	} {
		if err := c.AddSet(s.set, s.els); err != nil {
			return fmt.Errorf("set %s: %w", s.set.Name, err)
		}
	}

	counters := []string{CounterToGateway, CounterRedirectHTTP, CounterRedirectTLS, CounterEstablished,
		CounterForwardDropped, CounterICMPRedirect, CounterICMPv6Redirect}
	switch rs.Other {
	case OtherDrop:
		counters = append(counters, CounterOtherDrop)
	case OtherReject:
		counters = append(counters, CounterOtherReject)
	case OtherMasquerade:
		counters = append(counters, CounterOtherForward, CounterMasquerade)
	}
	for _, name := range counters {
		c.AddObj(&nftables.CounterObj{Table: tbl, Name: name})
	}

	drop, accept := nftables.ChainPolicyDrop, nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	var post *nftables.Chain
	if rs.Other == OtherMasquerade {
		post = c.AddChain(&nftables.Chain{Name: "postrouting", Table: tbl, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	}
	out := c.AddChain(&nftables.Chain{Name: "output", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: all})
	}
	fams := []family{
		{unix.NFPROTO_IPV4, src4, 12, 4}, // ip saddr
		{unix.NFPROTO_IPV6, src6, 8, 16}, // ip6 saddr
	}

	// prerouting: never intercept traffic addressed to the gateway itself
	// (egressd's own listeners, ssh, ...); redirect the sources' web ports.
	rule(pre, []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}, count(CounterToGateway), verdict(expr.VerdictReturn))
	for _, f := range fams {
		for _, r := range []struct {
			counter string
			ports   *nftables.Set
			to      uint16
		}{{CounterRedirectHTTP, httpPorts, rs.HTTPListenPort}, {CounterRedirectTLS, tlsPorts, rs.TLSListenPort}} {
			rule(pre, fromSources(f), tcpDportIn(r.ports), count(r.counter), []expr.Any{
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.to)},
				&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
			})
		}
	}

	// forward: replies of flows let through, then the sources' other
	// traffic per intercept.other; the policy drops the rest.
	rule(fwd, []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}, count(CounterEstablished), verdict(expr.VerdictAccept))
	for _, f := range fams {
		switch rs.Other {
		case OtherMasquerade:
			rule(fwd, fromSources(f), count(CounterOtherForward), verdict(expr.VerdictAccept))
		case OtherDrop:
			rule(fwd, fromSources(f), count(CounterOtherDrop), verdict(expr.VerdictDrop))
		case OtherReject:
			rule(fwd, fromSources(f), isTCP(), count(CounterOtherReject),
				[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})
			rule(fwd, fromSources(f), count(CounterOtherReject),
				[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}})
		}
	}
	rule(fwd, count(CounterForwardDropped)) // then the drop policy

	// postrouting: source NAT for the sources' forwarded traffic. Flows
	// redirected to egressd are local and never reach it; the ct status
	// test keeps it that way whatever else DNATs them.
	if post != nil {
		for _, f := range fams {
			rule(post, fromSources(f), []expr.Any{
				&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT),
					Xor:  binaryutil.NativeEndian.PutUint32(0)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			}, count(CounterMasquerade), []expr.Any{&expr.Masq{}})
		}
	}

	// output: a one-armed gateway (clients and upstream on one interface)
	// must not send ICMP redirects telling clients to bypass it.
	for _, r := range []struct {
		counter string
		proto   byte
		typ     byte
	}{{CounterICMPRedirect, unix.IPPROTO_ICMP, 5}, {CounterICMPv6Redirect, unix.IPPROTO_ICMPV6, 137}} {
		rule(out, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.typ}},
		}, count(r.counter), verdict(expr.VerdictDrop))
	}
	return nil
}

// fromSources matches packets of family f whose source is in its set.
func fromSources(f family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.offset, Len: f.length},
		&expr.Lookup{SourceRegister: 1, SetName: f.sources.Name, SetID: f.sources.ID},
	}
}

func isTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

func tcpDportIn(ports *nftables.Set) []expr.Any {
	return append(isTCP(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID})
}

func count(name string) []expr.Any {
	return []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name}}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func portElements(ports []uint16) []nftables.SetElement {
	var els []nftables.SetElement
	for _, p := range uniquePorts(ports) {
		els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	return els
}

// intervalElements renders sorted, disjoint ranges as interval set
// elements the way nft does: each range is its first address and, marked
// as an interval end, the address after its last (omitted at the top of
// the address space); an end element at the zero address leads when the
// first range does not start there.
func intervalElements(ranges []prefixRange) []nftables.SetElement {
	if len(ranges) == 0 {
		return nil
	}
	zero := netip.IPv6Unspecified()
	if ranges[0].first.Is4() {
		zero = netip.IPv4Unspecified()
	}
	var els []nftables.SetElement
	if ranges[0].first != zero {
		els = append(els, nftables.SetElement{Key: zero.AsSlice(), IntervalEnd: true})
	}
	for _, r := range ranges {
		els = append(els, nftables.SetElement{Key: r.first.AsSlice()})
		if next := r.last.Next(); next.IsValid() {
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}
