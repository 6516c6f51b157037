// Package suggest turns egressd access logs into a proposed allowlist: the
// way to roll egressd out without breaking production is to run it in
// monitor mode for a while, let suggest propose the policy section from
// what the clients actually reached, review it, and enforce.
//
// Read aggregates access-log lines (egressd's JSON lines; other lines, such
// as start-up messages, are ignored, and lines that are not JSON are
// counted, not fatal) into an Aggregator; Suggest turns that into a
// Suggestion; Write prints it as a YAML policy section (mode: enforce and
// an allow list) to paste into egressd.yaml, with comments giving counts
// and sources, sorted by count (descending) and then by entry.
//
// Names are grouped with the Public Suffix List: several distinct names
// under one registrable domain (api.github.com, codeload.github.com) are
// proposed as one .domain entry (.github.com), a lone name stays exact, and
// a public suffix is never proposed as a domain (my-bucket.s3.amazonaws.com
// stays exact because s3.amazonaws.com is a suffix). A few registrable
// domains that host other customers' endpoints below names the list does
// not mark (amazonaws.com, windows.net) are never grouped either: a
// .amazonaws.com entry would let anyone's S3 bucket through.
//
// Connections without a name (TLS without SNI, or an IP address as the HTTP
// host) are proposed separately as address entries for their destinations.
// Connections that no entry could allow (an invalid name, a stream that was
// neither TLS nor HTTP) are listed as comments.
//
// Sources: each entry's comment names the clients that used it; when they
// all sit in one /24 (IPv4) or /64 (IPv6) while the log shows other
// clients, the comment says so, and Options.GroupBySubnet moves such
// entries into a policy.groups entry for that subnet instead. Grouping is
// off by default: a week of logs shows who used a name, not who may need
// it, and a too-narrow group breaks the first client that was quiet that
// week.
package suggest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/egressd/egressd/policy"
)

// maxLine bounds one log line; longer lines are counted as malformed.
const maxLine = 1 << 20

// Aggregator collects access-log lines. The zero value is ready to use;
// Read adds to it, so one Aggregator can take several log files.
type Aggregator struct {
	// Lines counts the access lines read (lines with a decision).
	Lines int
	// Ignored counts JSON lines that are not access lines (start-up and
	// reload messages, warnings).
	Ignored int
	// Malformed counts lines that are not JSON objects (a truncated line,
	// a console-format log).
	Malformed int

	names    map[string]*usage     // normalised host name
	addrs    map[netip.Addr]*usage // destination, for connections without a name
	invalid  map[string]int        // invalid names as sent, with counts
	unusable map[string]int        // reason, for connections no entry can allow
	first    time.Time
	last     time.Time
}

// usage is what the log says about one name or address.
type usage struct {
	count   int
	allowed int            // connections the policy allowed
	sources map[string]int // client address
	protos  map[string]int // tls, http
	ports   map[uint16]int // destination port
	rules   map[string]int // rules that allowed it
}

func newUsage() *usage {
	return &usage{sources: map[string]int{}, protos: map[string]int{}, ports: map[uint16]int{}, rules: map[string]int{}}
}

// NewAggregator returns an empty Aggregator (a zero Aggregator works too).
func NewAggregator() *Aggregator { return &Aggregator{} }

// accessLine holds the fields of an access-log line that suggest uses
// (SPEC: Logs and metrics).
type accessLine struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Proto    string `json:"proto"`
	Host     string `json:"host"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Rule     string `json:"rule"`
	Time     string `json:"time"`
}

// unusableReasons are the gateway's own denials that no allow entry can
// change: the connection was not TLS or HTTP, or never reached the policy.
func unusableReason(reason string) bool {
	switch reason {
	case "loop", "no_original_dst", "max_connections":
		return true
	}
	return strings.HasPrefix(reason, "sniff_")
}

// Read adds the access lines of r, egressd's JSON log lines, to agg. Lines
// without a decision field (start-up messages, warnings) are counted in
// Ignored, lines that are not JSON objects in Malformed; neither is an
// error. The error is for r itself failing.
func Read(r io.Reader, agg *Aggregator) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		line, tooLong, err := readLine(br, &buf)
		switch {
		case tooLong:
			agg.Malformed++
		case len(bytes.TrimSpace(line)) > 0:
			agg.add(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine reads one line into *buf; a line longer than maxLine is
// consumed and reported as tooLong.
func readLine(br *bufio.Reader, buf *[]byte) (line []byte, tooLong bool, err error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(*buf)+len(chunk) > maxLine {
				tooLong, *buf = true, (*buf)[:0]
			} else {
				*buf = append(*buf, chunk...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return *buf, tooLong, err
		}
	}
}

// Read adds the access lines of r; see the package function Read.
func (a *Aggregator) Read(r io.Reader) error { return Read(r, a) }

// add aggregates one log line.
func (a *Aggregator) add(line []byte) {
	var l accessLine
	if err := json.Unmarshal(line, &l); err != nil {
		a.Malformed++
		return
	}
	if l.Decision != "allow" && l.Decision != "deny" {
		a.Ignored++
		return
	}
	a.Lines++
	if t, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
		if a.first.IsZero() || t.Before(a.first) {
			a.first = t
		}
		if t.After(a.last) {
			a.last = t
		}
	}
	src := l.Src
	if ap, err := netip.ParseAddrPort(src); err == nil {
		src = ap.Addr().Unmap().String()
	} else if ad, err := netip.ParseAddr(src); err == nil {
		src = ad.Unmap().String()
	}
	dst, _ := netip.ParseAddrPort(l.Dst)
	if unusableReason(l.Reason) {
		if a.unusable == nil {
			a.unusable = map[string]int{}
		}
		a.unusable[l.Reason]++
		return
	}
	var u *usage
	name, err := policy.NormalizeName(l.Host)
	switch {
	case err == nil:
		if a.names == nil {
			a.names = map[string]*usage{}
		}
		if u = a.names[name]; u == nil {
			u = newUsage()
			a.names[name] = u
		}
	case l.Host != "" && !errors.Is(err, policy.ErrAddressLiteral):
		if a.invalid == nil {
			a.invalid = map[string]int{}
		}
		a.invalid[l.Host]++
		return
	case dst.IsValid() && dst.Addr().Zone() == "":
		// No name, or an IP address as the name: the destination decides.
		addr := dst.Addr().Unmap()
		if a.addrs == nil {
			a.addrs = map[netip.Addr]*usage{}
		}
		if u = a.addrs[addr]; u == nil {
			u = newUsage()
			a.addrs[addr] = u
		}
	default:
		if a.unusable == nil {
			a.unusable = map[string]int{}
		}
		a.unusable["no_name_no_destination"]++
		return
	}
	u.count++
	if src != "" {
		u.sources[src]++
	}
	if l.Proto != "" {
		u.protos[l.Proto]++
	}
	if dst.IsValid() {
		u.ports[dst.Port()]++
	}
	// In monitor mode every line has enforced:false, so the decision alone
	// says whether the current policy allows the connection.
	if l.Decision == "allow" {
		u.allowed++
		if l.Rule != "" {
			u.rules[l.Rule]++
		}
	}
}
