package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// bytesServer answers the load generator's protocol: a TLS ClientHello
// record (ignored: the gateway, not TLS, is measured), then 8 bytes N
// (big endian); it sends N bytes and closes. N = 0 holds the connection
// open and idle; N = maxUint64 streams until the client goes away.
type bytesServer struct {
	lns    []net.Listener
	held   atomic.Int64 // idle connections being held
	served atomic.Int64
	wg     sync.WaitGroup
}

func (s *bytesServer) serve(ln net.Listener) {
	s.lns = append(s.lns, ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go s.handle(c)
		}
	}()
}

var payload = make([]byte, 256<<10)

func (s *bytesServer) handle(c net.Conn) {
	defer c.Close()
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
		return
	}
	var nb [8]byte
	if _, err := io.ReadFull(c, nb[:]); err != nil {
		return
	}
	want := binary.BigEndian.Uint64(nb[:])
	s.served.Add(1)
	if want == 0 {
		s.held.Add(1)
		defer s.held.Add(-1)
		_, _ = io.Copy(io.Discard, c) // until the client closes
		return
	}
	for want > 0 {
		k := uint64(len(payload))
		if want < k {
			k = want
		}
		m, err := c.Write(payload[:k])
		if err != nil {
			return
		}
		want -= uint64(m)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c)
}

func (s *bytesServer) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
}
