package suggest

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/egressd/egressd/policy/config"
)

var update = flag.Bool("update", false, "rewrite testdata/monitor.golden")

func TestSuggestFromMonitorLog(t *testing.T) {
	f, err := os.Open("testdata/monitor.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := NewAggregator()
	if err := a.Read(f); err != nil {
		t.Fatal(err)
	}
	if a.Malformed != 1 {
		t.Fatalf("malformed lines %d, want 1", a.Malformed)
	}
	var out bytes.Buffer
	if err := a.Write(&out); err != nil {
		t.Fatal(err)
	}
	if *update {
		os.WriteFile("testdata/monitor.golden", out.Bytes(), 0o644)
	}
	want, _ := os.ReadFile("testdata/monitor.golden")
	if out.String() != string(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	for _, must := range []string{"- .github.com", "- pypi.org ", "- .debian.org", "- 203.0.113.9", "- telemetry.example.com", "already allowed"} {
		if !strings.Contains(out.String(), must) {
			t.Errorf("suggestion lacks %q", must)
		}
	}
	if strings.Contains(out.String(), "- .amazonaws.com") && !strings.Contains(out.String(), "sts.eu-west-1") {
		t.Error("grouped amazonaws names without listing them")
	}
	if strings.Contains(out.String(), "- .s3.amazonaws.com") || strings.Contains(out.String(), "- .com") {
		t.Error("proposed a public suffix")
	}
	// The suggestion is a valid policy section.
	cfg := "intercept:\n  sources: [10.0.0.0/16]\n" + out.String()
	if _, err := config.Parse("suggested.yaml", []byte(cfg)); err != nil {
		t.Fatalf("egressd rejects the suggestion: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add(`{"src":"10.0.0.1:1","dst":"203.0.113.9:443","host":"a.example","decision":"deny","enforced":false}` + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		a := NewAggregator()
		if err := a.Read(strings.NewReader(in)); err != nil {
			return
		}
		var out bytes.Buffer
		if err := a.Write(&out); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse("s.yaml", []byte("intercept:\n  sources: [10.0.0.0/16]\n"+out.String())); err != nil {
			t.Fatalf("suggestion rejected: %v\n%s", err, out.String())
		}
	})
}
