//go:build ignore

// Capture records real ClientHellos from curl, openssl s_client and Go's
// crypto/tls (default config: X25519MLKEM768 post-quantum key share; and
// once more with Encrypted ClientHello, against a throw-away ECH config
// whose public name is public.example) into hello-*.bin, the seeds of
// sniff's tests and fuzzers. Every client asks for test.example.
//
//	go run ./sniff/testdata/capture.go   (from the repository root)
package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/sniff"
	"golang.org/x/crypto/cryptobyte"
)

func main() {
	dir := filepath.Join("sniff", "testdata")
	for _, c := range []struct {
		file string
		run  func(port int)
	}{
		{"hello-curl.bin", func(port int) {
			p := strconv.Itoa(port)
			runCmd("curl", "-sk", "--max-time", "2", "--noproxy", "*", "--resolve", "test.example:"+p+":127.0.0.1", "https://test.example:"+p+"/")
		}},
		{"hello-openssl.bin", func(port int) {
			runCmd("timeout", "3", "openssl", "s_client", "-connect", "127.0.0.1:"+strconv.Itoa(port), "-servername", "test.example")
		}},
		{"hello-go-pq.bin", func(port int) {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err := tls.DialWithDialer(&d, "tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{ServerName: "test.example", NextProtos: []string{"h2", "http/1.1"}})
			if err == nil {
				c.Close()
			}
		}},
		{"hello-go-ech.bin", func(port int) {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err := tls.DialWithDialer(&d, "tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{
				ServerName: "test.example", NextProtos: []string{"h2", "http/1.1"},
				MinVersion: tls.VersionTLS13, EncryptedClientHelloConfigList: echConfigList("public.example"),
			})
			if err == nil {
				c.Close()
			}
		}},
	} {
		hello := capture(c.run)
		if err := os.WriteFile(filepath.Join(dir, c.file), hello, 0o644); err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d bytes\n", c.file, len(hello))
	}
}

// capture listens on loopback, runs the client, and returns the first bytes
// it sent: exactly one complete ClientHello as sniff parses it, or, if none
// parses, what arrived before a second of silence.
func capture(client func(port int)) []byte {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var all []byte
		buf := make([]byte, 65536)
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if _, raw, perr := sniff.ReadClientHello(bytes.NewReader(all), nil); perr == nil {
				got <- raw
				return
			}
			if err != nil {
				got <- all
				return
			}
		}
	}()
	go client(ln.Addr().(*net.TCPAddr).Port)
	return <-got
}

// echConfigList returns an ECHConfigList (RFC 9849 §4) of one config
// for a fresh X25519 key: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// AES-128-GCM. The client encrypts the real hello to it and sends
// publicName as the outer SNI.
func echConfigList(publicName string) []byte {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(0xfe0d) // version
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint8(1)       // config_id
			b.AddUint16(0x0020) // kem_id
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(key.PublicKey().Bytes()) })
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16(0x0001) // kdf_id
				b.AddUint16(0x0001) // aead_id
			})
			b.AddUint8(0) // maximum_name_length
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(publicName)) })
			b.AddUint16(0) // extensions
		})
	})
	return b.BytesOrPanic()
}

func runCmd(name string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader("")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	_ = cmd.Run()
}
