package main

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// logOutput is the access and event log's writer. Level and format can be
// changed by a reload without rebuilding the loggers that hold it.
type logOutput struct {
	mu     sync.Mutex
	level  zerolog.Level
	w      io.Writer
	stderr io.Writer
}

func newLogOutput(stderr io.Writer, level, format string) *logOutput {
	o := &logOutput{stderr: stderr}
	o.set(level, format)
	return o
}

// set applies log.level and log.format (validated by the config loader).
func (o *logOutput) set(level, format string) {
	l, err := zerolog.ParseLevel(level)
	if err != nil {
		l = zerolog.InfoLevel
	}
	var w io.Writer = o.stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: o.stderr, TimeFormat: time.RFC3339}
	}
	o.mu.Lock()
	o.level, o.w = l, w
	o.mu.Unlock()
}

func (o *logOutput) Write(p []byte) (int, error) {
	return o.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel drops lines below the configured level and serialises writes
// so that lines from many connections never interleave.
func (o *logOutput) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l < o.level && l != zerolog.NoLevel {
		return len(p), nil
	}
	return o.w.Write(p)
}

func newLogger(out *logOutput) zerolog.Logger {
	return zerolog.New(out).With().Timestamp().Logger()
}

var _ zerolog.LevelWriter = (*logOutput)(nil)
