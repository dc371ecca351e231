"""DNS over HTTPS (modules/dns): `dns = {}` on a route answers RFC 8484 queries over HTTP/1.1,
HTTP/2 and HTTP/3, forwarding to plain DNS upstreams (UDP, TCP when truncated) with a cache
shared by every worker, block lists, and 400/415 for bad input.

The upstream is a real unbound (`unbound -d -c CONF`, started and stopped by PID) on a loopback
ephemeral port, answering a local zone from `local-data` (no network). Clients: kdig (Knot's
DoH client, HTTP/2), Python's http.client (HTTP/1.1), curl (HTTP/2 GET), the in-repo h3get
(HTTP/3), and small fake upstreams in Python where a test needs one that misbehaves.
"""

import base64
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import test_http3 as h3
from harness import WraithTestCase, toml_str, wait_for, write_file

KDIG = shutil.which("kdig")
UNBOUND = shutil.which("unbound")

TXT_CHUNK = "x" * 200
BIG_TXT_COUNT = 6  # six 200-byte strings: ~1.3 KB, more than a 512-byte UDP answer holds

ZONE = [
    "example.test. 300 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 120",
    "www.example.test. 300 IN A 192.0.2.10",
    "www.example.test. 300 IN AAAA 2001:db8::10",
    'txt.example.test. 300 IN TXT "hello world"',
    "ttl.example.test. 120 IN A 192.0.2.20",
    "shared.example.test. 300 IN A 192.0.2.30",
    "decay.example.test. 300 IN A 192.0.2.40",
    "h3.example.test. 300 IN A 192.0.2.50",
    "h1.example.test. 300 IN A 192.0.2.60",
] + [f'big.example.test. 300 IN TXT "{i}{TXT_CHUNK}"' for i in range(BIG_TXT_COUNT)]


def setUpModule():
    h3.setUpModule()


def tearDownModule():
    h3.tearDownModule()


# --------------------------------------------------------------------------------------------
# DNS messages, just enough for the tests


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def make_query(name, qtype=1, qid=0, edns=None):
    """A query; `edns` is the OPT record's UDP size (None: no EDNS)."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    msg = header + encode_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        msg += b"\0" + struct.pack("!HHIH", 41, edns, 0, 0)
    return msg


def read_name(msg, pos):
    labels, end = [], None
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n == 0:
            return ".".join(labels) + ".", end if end is not None else pos + 1
        labels.append(msg[pos + 1:pos + 1 + n].decode())
        pos += 1 + n


class Answer:
    """A parsed DNS message: id, flags, rcode, question, records [(section, name, type, ttl,
    rdata)]."""

    def __init__(self, msg):
        self.raw = msg
        (self.id, self.flags, qd, an, ns, ar) = struct.unpack("!HHHHHH", msg[:12])
        self.rcode = self.flags & 0xF
        self.tc = bool(self.flags & 0x0200)
        pos = 12
        self.qname, pos = read_name(msg, pos)
        self.qtype, self.qclass = struct.unpack("!HH", msg[pos:pos + 4])
        pos += 4
        self.records = []
        for section, count in (("an", an), ("ns", ns), ("ar", ar)):
            for _ in range(count):
                name, pos = read_name(msg, pos)
                rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
                pos += 10
                self.records.append((section, name, rtype, ttl, msg[pos:pos + rdlen]))
                pos += rdlen
        assert pos == len(msg), "trailing bytes"

    def answers(self, rtype=None):
        return [r for r in self.records if r[0] == "an" and (rtype is None or r[2] == rtype)]

    def ttls(self):
        return [r[3] for r in self.records if r[2] != 41]

    def addresses(self):
        return [socket.inet_ntop(socket.AF_INET if len(r[4]) == 4 else socket.AF_INET6, r[4])
                for r in self.answers() if r[2] in (1, 28)]


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream_id, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack("!I", stream_id) + payload


def hpack_literal(name, value):
    """A field as an HPACK literal without indexing, no Huffman (RFC 7541 §6.2.2)."""
    name, value = name.encode(), value.encode()
    return b"\0" + bytes([len(name)]) + name + bytes([len(value)]) + value


def b64url(msg):
    return base64.urlsafe_b64encode(msg).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------
# Upstreams


class Unbound:
    """unbound on 127.0.0.1:PORT (and [::1]:PORT with ipv6), UDP and TCP, answering ZONE, in
    the foreground, by PID."""

    def __init__(self, directory, ipv6=False):
        self.dir = directory
        self.port = h3.udp_and_tcp_port()
        self.proc = None
        conf = [
            "server:",
            "    interface: 127.0.0.1",
        ] + (["    interface: ::1", "    access-control: ::1 allow"] if ipv6 else []) + [
            f"    port: {self.port}",
            "    do-daemonize: no",
            "    use-syslog: no",
            '    logfile: ""',
            '    chroot: ""',
            '    username: ""',
            f'    directory: "{directory}"',
            '    pidfile: ""',
            "    access-control: 127.0.0.0/8 allow",
            "    num-threads: 1",
            "    verbosity: 0",
            '    local-zone: "example.test." static',
        ] + [f"    local-data: '{r}'" for r in ZONE] + [
            "remote-control:",
            "    control-enable: no",
        ]
        self.conf = os.path.join(directory, "unbound.conf")
        write_file(self.conf, "\n".join(conf) + "\n")

    def start(self):
        self.log = open(os.path.join(self.dir, "unbound.log"), "wb")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError("unbound exited: " + open(self.log.name).read())
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.2)
            try:
                s.sendto(make_query("www.example.test", qid=7), ("127.0.0.1", self.port))
                return Answer(s.recv(4096)).id == 7
            except OSError:
                return False
            finally:
                s.close()
        wait_for(answers, timeout=10, what="unbound to answer")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        if hasattr(self, "log"):
            self.log.close()


class FakeUpstream(threading.Thread):
    """A UDP 'DNS server' in this process: `reply(query bytes) -> [datagrams]` decides what it
    sends back for each query it gets; `queries` keeps what it got."""

    def __init__(self, reply):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.queries = []
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries.append(data)
            for out in self.reply(data):
                self.sock.sendto(out, peer)

    def stop(self):
        self.stopping = True
        self.join(timeout=5)
        self.sock.close()


def a_record_answer(query, address="192.0.2.99", ttl=60, qid=None, qname=None):
    """An answer to `query` with one A record; qid/qname override the question's."""
    q = Answer(query)
    qid = q.id if qid is None else qid
    name = encode_name(qname or q.qname)
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + name
            + struct.pack("!HH", q.qtype, 1) + b"\xc0\x0c"
            + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(address))


# --------------------------------------------------------------------------------------------
# The server


def dns_table(upstreams, extra=""):
    names = ", ".join(toml_str(u) for u in upstreams)
    return f"[dns]\nupstreams = [{names}]\ncache_size = \"1m\"\n{extra}\n"


def site():
    return ("[[site]]\nhosts = [\"localhost\", \"127.0.0.1\"]\ndefault = true\n"
            f"tls = {h3.tls_table()}\n"
            '  [[site.route]]\n  path = "=/dns-query"\n  dns = {}\n'
            '  [[site.route]]\n  path = "=/metrics"\n  metrics = {}\n'
            '  [[site.route]]\n  path = "/"\n  respond = { status = 200, body = "ok" }\n')


class DnsServer(h3.H3Server):
    """Wraith with a TLS listener (h3, h2, http/1.1), a DNS over TLS listener on DOT_PORT
    (`dot` holds its options table, "" for none) and the [dns] table `dns`."""

    def __init__(self, dns, dot="", **kw):
        self.dns_text = dns
        self.dot = dot
        self.dot_port = harness.free_port(ipv6_too=False)
        super().__init__(site(), **kw)

    def render(self, sites=None):
        dot = (f'\n[[listen]]\naddress = "127.0.0.1:{self.dot_port}"\ntls = true\n'
               'protocols = ["dot"]\n' + (f"dot = {self.dot}\n" if self.dot else ""))
        return super().render(sites) + dot + "\n" + self.dns_text


class DnsTestCase(WraithTestCase):

    def upstream(self, ipv6=False):
        u = Unbound(tempfile.mkdtemp(prefix="wraith-unbound-"), ipv6).start()
        self.addCleanup(shutil.rmtree, u.dir, True)
        self.addCleanup(u.stop)
        return u

    def fake(self, reply):
        f = FakeUpstream(reply)
        f.start()
        self.addCleanup(f.stop)
        return f

    def dns_server(self, upstreams, extra="", **kw):
        srv = DnsServer(dns_table(upstreams, extra), **kw)
        self.servers.append(srv)
        srv.start()
        return srv

    # -- clients

    def post(self, srv, msg, content_type="application/dns-message"):
        """HTTP/1.1 POST over TLS: (status, headers dict, body)."""
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        c = http.client.HTTPSConnection("localhost", srv.tls_port, context=ctx, timeout=10)
        try:
            c.request("POST", "/dns-query", body=msg,
                      headers={"content-type": content_type, "accept": "application/dns-message"})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def get(self, srv, param):
        """HTTP/1.1 GET /dns-query?dns=PARAM over TLS: (status, headers, body)."""
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        c = http.client.HTTPSConnection("localhost", srv.tls_port, context=ctx, timeout=10)
        try:
            c.request("GET", "/dns-query?dns=" + param)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def ask(self, srv, name, qtype=1, qid=0x4242, edns=1232):
        status, headers, body = self.post(srv, make_query(name, qtype, qid, edns))
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("content-type"), "application/dns-message")
        a = Answer(body)
        self.assertEqual(a.id, qid)
        return a, headers

    def kdig(self, srv, *args):
        if not KDIG:
            self.fail("kdig is missing: install knot-dnsutils (make deps)")
        cmd = [KDIG, "@127.0.0.1", "-p", str(srv.tls_port), f"+tls-ca={h3.PKI.ca.cert}",
               "+tls-hostname=localhost", "+timeout=5", "+retry=0", *args]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode(errors="replace")

    def dot_connect(self, srv, alpn=("dot",)):
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        raw = socket.create_connection(("127.0.0.1", srv.dot_port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(tls.close)
        return tls

    def dot_read(self, tls, count):
        """`count` framed answers from a DoT connection, in the order they came."""
        buf, out = b"", []
        while len(out) < count:
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                out.append(Answer(buf[2:2 + n]))
                buf = buf[2 + n:]
            if len(out) >= count:
                break
            chunk = tls.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed after {len(out)} answers")
            buf += chunk
        return out

    def log_lines(self, srv, needle, count=1):
        """Waits for `count` access-log lines containing `needle`; returns them all."""
        def found():
            lines = [l for l in srv.access_log_lines() if needle in l]
            return lines if len(lines) >= count else None
        return wait_for(found, timeout=10, what=f"{count} access log line(s) with {needle}")

    def metric(self, srv, name):
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        c = http.client.HTTPSConnection("localhost", srv.tls_port, context=ctx, timeout=10)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        m = re.search(rf"^{name} (\d+)$", text, re.M)
        self.assertIsNotNone(m, f"{name} missing from:\n{text}")
        return int(m.group(1))


@unittest.skipUnless(UNBOUND, "unbound is missing: install unbound (make deps)")
class DohTest(DnsTestCase):

    def test_kdig_over_http2_post_and_get(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        rc, out = self.kdig(srv, "+https=/dns-query", "www.example.test", "A")
        self.assertEqual(rc, 0, out)
        self.assertIn("HTTP/2-POST", out)
        self.assertIn("status: NOERROR", out)
        self.assertRegex(out, r"www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10")
        rc, out = self.kdig(srv, "+https-get=/dns-query", "www.example.test", "AAAA")
        self.assertEqual(rc, 0, out)
        self.assertIn("HTTP/2-GET", out)
        self.assertRegex(out, r"www\.example\.test\.\s+\d+\s+IN\s+AAAA\s+2001:db8::10")
        rc, out = self.kdig(srv, "+https=/dns-query", "txt.example.test", "TXT")
        self.assertEqual(rc, 0, out)
        self.assertIn('"hello world"', out)
        line = self.log_lines(srv, "dns_name=txt.example.test.")[0]
        for note in ("dns_type=TXT", "dns_rcode=NOERROR", "dns_cache=miss",
                     f"dns_upstream=127.0.0.1:{ub.port}", "dns_transport=udp"):
            self.assertIn(note, line)

    def test_http1_get_keeps_the_client_id_and_max_age_is_the_smallest_ttl(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        status, headers, body = self.get(srv, b64url(make_query("ttl.example.test", qid=0)))
        self.assertEqual(status, 200, body)
        a = Answer(body)
        self.assertEqual(a.id, 0)
        self.assertEqual(a.addresses(), ["192.0.2.20"])
        self.assertEqual(headers["cache-control"], f"max-age={min(a.ttls())}")
        self.assertEqual(min(a.ttls()), 120)
        # POST with another ID: the answer (now from the cache) carries that ID.
        a2, headers2 = self.ask(srv, "ttl.example.test", qid=0xBEEF)
        self.assertEqual(a2.addresses(), ["192.0.2.20"])
        self.assertEqual(headers2["cache-control"], f"max-age={min(a2.ttls())}")
        self.log_lines(srv, "dns_cache=hit")

    def test_http2_get_with_curl(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        out = os.path.join(srv.dir, "answer.bin")
        p = subprocess.run(["curl", "-sS", "--http2", "--cacert", h3.PKI.ca.cert, "-o", out,
                            "-w", "%{http_version} %{http_code} %{content_type}",
                            "https://localhost:%d/dns-query?dns=%s"
                            % (srv.tls_port, b64url(make_query("www.example.test", 28)))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.stdout.decode(), "2 200 application/dns-message", p.stderr)
        with open(out, "rb") as f:
            self.assertEqual(Answer(f.read()).addresses(), ["2001:db8::10"])

    def test_http3_get_and_post_with_h3get(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        r = h3.h3get(self, srv, ["/dns-query?dns=" + b64url(make_query("h3.example.test"))],
                     "-i")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 200, r)
        self.assertEqual(h3.header(headers, "content-type"), "application/dns-message")
        self.assertEqual(Answer(body).addresses(), ["192.0.2.50"])
        qfile = os.path.join(srv.dir, "q.bin")
        with open(qfile, "wb") as f:
            f.write(make_query("www.example.test", 1, qid=77, edns=1232))
        r = h3.h3get(self, srv, ["/dns-query"], "-i", "--data-binary", "@" + qfile,
                     "-H", "content-type: application/dns-message")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 200, r)
        a = Answer(body)
        self.assertEqual(a.id, 77)
        self.assertEqual(a.addresses(), ["192.0.2.10"])
        self.log_lines(srv, '"POST /dns-query HTTP/3')

    def test_large_answer_falls_back_to_tcp(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        # No EDNS: the upstream's UDP answer holds 512 bytes, so it comes back truncated.
        a, _ = self.ask(srv, "big.example.test", qtype=16, edns=None)
        self.assertFalse(a.tc)
        self.assertEqual(len(a.answers(16)), BIG_TXT_COUNT)
        self.assertGreater(len(a.raw), 512)
        line = self.log_lines(srv, "dns_name=big.example.test.")[0]
        self.assertIn("dns_transport=tcp", line)

    def test_nxdomain_is_cached_negatively_for_the_soa_minimum(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        a, headers = self.ask(srv, "missing.example.test")
        self.assertEqual(a.rcode, 3)
        soa = [r for r in a.records if r[2] == 6]
        self.assertEqual(len(soa), 1)
        self.assertEqual(headers["cache-control"], "max-age=120")  # min(SOA TTL, MINIMUM)
        ub.stop()
        a2, _ = self.ask(srv, "missing.example.test")
        self.assertEqual(a2.rcode, 3)
        # Two workers write the log, each from its own buffer: the lines' order is not the
        # requests' order.
        lines = self.log_lines(srv, "dns_name=missing.example.test.", 2)
        self.assertEqual(sorted(re.search(r"dns_cache=(\w+)", l).group(1) for l in lines),
                         ["hit", "miss"])
        self.assertTrue(all("dns_rcode=NXDOMAIN" in l for l in lines), lines)

    def test_negative_ttl_caps_the_negative_cache(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], 'negative_ttl = "1s"')
        a, headers = self.ask(srv, "gone.example.test")
        self.assertEqual(a.rcode, 3)
        ub.stop()
        # Within the second: from the cache. After it: asked again, and the upstream is gone.
        a2, _ = self.ask(srv, "gone.example.test")
        self.assertEqual(a2.rcode, 3)
        time.sleep(1.1)
        a3, _ = self.ask(srv, "gone.example.test")
        self.assertEqual(a3.rcode, 2)  # SERVFAIL: nothing cached, no upstream

    def test_ttl_decays_in_the_cache(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        a, _ = self.ask(srv, "decay.example.test")
        self.assertEqual(a.answers(1)[0][3], 300)
        time.sleep(2.1)
        a2, headers = self.ask(srv, "decay.example.test")
        ttl = a2.answers(1)[0][3]
        self.assertLessEqual(ttl, 298)
        self.assertGreaterEqual(ttl, 290)
        self.assertEqual(headers["cache-control"], f"max-age={ttl}")

    def test_cache_is_shared_by_the_workers(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], workers=2)
        self.assertEqual(len(srv.wait_workers(2)), 2)
        a, _ = self.ask(srv, "shared.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.30"])
        ub.stop()
        # New connections land on either worker; every one answers from the shared cache, and
        # nothing after the first query went upstream (the misses count every worker's).
        for i in range(12):
            a, _ = self.ask(srv, "shared.example.test", qid=i + 1)
            self.assertEqual(a.addresses(), ["192.0.2.30"])
        self.assertGreaterEqual(self.metric(srv, "wraith_dns_cache_hits_total"), 12)
        self.assertEqual(self.metric(srv, "wraith_dns_cache_misses_total"), 1)

    def test_cache_survives_reload(self):
        # The new generation's workers are other processes than the one that asked upstream:
        # with the upstream gone, they can only answer from the shared zone.
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        self.ask(srv, "shared.example.test")
        ub.stop()
        workers = srv.worker_pids()
        self.assertEqual(srv.reload().returncode, 0)
        srv.wait_workers(srv.workers, exclude=workers)
        a, _ = self.ask(srv, "shared.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.30"])

    def test_failover_to_the_next_upstream(self):
        ub = self.upstream()
        closed = harness.free_port(ipv6_too=False)  # nothing listens: refused at once
        silent = self.fake(lambda q: [])            # answers nothing: times out
        srv = self.dns_server([f"127.0.0.1:{closed}", f"127.0.0.1:{silent.port}",
                               f"127.0.0.1:{ub.port}"], 'timeout = "300ms"', workers=1)
        a, _ = self.ask(srv, "www.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.10"])
        line = self.log_lines(srv, "dns_name=www.example.test.")[0]
        self.assertIn(f"dns_upstream=127.0.0.1:{ub.port}", line)
        self.assertEqual(len(silent.queries), 1)
        # Both failed upstreams are now skipped: the next query goes straight to unbound.
        self.ask(srv, "txt.example.test", 16)
        self.assertEqual(len(silent.queries), 1)
        self.assertGreaterEqual(self.metric(srv, "wraith_dns_upstream_failures_total"), 2)

    @unittest.skipUnless(harness.have_ipv6(), "no IPv6 loopback")
    def test_ipv6_upstream_over_udp_and_tcp(self):
        ub = self.upstream(ipv6=True)
        srv = self.dns_server([f"[::1]:{ub.port}"])
        a, _ = self.ask(srv, "www.example.test", 28)
        self.assertEqual(a.addresses(), ["2001:db8::10"])
        a, _ = self.ask(srv, "big.example.test", qtype=16, edns=None)
        self.assertEqual(len(a.answers(16)), BIG_TXT_COUNT)
        line = self.log_lines(srv, "dns_name=big.example.test.")[0]
        self.assertIn(f"dns_upstream=[::1]:{ub.port} dns_transport=tcp", line)

    def test_ids_are_randomized_and_wrong_answers_dropped(self):
        def reply(q):
            return [a_record_answer(q, qid=Answer(q).id ^ 1),             # wrong ID
                    a_record_answer(q, qname="other.example.test"),       # wrong question
                    a_record_answer(q, qid=None, address="192.0.2.77")]   # the answer
        fake = self.fake(reply)
        srv = self.dns_server([f"127.0.0.1:{fake.port}"], workers=1)
        for i in range(4):
            a, _ = self.ask(srv, f"n{i}.spoof.test", qid=0x1111)
            self.assertEqual(a.addresses(), ["192.0.2.77"])
            self.assertEqual(a.id, 0x1111)
        sent_ids = {Answer(q).id for q in fake.queries}
        self.assertNotEqual(sent_ids, {0x1111})
        self.assertEqual(self.metric(srv, "wraith_dns_dropped_total"), 8)

    def test_serve_stale_answers_with_ttl_30_when_every_upstream_fails(self):
        """RFC 8767: with serve_stale, an answer that expired (max_ttl 1s here) is served with
        TTL 30 once every upstream has failed; without it, or past it, SERVFAIL."""
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"],
                              'max_ttl = "1s"\nserve_stale = "1d"\ntimeout = "300ms"',
                              workers=1)
        plain = self.dns_server([f"127.0.0.1:{ub.port}"], 'max_ttl = "1s"\ntimeout = "300ms"',
                                workers=1)
        for s in (srv, plain):
            a, _ = self.ask(s, "www.example.test")
            self.assertEqual(a.addresses(), ["192.0.2.10"])
            self.assertEqual(a.ttls(), [1])
        # While the upstream answers, an expired entry is not served: a fresh answer is asked.
        time.sleep(1.2)
        a, _ = self.ask(srv, "www.example.test")
        self.assertEqual(a.ttls(), [1])
        misses = self.metric(srv, "wraith_dns_cache_misses_total")
        self.assertEqual(misses, 2)
        ub.stop()
        time.sleep(1.2)
        a, headers = self.ask(srv, "www.example.test", qid=0x77)
        self.assertEqual((a.rcode, a.addresses(), a.ttls(), a.id), (0, ["192.0.2.10"], [30], 0x77))
        self.assertEqual(headers.get("cache-control"), "max-age=30")
        self.assertEqual(self.metric(srv, "wraith_dns_stale_answers_total"), 1)
        # DoT too, from the same stale entry.
        tls = self.dot_connect(srv)
        tls.sendall(framed(make_query("www.example.test", qid=12, edns=1232)))
        [a] = self.dot_read(tls, 1)
        self.assertEqual((a.addresses(), a.ttls()), (["192.0.2.10"], [30]))
        # Never cached: SERVFAIL. Without serve_stale: SERVFAIL.
        self.assertEqual(self.ask(srv, "h1.example.test")[0].rcode, 2)
        self.assertEqual(self.ask(plain, "www.example.test")[0].rcode, 2)

    def test_block_list_answers_nxdomain(self):
        ub = self.upstream()
        d = tempfile.mkdtemp(prefix="wraith-blocks-")
        self.addCleanup(shutil.rmtree, d, True)
        hosts = os.path.join(d, "hosts")
        write_file(hosts, "# ads\n0.0.0.0 ads.example.test\n127.0.0.1 localhost\n")
        plain = os.path.join(d, "domains")
        write_file(plain, "tracker.test\n")
        srv = self.dns_server([f"127.0.0.1:{ub.port}"],
                              f"block_lists = [{toml_str(hosts)}, {toml_str(plain)}]")
        for name in ("ads.example.test", "deep.tracker.test", "ADS.Example.Test"):
            a, _ = self.ask(srv, name)
            self.assertEqual(a.rcode, 3, name)
        a, _ = self.ask(srv, "www.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.10"])
        self.log_lines(srv, "dns_cache=blocked", 3)
        self.assertEqual(self.metric(srv, "wraith_dns_blocked_total"), 3)

    def test_block_address_answers_with_the_address(self):
        ub = self.upstream()
        d = tempfile.mkdtemp(prefix="wraith-blocks-")
        self.addCleanup(shutil.rmtree, d, True)
        plain = os.path.join(d, "domains")
        write_file(plain, "ads.example.test\n")
        srv = self.dns_server([f"127.0.0.1:{ub.port}"],
                              f'block_lists = [{toml_str(plain)}]\n'
                              'block_address = ["0.0.0.0", "::"]')
        a, _ = self.ask(srv, "ads.example.test", 1)
        self.assertEqual((a.rcode, a.addresses()), (0, ["0.0.0.0"]))
        a, _ = self.ask(srv, "ads.example.test", 28)
        self.assertEqual((a.rcode, a.addresses()), (0, ["::"]))
        a, _ = self.ask(srv, "ads.example.test", 16)
        self.assertEqual((a.rcode, a.answers()), (0, []))

    def test_client_leaving_mid_query_or_mid_body(self):
        ub = self.upstream()
        silent = self.fake(lambda q: [])
        srv = self.dns_server([f"127.0.0.1:{silent.port}", f"127.0.0.1:{ub.port}"],
                              'timeout = "300ms"\nfail_timeout = "1s"', workers=1)
        workers = srv.worker_pids()
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        ctx.set_alpn_protocols(["h2"])
        query = make_query("www.example.test")
        # HTTP/2: the stream is reset while its query waits on the silent upstream; its try's
        # timer must never fire for the gone exchange.
        with socket.create_connection(("127.0.0.1", srv.tls_port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "h2")
                fields = b"".join(hpack_literal(n, v) for n, v in (
                    (":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
                    (":path", "/dns-query"), ("content-type", "application/dns-message")))
                tls.sendall(H2_PREFACE + h2_frame(4, 0, 0)             # SETTINGS
                            + h2_frame(1, 0x4, 1, fields)             # HEADERS, END_HEADERS
                            + h2_frame(0, 0x1, 1, query))             # DATA, END_STREAM
                wait_for(lambda: silent.queries, timeout=10, what="the query upstream")
                tls.sendall(h2_frame(3, 0, 1, struct.pack("!I", 8)))  # RST_STREAM, CANCEL
                time.sleep(0.5)  # past the try's timeout: the timer had its chance
        # HTTP/1.1: the client leaves in the middle of its body.
        with socket.create_connection(("127.0.0.1", srv.tls_port)) as raw:
            with ssl.create_default_context(cafile=h3.PKI.ca.cert).wrap_socket(
                    raw, server_hostname="localhost") as tls:
                tls.sendall(b"POST /dns-query HTTP/1.1\r\nhost: localhost\r\n"
                            b"content-type: application/dns-message\r\n"
                            b"content-length: %d\r\n\r\n" % len(query) + query[:10])
        lines = self.log_lines(srv, '"POST /dns-query HTTP/', 2)
        self.assertTrue(all(" 499 " in l and "dns_upstream" not in l for l in lines), lines)
        a, _ = self.ask(srv, "www.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.10"])
        self.assertEqual(srv.worker_pids(), workers)

    def test_bad_input_is_refused_and_the_worker_stays_up(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], workers=1)
        workers = srv.worker_pids()
        good = make_query("www.example.test")
        self.assertEqual(self.get(srv, "AAAB+AAA/")[0], 400)          # not base64url
        self.assertEqual(self.get(srv, b64url(good) + "==")[0], 400)  # padding
        self.assertEqual(self.get(srv, "")[0], 400)
        self.assertEqual(self.post(srv, good, "application/json")[0], 415)
        self.assertEqual(self.post(srv, good, "text/plain")[0], 415)
        self.assertEqual(self.post(srv, good[:-3])[0], 400)           # truncated
        self.assertEqual(self.post(srv, good[:5])[0], 400)            # not even a header
        loop = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
        self.assertEqual(self.post(srv, loop)[0], 400)                # compression loop
        self.assertEqual(self.get(srv, b64url(loop))[0], 400)
        self.assertEqual(self.post(srv, good + b"\0" * 70000)[0], 400)  # over 65535 bytes
        self.assertEqual(self.post(srv, good + b"\0")[0], 400)      # a byte after the end
        # Well-formed, but 600 bytes of additional data and no EDNS: over 512 bytes.
        big = bytearray(good)
        big[11] = 1
        big = bytes(big) + b"\0" + struct.pack("!HHIH", 16, 1, 0, 600) + b"x" * 600
        self.assertEqual(self.post(srv, big)[0], 400)
        response = bytearray(good)
        response[2] |= 0x80
        self.assertEqual(self.post(srv, bytes(response))[0], 400)     # not a query
        a, _ = self.ask(srv, "www.example.test")
        self.assertEqual(a.addresses(), ["192.0.2.10"])
        self.assertEqual(srv.worker_pids(), workers)
        for token in ("not_base64url", "no_dns_parameter", "not_dns_message_type", "truncated",
                      "compression_loop", "too_long", "over_udp_size", "not_a_query"):
            self.log_lines(srv, "dns_error=" + token)


def framed(msg):
    return struct.pack("!H", len(msg)) + msg


@unittest.skipUnless(UNBOUND, "unbound is missing: install unbound (make deps)")
class DotTest(DnsTestCase):

    def test_kdig_over_tls(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        if not KDIG:
            self.fail("kdig is missing: install knot-dnsutils (make deps)")
        p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(srv.dot_port), "+tls",
                            f"+tls-ca={h3.PKI.ca.cert}", "+tls-hostname=localhost",
                            "+timeout=5", "+retry=0", "www.example.test", "AAAA"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("TLS session", out)
        self.assertRegex(out, r"www\.example\.test\.\s+\d+\s+IN\s+AAAA\s+2001:db8::10")

    def test_pipelined_queries_share_the_cache_with_doh(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], workers=1)
        a, _ = self.ask(srv, "shared.example.test")  # DoH fills the cache
        tls = self.dot_connect(srv)
        self.assertEqual(tls.selected_alpn_protocol(), "dot")
        names = ["www.example.test", "txt.example.test", "missing.example.test",
                 "shared.example.test", "big.example.test"]
        types = [1, 16, 1, 1, 16]
        # All five in one write: answered as they come, in any order, each with its ID.
        tls.sendall(b"".join(framed(make_query(n, t, qid=100 + i, edns=1232))
                             for i, (n, t) in enumerate(zip(names, types))))
        answers = {a.id: a for a in self.dot_read(tls, 5)}
        self.assertEqual(sorted(answers), [100, 101, 102, 103, 104])
        self.assertEqual(answers[100].addresses(), ["192.0.2.10"])
        self.assertEqual(len(answers[101].answers(16)), 1)
        self.assertEqual(answers[102].rcode, 3)
        self.assertEqual(answers[103].addresses(), ["192.0.2.30"])
        self.assertEqual(len(answers[104].answers(16)), BIG_TXT_COUNT)  # over TCP upstream
        ub.stop()
        # The same connection, later: from the cache the DoT queries filled.
        tls.sendall(framed(make_query("www.example.test", qid=200)))
        self.assertEqual(self.dot_read(tls, 1)[0].addresses(), ["192.0.2.10"])
        self.assertEqual(self.metric(srv, "wraith_dns_cache_misses_total"), 5)

    def test_client_without_alpn_and_clean_end(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"])
        # TLS through memory BIOs, so the client can send close_notify (the end of its
        # queries) and still read: the answer to its last query comes, then the server's end.
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        sock = socket.create_connection(("127.0.0.1", srv.dot_port), timeout=10)
        self.addCleanup(sock.close)

        def pump(step):
            while True:
                try:
                    result = step()
                    sock.sendall(outgoing.read())
                    return result
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    data = sock.recv(65536)
                    if not data:
                        incoming.write_eof()
                    incoming.write(data)
        pump(tls.do_handshake)
        self.assertIsNone(tls.selected_alpn_protocol())
        pump(lambda: tls.write(framed(make_query("www.example.test", qid=5))
                               + framed(make_query("h3.example.test", qid=6))))
        try:
            tls.unwrap()  # writes our close_notify; the server's comes after the answers
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        received = b""
        while True:
            try:
                chunk = pump(lambda: tls.read(65536))
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            received += chunk
        answers = []
        while len(received) >= 2:
            n = struct.unpack("!H", received[:2])[0]
            answers.append(Answer(received[2:2 + n]))
            received = received[2 + n:]
        self.assertEqual(sorted(a.id for a in answers), [5, 6])

    def test_dot_beside_http_on_one_port(self):
        ub = self.upstream()
        srv = DnsServer(dns_table([f"127.0.0.1:{ub.port}"]))
        srv.tls_listen = 'protocols = ["h3", "h2", "http/1.1", "dot"]'
        srv.write_config()
        self.servers.append(srv)
        srv.start()
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        ctx.set_alpn_protocols(["dot"])
        with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "dot")
                tls.sendall(framed(make_query("www.example.test", qid=3)))
                self.assertEqual(self.dot_read(tls, 1)[0].addresses(), ["192.0.2.10"])
        a, _ = self.ask(srv, "www.example.test")  # HTTP/1.1 on the same port
        self.assertEqual(a.addresses(), ["192.0.2.10"])

    def kdig_dot(self, srv, *args):
        p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(srv.dot_port), "+tls",
                            f"+tls-ca={h3.PKI.ca.cert}", "+tls-hostname=localhost",
                            "+timeout=5", "+retry=0", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        return out

    def test_padded_queries_get_padded_answers(self):
        """RFC 7830 / RFC 8467: a padded query is answered with a response padded to a multiple
        of 468 octets (forwarded, cached and blocked alike); an unpadded one is not padded; the
        upstream never sees the client's padding (plain UDP)."""
        ub = self.upstream()
        seen = []

        def relay(q):  # a fake upstream in front of unbound that keeps what it was sent
            seen.append(q)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            try:
                s.sendto(q, ("127.0.0.1", ub.port))
                return [s.recv(65535)]
            finally:
                s.close()
        fake = self.fake(relay)
        srv = self.dns_server([f"127.0.0.1:{fake.port}"])
        if not KDIG:
            self.fail("kdig is missing: install knot-dnsutils (make deps)")
        for name, qtype in (("www.example.test", "A"), ("www.example.test", "A"),
                            ("txt.example.test", "TXT"), ("big.example.test", "TXT")):
            out = self.kdig_dot(srv, "+padding", name, qtype)
            size = int(re.search(r"Received (\d+) B", out).group(1))
            self.assertEqual(size % 468, 0, out)
            self.assertIn("PADDING:", out)
        out = self.kdig_dot(srv, "+nopadding", "www.example.test", "A")
        size = int(re.search(r"Received (\d+) B", out).group(1))
        self.assertNotEqual(size % 468, 0, out)
        self.assertNotIn("PADDING:", out)
        # DoH (HTTP/2): the same rule.
        rc, out = self.kdig(srv, "+https=/dns-query", "+padding", "h3.example.test", "A")
        self.assertEqual(rc, 0, out)
        size = int(re.search(r"Received (\d+) B", out).group(1))
        self.assertEqual(size % 468, 0, out)
        self.assertIn("PADDING:", out)
        # Padding option code 12 never went upstream.
        self.assertTrue(seen)
        for q in seen:
            m = Answer(q)
            opts = [r[4] for r in m.records if r[2] == 41]
            self.assertTrue(all(b"\x00\x0c" != o[i:i + 2] for o in opts
                                for i in range(0, len(o), 2)), q)
            self.assertLess(len(q), 468)

    def test_keepalive_is_answered_with_the_idle_timeout(self):
        """RFC 7828 §3.3.2: DoT answers edns-tcp-keepalive with its idle timeout in 100 ms
        units; a query's keep-alive option with a timeout is FORMERR."""
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], dot='{ idle_timeout = "7s" }')
        if not KDIG:
            self.fail("kdig is missing: install knot-dnsutils (make deps)")
        # kdig 3.2 has no +keepalive: the empty option by its code (11).
        out = self.kdig_dot(srv, "+ednsopt=11", "www.example.test", "A")
        self.assertIn("Option (11): 0046", out)  # 70 units of 100 ms: 7 s
        self.assertRegex(out, r"www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10")
        out = self.kdig_dot(srv, "www.example.test", "A")
        self.assertNotIn("Option (11)", out)
        # A query with a timeout in its keep-alive option: FORMERR (RFC 7828 §3.2.1).
        q = bytearray(make_query("www.example.test", qid=4, edns=1232))
        q[-2:] = b"\x00\x06"
        q += b"\x00\x0b\x00\x02\x00\x10"
        tls = self.dot_connect(srv)
        tls.sendall(framed(bytes(q)))
        self.assertEqual(self.dot_read(tls, 1)[0].rcode, 1)

    def test_malformed_query_closes_the_connection(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], workers=1)
        workers = srv.worker_pids()
        loop = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
        for bad in (loop, make_query("www.example.test")[:-2], b"\x00"):
            tls = self.dot_connect(srv)
            tls.sendall(framed(bad))
            try:
                self.assertEqual(tls.recv(100), b"")
            except (ConnectionResetError, ssl.SSLError):
                pass
        tls = self.dot_connect(srv)
        tls.sendall(framed(make_query("www.example.test", qid=9)))
        self.assertEqual(self.dot_read(tls, 1)[0].addresses(), ["192.0.2.10"])
        self.assertEqual(srv.worker_pids(), workers)
        self.assertEqual(self.metric(srv, "wraith_dns_malformed_total"), 3)

    def test_idle_connection_is_closed(self):
        ub = self.upstream()
        srv = self.dns_server([f"127.0.0.1:{ub.port}"], dot='{ idle_timeout = "300ms" }')
        tls = self.dot_connect(srv)
        tls.sendall(framed(make_query("www.example.test", qid=1)))
        self.dot_read(tls, 1)
        tls.settimeout(10)
        try:
            self.assertEqual(tls.recv(100), b"")  # closed by the server, not the timeout here
        except (ConnectionResetError, ssl.SSLError):
            pass


@unittest.skipUnless(harness.WRAITH_BIN, "no wraith binary")
class DnsConfigTest(WraithTestCase):

    def check(self, text):
        d = tempfile.mkdtemp(prefix="wraith-dns-check-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "w.toml")
        write_file(conf, text)
        p = harness.run_wraith("check", "-c", conf)
        return p.returncode, p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr, conf

    def test_dns_route_without_table_and_bad_upstream_are_errors(self):
        rc, err, conf = self.check('[[listen]]\naddress = "127.0.0.1:1"\n[[site]]\nhosts = ["a"]\n'
                                   '  [[site.route]]\n  dns = {}\n')
        self.assertEqual(rc, 1)
        self.assertIn(f"{conf}:6:9: dns: answering DNS over HTTPS needs a [dns] table", err)
        rc, err, conf = self.check('[dns]\nupstreams = ["127.0.0.1:53", "resolver.test"]\n')
        self.assertEqual(rc, 1)
        self.assertIn(f'{conf}:2:30: dns.upstreams: "resolver.test": expected an IP address', err)
        rc, err, conf = self.check('[dns]\nupstreams = ["127.0.0.1:53"]\n'
                                   'block_lists = ["/nonexistent/blocks"]\n')
        self.assertEqual(rc, 1)
        self.assertIn(f'{conf}:3:16: dns.block_lists: cannot read "/nonexistent/blocks"', err)
        rc, err, conf = self.check('[[listen]]\naddress = "127.0.0.1:1"\ntls = true\n'
                                   'protocols = ["dot"]\n[[site]]\nhosts = ["a"]\n'
                                   '  [[site.route]]\n  respond = {}\n')
        self.assertEqual(rc, 1)
        self.assertIn(f"{conf}:2:11: listen.dot: DNS over TLS needs a [dns] table", err)


if __name__ == "__main__":
    harness.main()
