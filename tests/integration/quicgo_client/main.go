// A small HTTP/3 client on Debian's quic-go (golang-github-lucas-clemente-quic-go-dev), the
// third independent implementation of test_interop.py. It lives under quic-go's import path
// when built (the test lays out a GOPATH for it) so that the keyupdate case can lower
// quic-go's key update interval, as quic-go's own interop client does; nothing else is
// internal. Built offline by the test: GO111MODULE=off, no downloads.
//
// Usage: quicgo_client [flags] URL...
// Prints one line per URL: "OK URL LENGTH SHA256 resumed=BOOL cipher=0xNNNN", or
// "ERR URL reason". Exit 0 only if every URL was fetched with status 200.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
	"github.com/lucas-clemente/quic-go/internal/handshake"
)

var (
	mode      = flag.String("mode", "parallel", "parallel | sequential | multiconnect | resumption | zerortt")
	versions  = flag.String("versions", "v1", "QUIC versions to offer, most preferred first: v1, v2")
	chacha    = flag.Bool("chacha20", false, "offer only TLS_CHACHA20_POLY1305_SHA256")
	keyUpdate = flag.Bool("keyupdate", false, "update keys every 100 packets")
	timeout   = flag.Duration("timeout", 30*time.Second, "for everything")
)

type result struct {
	url, line string
	ok        bool
}

func newRoundTripper(cache tls.ClientSessionCache) *http3.RoundTripper {
	conf := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache}
	if *chacha {
		conf.CipherSuites = []uint16{tls.TLS_CHACHA20_POLY1305_SHA256}
	}
	q := &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 20 * time.Second}
	for _, v := range strings.Split(*versions, ",") {
		switch v {
		case "v1":
			q.Versions = append(q.Versions, quic.Version1)
		case "v2":
			q.Versions = append(q.Versions, quic.Version2)
		}
	}
	return &http3.RoundTripper{TLSClientConfig: conf, QuicConfig: q}
}

func fetch(ctx context.Context, rt *http3.RoundTripper, method, url string) result {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return result{url, "ERR " + url + " " + err.Error(), false}
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return result{url, "ERR " + url + " " + strings.ReplaceAll(err.Error(), " ", "_"), false}
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return result{url, "ERR " + url + " body:" + strings.ReplaceAll(err.Error(), " ", "_"), false}
	}
	if resp.StatusCode != 200 {
		return result{url, fmt.Sprintf("ERR %s status:%d", url, resp.StatusCode), false}
	}
	resumed, cipher := false, uint16(0)
	if resp.TLS != nil {
		resumed, cipher = resp.TLS.DidResume, resp.TLS.CipherSuite
	}
	return result{url, fmt.Sprintf("OK %s %d %s resumed=%t cipher=0x%04x", url, n,
		hex.EncodeToString(h.Sum(nil)), resumed, cipher), true}
}

func main() {
	flag.Parse()
	urls := flag.Args()
	if *keyUpdate {
		handshake.KeyUpdateInterval = 100
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var results []result
	switch *mode {
	case "parallel": // one connection, every request at once (streams multiplexed)
		rt := newRoundTripper(nil)
		results = make([]result, len(urls))
		var wg sync.WaitGroup
		for i, u := range urls {
			wg.Add(1)
			go func(i int, u string) {
				defer wg.Done()
				results[i] = fetch(ctx, rt, http.MethodGet, u)
			}(i, u)
		}
		wg.Wait()
		rt.Close()
	case "sequential": // one connection, one request after another
		rt := newRoundTripper(nil)
		for _, u := range urls {
			results = append(results, fetch(ctx, rt, http.MethodGet, u))
		}
		rt.Close()
	case "multiconnect": // a connection (handshake) per request
		for _, u := range urls {
			rt := newRoundTripper(nil)
			results = append(results, fetch(ctx, rt, http.MethodGet, u))
			rt.Close()
		}
	case "resumption", "zerortt": // the first URL, then the rest on a second connection
		cache := tls.NewLRUClientSessionCache(4)
		rt := newRoundTripper(cache)
		results = append(results, fetch(ctx, rt, http.MethodGet, urls[0]))
		// The ticket arrives after the handshake; give it a moment to be stored.
		time.Sleep(200 * time.Millisecond)
		rt.Close()
		rt = newRoundTripper(cache)
		method := http.MethodGet
		if *mode == "zerortt" {
			method = http3.MethodGet0RTT
		}
		for _, u := range urls[1:] {
			results = append(results, fetch(ctx, rt, method, u))
		}
		rt.Close()
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}
	ok := true
	for _, r := range results {
		fmt.Println(r.line)
		ok = ok && r.ok
	}
	if !ok {
		os.Exit(1)
	}
}
