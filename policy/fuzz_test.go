package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzNormalizeName checks that NormalizeName never panics, that what it
// accepts is valid and normal (normalising it again changes nothing), that
// Decide agrees with it, and that suffix matching keeps to label
// boundaries.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{
		"api.github.com", "API.GitHub.com.", "a..b", ".", "", "x.fuzz.example", "xfuzz.example", "fuzz.example.",
		"fuzz.example.evil", "api.github.com\x00.evil", "%61pi.github.com", "*.github.com", "bücher.example",
		"203.0.113.9", "2001:db8::1", "::ffff:1.2.3.4", "1.2.3", strings.Repeat("a", 63) + ".fuzz.example",
	} {
		f.Add(s)
	}
	p, err := New(Spec{Allow: []string{".fuzz.example"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := NormalizeName(raw)
		d := p.Decide(netip.Addr{}, raw, netip.Addr{})
		switch {
		case err == nil:
			if out == "" || len(out) > MaxNameLen || strings.HasSuffix(out, ".") || strings.ToLower(out) != out {
				t.Fatalf("NormalizeName(%q) = %q: not normal", raw, out)
			}
			if again, err := NormalizeName(out); err != nil || again != out {
				t.Fatalf("NormalizeName(%q) = %q, but NormalizeName(%q) = %q, %v", raw, out, out, again, err)
			}
			want := out == "fuzz.example" || strings.HasSuffix(out, ".fuzz.example")
			if d.Allowed != want || (d.Reason != ReasonAllowedName && d.Reason != ReasonNotAllowed) {
				t.Fatalf("Decide(%q) = %+v; want allowed %v (normalised %q)", raw, d, want, out)
			}
		case errors.Is(err, ErrAddressLiteral):
			if d.Reason != ReasonNoName {
				t.Fatalf("Decide(%q) = %+v for an address literal; want no_name", raw, d)
			}
		case errors.Is(err, ErrInvalidName):
			want := ReasonInvalidName
			if raw == "" {
				want = ReasonNoName
			}
			if out != "" || d.Reason != want {
				t.Fatalf("NormalizeName(%q) = %q, %v; Decide = %+v", raw, out, err, d)
			}
		default:
			t.Fatalf("NormalizeName(%q): unexpected error %v", raw, err)
		}
	})
}

// FuzzParseIPLiterals checks the allocation-free address parsers against
// net/netip.
func FuzzParseIPLiterals(f *testing.F) {
	for _, s := range ipLiteralSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkIPLiteral(t, s)
	})
}

// FuzzParseEntry checks that ParseEntry never panics and that the names it
// accepts are normal wire names.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"naver.com", ".example.org", "*.example.net", "203.0.113.0/24", "10.0.0.1/8", ".bücher.example",
		"*.s3.amazonaws.com", ".com", "::ffff:10.0.0.0/104", "*.", ".", "a..b", "foo.123",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, allowPS bool) {
		e, err := ParseEntry(s, allowPS)
		if err != nil {
			return
		}
		if e.Kind == Prefix {
			if !e.Prefix.IsValid() || e.Prefix.Masked() != e.Prefix {
				t.Fatalf("ParseEntry(%q) = prefix %v", s, e.Prefix)
			}
			return
		}
		if n, err := NormalizeName(e.Name); err != nil || n != e.Name {
			t.Fatalf("ParseEntry(%q) = name %q, which NormalizeName turns into %q, %v", s, e.Name, n, err)
		}
	})
}
