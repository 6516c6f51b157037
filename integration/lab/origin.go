package lab

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// CA is a private certificate authority the lab's clients trust.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// NewCA makes a fresh root.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "egressd lab CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, der: der}, nil
}

// PEM is the root certificate in PEM.
func (ca *CA) PEM() []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}) }

// WriteFile writes the root certificate (for curl --cacert).
func (ca *CA) WriteFile(path string) error { return os.WriteFile(path, ca.PEM(), 0o644) }

// Pool is a pool holding only the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue makes a server certificate for names.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func tlsConfig(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }

// Origin serves HTTP on :80 and HTTPS on :443 of each of its addresses, and
// a TCP echo on :22 (an "other" port). Every answer names the address that
// served it: `origin=203.0.113.10 host=allowed.example proto=https`.
type Origin struct {
	mu      sync.Mutex
	counts  map[netip.Addr]int
	closers []io.Closer
}

// StartOrigin starts the servers in ns.
func StartOrigin(ns *Netns, addrs []netip.Addr, ca *CA, names []string) (*Origin, error) {
	cert, err := ca.Issue(names...)
	if err != nil {
		return nil, err
	}
	o := &Origin{counts: map[netip.Addr]int{}}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	for _, a := range addrs {
		for _, port := range []int{80, 443, 22} {
			ln, err := ns.Listen("tcp", netip.AddrPortFrom(a, uint16(port)).String())
			if err != nil {
				o.Close()
				return nil, err
			}
			ln = &countingListener{Listener: ln, o: o, addr: a}
			o.closers = append(o.closers, ln)
			switch port {
			case 22:
				go echo(ln)
			case 80:
				srv := &http.Server{Handler: o.handler("http"), ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = srv.Serve(ln) }()
			case 443:
				srv := &http.Server{Handler: o.handler("https"), ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConf.Clone()} // ServeTLS mutates its config
				go func() { _ = srv.ServeTLS(ln, "", "") }()
			}
		}
	}
	return o, nil
}

// Accepted is how many connections addr accepted (any port).
func (o *Origin) Accepted(addr netip.Addr) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[addr]
}

// Close stops the servers.
func (o *Origin) Close() {
	for _, c := range o.closers {
		c.Close()
	}
}

func (o *Origin) handler(proto string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		origin := ""
		if ta, ok := local.(*net.TCPAddr); ok {
			origin = ta.AddrPort().Addr().Unmap().String()
		}
		if r.URL.Path == "/upgrade" {
			hj, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "no upgrade over h2", http.StatusBadRequest)
				return
			}
			c, rw, err := hj.Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			_, _ = io.Copy(c, rw)
			return
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("bytes")); err == nil && n >= 0 {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			buf := make([]byte, 32<<10)
			for n > 0 {
				k, err := w.Write(buf[:min(n, len(buf))])
				if err != nil {
					return
				}
				n -= k
			}
			return
		}
		fmt.Fprintf(w, "origin=%s host=%s proto=%s\n", origin, r.Host, proto)
	})
}

type countingListener struct {
	net.Listener
	o    *Origin
	addr netip.Addr
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.o.mu.Lock()
		l.o.counts[l.addr]++
		l.o.mu.Unlock()
	}
	return c, err
}

func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			_, _ = io.Copy(c, br)
		}()
	}
}
