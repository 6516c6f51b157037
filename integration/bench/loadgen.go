package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a load-generator run prints (JSON) for the bench.
type loadResult struct {
	Bytes     int64           `json:"bytes"`
	Seconds   float64         `json:"seconds"`
	Conns     int64           `json:"conns"`
	Errors    int64           `json:"errors"`
	FirstErr  string          `json:"first_error,omitempty"`
	Latencies []time.Duration `json:"-"`
	P50       time.Duration   `json:"p50"`
	P99       time.Duration   `json:"p99"`
	P999      time.Duration   `json:"p999"`
	Held      int64           `json:"held"`
}

// goHello returns a real Go ClientHello (default config: X25519MLKEM768
// key share, about 1.8 KiB) for name, captured from crypto/tls itself.
func goHello(name string) []byte {
	rec := &recordingConn{}
	c := tls.Client(rec, &tls.Config{ServerName: name, NextProtos: []string{"h2", "http/1.1"}})
	_ = c.Handshake() // fails at the first read, after writing the hello
	return rec.written
}

type recordingConn struct {
	net.Conn
	written []byte
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.written = append(r.written, p...)
	return len(p), nil
}
func (r *recordingConn) Read([]byte) (int, error)    { return 0, errors.New("recording only") }
func (r *recordingConn) Close() error                { return nil }
func (r *recordingConn) SetDeadline(time.Time) error { return nil }
func (r *recordingConn) SetReadDeadline(time.Time) error {
	return nil
}
func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func request(hello []byte, n uint64) []byte {
	msg := append([]byte(nil), hello...)
	return binary.BigEndian.AppendUint64(msg, n)
}

// loadgenMain is the load generator, run inside the client namespace by
// the bench itself (`bench -loadgen …`), so that its CPU is not the bench's.
func loadgenMain(args []string) {
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	mode := fs.String("mode", "bulk", "bulk | churn | idle")
	target := fs.String("target", "", "ip:port")
	name := fs.String("sni", "bench.example", "SNI")
	conns := fs.Int("conns", 1, "connections (bulk, idle) or concurrency (churn)")
	dur := fs.Duration("dur", 5*time.Second, "measurement time (bulk, churn); hold time (idle)")
	size := fs.Int("size", 1024, "answer size for churn")
	_ = fs.Parse(args)
	hello := goHello(*name)
	var r loadResult
	switch *mode {
	case "bulk":
		r = bulk(*target, request(hello, math.MaxUint64), *conns, *dur)
	case "churn":
		r = churn(*target, request(hello, uint64(*size)), *size, *conns, *dur)
	case "idle":
		r = idle(*target, request(hello, 0), *conns, *dur)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func dial(ctx context.Context, target string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", target)
}

func bulk(target string, req []byte, n int, dur time.Duration) loadResult {
	var total, errs atomic.Int64
	var first atomic.Value
	warm := 500 * time.Millisecond
	start := time.Now()
	measureFrom, end := start.Add(warm), start.Add(warm+dur)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(context.Background(), target)
			if err != nil {
				errs.Add(1)
				first.CompareAndSwap(nil, err.Error())
				return
			}
			defer c.Close()
			_ = c.SetDeadline(end)
			if _, err := c.Write(req); err != nil {
				errs.Add(1)
				return
			}
			buf := make([]byte, 256<<10)
			for {
				k, err := c.Read(buf)
				if time.Now().After(measureFrom) {
					total.Add(int64(k))
				}
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	r := loadResult{Bytes: total.Load(), Seconds: dur.Seconds(), Conns: int64(n), Errors: errs.Load()}
	if s, ok := first.Load().(string); ok {
		r.FirstErr = s
	}
	return r
}

func churn(target string, req []byte, size, concurrency int, dur time.Duration) loadResult {
	var mu sync.Mutex
	var lat []time.Duration
	var done, errs atomic.Int64
	var first atomic.Value
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				err := func() error {
					c, err := dial(context.Background(), target)
					if err != nil {
						return err
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(req); err != nil {
						return err
					}
					if _, err := io.ReadFull(c, buf[:1]); err != nil {
						return err
					}
					mine = append(mine, time.Since(t0))
					_, err = io.ReadFull(c, buf[1:])
					return err
				}()
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				done.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r := loadResult{Conns: done.Load(), Errors: errs.Load(), Seconds: dur.Seconds(), P50: pct(0.50), P99: pct(0.99), P999: pct(0.999)}
	if s, ok := first.Load().(string); ok {
		r.FirstErr = s
	}
	return r
}

// idle opens n connections that stay established and silent, holds them
// for hold, and reports how many it held.
func idle(target string, req []byte, n int, hold time.Duration) loadResult {
	var held, errs atomic.Int64
	var first atomic.Value
	conns := make(chan net.Conn, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(context.Background(), target)
			if err == nil {
				_, err = c.Write(req)
			}
			if err != nil {
				errs.Add(1)
				first.CompareAndSwap(nil, err.Error())
				if c != nil {
					c.Close()
				}
				return
			}
			held.Add(1)
			conns <- c
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "holding %d\n", held.Load())
	time.Sleep(hold)
	// Count those still open (a refused one reads EOF/RST at once).
	close(conns)
	alive := int64(0)
	for c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			alive++
		}
		c.Close()
	}
	r := loadResult{Held: alive, Conns: int64(n), Errors: errs.Load()}
	if s, ok := first.Load().(string); ok {
		r.FirstErr = s
	}
	return r
}
