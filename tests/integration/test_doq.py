"""DNS over QUIC (modules/dns/doq.cc, RFC 9250): `protocols = ["dot", "doq"]` on a TLS
listener answers DoT over TCP and DoQ (ALPN "doq") over QUIC on the same port, from the same
block lists, cache and upstreams as DoH.

The upstream is the real unbound of test_dns.py. The client is tests/integration/doq_client, a
small Go program on Debian's quic-go and miekg/dns (Debian's kdig 3.2 has no +quic), built
offline here as test_interop.py builds its quic-go client.
"""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import unittest

import harness
import test_dns as d
import test_http3 as h3
from harness import WraithTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
DOQ_CLIENT = None  # the built binary, or the Exception that says why there is none

DOQ_NO_ERROR, DOQ_INTERNAL_ERROR, DOQ_PROTOCOL_ERROR = 0x0, 0x1, 0x2


def setUpModule():
    global DOQ_CLIENT
    h3.setUpModule()
    DOQ_CLIENT = build_doq_client()


def tearDownModule():
    if isinstance(DOQ_CLIENT, str):
        shutil.rmtree(os.path.dirname(DOQ_CLIENT), True)
    h3.tearDownModule()


def build_doq_client():
    """Builds doq_client offline in a temp GOPATH beside Debian's Go sources. Returns the
    binary, or an Exception."""
    go = shutil.which("go")
    for pkg in ("github.com/lucas-clemente/quic-go", "github.com/miekg/dns"):
        if not go or not os.path.isdir("/usr/share/gocode/src/" + pkg):
            return Exception("DoQ client: install golang-go, golang-github-lucas-clemente-"
                             "quic-go-dev and golang-github-miekg-dns-dev (make deps)")
    root = tempfile.mkdtemp(prefix="wraith-doq-client-")
    src = os.path.join(root, "src", "wraith_doq_client")
    shutil.copytree(os.path.join(HERE, "doq_client"), src)
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{root}:/usr/share/gocode",
               GOCACHE=os.path.join(root, "cache"), GOFLAGS="", CGO_ENABLED="0")
    out = os.path.join(root, "doq_client")
    p = subprocess.run([go, "build", "-o", out, "."], cwd=src, env=env, capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0:
        shutil.rmtree(root, True)
        return Exception("DoQ client did not build:\n" + p.stderr[-3000:])
    return out


class DoqServer(d.DnsServer):
    """DnsServer whose DNS listener carries `protocols` (default DoT and DoQ on one port, as on
    853) on a port free for both TCP and UDP; `site_tls` is added to the site's tls table."""

    def __init__(self, dns, protocols=("dot", "doq"), site_tls="", **kw):
        self.dns_protocols = protocols
        self.site_tls = site_tls
        super().__init__(dns, **kw)
        self.dot_port = h3.udp_and_tcp_port()
        self.write_config()

    def render(self, sites=None):
        text = super().render(sites)
        protocols = ", ".join(f'"{p}"' for p in self.dns_protocols)
        text = text.replace('protocols = ["dot"]', f"protocols = [{protocols}]")
        if self.site_tls:
            text = text.replace(f"tls = {h3.tls_table()}", f"tls = {h3.tls_table(self.site_tls)}")
        return text


@unittest.skipUnless(d.UNBOUND, "unbound is missing: install unbound (make deps)")
class DoqTest(d.DnsTestCase):

    def setUp(self):
        super().setUp()
        if isinstance(DOQ_CLIENT, Exception):
            self.fail(str(DOQ_CLIENT))

    def doq_server(self, upstreams, extra="", **kw):
        srv = DoqServer(d.dns_table(upstreams, extra), **kw)
        self.servers.append(srv)
        srv.start()
        return srv

    def doq(self, srv, *args, port=None):
        """Runs the client: a list of result objects (one per query)."""
        cmd = [DOQ_CLIENT, "-addr", f"127.0.0.1:{port or srv.dot_port}", "-ca", h3.PKI.ca.cert,
               *args]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        if not lines:
            self.fail(f"doq_client {args}: rc {p.returncode}, {p.stderr.decode()}")
        return lines

    def ok(self, r):
        self.assertFalse(r.get("err"), r)
        self.assertEqual(r["id"], 0, r)  # RFC 9250 §4.2.1: the answer keeps ID 0
        return r

    def test_a_aaaa_txt_over_doq(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        a, aaaa, txt, missing = self.doq(srv, "www.example.test:A", "www.example.test:AAAA",
                                         "txt.example.test:TXT", "missing.example.test:A")
        self.assertRegex(self.ok(a)["answers"][0], r"www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10")
        self.assertRegex(self.ok(aaaa)["answers"][0], r"IN\s+AAAA\s+2001:db8::10")
        self.assertIn('"hello world"', self.ok(txt)["answers"][0])
        self.assertEqual(self.ok(missing)["rcode"], "NXDOMAIN")

    def test_100_concurrent_streams_on_one_connection(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"], workers=1)
        names = ["www.example.test:A", "www.example.test:AAAA", "txt.example.test:TXT",
                 "h3.example.test:A"]
        results = self.doq(srv, "-repeat", "25", *names)
        self.assertEqual(len(results), 100)
        for r, name in zip(results, names * 25):
            self.assertEqual(self.ok(r)["query"], name)
            self.assertEqual(r["rcode"], "NOERROR")
            self.assertEqual(len(r["answers"]), 1, r)

    def test_two_queries_on_one_stream_is_a_protocol_error(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"], workers=1)
        workers = srv.worker_pids()
        q = d.make_query("www.example.test", qid=0, edns=1232)
        two = d.framed(q) + d.framed(q)
        [r] = self.doq(srv, "-raw", two.hex())
        self.assertEqual((r["err_kind"], r["err_code"]), ("connection", DOQ_PROTOCOL_ERROR), r)
        # A FIN before the whole message, and a message that is no DNS query: the same.
        for bad in (d.framed(q)[:-3], d.framed(b"\x00" * 5),
                    struct.pack("!H", 40) + q):
            [r] = self.doq(srv, "-raw", bad.hex())
            self.assertEqual((r["err_kind"], r["err_code"]), ("connection", DOQ_PROTOCOL_ERROR),
                             (bad, r))
        self.ok(self.doq(srv, "www.example.test:A")[0])
        self.assertEqual(srv.worker_pids(), workers)

    def test_cancelled_query_leaves_the_connection_serving(self):
        """A client that gives up on a query (STOP_SENDING with DOQ_REQUEST_CANCELLED) while it
        waits upstream: the query is dropped, the connection and the worker go on."""
        ub = self.upstream()
        silent = self.fake(lambda q: [])
        srv = self.doq_server([f"127.0.0.1:{silent.port}", f"127.0.0.1:{ub.port}"],
                              'timeout = "1s"\nfail_timeout = "10s"', workers=1)
        workers = srv.worker_pids()
        [r] = self.doq(srv, "-cancel", "300ms", "www.example.test:A", "txt.example.test:TXT")
        self.assertEqual(self.ok(r)["query"], "txt.example.test:TXT")
        self.assertEqual(len(r["answers"]), 1, r)
        self.assertTrue(silent.queries)  # the cancelled query was waiting upstream
        self.assertEqual(srv.worker_pids(), workers)

    def test_non_zero_message_id_is_a_protocol_error(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        [r] = self.doq(srv, "-id", "4660", "www.example.test:A")
        self.assertEqual((r["err_kind"], r["err_code"]), ("connection", DOQ_PROTOCOL_ERROR), r)

    def test_padded_query_gets_a_padded_answer(self):
        """RFC 9250 §5.4 / RFC 8467: answers to padded queries are padded to 468-octet blocks."""
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        for r in self.doq(srv, "-padding", "www.example.test:A", "big.example.test:TXT",
                          "missing.example.test:A"):
            self.assertEqual(self.ok(r)["length"] % 468, 0, r)
            self.assertGreaterEqual(r["padding"], 0, r)
        for r in self.doq(srv, "www.example.test:A", "missing.example.test:A"):
            self.assertEqual(self.ok(r)["padding"], -1, r)
            self.assertNotEqual(r["length"] % 468, 0, r)

    def test_keepalive_option_is_a_protocol_error(self):
        """RFC 9250 §4.3.3: edns-tcp-keepalive has no place in DoQ."""
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        [r] = self.doq(srv, "-keepalive", "www.example.test:A")
        self.assertEqual((r["err_kind"], r["err_code"]), ("connection", DOQ_PROTOCOL_ERROR), r)

    def test_cache_shared_with_doh_and_dot_on_one_port(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"], workers=1)
        a, _ = self.ask(srv, "shared.example.test")  # DoH fills the cache
        self.assertEqual(a.addresses(), ["192.0.2.30"])
        # DoT on the TCP side of the DoQ port: another name into the cache.
        tls = self.dot_connect(srv)
        self.assertEqual(tls.selected_alpn_protocol(), "dot")
        tls.sendall(d.framed(d.make_query("www.example.test", qid=8, edns=1232)))
        self.assertEqual(self.dot_read(tls, 1)[0].addresses(), ["192.0.2.10"])
        misses = self.metric(srv, "wraith_dns_cache_misses_total")
        ub.stop()
        # DoQ on the UDP side of the same port: both from the cache the others filled.
        shared, www = self.doq(srv, "shared.example.test:A", "www.example.test:A")
        self.assertIn("192.0.2.30", self.ok(shared)["answers"][0])
        self.assertIn("192.0.2.10", self.ok(www)["answers"][0])
        self.assertEqual(self.metric(srv, "wraith_dns_cache_misses_total"), misses)
        self.assertEqual(self.metric(srv, "wraith_dns_cache_hits_total"), 2)

    def test_doq_beside_http3_offers_each_alpn_where_listed(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        # The HTTP listener (h3, h2, http/1.1) does not answer "doq": no_application_protocol.
        [r] = self.doq(srv, "www.example.test:A", port=srv.tls_port)
        self.assertIn("no application protocol", r["err"].lower(), r)
        # And the DNS listener does not answer "h3".
        h3.require_h3get(self)
        cmd = h3.h3get_cmd(srv, ["/"], "-m", "10")
        cmd = [c.replace(f":{srv.tls_port}", f":{srv.dot_port}") for c in cmd]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr.decode(errors="replace"),
                         r"(?i)CRYPTO_ERROR\(.*(application protocol|0x78)")

    def test_zero_rtt_query(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"], site_tls=", early_data = true",
                              workers=1)
        *answers, state = self.doq(srv, "-zerortt", "www.example.test:A")
        self.assertIn("192.0.2.10", self.ok(answers[0])["answers"][0])
        self.assertTrue(state["used0rtt"], state)

    def test_zero_rtt_refused_without_early_data_still_answers(self):
        ub = self.upstream()
        srv = self.doq_server([f"127.0.0.1:{ub.port}"])
        *answers, state = self.doq(srv, "-zerortt", "www.example.test:A")
        self.assertIn("192.0.2.10", self.ok(answers[0])["answers"][0])
        self.assertFalse(state["used0rtt"], state)


@unittest.skipUnless(harness.WRAITH_BIN, "no wraith binary")
class DoqConfigTest(WraithTestCase):

    def check(self, text):
        tmp = tempfile.mkdtemp(prefix="wraith-doq-check-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "w.toml")
        harness.write_file(conf, text)
        p = harness.run_wraith("check", "-c", conf)
        err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
        return p.returncode, err, conf

    def test_doq_needs_tls_and_a_tcp_protocol_beside_it(self):
        rc, err, conf = self.check('[dns]\nupstreams = ["127.0.0.1:53"]\n'
                                   '[[listen]]\naddress = "127.0.0.1:1"\n'
                                   'protocols = ["doq"]\n[[site]]\nhosts = ["a"]\n'
                                   '  [[site.route]]\n  respond = {}\n')
        self.assertEqual(rc, 1)
        self.assertIn(f'{conf}:5:14: listen.protocols: "doq" runs over QUIC, which is always '
                      "encrypted: it needs tls = true", err)
        rc, err, conf = self.check('[dns]\nupstreams = ["127.0.0.1:53"]\n'
                                   '[[listen]]\naddress = "127.0.0.1:1"\ntls = true\n'
                                   'protocols = ["doq"]\n[[site]]\nhosts = ["a"]\n'
                                   '  [[site.route]]\n  respond = {}\n')
        self.assertEqual(rc, 1)
        self.assertIn('"doq" runs over QUIC: it needs a protocol over TCP beside it', err)
        rc, err, conf = self.check('[[listen]]\naddress = "127.0.0.1:1"\ntls = true\n'
                                   'protocols = ["dot", "doq"]\n[[site]]\nhosts = ["a"]\n'
                                   '  [[site.route]]\n  respond = {}\n')
        self.assertEqual(rc, 1)
        self.assertIn(f'{conf}:4:21: listen.protocols: "doq": DNS over QUIC needs a [dns] table',
                      err)


if __name__ == "__main__":
    harness.main()
