package suggest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/egressd/egressd/policy/config"
)

var update = flag.Bool("update", false, "rewrite testdata/monitor.golden")

// sources is the intercept section suggestions are checked with.
const sources = "intercept:\n  sources: [10.0.0.0/16]\n"

// parse checks that a suggestion is a policy section egressd accepts.
func parse(t *testing.T, out string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("suggested.yaml", []byte(sources+out))
	if err != nil {
		t.Fatalf("egressd rejects the suggestion: %v\n%s", err, out)
	}
	return cfg
}

func TestSuggestFromMonitorLog(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/monitor.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var agg Aggregator // the zero value is ready
	if err := Read(f, &agg); err != nil {
		t.Fatal(err)
	}
	if agg.Lines != 29 || agg.Ignored != 5 || agg.Malformed != 1 {
		t.Errorf("lines %d, ignored %d, malformed %d; want 29, 5, 1", agg.Lines, agg.Ignored, agg.Malformed)
	}
	s := Suggest(&agg, Options{})
	var out bytes.Buffer
	if err := Write(&out, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/monitor.golden", out.Bytes())

	var allow []string
	for _, e := range s.Allow {
		allow = append(allow, e.Allow)
	}
	want := []string{
		".github.com",                   // 6: api, codeload and github.com itself
		"pypi.org",                      // 4
		"sts.eu-west-1.amazonaws.com",   // 4, already allowed
		".debian.org",                   // 3
		"files.pythonhosted.org",        // 2: pythonhosted.org has no other name
		"objects.githubusercontent.com", // 2: githubusercontent.com is a public suffix
		"ec2.eu-west-1.amazonaws.com",   // 1: amazonaws.com is never grouped
		"my-bucket.s3.amazonaws.com",    // 1: s3.amazonaws.com is a public suffix
		"telemetry.example.com",         // 1: normalised from Telemetry.Example.COM.
	}
	if !slices.Equal(allow, want) {
		t.Errorf("allow %q,\nwant  %q", allow, want)
	}
	var addrs []string
	for _, e := range s.Addresses {
		addrs = append(addrs, e.Allow)
	}
	if want := []string{"203.0.113.9", "198.51.100.7"}; !slices.Equal(addrs, want) {
		t.Errorf("addresses %q, want %q", addrs, want)
	}
	gh := s.Allow[0]
	if gh.Count != 6 || len(gh.Sources) != 3 || gh.Sources[0] != (Count{"10.0.3.7", 3}) || gh.Allowed != 0 {
		t.Errorf(".github.com: %+v", gh)
	}
	if sts := s.Allow[2]; sts.Allowed != sts.Count || !slices.Equal(sts.Rules, []Count{{"sts.eu-west-1.amazonaws.com", 4}}) {
		t.Errorf("sts not marked as already allowed: %+v", sts)
	}
	if deb := s.Allow[3]; deb.Subnet != netip.MustParsePrefix("10.0.2.0/24") {
		t.Errorf(".debian.org is used only from 10.0.2.0/24, got subnet %v", deb.Subnet)
	}
	if len(s.Left) != 2 {
		t.Errorf("not proposed: %+v, want the invalid name and the sniff failure", s.Left)
	}

	cfg := parse(t, out.String())
	client := netip.MustParseAddr("10.0.1.5")
	for name, allowed := range map[string]bool{
		"api.github.com": true, "uploads.github.com": true, "github.com": true,
		"deb.debian.org": true, "pypi.org": true, "evil-bucket.s3.amazonaws.com": false,
		"iam.amazonaws.com": false, "evil.githubusercontent.com": false, "example.com": false,
	} {
		if got := cfg.Compiled.Decide(client, name, netip.Addr{}).Allowed; got != allowed {
			t.Errorf("%s: allowed %v, want %v", name, got, allowed)
		}
	}
	if !cfg.Compiled.Decide(client, "", netip.MustParseAddr("203.0.113.9")).Allowed {
		t.Error("the address entry does not allow 203.0.113.9")
	}

	// The Aggregator methods the CLI uses print the same.
	var viaMethod bytes.Buffer
	if err := agg.Write(&viaMethod); err != nil || viaMethod.String() != out.String() {
		t.Errorf("(*Aggregator).Write differs from Write(Suggest): %v", err)
	}
}

// line is an access-log line for table tests.
func line(src, host, dst, decision string) string {
	return fmt.Sprintf(`{"level":"info","src":%q,"dst":%q,"proto":"tls","host":%q,"decision":%q,"enforced":false,"reason":"not_allowed","rule":"","message":"access"}`, src+":40000", dst, host, decision)
}

func TestSuggestNames(t *testing.T) {
	t.Parallel()
	const c = "10.0.1.5"
	for _, tc := range []struct {
		name  string
		hosts []string
		want  []string // allow entries, by count then text
		addrs []string
		left  int
	}{
		{"a lone name stays exact", []string{"api.github.com"}, []string{"api.github.com"}, nil, 0},
		{"several names share a domain", []string{"api.github.com", "codeload.github.com"}, []string{".github.com"}, nil, 0},
		{"the apex and a subdomain", []string{"naver.com", "www.naver.com"}, []string{".naver.com"}, nil, 0},
		{"the same name twice is one name", []string{"pypi.org", "PYPI.org."}, []string{"pypi.org"}, nil, 0},
		{"names under a public suffix stay apart", []string{"a.github.io", "b.github.io"}, []string{"a.github.io", "b.github.io"}, nil, 0},
		{"a public suffix itself stays exact", []string{"github.io", "s3.amazonaws.com"}, []string{"github.io", "s3.amazonaws.com"}, nil, 0},
		{"a private suffix's names stay apart", []string{"x.s3.amazonaws.com", "y.s3.amazonaws.com"}, []string{"x.s3.amazonaws.com", "y.s3.amazonaws.com"}, nil, 0},
		{"shared parents are never grouped", []string{"sts.amazonaws.com", "iam.amazonaws.com"}, []string{"iam.amazonaws.com", "sts.amazonaws.com"}, nil, 0},
		{"country-code second levels", []string{"www.naver.co.kr", "m.naver.co.kr", "x.co.kr"}, []string{".naver.co.kr", "x.co.kr"}, nil, 0},
		{"a single label", []string{"metadata"}, []string{"metadata"}, nil, 0},
		{"an IP address as host is no name", []string{"203.0.113.5"}, nil, []string{"203.0.113.9"}, 0},
		{"no host is no name", []string{""}, nil, []string{"203.0.113.9"}, 0},
		{"an invalid name is not proposed", []string{"bad name", "a..b"}, nil, nil, 1},
		{"an all-digit top label is not proposed", []string{"host.123"}, nil, nil, 1},
		{"YAML words are quoted", []string{"true", "null", "1e5"}, []string{"1e5", "null", "true"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log strings.Builder
			for _, h := range tc.hosts {
				log.WriteString(line(c, h, "203.0.113.9:443", "deny") + "\n")
			}
			var agg Aggregator
			if err := Read(strings.NewReader(log.String()), &agg); err != nil {
				t.Fatal(err)
			}
			s := Suggest(&agg, Options{})
			var allow, addrs []string
			for _, e := range s.Allow {
				allow = append(allow, e.Allow)
			}
			for _, e := range s.Addresses {
				addrs = append(addrs, e.Allow)
			}
			if !slices.Equal(allow, tc.want) || !slices.Equal(addrs, tc.addrs) || len(s.Left) != tc.left {
				t.Errorf("allow %q addresses %q left %+v; want %q %q and %d left", allow, addrs, s.Left, tc.want, tc.addrs, tc.left)
			}
			var out bytes.Buffer
			if err := Write(&out, s); err != nil {
				t.Fatal(err)
			}
			cfg := parse(t, out.String())
			if got := append(cfg.Policy.Allow[:0:0], cfg.Policy.Allow...); !slices.Equal(got, append(tc.want, tc.addrs...)) && len(got)+len(tc.want)+len(tc.addrs) > 0 {
				t.Errorf("the YAML says allow %q", got)
			}
		})
	}
}

func TestGroupBySubnet(t *testing.T) {
	t.Parallel()
	log := strings.Join([]string{
		line("10.0.1.5", "pypi.org", "151.101.0.223:443", "deny"),
		line("10.0.2.9", "deb.debian.org", "151.101.2.132:443", "deny"),
		line("10.0.2.10", "security.debian.org", "151.101.2.132:443", "deny"),
		line("10.0.2.10", "", "203.0.113.9:443", "deny"),
		line("10.0.3.6", "pypi.org", "151.101.0.223:443", "deny"),
	}, "\n")
	var agg Aggregator
	if err := Read(strings.NewReader(log), &agg); err != nil {
		t.Fatal(err)
	}
	s := Suggest(&agg, Options{GroupBySubnet: true})
	if len(s.Groups) != 1 || s.Groups[0].Name != "net-10.0.2.0_24" || len(s.Groups[0].Allow) != 2 {
		t.Fatalf("groups %+v", s.Groups)
	}
	if len(s.Allow) != 1 || s.Allow[0].Allow != "pypi.org" || s.Allow[0].Subnet.IsValid() {
		t.Errorf("pypi.org is used from two subnets: %+v", s.Allow)
	}
	var out bytes.Buffer
	if err := Write(&out, s); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, out.String())
	for _, tc := range []struct {
		src, name, dst string
		allowed        bool
	}{
		{"10.0.2.200", "deb.debian.org", "", true},
		{"10.0.1.5", "deb.debian.org", "", false},
		{"10.0.2.1", "", "203.0.113.9", true},
		{"10.0.1.5", "", "203.0.113.9", false},
		{"10.0.1.5", "pypi.org", "", true},
	} {
		var dst netip.Addr
		if tc.dst != "" {
			dst = netip.MustParseAddr(tc.dst)
		}
		if got := cfg.Compiled.Decide(netip.MustParseAddr(tc.src), tc.name, dst).Allowed; got != tc.allowed {
			t.Errorf("%s to %q %s: allowed %v, want %v\n%s", tc.src, tc.name, tc.dst, got, tc.allowed, out.String())
		}
	}

	// One subnet in the whole log: nothing to tell apart, no group.
	var one Aggregator
	_ = Read(strings.NewReader(line("10.0.2.9", "a.example", "203.0.113.1:443", "deny")), &one)
	if s := Suggest(&one, Options{GroupBySubnet: true}); len(s.Groups) != 0 || s.Allow[0].Subnet.IsValid() {
		t.Errorf("grouped although the log has one subnet: %+v", s)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	long := `{"level":"info","pad":"` + strings.Repeat("x", maxLine) + `"}`
	in := strings.Join([]string{
		"",
		"   ",
		line("10.0.1.5", "a.example", "203.0.113.1:443", "deny") + "\r", // CRLF
		"not json",
		"[1,2]",
		"null",
		`{"decision":"maybe"}`,
		`{"host":5,"decision":"deny"}`,
		long,
		line("[2001:db8::5]", "b.example", "[2001:db8::1]:443", "allow"),
		`{"src":"10.0.1.5:1","dst":"","host":"","decision":"deny","reason":"no_name"}`,
		line("10.0.1.5", "c.example", "203.0.113.1:443", "deny"), // no final newline
	}, "\n")
	var agg Aggregator
	if err := Read(strings.NewReader(in), &agg); err != nil {
		t.Fatal(err)
	}
	if agg.Lines != 4 || agg.Malformed != 4 || agg.Ignored != 2 {
		t.Errorf("lines %d malformed %d ignored %d; want 4, 4, 2", agg.Lines, agg.Malformed, agg.Ignored)
	}
	s := Suggest(&agg, Options{})
	if len(s.Allow) != 3 || s.Allow[1].Sources[0].Value != "2001:db8::5" || s.Allow[1].Allowed != 1 {
		t.Errorf("allow %+v", s.Allow)
	}

	// Several files add up.
	if err := Read(strings.NewReader(line("10.0.1.6", "a.example", "203.0.113.1:443", "deny")), &agg); err != nil {
		t.Fatal(err)
	}
	if s := Suggest(&agg, Options{}); s.Allow[0].Allow != "a.example" || s.Allow[0].Count != 2 {
		t.Errorf("after a second file: %+v", s.Allow)
	}

	// A failing reader is an error.
	boom := errors.New("boom")
	if err := Read(iotest.ErrReader(boom), &agg); !errors.Is(err, boom) {
		t.Errorf("reader error: %v", err)
	}
}

func TestWriteEmpty(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Write(&out, Suggest(NewAggregator(), Options{})); err != nil {
		t.Fatal(err)
	}
	if cfg := parse(t, out.String()); len(cfg.Policy.Allow) != 0 {
		t.Errorf("allow %q from nothing", cfg.Policy.Allow)
	}
}

func TestMaxSources(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	for i := range 9 {
		log.WriteString(line(fmt.Sprintf("10.0.%d.1", i), "a.example", "203.0.113.1:443", "deny") + "\n")
	}
	var agg Aggregator
	_ = Read(strings.NewReader(log.String()), &agg)
	var out bytes.Buffer
	_ = Write(&out, Suggest(&agg, Options{MaxSources: 2}))
	if !strings.Contains(out.String(), "from 9 clients: 10.0.0.1, 10.0.1.1, and 7 more") {
		t.Errorf("sources not bounded:\n%s", out.String())
	}
}

func FuzzRead(f *testing.F) {
	f.Add(`{"src":"10.0.0.1:1","dst":"203.0.113.9:443","host":"a.example","decision":"deny","enforced":false}` + "\n")
	if b, err := os.ReadFile("testdata/monitor.log"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		a := NewAggregator()
		if err := a.Read(strings.NewReader(in)); err != nil {
			return
		}
		for _, opts := range []Options{{}, {GroupBySubnet: true, MaxSources: 1}} {
			var out bytes.Buffer
			if err := Write(&out, Suggest(a, opts)); err != nil {
				t.Fatal(err)
			}
			// Groups hold the clients' subnets, so intercept everything
			// the log could name.
			cfg := "intercept:\n  sources: [\"0.0.0.0/0\", \"::/0\"]\n" + out.String()
			if _, err := config.Parse("s.yaml", []byte(cfg)); err != nil {
				t.Fatalf("suggestion rejected: %v\n%s", err, out.String())
			}
		}
	})
}

// golden compares got with a file, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}
