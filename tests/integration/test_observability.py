"""What the core counts and where an operator reads it: TLS handshakes (full, resumed, failed by
reason), QUIC handshakes and what each connection ended with, connections and requests in flight
by protocol, reloads; the [admin] listener (metrics, dashboard data, its access control and
isolation from the sites); recent 5xx answers and certificate expiry in the status object.
Clients are real: curl, Python's ssl with session resumption, openssl s_client, h3get."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness
import test_http3 as h3
from harness import Wraith, WraithTestCase, curl, free_port, toml_str, wait_for, write_file
from test_metrics import parse, value
from test_smart_routing import htpasswd

ROUTES = '''  [[site.route]]
  path = "=/metrics"
  metrics = {}
  [[site.route]]
  path = "/dash/"
  dashboard = {}
  [[site.route]]
  path = "=/hello"
  respond = { status = 200, body = "hello\\n" }
  [[site.route]]
  path = "/broken/"
  proxy = { upstream = "dead" }
'''


def setUpModule():
    h3.setUpModule()


def dead_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CoreCountersTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        upstream = f'[upstream.dead]\nservers = [{{ address = "127.0.0.1:{dead_port()}" }}]\n\n'
        srv = h3.H3Server(upstream + h3.static_site(routes=ROUTES), workers=2)
        write_file(srv.path("www", "index.html"), b"index\n")
        h3.start_class_server(cls, srv)

    def scrape(self):
        r = curl("--http2", "--cacert", h3.PKI.ca.cert, self.srv.url("/metrics"), check=True)
        return parse(r.stdout.decode())

    def status(self):
        r = curl("--http2", "--cacert", h3.PKI.ca.cert, self.srv.url("/dash/status.json"),
                 check=True)
        return json.loads(r.stdout)

    def tls_context(self, alpn=("http/1.1",)):
        ctx = ssl.create_default_context(cafile=h3.PKI.ca.cert)
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    def get_over(self, ctx, session=None):
        """One HTTP/1.1 GET /hello on a new TLS connection; returns (reused, session)."""
        with socket.create_connection(("127.0.0.1", self.srv.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
                return s.session_reused, s.session

    def test_tls_handshakes_resumptions_and_failures_by_reason(self):
        before = self.scrape()
        ctx = self.tls_context()
        reused, session = self.get_over(ctx)
        self.assertFalse(reused)
        reused, _ = self.get_over(ctx, session)
        self.assertTrue(reused, "Python did not resume: the ticket was not accepted")
        # An HTTP request on the TLS port, and a client that leaves before its ClientHello.
        r = harness.raw_request(self.srv.tls_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"400", r.data[:20])
        socket.create_connection(("127.0.0.1", self.srv.tls_port)).close()
        # TLS 1.1 only: the server's minimum is 1.2.
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.srv.tls_port}",
                            "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                           input=b"", capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)

        def failures(s, reason):
            return value(s, "wraith_tls_handshake_failures_total", reason=reason)

        after = wait_for(lambda: (lambda s: s if failures(s, "closed") > failures(before, "closed")
                                  else None)(self.scrape()), what="the closed handshake counted")
        full = (value(after, "wraith_tls_handshakes_total", resumed="false") -
                value(before, "wraith_tls_handshakes_total", resumed="false"))
        # The first connection and the scrapes since `before` (each a new curl): at least 2.
        self.assertGreaterEqual(full, 2)
        self.assertEqual(value(after, "wraith_tls_handshakes_total", resumed="true") -
                         value(before, "wraith_tls_handshakes_total", resumed="true"), 1)
        self.assertEqual(failures(after, "plain_http") - failures(before, "plain_http"), 1)
        self.assertEqual(failures(after, "version") - failures(before, "version"), 1)
        self.assertGreaterEqual(failures(after, "closed") - failures(before, "closed"), 1)
        self.assertEqual(failures(after, "cipher") - failures(before, "cipher"), 0)
        st = self.status()
        self.assertGreaterEqual(st["tls"]["resumed"], 1)
        self.assertGreaterEqual(st["tls"]["failures"], 3)

    def test_quic_handshakes_and_what_connections_ended_with(self):
        before = self.scrape()
        r = h3.h3get(self, self.srv, ["/hello"], "-n", "3")
        self.assertEqual(r.returncode, 0, r)

        def closed(s):
            return value(s, "wraith_quic_rtt_seconds_count")

        # The server forgets a connection after its draining period (3 PTOs).
        after = wait_for(lambda: (lambda s: s if closed(s) > closed(before) else None)(
            self.scrape()), timeout=15, what="the QUIC connection's close counted")
        self.assertEqual(value(after, "wraith_quic_handshakes_total") -
                         value(before, "wraith_quic_handshakes_total"), 1)
        self.assertEqual(closed(after) - closed(before), 1)
        self.assertEqual(value(after, "wraith_quic_congestion_window_bytes_count") -
                         value(before, "wraith_quic_congestion_window_bytes_count"), 1)
        # Loopback: the RTT is well under the first bucket's millisecond... or a few ms under
        # a sanitizer; never past a second.
        self.assertEqual(value(after, "wraith_quic_rtt_seconds_bucket", le="1") -
                         value(before, "wraith_quic_rtt_seconds_bucket", le="1"), 1)
        self.assertEqual(self.status()["quic"]["handshakes"],
                         value(after, "wraith_quic_handshakes_total"))

    def test_quic_packets_lost_are_counted(self):
        import quic_relay
        h3.require_h3get(self)
        write_file(self.srv.path("www", "lossy.bin"), os.urandom(256 * 1024))
        before = self.scrape()
        relay = quic_relay.Relay(self.srv.tls_port, seed=7)
        self.addCleanup(relay.close)
        relay.set(down=quic_relay.Impairment(drop=0.05))
        url = f"https://localhost:{relay.port}/lossy.bin"
        p = subprocess.run([h3.H3GET, "--cacert", h3.PKI.ca.cert, "--resolve",
                            f"localhost:{relay.port}:127.0.0.1", url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        self.assertEqual(len(p.stdout), 256 * 1024)
        self.assertGreater(relay.stats.dropped, 0)
        def lost():
            return value(self.scrape(), "wraith_quic_stream_packets_lost_total") - \
                value(before, "wraith_quic_stream_packets_lost_total")
        # Dropped datagrams from the server carried the file's stream data (most of what it
        # sent): each was declared lost and its data sent again. The stream is counted when it
        # closes, once the client acknowledged all of it.
        wait_for(lambda: lost() > 0, timeout=15, what="lost packets counted")
        self.assertLessEqual(lost(), relay.stats.dropped)
        self.assertEqual(self.status()["quic"]["packets_lost"],
                         value(self.scrape(), "wraith_quic_stream_packets_lost_total"))

    def test_connections_by_protocol_come_and_go(self):
        def gauge(kind):
            return value(self.scrape(), "wraith_connections_by_protocol", protocol=kind)

        base = {k: gauge(k) for k in ("other", "h1", "h2")}
        # A TCP connection that has not sent its ClientHello is still "other".
        pending = socket.create_connection(("127.0.0.1", self.srv.tls_port))
        h1 = self.tls_context(("http/1.1",)).wrap_socket(
            socket.create_connection(("127.0.0.1", self.srv.tls_port)),
            server_hostname="localhost")
        h2 = self.tls_context(("h2",)).wrap_socket(
            socket.create_connection(("127.0.0.1", self.srv.tls_port)),
            server_hostname="localhost")
        try:
            self.assertEqual(h2.selected_alpn_protocol(), "h2")
            wait_for(lambda: gauge("other") >= base["other"] + 1 and
                     gauge("h1") >= base["h1"] + 1 and gauge("h2") >= base["h2"] + 1,
                     what="one more connection of each kind")
            st = self.status()
            self.assertGreaterEqual(st["connections"]["h1"], 1)
            # The status request itself is an HTTP/2 stream in flight.
            self.assertGreaterEqual(st["streams"]["h2"], 1)
        finally:
            pending.close()
            h1.close()
            h2.close()
        wait_for(lambda: gauge("other") <= base["other"] and gauge("h1") <= base["h1"],
                 what="the closed connections to leave the gauges")

    def test_recent_5xx_answers_are_listed_with_their_path(self):
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-o", "/dev/null", "-w",
                 "%{http_code}", self.srv.url("/broken/item?secret=1"))
        self.assertEqual(r.stdout.decode(), "502")

        def newest():
            errors = self.status()["errors"]
            return errors[0] if errors and errors[0]["path"] == "/broken/item" else None

        e = wait_for(newest, what="the 502 in the status object")
        self.assertEqual((e["status"], e["method"], e["host"], e["protocol"]),
                         (502, "GET", "localhost", "h1"))
        self.assertLessEqual(abs(e["time"] - time.time()), 60)

    def test_certificates_and_their_expiry(self):
        st = self.status()
        certs = [c for c in st["certificates"] if c["site"] == "localhost"]
        self.assertEqual(len(certs), 1, st["certificates"])
        self.assertIn("localhost", certs[0]["names"])
        self.assertGreater(certs[0]["days_left"], 1)
        self.assertAlmostEqual(certs[0]["not_after"],
                               time.time() + certs[0]["days_left"] * 86400, delta=2 * 86400)
        key = ("wraith_certificate_expiry_timestamp_seconds",
               frozenset({"site": "localhost", "name": certs[0]["names"][0]}.items()))
        self.assertEqual(self.scrape().get(key), certs[0]["not_after"])

    def test_open_file_cache_lookups(self):
        def lookups(s, result):
            return value(s, "wraith_open_file_cache_lookups_total", result=result)

        before = self.scrape()
        for _ in range(4):
            r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, self.srv.url("/index.html"),
                     check=True)
            self.assertEqual(r.stdout, b"index\n")
        after = self.scrape()
        delta = {k: lookups(after, k) - lookups(before, k) for k in ("hit", "revalidated", "open")}
        self.assertEqual(sum(delta.values()), 4, delta)
        # Two workers: each opens the file at most once, then hits.
        self.assertLessEqual(delta["open"], 2, delta)
        self.assertGreaterEqual(delta["hit"] + delta["revalidated"], 2, delta)
        self.assertEqual(self.status()["caches"]["open_file"]["hits"], lookups(self.scrape(), "hit"))

    def test_compression_and_precompressed_sidecars(self):
        import gzip
        text = b"".join(b"line %d of a compressible text file\n" % i for i in range(200))
        write_file(self.srv.path("www", "big.txt"), text)
        write_file(self.srv.path("www", "pre.css"), text)
        write_file(self.srv.path("www", "pre.css.gz"), gzip.compress(text))
        write_file(self.srv.path("www", "plain.css"), text)

        def get(path, coding):
            r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-H", f"Accept-Encoding: {coding}",
                     "-D", "-", "-o", "/dev/null", self.srv.url(path), check=True)
            return r.stdout.decode().lower()

        before, status_before = self.scrape(), self.status()
        self.assertIn("content-encoding: gzip", get("/big.txt", "gzip"))   # on the fly
        # This site compresses only gzip on the fly (h3.static_site): br is not used.
        self.assertNotIn("content-encoding", get("/big.txt", "br"))
        self.assertIn("content-encoding: gzip", get("/pre.css", "gzip"))   # the sidecar
        self.assertIn("content-encoding: gzip", get("/plain.css", "gzip"))  # no sidecar: on the fly
        self.assertNotIn("content-encoding", get("/big.txt", "identity"))  # nothing accepted
        after = self.scrape()

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(moved("wraith_compress_responses_total", coding="gzip"), 2)
        self.assertEqual(moved("wraith_compress_responses_total", coding="br"), 0)
        self.assertEqual(moved("wraith_compress_responses_total", coding="zstd"), 0)
        gzip_in = moved("wraith_compress_bytes_total", coding="gzip", direction="in")
        gzip_out = moved("wraith_compress_bytes_total", coding="gzip", direction="out")
        self.assertEqual(gzip_in, 2 * len(text))
        self.assertGreater(gzip_out, 0)
        self.assertLess(gzip_out, gzip_in / 4)
        # The sidecar was a hit; plain.css and the two big.txt answers that accepted a coding
        # (compressible, no sidecar) were misses; identity accepts no coding: not a lookup.
        self.assertEqual(moved("wraith_static_precompressed_total", coding="gzip"), 1)
        self.assertEqual(moved("wraith_static_precompressed_total", coding="none"), 3)
        status = self.status()
        self.assertEqual(status["compression"]["responses"] -
                         status_before["compression"]["responses"], 2)
        self.assertEqual(status["caches"]["precompressed"]["hits"] -
                         status_before["caches"]["precompressed"]["hits"], 1)

    def test_reloads_and_refused_reloads_are_counted(self):
        before = self.scrape()
        r = self.srv.reload()
        self.assertEqual(r.returncode, 0, r)
        good = open(self.srv.conf).read()
        try:
            write_file(self.srv.conf, good + "\n[nonsense]\n")
            r = self.srv.reload()
            self.assertNotEqual(r.returncode, 0, r)
        finally:
            write_file(self.srv.conf, good)
        after = self.scrape()
        self.assertEqual(value(after, "wraith_reloads_total") -
                         value(before, "wraith_reloads_total"), 1)
        self.assertEqual(value(after, "wraith_reload_failures_total") -
                         value(before, "wraith_reload_failures_total"), 1)

    def test_the_master_answers_the_same_status(self):
        """`stats` on the control socket (what `wraith top` reads) sums the same zones."""
        from_site = self.status()
        r = harness.run_wraith("status", "--json", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 0, r)
        answer = subprocess.run(
            ["python3", "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); "
             "s.connect(sys.argv[1]); s.sendall(b'stats\\n'); d=b''\n"
             "while (c:=s.recv(65536)): d+=c\nsys.stdout.buffer.write(d)",
             self.srv.control_socket], capture_output=True, timeout=30)
        text = answer.stdout.decode()
        st = json.loads(text[text.index("{"):])
        self.assertEqual(st["server"]["generation"], from_site["server"]["generation"])
        self.assertGreaterEqual(sum(st["requests"].values()), sum(from_site["requests"].values()))
        self.assertEqual(len([w for w in st["workers"] if w["state"] == "serving"]), 2)


class TlsAndQuicLogFieldsTest(WraithTestCase):
    """An access-log format with the connection's TLS and QUIC details and the timing fields."""

    FORMAT = ('$request_uri proto=$protocol tls=$ssl_protocol cipher=$ssl_cipher '
              'reused=$ssl_session_reused sni=$ssl_server_name alpn=$ssl_alpn_protocol '
              'quic=$quic_version rt=$request_time')

    def test_fields(self):
        hello = '  [[site.route]]\n  path = "=/hello"\n  respond = { status = 200 }\n'
        srv = h3.H3Server(h3.static_site(routes=hello), workers=1)
        srv.access_log = srv.path("logs", "tls.log")
        srv.access_log_conf = {"path": toml_str(srv.access_log), "format": toml_str(self.FORMAT)}
        srv.write_config()
        write_file(srv.path("www", "index.html"), b"index\n")
        self.servers.append(srv)
        srv.start()
        r = curl("--http2", "--cacert", h3.PKI.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                 srv.url("/hello?over=h2"))
        self.assertEqual(r.stdout.decode(), "200")
        r = h3.h3get(self, srv, ["/hello?over=h3"])
        self.assertEqual(r.returncode, 0, r)
        h2 = srv.wait_log_line(lambda l: "over=h2" in l, what="the h2 line")
        h3_line = srv.wait_log_line(lambda l: "over=h3" in l, what="the h3 line")
        self.assertRegex(h2, r"^/hello\?over=h2 proto=HTTP/2\.0 tls=TLSv1\.3 cipher=TLS_\w+ "
                             r"reused=\. sni=localhost alpn=h2 quic=- rt=\d+\.\d{3}$")
        self.assertRegex(h3_line, r"^/hello\?over=h3 proto=HTTP/3\.0 tls=TLSv1\.3 "
                                  r"cipher=TLS_\w+ reused=\. sni=localhost alpn=h3 quic=1 "
                                  r"rt=\d+\.\d{3}$")


ADMIN_SITE = '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site\\n" }
'''


class AdminListenerTest(WraithTestCase):
    def start_admin(self, admin_keys="", extra=""):
        self.admin_port = free_port(ipv6_too=False)
        text = (f'[admin]\naddress = "127.0.0.1:{self.admin_port}"\n{admin_keys}\n'
                + extra + ADMIN_SITE)
        srv = Wraith(text, workers=1)
        self.servers.append(srv)
        return srv

    def get(self, path, method="GET", headers=None, port=None, scheme="http", ctx=None):
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{port or self.admin_port}{path}",
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def test_serves_its_paths_and_nothing_else(self):
        srv = self.start_admin()
        srv.start()
        status, headers, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("wraith_requests_total", body.decode())
        status, headers, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        self.assertIn(b"status.json", body)
        status, headers, body = self.get("/status.json")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        st = json.loads(body)
        for key in ("server", "requests", "status", "bytes", "latency", "connections",
                    "streams", "tls", "quic", "routes", "workers", "errors", "certificates"):
            self.assertIn(key, st)
        self.assertEqual(len(st["latency"]["counts"]), len(st["latency"]["bounds_us"]) + 1)
        for path in ("/etc/passwd", "/index.html", "/metrics/", "/status.json/x", "/dash/"):
            self.assertEqual(self.get(path)[0], 404, path)
        self.assertEqual(self.get("/metrics", method="POST")[0], 405)
        # The admin site is not reachable through the site listener, whatever the Host.
        status, _, body = self.get("/metrics", headers={"Host": "admin"}, port=srv.port)
        self.assertEqual((status, body), (200, b"site\n"))
        # Requests on the site listener show up in the admin's counts.
        before = json.loads(self.get("/status.json")[2])

        def site_route(st):
            return [r for r in st["routes"] if r["site"] == "*" and r["route"] == "/"][0]

        for _ in range(3):
            self.assertEqual(self.get("/x", port=srv.port)[0], 200)
        after = wait_for(lambda: (lambda s: s if s["requests"]["h1"] >=
                                  before["requests"]["h1"] + 4 else None)(
            json.loads(self.get("/status.json")[2])), what="the site's requests counted")
        self.assertEqual(site_route(after)["requests"] - site_route(before)["requests"], 3)

    def test_basic_auth_and_allow(self):
        srv = self.start_admin('basic_auth = { file = "@DIR@/users.htpasswd" }')
        htpasswd(srv.path("users.htpasswd"), "ops", "s3cret", "-B")
        srv.start()
        status, headers, _ = self.get("/metrics")
        self.assertEqual(status, 401)
        self.assertIn("Basic", headers["WWW-Authenticate"])
        auth = {"Authorization": "Basic b3BzOnMzY3JldA=="}  # ops:s3cret
        self.assertEqual(self.get("/metrics", headers=auth)[0], 200)
        self.assertEqual(self.get("/status.json", headers=auth)[0], 200)
        srv.stop()
        srv = self.start_admin('allow = ["10.0.0.0/8"]')
        srv.start()
        self.assertEqual(self.get("/metrics")[0], 403)
        self.assertEqual(self.get("/x", port=srv.port)[0], 200)

    def test_over_tls_with_the_admin_certificate(self):
        admin_cert = h3.PKI.ca.issue("admin", ["wraith-admin.test"])
        srv = self.start_admin(f'tls = {{ cert = {toml_str(admin_cert.chain)}, '
                               f'key = {toml_str(admin_cert.key)} }}')
        srv.start()
        r = curl("--cacert", h3.PKI.ca.cert, "--resolve",
                 f"wraith-admin.test:{self.admin_port}:127.0.0.1", "-o", "/dev/null", "-w",
                 "%{http_code} %{http_version}",
                 f"https://wraith-admin.test:{self.admin_port}/metrics")
        self.assertEqual(r.stdout.decode(), "200 2", r)
        # Any name gets the admin's certificate: it is the only site there.
        r = curl("--cacert", h3.PKI.ca.cert, "--resolve",
                 f"other.test:{self.admin_port}:127.0.0.1", "-o", "/dev/null",
                 f"https://other.test:{self.admin_port}/metrics")
        self.assertEqual(r.returncode, 60, "expected a name mismatch on the admin certificate")

    def test_bad_admin_tables_say_where(self):
        cases = [
            # Values copied into the listener lose their line: the [admin] table's is given.
            ('[admin]\naddress = "nowhere"\n', r'wraith.toml:(\d+):1: listen.address: "nowhere" '
             r'is a host name', 0),
            ('[admin]\nmetricz = true\n', r'wraith.toml:(\d+):1: unknown key "metricz" in '
             r'\[admin\]', 1),
            ('[admin]\nmetrics = false\ndashboard = false\n',
             r'wraith.toml:(\d+):13: admin.dashboard: with metrics = false and dashboard = false',
             2),
        ]
        for text, pattern, offset in cases:
            srv = Wraith(text + ADMIN_SITE, workers=1)
            self.servers.append(srv)
            r = harness.run_wraith("check", "-c", srv.conf)
            self.assertEqual(r.returncode, 1, text)
            m = re.search(pattern, r.stderr)
            self.assertIsNotNone(m, (text, r.stderr))
            table_line = open(srv.conf).read().splitlines().index("[admin]") + 1
            self.assertEqual(int(m.group(1)), table_line + offset, r.stderr)

    def test_disabled(self):
        srv = self.start_admin("enabled = false")
        srv.start()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.admin_port), timeout=2).close()


class ScrapesThroughChangesTest(WraithTestCase):
    """The admin listener answers through reloads and a binary upgrade, counters never go
    back, and a dashboard polling for an hour does not grow the worker."""

    def start(self):
        self.admin_port = free_port(ipv6_too=False)
        srv = Wraith(f'[admin]\naddress = "127.0.0.1:{self.admin_port}"\n' + ADMIN_SITE,
                     workers=2)
        self.servers.append(srv)
        srv.start()
        return srv

    def fetch(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=10) as r:
            return r.status, r.read()

    def test_scrapes_answer_through_reloads_and_an_upgrade(self):
        srv = self.start()
        stop = threading.Event()
        answers, failures, totals = [], [], []

        def scrape():
            while not stop.is_set():
                try:
                    status, body = self.fetch("/status.json")
                    answers.append(status)
                    totals.append(sum(json.loads(body)["requests"].values()))
                    status, body = self.fetch("/metrics")
                    answers.append(status)
                except Exception as e:  # noqa: BLE001 - every failure is the finding
                    failures.append(repr(e))

        t = threading.Thread(target=scrape)
        t.start()
        try:
            for _ in range(3):
                r = srv.reload()
                self.assertEqual(r.returncode, 0, r)
            old_pid = srv.pid
            up = srv.cli("upgrade")
            self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
            new_pid = wait_for(lambda: (p := int(open(srv.pid_file).read())) != old_pid and p,
                               what="the new master's pid file")
            self.addCleanup(self.kill_master, new_pid)
            time.sleep(0.5)
            os.kill(old_pid, signal.SIGQUIT)
            wait_for(lambda: not harness.pid_alive(old_pid), timeout=30,
                     what="the old master to exit")
            time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(len(answers), 20)
        self.assertEqual(set(answers), {200})
        # Counters only grow, whoever answered (old or new generation, old or new master).
        self.assertEqual(totals, sorted(totals))
        st = json.loads(self.fetch("/status.json")[1])
        self.assertEqual((st["reloads"]["reloads"], st["reloads"]["upgrades"]), (3, 1))
        os.kill(new_pid, signal.SIGQUIT)
        wait_for(lambda: not harness.pid_alive(new_pid), timeout=30,
                 what="the new master to exit")

    @staticmethod
    def kill_master(pid):
        if harness.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not harness.pid_alive(pid), timeout=20, what=f"master {pid} to exit")

    def test_an_hour_of_dashboard_polls_does_not_grow_the_worker(self):
        srv = self.start()

        def rss_kb():
            # Private memory only: a worker's first reads of shared zones and of its binary's
            # pages add to VmRSS without being a leak.
            total = 0
            for pid in srv.worker_pids():
                with open(f"/proc/{pid}/status") as f:
                    total += int(next(l for l in f if l.startswith("RssAnon:")).split()[1])
            return total

        # One poll a second for an hour, as fast as it goes: the page's status.json. Memory may
        # grow once (buffers reaching their size, the allocator's arenas); the second half of
        # the hour must not add to it.
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        samples = {}
        for i in range(1, 3601):
            conn.request("GET", "/status.json")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            if i in (1800, 3600):
                samples[i] = rss_kb()
        conn.close()
        grown = samples[3600] - samples[1800]
        # Under AddressSanitizer freed memory waits in its quarantine (up to 256 MB), so RSS
        # says nothing there; leaks are LeakSanitizer's to find when the workers exit.
        if not harness.SANITIZE:
            self.assertLess(grown, 256, f"the workers grew by {grown} KiB over the last 1800 "
                                        f"polls ({samples})")


if __name__ == "__main__":
    harness.main()
