package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = dispatch(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckExampleConfig(t *testing.T) {
	code, out, errs := runCLI("check", "-c", "egressd.example.yaml")
	if code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("check of the example config: exit %d\n%s%s", code, out, errs)
	}
}

func TestCheckReportsEveryMistakeWithItsLine(t *testing.T) {
	code, _, errs := runCLI("check", "-c", "testdata/three-mistakes.yaml")
	if code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	want := []string{
		"testdata/three-mistakes.yaml:3: intercept.http_ports[1]:",
		"testdata/three-mistakes.yaml:5: upstream.dial_timeout:",
		`testdata/three-mistakes.yaml:7: policy.alow: unknown key (did you mean "allow"?)`,
	}
	if len(lines) != len(want) {
		t.Fatalf("want %d messages, got %d:\n%s", len(want), len(lines), errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--source", "10.0.3.7", "api.github.com"}, exitOK, "allow api.github.com from 10.0.3.7: rule .github.com (group ci)"},
		{[]string{"api.github.com", "--source", "10.0.3.7"}, exitOK, "allow api.github.com"},
		{[]string{"--source", "10.0.4.1", "api.github.com"}, exitDeny, "deny api.github.com from 10.0.4.1: not_allowed"},
		{[]string{"api.github.com"}, exitDeny, "groups were not considered"},
		{[]string{"NAVER.com."}, exitOK, "allow NAVER.com. from any source: rule naver.com"},
		{[]string{"badnaver.com"}, exitDeny, "deny badnaver.com"},
		{[]string{"203.0.113.9"}, exitOK, "rule 203.0.113.0/24 (destination address entry"},
		{[]string{"naver.com\x00.evil"}, exitDeny, "invalid_name"},
	} {
		code, out, errs := runCLI(append([]string{"explain", "-c", "testdata/groups.yaml"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("explain %q: exit %d %q %q; want exit %d containing %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
	if code, _, _ := runCLI("explain", "-c", "testdata/groups.yaml"); code != exitError {
		t.Errorf("explain without a name: exit %d, want 1", code)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != exitOK || !strings.Contains(out, "egressd ") || !strings.Contains(out, "go go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errs := runCLI("frobnicate"); code != exitError || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}

func TestImportSquidThenCheckAndExplain(t *testing.T) {
	code, yaml, errs := runCLI("import-squid", "--sources", "10.0.0.0/16", "testdata/classic-squid.conf")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	path := t.TempDir() + "/egressd.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI("check", "-c", path); code != exitOK {
		t.Fatalf("check of the imported config: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI("explain", "-c", path, "naver.com"); code != exitOK {
		t.Fatalf("naver.com: %d %s", code, out)
	}
	if code, out, _ := runCLI("explain", "-c", path, "google.co.kr"); code != exitDeny {
		t.Fatalf("google.co.kr: %d %s", code, out)
	}
	// Without sources there is nothing to intercept: a clear error.
	if code, _, errs := runCLI("import-squid", "testdata/classic-squid.conf"); code != exitError || !strings.Contains(errs, "--sources") {
		t.Fatalf("without --sources: %d %s", code, errs)
	}
	// What cannot be translated is listed with its line, exit 2.
	code, _, errs = runCLI("import-squid", "../../policy/squidconf/testdata/rich.conf")
	if code != exitPartial || !strings.Contains(errs, "rich.conf:15:") {
		t.Fatalf("rich config: exit %d\n%s", code, errs)
	}
}

func TestSuggestRecordedLog(t *testing.T) {
	code, out, errs := runCLI("suggest", "../../policy/suggest/testdata/monitor.log")
	want, _ := os.ReadFile("../../policy/suggest/testdata/monitor.golden")
	if code != exitOK || out != string(want) || !strings.Contains(errs, "1 lines were not JSON") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
}
