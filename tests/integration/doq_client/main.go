// A DNS over QUIC client (RFC 9250) for test_doq.py, on Debian's quic-go
// (golang-github-lucas-clemente-quic-go-dev) and miekg/dns (golang-github-miekg-dns-dev):
// Debian's kdig has no +quic. Built offline by the test: GO111MODULE=off, no downloads.
//
// Usage:
//
//	doq_client -addr 127.0.0.1:PORT [flags] NAME:TYPE...
//
// Every NAME:TYPE is one query on its own stream of one connection, all at once (-repeat N
// asks the list N times). -raw HEX sends those bytes on one stream instead (then FIN). With
// -zerortt the client first connects once to get a session ticket, then asks the queries in
// 0-RTT on a second connection. Prints one JSON object per query (or per -raw stream), and
// for -zerortt a last one with "used0rtt".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lucas-clemente/quic-go"
	"github.com/miekg/dns"
)

var (
	addr        = flag.String("addr", "", "server HOST:PORT")
	caFile      = flag.String("ca", "", "CA certificate (PEM) the server's chains to")
	sni         = flag.String("sni", "localhost", "server name")
	raw         = flag.String("raw", "", "hex bytes to send on one stream instead of queries")
	repeat      = flag.Int("repeat", 1, "ask the list of queries this many times")
	msgID       = flag.Int("id", 0, "the queries' message ID (RFC 9250 says 0)")
	padding     = flag.Bool("padding", false, "pad queries (RFC 7830, 128-octet blocks, RFC 8467)")
	zeroRTT     = flag.Bool("zerortt", false, "connect once for a ticket, then query in 0-RTT")
	keep        = flag.Bool("keepalive", false, "add edns-tcp-keepalive (RFC 7828) to the queries")
	cancelAfter = flag.Duration("cancel", 0, "send the first query, cancel it after this long "+
		"(STOP_SENDING, DOQ_REQUEST_CANCELLED), then ask the rest on the same connection")
	timeout = flag.Duration("timeout", 10*time.Second, "for everything")
)

type result struct {
	Query    string   `json:"query,omitempty"`
	Rcode    string   `json:"rcode,omitempty"`
	ID       uint16   `json:"id"`
	Answers  []string `json:"answers,omitempty"`
	Length   int      `json:"length,omitempty"`
	Padding  int      `json:"padding"` // the answer's padding option's length; -1 for none
	ErrKind  string   `json:"err_kind,omitempty"`
	ErrCode  uint64   `json:"err_code"`
	Err      string   `json:"err,omitempty"`
	Used0RTT *bool    `json:"used0rtt,omitempty"`
}

func tlsConfig(cache tls.ClientSessionCache) *tls.Config {
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: *sni, NextProtos: []string{"doq"},
		ClientSessionCache: cache}
}

func describe(err error, r *result) {
	r.Err = err.Error()
	var app *quic.ApplicationError
	var stream *quic.StreamError
	switch {
	case errors.As(err, &app):
		r.ErrKind, r.ErrCode = "connection", uint64(app.ErrorCode)
	case errors.As(err, &stream):
		r.ErrKind, r.ErrCode = "stream", uint64(stream.ErrorCode)
	default:
		r.ErrKind = "other"
	}
}

func query(name, qtype string) ([]byte, error) {
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return nil, fmt.Errorf("unknown type %q", qtype)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.Id = uint16(*msgID)
	m.SetEdns0(1232, false)
	if *keep {
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	}
	if *padding {
		opt := m.IsEdns0()
		packed, err := m.Pack()
		if err != nil {
			return nil, err
		}
		// RFC 8467 §4.1: queries to a multiple of 128 octets (4: the option's header).
		n := 128 - (len(packed)+4)%128
		if n == 128 {
			n = 0
		}
		opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, n)})
	}
	return m.Pack()
}

// ask sends `msg` framed on a new stream (then FIN) and reads the framed answer to the FIN.
func ask(ctx context.Context, conn quic.Connection, msg []byte, framed bool, r *result) {
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		describe(err, r)
		return
	}
	out := msg
	if framed {
		out = make([]byte, 2+len(msg))
		binary.BigEndian.PutUint16(out, uint16(len(msg)))
		copy(out[2:], msg)
	}
	if _, err := s.Write(out); err != nil {
		describe(err, r)
		return
	}
	s.Close() // FIN: our side of the stream is done (RFC 9250 §4.2)
	data, err := io.ReadAll(s)
	if err != nil {
		describe(err, r)
		return
	}
	if len(data) < 2 || int(binary.BigEndian.Uint16(data))+2 != len(data) {
		r.ErrKind, r.Err = "framing", fmt.Sprintf("%d bytes: not one framed message", len(data))
		return
	}
	a := new(dns.Msg)
	if err := a.Unpack(data[2:]); err != nil {
		r.ErrKind, r.Err = "unpack", err.Error()
		return
	}
	r.ID = a.Id
	r.Length = len(data) - 2
	r.Rcode = dns.RcodeToString[a.Rcode]
	r.Padding = -1
	if opt := a.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if p, ok := o.(*dns.EDNS0_PADDING); ok {
				r.Padding = len(p.Padding)
			}
		}
	}
	for _, rr := range a.Answer {
		r.Answers = append(r.Answers, strings.ReplaceAll(rr.String(), "\t", " "))
	}
}

func run(ctx context.Context, conn quic.Connection, items []string) []result {
	results := make([]result, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func(i int, item string) {
			defer wg.Done()
			r := &results[i]
			if *raw != "" {
				b, err := hex.DecodeString(*raw)
				if err != nil {
					r.ErrKind, r.Err = "usage", err.Error()
					return
				}
				ask(ctx, conn, b, false, r)
				return
			}
			r.Query = item
			name, qtype, _ := strings.Cut(item, ":")
			msg, err := query(name, qtype)
			if err != nil {
				r.ErrKind, r.Err = "usage", err.Error()
				return
			}
			ask(ctx, conn, msg, true, r)
		}(i, item)
	}
	wg.Wait()
	return results
}

func main() {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var items []string
	for i := 0; i < *repeat; i++ {
		items = append(items, flag.Args()...)
	}
	if *raw != "" {
		items = []string{"raw"}
	}
	qconf := &quic.Config{HandshakeIdleTimeout: 5 * time.Second, MaxIdleTimeout: 10 * time.Second}
	enc := json.NewEncoder(os.Stdout)
	if *zeroRTT {
		cache := tls.NewLRUClientSessionCache(4)
		conf := tlsConfig(cache)
		first, err := quic.DialAddrContext(ctx, *addr, conf, qconf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "first connection:", err)
			os.Exit(2)
		}
		run(ctx, first, items) // the ticket comes after the handshake: ask something first
		first.CloseWithError(0, "")
		early, err := quic.DialAddrEarlyContext(ctx, *addr, tlsConfig(cache), qconf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "0-RTT connection:", err)
			os.Exit(2)
		}
		for _, r := range run(ctx, early, items) {
			enc.Encode(r)
		}
		<-early.HandshakeComplete().Done()
		used := early.ConnectionState().TLS.Used0RTT
		enc.Encode(result{Used0RTT: &used})
		early.CloseWithError(0, "")
		return
	}
	conn, err := quic.DialAddrContext(ctx, *addr, tlsConfig(nil), qconf)
	if err != nil {
		r := result{}
		describe(err, &r)
		enc.Encode(r)
		os.Exit(1)
	}
	if *cancelAfter > 0 && len(items) > 1 {
		name, qtype, _ := strings.Cut(items[0], ":")
		msg, err := query(name, qtype)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		s, err := conn.OpenStreamSync(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		framed := make([]byte, 2+len(msg))
		binary.BigEndian.PutUint16(framed, uint16(len(msg)))
		copy(framed[2:], msg)
		s.Write(framed)
		s.Close()
		time.Sleep(*cancelAfter)
		s.CancelRead(0x3) // DOQ_REQUEST_CANCELLED
		items = items[1:]
	}
	for _, r := range run(ctx, conn, items) {
		enc.Encode(r)
	}
	conn.CloseWithError(0, "")
}
