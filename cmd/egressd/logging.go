package main

import (
	"bufio"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// flushEvery bounds how long a log line may wait in the buffer. Batching
// saves one write(2) per connection under load; nothing is dropped.
const flushEvery = 50 * time.Millisecond

// logOutput is the access and event log's writer. Level and format can be
// changed by a reload without rebuilding the loggers that hold it. Lines
// are buffered and written in batches: at most flushEvery later, at once
// for warnings and errors, and on Close.
type logOutput struct {
	mu        sync.Mutex
	level     zerolog.Level
	w         io.Writer
	buf       *bufio.Writer
	stderr    io.Writer
	lastFlush time.Time
	timer     *time.Timer
	closed    bool
}

func newLogOutput(stderr io.Writer, level, format string) *logOutput {
	o := &logOutput{stderr: stderr, buf: bufio.NewWriterSize(stderr, 64<<10)}
	o.set(level, format)
	return o
}

// set applies log.level and log.format (validated by the config loader).
func (o *logOutput) set(level, format string) {
	l, err := zerolog.ParseLevel(level)
	if err != nil {
		l = zerolog.InfoLevel
	}
	var w io.Writer = o.buf
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: o.buf, TimeFormat: time.RFC3339}
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
	n, err := o.w.Write(p)
	if err != nil {
		return n, err
	}
	switch {
	case o.closed || l >= zerolog.WarnLevel && l != zerolog.NoLevel || time.Since(o.lastFlush) >= flushEvery:
		o.flushLocked()
	case o.timer == nil:
		o.timer = time.AfterFunc(flushEvery, func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.timer = nil
			o.flushLocked()
		})
	}
	return n, nil
}

func (o *logOutput) flushLocked() {
	_ = o.buf.Flush()
	o.lastFlush = time.Now()
}

// Close flushes what is buffered; later lines are written at once.
func (o *logOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	return o.buf.Flush()
}

func newLogger(out *logOutput) zerolog.Logger {
	return zerolog.New(out).With().Timestamp().Logger()
}

var _ zerolog.LevelWriter = (*logOutput)(nil)
