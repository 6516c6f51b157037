package squidconf

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/egressd/egressd/policy/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml golden files")

const classic = `acl customnet dstdomain naver.com
acl customnet dstdomain www.naver.com
http_access allow customnet
http_access deny all
`

// files serves Options.Open and Options.Glob from a map.
type files map[string]string

func (f files) options(sources ...string) Options {
	var o Options
	for _, s := range sources {
		o.Sources = append(o.Sources, netip.MustParsePrefix(s))
	}
	o.Open = func(name string) (io.ReadCloser, error) {
		s, ok := f[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return io.NopCloser(strings.NewReader(s)), nil
	}
	o.Glob = func(pattern string) ([]string, error) {
		var out []string
		for name := range f {
			if ok, _ := path.Match(pattern, name); ok {
				out = append(out, name)
			}
		}
		return out, nil
	}
	return o
}

// decision is a connection and whether the translated policy allows it.
type decision struct {
	src, name, dst string
	allowed        bool
}

// skipWant is a skipped line: its number, words of its reason, and whether
// it affects access.
type skipWant struct {
	line    int
	why     string
	affects bool
}

type groupWant struct {
	name           string
	sources, allow []string
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		conf      string
		files     files
		sources   []string // --sources
		err       string
		intercept []string // intercept.sources
		allow     []string
		groups    []groupWant
		skipped   []skipWant // exactly these lines, in order
		decisions []decision
	}{
		{
			name:      "classic",
			conf:      classic,
			sources:   []string{"10.0.0.0/16"},
			intercept: []string{"10.0.0.0/16"},
			allow:     []string{"naver.com", "www.naver.com"},
			decisions: []decision{
				{"10.0.1.5", "naver.com", "", true},
				{"10.0.1.5", "www.naver.com", "", true},
				{"10.0.1.5", "NAVER.COM.", "", true},
				{"10.0.1.5", "google.co.kr", "", false},
				{"10.0.1.5", "mail.naver.com", "", false}, // a bare name is that name only
				{"10.0.1.5", "naver.com.evil.example", "", false},
			},
		},
		{
			name: "classic without sources",
			conf: classic,
			err:  "--sources",
		},
		{
			name:      "dot means the domain and its subdomains",
			conf:      "acl ok dstdomain .Example.COM\nhttp_access allow ok\nhttp_access deny all\n",
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{".example.com"},
			decisions: []decision{
				{"10.77.0.1", "example.com", "", true},
				{"10.77.0.1", "a.b.example.com", "", true},
				{"10.77.0.1", "badexample.com", "", false},
				{"10.77.0.1", "example.com.evil.test", "", false},
			},
		},
		{
			name: "src acls give the sources and the groups",
			conf: `acl office src 10.77.0.0/255.255.0.0   # netmask form
acl ci src 10.77.3.0/24
acl pkgs dstdomain .debian.org
acl pkgs dstdomain pypi.org
acl gh dstdomain .github.com
http_access allow office pkgs
http_access allow ci gh
http_access deny all
`,
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{".debian.org", "pypi.org"},
			groups:    []groupWant{{"ci", []string{"10.77.3.0/24"}, []string{".github.com"}}},
			decisions: []decision{
				{"10.77.3.9", "api.github.com", "", true},
				{"10.77.1.9", "api.github.com", "", false},
				{"10.77.1.9", "deb.debian.org", "", true},
				{"10.77.3.9", "pypi.org", "", true},
			},
		},
		{
			name: "lines of one src acl form one group",
			conf: `acl ci src 10.77.3.0/24
acl gh dstdomain .github.com
acl npm dstdomain registry.npmjs.org
http_access allow ci gh
http_access allow ci npm
http_access deny all
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			groups:    []groupWant{{"ci", []string{"10.77.3.0/24"}, []string{".github.com", "registry.npmjs.org"}}},
		},
		{
			name: "two src acls on a line are both required",
			conf: `acl office src 10.77.0.0/16
acl lab src 10.77.5.0/24 10.99.0.0/16
acl gh dstdomain .github.com
http_access allow office lab gh
`,
			sources:   []string{"10.77.0.0/16", "10.99.0.0/16"},
			intercept: []string{"10.77.0.0/16", "10.99.0.0/16"},
			groups:    []groupWant{{"office-lab", []string{"10.77.5.0/24"}, []string{".github.com"}}},
			decisions: []decision{
				{"10.77.5.1", "github.com", "", true},
				{"10.99.0.1", "github.com", "", false},
			},
		},
		{
			name: "group sources are cut to intercept.sources",
			conf: `acl wide src 10.0.0.0/8
acl elsewhere src 172.16.0.0/12
acl gh dstdomain .github.com
acl pkgs dstdomain .debian.org
http_access allow wide gh
http_access allow elsewhere pkgs
http_access deny all
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{".github.com"}, // wide covers all of intercept.sources
			skipped:   []skipWant{{6, "outside intercept.sources", true}},
		},
		{
			name:      "src all and predefined all are any client",
			conf:      "acl any src 0.0.0.0/0.0.0.0\nacl ok dstdomain ok.example\nhttp_access allow any ok\nhttp_access allow all ok\n",
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
		},
		{
			name:      "an old-style all acl",
			conf:      "acl all src 0.0.0.0/0.0.0.0\nacl ok dstdomain ok.example\nhttp_access deny !all\nhttp_access allow all ok\nhttp_access deny all\n",
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped:   []skipWant{{3, "!all matches no client", false}},
		},
		{
			name: "dst acls become address entries",
			conf: `acl partner dst 203.0.113.0/24 198.51.100.7 198.51.100.16-198.51.100.23 2001:db8::/48
http_access allow partner
http_access deny all
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"203.0.113.0/24", "198.51.100.7", "198.51.100.16/29", "2001:db8::/48"},
			decisions: []decision{
				{"10.77.0.1", "", "203.0.113.9", true},
				{"10.77.0.1", "anything.example", "198.51.100.20", true},
				{"10.77.0.1", "", "198.51.100.24", false},
			},
		},
		{
			name: "stock port and manager lines never match egressd's traffic",
			conf: `acl SSL_ports port 443
acl Safe_ports port 80
acl Safe_ports port 21
acl Safe_ports port 443
acl Safe_ports port 1025-65535
acl CONNECT method CONNECT
acl localnet src 10.77.0.0/16
acl ok dstdomain ok.example
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localnet ok
http_access allow localhost
http_access deny all
`,
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped: []skipWant{
				{9, "never matches", false},
				{10, "CONNECT is false for plain HTTP", false},
				{11, "loopback", false},
				{12, "cache manager", false},
				{14, "loopback", false},
			},
		},
		{
			name: "a deny before an allow changes the meaning",
			conf: `acl localnet src 10.77.0.0/16
acl ok dstdomain .example.org
acl bad dstdomain secret.example.org
acl SSL_ports port 443
http_access deny bad
http_access deny !SSL_ports
http_access allow localnet ok
http_access deny to_localhost
http_access deny all
`,
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{".example.org"},
			skipped: []skipWant{
				{5, "deny before the allow at line 7", true},
				{6, "deny before the allow at line 7", true}, // denies plain HTTP on port 80
				{8, "not needed", false},
			},
		},
		{
			name: "the last line a deny means Squid allows the rest",
			conf: `acl ok dstdomain ok.example
acl bad dstdomain bad.example
http_access allow ok
http_access deny bad
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped:   []skipWant{{4, "Squid allows whatever no line matches", true}},
		},
		{
			name: "lines after deny all are never reached",
			conf: `acl ok dstdomain ok.example
acl late dstdomain late.example
http_access allow ok
http_access deny all
http_access allow late
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped:   []skipWant{{5, "never reaches it", false}},
			decisions: []decision{{"10.77.0.1", "late.example", "", false}},
		},
		{
			name: "negation, regex, time and method are skipped",
			conf: `acl localnet src 10.77.0.0/16
acl ok dstdomain ok.example
acl blocked dstdomain ads.example
acl social dstdom_regex -i (facebook|twitter)\.com$
acl media url_regex -i \.mp4$
acl worktime time MTWHF 08:00-18:00
acl GET method GET
acl CONNECT method CONNECT
http_access allow localnet ok !blocked
http_access allow localnet social
http_access allow localnet media
http_access allow localnet ok worktime
http_access allow GET ok
http_access allow CONNECT ok
http_access allow localnet ok
`,
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped: []skipWant{
				{9, "negated acl !blocked", true},
				{10, "regular expressions", true},
				{11, "URLs", true},
				{12, "time-of-day", true},
				{13, "HTTP method", true},
				{14, "applies to TLS only", true},
			},
		},
		{
			name: "public suffixes are reported, not allowed",
			conf: `acl ok dstdomain .com .github.io pages.github.io .example.com
http_access allow ok
http_access deny all
`,
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"pages.github.io", ".example.com"},
			skipped: []skipWant{
				{1, "public suffix", true},
				{1, "public suffix", true},
			},
			decisions: []decision{
				{"10.77.0.1", "google.com", "", false},
				{"10.77.0.1", "evil.github.io", "", false},
			},
		},
		{
			name: "a line allowing every destination is skipped",
			conf: `acl localnet src 10.77.0.0/16
http_access allow localnet
http_access deny all
`,
			intercept: []string{"10.77.0.0/16"},
			skipped:   []skipWant{{2, "every destination", true}},
		},
		{
			name:      "continuation lines, comments, flags, duplicates",
			conf:      "# a comment\nacl ok dstdomain -n a.example \\\n\tb.example # inline comment\n\nacl ok dstdomain A.example\nhttp_access allow ok\n",
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"a.example", "b.example"},
		},
		{
			name: "list files and includes",
			conf: `include conf.d/*.conf
acl ok dstdomain "lists/ok.txt" direct.example
acl missing dstdomain "lists/missing.txt"
http_access allow ok
http_access allow missing
http_access allow partner
http_access deny all
`,
			files: files{
				"lists/ok.txt":         "# allowed\nlisted.example\n\n.cdn.example   # a CDN\n",
				"conf.d/partner.conf":  "acl partner dstdomain api.partner.example\nhttp_port 3128\n",
				"conf.d/zz-empty.conf": "# nothing\n",
			},
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"listed.example", ".cdn.example", "direct.example", "api.partner.example"},
			skipped: []skipWant{
				{2, "not relevant", false}, // conf.d/partner.conf:2
				{3, "cannot read the list", true},
				{5, "could not be read", true},
			},
		},
		{
			name:    "an unreadable include is reported",
			conf:    "include /etc/squid/extra.conf\nacl ok dstdomain ok.example\nhttp_access allow ok\n",
			sources: []string{"10.77.0.0/16"},
			allow:   []string{"ok.example"},
			skipped: []skipWant{{1, "cannot read the included file", true}},
		},
		{
			name: "malformed lines",
			conf: `acl
acl ok dstdomain ok.example
acl ok src 10.77.0.0/16
http_access allow
http_access maybe ok
http_access allow nosuchacl
http_access allow ok
acl q dstdomain "unterminated
`,
			sources: []string{"10.77.0.0/16"},
			skipped: []skipWant{
				{1, "needs a name and a type", true},
				{3, "second type", true},
				{4, "names no acl", true},
				{5, "expected http_access allow|deny", true},
				{6, "not defined", true},
				{7, "two types", true},
				{8, "no closing", true},
			},
		},
		{
			name:      "directives",
			conf:      "http_port 3128\ncache_dir ufs /var/spool/squid 100 16 256\nssl_bump peek all\nfrobnicate on\nacl ok dstdomain ok.example\nhttp_access allow ok\n",
			sources:   []string{"10.77.0.0/16"},
			intercept: []string{"10.77.0.0/16"},
			allow:     []string{"ok.example"},
			skipped: []skipWant{
				{1, "not relevant to egressd", false},
				{2, "not relevant to egressd", false},
				{3, "never decrypts TLS", true},
				{4, "not known to import-squid", true},
			},
		},
		{
			name:      "IPv6 and ranges of sources",
			conf:      "acl v6 src 2001:db8:77::/48\nacl v4 src 10.77.0.0-10.77.1.255\nacl ok dstdomain ok.example\nhttp_access allow v6 ok\nhttp_access allow v4 ok\n",
			intercept: []string{"10.77.0.0/23", "2001:db8:77::/48"},
			groups: []groupWant{
				{"v6", []string{"2001:db8:77::/48"}, []string{"ok.example"}},
				{"v4", []string{"10.77.0.0/23"}, []string{"ok.example"}},
			},
			decisions: []decision{{"2001:db8:77::5", "ok.example", "", true}},
		},
		{
			name: "only loopback clients: no sources",
			conf: "acl ok dstdomain ok.example\nhttp_access allow localhost ok\n",
			err:  "--sources",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Translate("squid.conf", strings.NewReader(tc.conf), tc.files.options(tc.sources...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse("generated.yaml", res.YAML)
			if err != nil {
				t.Fatalf("egressd rejects the generated config: %v\n%s", err, res.YAML)
			}
			if tc.intercept != nil && !slices.Equal(prefixStrings(cfg.Intercept.Sources), tc.intercept) {
				t.Errorf("intercept.sources %v, want %v", cfg.Intercept.Sources, tc.intercept)
			}
			if !slices.Equal(cfg.Policy.Allow, tc.allow) && (len(tc.allow) > 0 || len(cfg.Policy.Allow) > 0) {
				t.Errorf("policy.allow %q, want %q", cfg.Policy.Allow, tc.allow)
			}
			var groups []groupWant
			for _, g := range cfg.Policy.Groups {
				groups = append(groups, groupWant{g.Name, prefixStrings(g.Sources), g.Allow})
			}
			if !slices.EqualFunc(groups, tc.groups, func(a, b groupWant) bool {
				return a.name == b.name && slices.Equal(a.sources, b.sources) && slices.Equal(a.allow, b.allow)
			}) {
				t.Errorf("policy.groups %+v, want %+v", groups, tc.groups)
			}
			checkSkipped(t, res, tc.skipped)
			for _, d := range tc.decisions {
				var dst netip.Addr
				if d.dst != "" {
					dst = netip.MustParseAddr(d.dst)
				}
				if got := cfg.Compiled.Decide(netip.MustParseAddr(d.src), d.name, dst).Allowed; got != d.allowed {
					t.Errorf("from %s to %q %s: allowed %v, want %v", d.src, d.name, d.dst, got, d.allowed)
				}
			}
			if t.Failed() {
				t.Logf("generated:\n%s", res.YAML)
			}
		})
	}
}

func checkSkipped(t *testing.T, res Result, want []skipWant) {
	t.Helper()
	leftOut := false
	ok := len(res.Skipped) == len(want)
	for i, s := range res.Skipped {
		leftOut = leftOut || s.AffectsAccess
		if i < len(want) {
			w := want[i]
			if s.Line != w.line || !strings.Contains(s.Why, w.why) || s.AffectsAccess != w.affects {
				ok = false
			}
		}
	}
	if !ok {
		var got strings.Builder
		for _, s := range res.Skipped {
			got.WriteString("\n  " + s.String())
			if s.AffectsAccess {
				got.WriteString(" [affects]")
			}
		}
		t.Errorf("skipped:%s\nwant %+v", got.String(), want)
	}
	if res.LeftOut != leftOut {
		t.Errorf("LeftOut %v, but the skipped lines say %v", res.LeftOut, leftOut)
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// TestSquidConf translates testdata/squid.conf, a squid.conf.default edited
// the way build farms do, through the real file system (a list file and an
// include), and compares the result with testdata/squid.yaml.
func TestSquidConf(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/squid.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Translate("testdata/squid.conf", f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/squid.yaml", res.YAML)
	cfg, err := config.Parse("squid.yaml", res.YAML)
	if err != nil {
		t.Fatalf("egressd rejects the generated config: %v", err)
	}
	if !res.LeftOut {
		t.Error("LeftOut is false, but access rules were skipped")
	}
	var where []string
	for _, s := range res.Skipped {
		if s.AffectsAccess {
			where = append(where, s.File+":"+strconv.Itoa(s.Line))
		}
	}
	wantWhere := []string{
		"testdata/lists/mirrors.txt:4", // .co.kr: a public suffix
		"testdata/squid.conf:21",       // .githubusercontent.com: a public suffix
		"testdata/squid.conf:33",       // deny to_localhost before allows
		"testdata/squid.conf:34",       // deny media (url_regex) before allows
		"testdata/squid.conf:39",       // dstdom_regex, negation
		"testdata/squid.conf:40",       // time
	}
	if !slices.Equal(where, wantWhere) {
		t.Errorf("lines affecting access %q, want %q", where, wantWhere)
	}
	office, ci, backup := netip.MustParseAddr("10.0.9.9"), netip.MustParseAddr("10.1.3.7"), netip.MustParseAddr("10.1.9.8")
	for _, d := range []struct {
		src   netip.Addr
		name  string
		dst   string
		allow bool
	}{
		{office, "deb.debian.org", "", true},
		{office, "registry.npmjs.org", "", true},       // from a continuation line, lower-cased
		{office, "mirror.example.org", "", true},       // from the list file
		{office, "www.security.example.org", "", true}, // from the list file
		{office, "cdn.partner.example", "", true},      // from the included file
		{office, "api.github.com", "", false},          // ci only
		{ci, "api.github.com", "", true},               // group ci
		{ci, "raw.githubusercontent.com", "", false},   // its public suffix entry was skipped
		{backup, "", "198.51.100.10", true},            // group backup, by address
		{office, "", "198.51.100.10", false},           // not for the office
		{office, "facebook.com", "", false},            // the regex line was skipped
	} {
		var dst netip.Addr
		if d.dst != "" {
			dst = netip.MustParseAddr(d.dst)
		}
		if got := cfg.Compiled.Decide(d.src, d.name, dst).Allowed; got != d.allow {
			t.Errorf("from %v to %q %s: allowed %v, want %v", d.src, d.name, d.dst, got, d.allow)
		}
	}
}

// TestRichConf keeps testdata/rich.conf, which the CLI tests use, failing
// the way they expect: line 15 (a dstdom_regex acl) left out.
func TestRichConf(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/rich.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Translate("testdata/rich.conf", f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("rich.yaml", res.YAML); err != nil {
		t.Fatalf("egressd rejects the generated config: %v\n%s", err, res.YAML)
	}
	found := false
	for _, s := range res.Skipped {
		found = found || s.Line == 15 && s.AffectsAccess && strings.Contains(s.Why, "dstdom_regex")
	}
	if !found || !res.LeftOut {
		t.Errorf("line 15 not reported as left out: %+v", res.Skipped)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	conf, err := os.ReadFile("testdata/squid.conf")
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for range 20 {
		res, err := Translate("testdata/squid.conf", bytes.NewReader(conf), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res.YAML
		} else if !bytes.Equal(first, res.YAML) {
			t.Fatalf("two translations differ:\n%s\n---\n%s", first, res.YAML)
		}
	}
}

func TestSourcesOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sources []netip.Prefix
		want    string // intercept.sources, or the error
	}{
		{[]netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("10.77.3.0/24")}, "10.77.0.0/16"},
		{[]netip.Prefix{netip.MustParsePrefix("10.77.1.1/16")}, "10.77.0.0/16"},
		{[]netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}, "IPv4-mapped"},
		{[]netip.Prefix{{}}, "not a valid CIDR"},
	} {
		res, err := Translate("squid.conf", strings.NewReader(classic), Options{Sources: tc.sources})
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			cfg, err := config.Parse("g.yaml", res.YAML)
			if err != nil {
				t.Fatal(err)
			}
			got = prefixList(cfg.Intercept.Sources)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("--sources %v: got %q, want %q", tc.sources, got, tc.want)
		}
	}
}

func TestParseAddrs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"}, // Squid clears host bits
		{"10.0.0.0/255.255.0.0", "10.0.0.0/16"},
		{"10.0.0.5", "10.0.0.5/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
		{"0.0.0.1-0.255.255.255", "0.0.0.1/32 0.0.0.2/31 0.0.0.4/30 0.0.0.8/29 0.0.0.16/28 0.0.0.32/27 0.0.0.64/26 0.0.0.128/25 0.0.1.0/24 0.0.2.0/23 0.0.4.0/22 0.0.8.0/21 0.0.16.0/20 0.0.32.0/19 0.0.64.0/18 0.0.128.0/17 0.1.0.0/16 0.2.0.0/15 0.4.0.0/14 0.8.0.0/13 0.16.0.0/12 0.32.0.0/11 0.64.0.0/10 0.128.0.0/9"},
		{"10.0.0.0-10.0.255.255", "10.0.0.0/16"},
		{"0.0.0.0-255.255.255.255", "0.0.0.0/0"},
		{"10.0.0.0/255.0.255.0", "error"},
		{"10.0.0.0/33", "error"},
		{"10.0.0.0/-1", "error"},
		{"2001:db8::/255.255.0.0", "error"},
		{"10.0.0.9-10.0.0.1", "error"},
		{"10.0.0.1-2001:db8::1", "error"},
		{"10.0.0.1-10.0.0.9/24", "error"},
		{"proxy.example", "error"},
		{"fe80::1%eth0", "error"},
	} {
		ps, err := parseAddrs(tc.in)
		got := prefixList(ps)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("parseAddrs(%q) = %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestScalar(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"naver.com", ".example.org", ".inf", ".NaN", "yes", "On", "NULL", "y", "a_b.c-d", ".x", "*.example.net", "", "123", "true", "null", "a: b", "a #b", "- x", "[x]", "x\ny", "tab\there", "'", `"`, "é", "\x00", "\u2028", "~"} {
		out := config.Scalar(s)
		var back []string
		if err := yaml.Unmarshal([]byte("- "+out+" # comment"), &back); err != nil || len(back) != 1 || back[0] != s {
			t.Errorf("scalar(%q) = %s, reads back as %q (%v)", s, out, back, err)
		}
	}
	if got := clean("a\nb\r\u2028c\x00\xff\td"); got != "a?b??c?? d" {
		t.Errorf("clean = %q", got)
	}
}

func TestGroupNames(t *testing.T) {
	t.Parallel()
	// acl names with characters egressd refuses in group names are mapped,
	// and a name already taken gets a number.
	conf := `acl a src 10.77.1.0/24
acl b src 10.77.2.0/24
acl c/d src 10.77.4.0/24
acl c_d src 10.77.5.0/24
acl x dstdomain x.example
http_access allow a x
http_access allow b x
http_access allow c/d x
http_access allow c_d x
`
	res, err := Translate("squid.conf", strings.NewReader(conf), Options{Sources: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("g.yaml", res.YAML)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.YAML)
	}
	var names []string
	for _, g := range cfg.Policy.Groups {
		names = append(names, g.Name)
	}
	if want := []string{"a", "b", "c_d", "c_d-2"}; !slices.Equal(names, want) {
		t.Errorf("group names %q, want %q", names, want)
	}
}

func FuzzTranslate(f *testing.F) {
	f.Add(classic)
	for _, name := range []string{"testdata/squid.conf", "testdata/rich.conf"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("acl a src 10.0.0.0/8 10.1.0.0-10.1.0.9\nacl b dst ::/0\nacl c dstdomain \"l\" .x.example\nhttp_access allow a c\nhttp_access allow a b\nhttp_access deny !a\n")
	f.Add("include *\nacl a port 1-80\nhttp_access allow !a\\\n all\n")
	f.Fuzz(func(t *testing.T, conf string) {
		fsys := files{"l": conf, "inc.conf": "acl i dstdomain i.example\nhttp_access allow i\n"}
		opts := fsys.options("10.0.0.0/8", "2001:db8::/32")
		if len(conf)%2 == 0 {
			opts.Sources = nil // sources from the src acls
		}
		res, err := Translate("fuzz.conf", strings.NewReader(conf), opts)
		if err != nil {
			return
		}
		// What is translated must be a config egressd accepts.
		if _, err := config.Parse("fuzz.yaml", res.YAML); err != nil {
			t.Fatalf("generated config rejected: %v\n%s", err, res.YAML)
		}
		for _, s := range res.Skipped {
			if s.Line < 0 || s.File == "" {
				t.Fatalf("skipped line without a place: %+v", s)
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
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is missing: run go test -run %s -update", name, t.Name())
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", name, got)
	}
}
