package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig checks that Parse never panics, that it returns either a
// compiled config or Errors naming the file, and never both.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("intercept: {sources: [10.77.0.0/16]}\npolicy: {allow: [&a x.example, *a]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if err == nil {
			if cfg == nil || cfg.Compiled == nil || len(cfg.Intercept.Sources) == 0 {
				t.Fatalf("Parse returned no error but config %+v", cfg)
			}
			return
		}
		var errs Errors
		if cfg != nil || !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("Parse = %v, %v (%T)", cfg, err, err)
		}
		for i, e := range errs {
			if e.File != "f.yaml" || e.Msg == "" || (i > 0 && e.Line < errs[i-1].Line) {
				t.Fatalf("bad error list:\n%v", err)
			}
		}
	})
}
