"""Upstream metrics of the proxy module, scraped from a real wraith with two workers: requests
per server by status class, retries and connect failures when a primary server is dead, a
fail_statuses answer and a first-byte timeout counted by kind, the header-time histogram of a
backend that answers late, the in-flight gauge while a request is held (and after the worker
holding it was killed), an HTTP/2 upstream (Debian's nghttpd), an HTTP/3 one (ngtcp2's
gtlsserver) and its fallback to HTTP/2 when UDP gets no answer, the dashboard's status object,
and promtool's lint. Backends are Python HTTP servers on 127.0.0.1 ephemeral ports; counts
are exact, as differences between two scrapes."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import test_http3 as h3
from harness import WraithTestCase, Wraith, toml_str, wait_for, write_file
from test_metrics import parse, value
from test_proxy_balance import dead_port
from test_proxy_h2 import NGHTTPD, Nghttpd
from test_proxy_h3 import GTLSSERVER, Gtlsserver, UdpSink

SLOW_S = 0.3


def setUpModule():
    h3.setUpModule()  # the CA and leaf of the HTTP/3 servers


def tearDownModule():
    h3.tearDownModule()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        if path.endswith("/slow"):
            time.sleep(SLOW_S)
        elif path.endswith("/hold"):
            self.server.held.set()
            self.server.release.wait(20)
        elif path.endswith("/unavailable"):
            return self.reply(503, b"unavailable\n")
        return self.reply(200, self.server.name.encode())


class Backend(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name):
        self.name = name
        self.held = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def handle_error(self, request, client_address):
        pass  # the proxy gave up on a slow answer: part of these tests

    def stop(self):
        self.release.set()
        self.shutdown()
        self.server_close()


def routes(*prefixes):
    out = ('  [[site.route]]\n  path = "=/metrics"\n  metrics = {}\n'
           '  [[site.route]]\n  path = "/dash/"\n  dashboard = {}\n')
    for p in prefixes:
        out += f'  [[site.route]]\n  path = "/{p}/"\n  proxy = {{ upstream = "{p}" }}\n'
    return '[[site]]\nhosts = ["*"]\n' + out


def get(port, path, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def scrape(srv, accept=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        c.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body)
        return body
    finally:
        c.close()


class Delta:
    """Two scrapes apart: `d(name, **labels)` is how much a series moved."""

    def __init__(self, srv):
        self.srv = srv
        self.before = parse(scrape(srv))
        self.after = self.before

    def rescrape(self):
        self.after = parse(scrape(self.srv))
        return self

    def __call__(self, name, **labels):
        return value(self.after, name, **labels) - value(self.before, name, **labels)

    def settle(self, name, want, **labels):
        """Scrapes until the series moved by `want` (a request is counted as its exchange
        with the upstream ends, which may be a moment after the client has the answer)."""
        deadline = time.monotonic() + 5
        while self.rescrape()(name, **labels) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        return self(name, **labels)


class ProxyMetricsTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(NGHTTPD):
            raise AssertionError("nghttpd is missing: install the Debian package "
                                 "nghttp2-server (make deps)")
        cls.a = Backend("a")
        cls.b = Backend("b")
        cls.dead = f"127.0.0.1:{dead_port()}"
        cls.tmp = tempfile.mkdtemp(prefix="wraith-upmetrics-")
        os.chmod(cls.tmp, 0o755)
        htdocs = os.path.join(cls.tmp, "htdocs")
        write_file(os.path.join(htdocs, "h2", "small.txt"), b"small over h2\n")
        os.chmod(htdocs, 0o755)
        os.chmod(os.path.join(htdocs, "h2"), 0o755)
        cls.h2 = Nghttpd(htdocs)
        cls.h2_addr = f"127.0.0.1:{cls.h2.port}"
        a, b = cls.a.addr(), cls.b.addr()
        upstreams = f'''
[upstream.app]
servers = ["{a}"]

[upstream.pair]
servers = ["{cls.dead}", {{ address = "{b}", backup = true }}]
retries = 1
retry_budget = 100
max_fails = 0

[upstream.strict]
servers = ["{a}"]
fail_statuses = [503]

[upstream.impatient]
servers = ["{a}"]
first_byte_timeout = "100ms"

[upstream.h2]
servers = ["{cls.h2_addr}"]
protocol = "h2"
'''
        cls.srv = cls.start_class_server(
            upstreams + routes("app", "pair", "strict", "impatient", "h2"), workers=2)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for b in (cls.a, cls.b):
            b.stop()
        cls.h2.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_series_exist_at_zero_before_any_request(self):
        s = parse(scrape(self.srv))
        for up, srv in (("strict", self.a.addr()), ("pair", self.dead), ("h2", self.h2_addr)):
            self.assertIn(("wraith_upstream_requests_total",
                           frozenset({"upstream": up, "server": srv, "code": "2xx"}.items())), s)
            self.assertIn(("wraith_upstream_failures_total",
                           frozenset({"upstream": up, "server": srv, "kind": "reset"}.items())),
                          s)
            self.assertIn(("wraith_upstream_in_flight",
                           frozenset({"upstream": up, "server": srv}.items())), s)
        self.assertIn(("wraith_upstream_header_seconds_bucket",
                       frozenset({"upstream": "app", "le": "0.0005"}.items())), s)

    def test_each_request_counts_once_by_status_class(self):
        d = Delta(self.srv)
        for _ in range(7):
            self.assertEqual(get(self.srv.port, "/app/x"), (200, b"a"))
        labels = {"upstream": "app", "server": self.a.addr()}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 7, code="2xx", **labels), 7)
        for code in ("none", "1xx", "3xx", "4xx", "5xx"):
            self.assertEqual(d("wraith_upstream_requests_total", code=code, **labels), 0, code)
        for kind in ("connect", "timeout", "reset", "protocol", "status"):
            self.assertEqual(d("wraith_upstream_failures_total", kind=kind, **labels), 0, kind)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="app"), 0)
        self.assertEqual(d("wraith_upstream_header_seconds_count", upstream="app"), 7)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **labels), 0)

    def test_a_dead_primary_is_retried_on_the_backup(self):
        d = Delta(self.srv)
        for _ in range(4):
            self.assertEqual(get(self.srv.port, "/pair/x"), (200, b"b"))
        dead = {"upstream": "pair", "server": self.dead}
        live = {"upstream": "pair", "server": self.b.addr()}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 4, code="2xx", **live), 4)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="pair"), 4)
        self.assertEqual(d("wraith_upstream_failures_total", kind="connect", **dead), 4)
        self.assertEqual(d("wraith_upstream_requests_total", code="none", **dead), 4)
        self.assertEqual(d("wraith_upstream_failures_total", kind="connect", **live), 0)
        # Only the backup's tries got an answer head; only new connections are timed.
        self.assertEqual(d("wraith_upstream_header_seconds_count", upstream="pair"), 4)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **dead), 0)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **live), 0)

    def test_a_fail_statuses_answer_and_a_first_byte_timeout_count_by_kind(self):
        d = Delta(self.srv)
        status, _ = get(self.srv.port, "/strict/unavailable")
        self.assertEqual(status, 503)  # the only server: its answer is passed on
        status, _ = get(self.srv.port, "/impatient/slow")
        self.assertEqual(status, 504)
        strict = {"upstream": "strict", "server": self.a.addr()}
        impatient = {"upstream": "impatient", "server": self.a.addr()}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 1, code="5xx", **strict), 1)
        self.assertEqual(d("wraith_upstream_failures_total", kind="status", **strict), 1)
        self.assertEqual(d.settle("wraith_upstream_requests_total", 1, code="none", **impatient),
                         1)
        self.assertEqual(d("wraith_upstream_failures_total", kind="timeout", **impatient), 1)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="strict"), 0)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="impatient"), 0)

    def test_a_late_head_lands_above_the_quarter_second_bucket(self):
        d = Delta(self.srv)
        started = time.monotonic()
        self.assertEqual(get(self.srv.port, "/app/slow"), (200, b"a"))
        self.assertGreaterEqual(time.monotonic() - started, SLOW_S)
        self.assertEqual(d.settle("wraith_upstream_header_seconds_count", 1, upstream="app"), 1)
        bucket = "wraith_upstream_header_seconds_bucket"
        self.assertEqual(d(bucket, upstream="app", le="0.25"), 0)
        self.assertEqual(d(bucket, upstream="app", le="0.5"), 1)
        self.assertEqual(d(bucket, upstream="app", le="+Inf"), 1)
        took = d("wraith_upstream_header_seconds_sum", upstream="app")
        self.assertGreaterEqual(took, SLOW_S)
        self.assertLess(took, 0.5)

    def test_in_flight_while_a_request_is_held_then_zero(self):
        labels = {"upstream": "app", "server": self.a.addr()}
        self.a.held.clear()
        self.a.release.clear()
        result = {}
        t = threading.Thread(target=lambda: result.update(r=get(self.srv.port, "/app/hold")))
        t.start()
        try:
            self.assertTrue(self.a.held.wait(10), "the backend never got the request")
            s = parse(scrape(self.srv))
            self.assertEqual(value(s, "wraith_upstream_in_flight", **labels), 1)
            _, status = get_json(self.srv.port, "/dash/status.json")
            servers = {(u["name"], s["address"]): s for u in status["upstreams"]
                       for s in u["servers"]}
            self.assertEqual(servers[("app", self.a.addr())]["in_flight"], 1)
            self.assertGreaterEqual(servers[("app", self.a.addr())]["requests"], 0)
        finally:
            self.a.release.set()
            t.join(20)
        self.assertEqual(result.get("r"), (200, b"a"))
        wait_for(lambda: value(parse(scrape(self.srv)), "wraith_upstream_in_flight",
                               **labels) == 0, timeout=5, what="in flight back to 0")

    def test_the_status_object_counts_requests_and_failures(self):
        _, before = get_json(self.srv.port, "/dash/status.json")
        for _ in range(3):
            self.assertEqual(get(self.srv.port, "/pair/x"), (200, b"b"))

        def server(status, addr):
            pool = [u for u in status["upstreams"] if u["name"] == "pair"][0]
            return [s for s in pool["servers"] if s["address"] == addr][0]

        def moved():
            _, after = get_json(self.srv.port, "/dash/status.json")
            return (server(after, self.b.addr())["requests"] -
                    server(before, self.b.addr())["requests"] == 3 and after)
        after = wait_for(moved, timeout=5, what="the backup's requests in the status object")
        self.assertEqual(server(after, self.dead)["failures"] -
                         server(before, self.dead)["failures"], 3)
        self.assertEqual(server(after, self.dead)["requests"] -
                         server(before, self.dead)["requests"], 3)
        self.assertEqual(server(after, self.b.addr())["failures"] -
                         server(before, self.b.addr())["failures"], 0)
        self.assertEqual(server(after, self.b.addr())["in_flight"], 0)

    def test_an_http2_upstream_is_counted(self):
        d = Delta(self.srv)
        for _ in range(5):
            self.assertEqual(get(self.srv.port, "/h2/small.txt"), (200, b"small over h2\n"))
        labels = {"upstream": "h2", "server": self.h2_addr}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 5, code="2xx", **labels), 5)
        self.assertEqual(d("wraith_upstream_header_seconds_count", upstream="h2"), 5)
        self.assertEqual(d("wraith_upstream_failures_total", kind="connect", **labels), 0)
        # Each worker opened a session at most once: timed when the server's SETTINGS came.
        self.assertGreaterEqual(value(d.after, "wraith_upstream_connect_seconds_count",
                                      upstream="h2"), 1)
        self.assertLessEqual(value(d.after, "wraith_upstream_connect_seconds_count",
                                   upstream="h2"), 2)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **labels), 0)

    def test_promtool_finds_nothing_to_lint(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is not installed (Debian package prometheus)")
        self.assertEqual(get(self.srv.port, "/app/x"), (200, b"a"))
        text = scrape(self.srv)
        self.assertIn("wraith_upstream_connect_seconds_bucket", text)
        lint = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=30)
        self.assertEqual((lint.returncode, lint.stdout, lint.stderr), (0, b"", b""))

    def test_openmetrics_names_the_counter_families_without_total(self):
        body = scrape(self.srv, "application/openmetrics-text;version=1.0.0")
        self.assertTrue(body.endswith("\n# EOF\n"), body[-200:])
        self.assertIn("\n# TYPE wraith_upstream_requests counter\n", body)
        self.assertIn("\n# TYPE wraith_upstream_header_seconds histogram\n", body)
        self.assertIn("\n# TYPE wraith_upstream_in_flight gauge\n", body)
        parse(body)


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


class Http3UpstreamTest(WraithTestCase):
    """One worker, so the server whose UDP was found blocked stays known between requests."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(GTLSSERVER):
            raise AssertionError(f"{GTLSSERVER} is missing: install the Debian package "
                                 "ngtcp2-server (make deps)")
        cls.tmp = tempfile.mkdtemp(prefix="wraith-upmetrics-h3-")
        os.chmod(cls.tmp, 0o755)
        www = os.path.join(cls.tmp, "www")
        write_file(os.path.join(www, "small.txt"), b"small over h3\n")
        os.chmod(www, 0o755)
        cls.gtls = Gtlsserver(www, h3.PKI.leaf)
        # UDP silent, HTTP/2 over TLS on the same port's TCP: fallback = "h2" is taken.
        port = h3.udp_and_tcp_port()
        cls.sink = UdpSink(port)
        cls.h2 = Nghttpd(www, cert=h3.PKI.leaf, port=port)
        cls.gtls_addr, cls.blocked_addr = f"127.0.0.1:{cls.gtls.port}", f"127.0.0.1:{port}"
        tls = f'tls = {{ ca = {toml_str(h3.PKI.ca.cert)}, server_name = "localhost" }}'
        upstreams = (f'[upstream.quic]\nservers = ["{cls.gtls_addr}"]\nprotocol = "h3"\n{tls}\n\n'
                     f'[upstream.blocked]\nservers = ["{cls.blocked_addr}"]\nprotocol = "h3"\n'
                     f'{tls}\nfallback = "h2"\nconnect_timeout = "500ms"\n\n')
        sites = upstreams + routes("quic", "blocked").replace(
            'upstream = "quic" }', 'upstream = "quic", strip_prefix = "/quic" }').replace(
            'upstream = "blocked" }', 'upstream = "blocked", strip_prefix = "/blocked" }')
        cls.srv = cls.start_class_server(sites, workers=1)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for s in (cls.gtls, cls.sink, cls.h2):
                s.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_an_http3_upstream_is_counted(self):
        d = Delta(self.srv)
        for _ in range(4):
            self.assertEqual(get(self.srv.port, "/quic/small.txt"), (200, b"small over h3\n"))
        labels = {"upstream": "quic", "server": self.gtls_addr}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 4, code="2xx", **labels), 4)
        self.assertEqual(d("wraith_upstream_header_seconds_count", upstream="quic"), 4)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="quic"), 0)
        # One QUIC connection carried them all: its handshake was timed once.
        self.assertEqual(value(d.after, "wraith_upstream_connect_seconds_count",
                               upstream="quic"), 1)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **labels), 0)

    def test_the_fallback_to_http2_is_a_second_try(self):
        d = Delta(self.srv)
        self.assertEqual(get(self.srv.port, "/blocked/small.txt"), (200, b"small over h3\n"))
        labels = {"upstream": "blocked", "server": self.blocked_addr}
        self.assertEqual(d.settle("wraith_upstream_requests_total", 1, code="2xx", **labels), 1)
        self.assertEqual(d("wraith_upstream_requests_total", code="none", **labels), 1)
        self.assertEqual(d("wraith_upstream_failures_total", kind="connect", **labels), 1)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="blocked"), 1)
        # The next one goes over HTTP/2 at once: one try.
        self.assertEqual(get(self.srv.port, "/blocked/small.txt"), (200, b"small over h3\n"))
        self.assertEqual(d.settle("wraith_upstream_requests_total", 2, code="2xx", **labels), 2)
        self.assertEqual(d("wraith_upstream_retries_total", upstream="blocked"), 1)
        self.assertEqual(d("wraith_upstream_failures_total", kind="connect", **labels), 1)
        self.assertEqual(value(d.after, "wraith_upstream_in_flight", **labels), 0)


class LostWorkerTest(WraithTestCase):
    def test_a_killed_worker_leaves_no_request_in_flight(self):
        """A worker killed in the middle of a request never gives back its count: the master
        clears it when it reaps the worker."""
        backend = Backend("held")
        self.addCleanup(backend.stop)
        srv = self.server(f'[upstream.app]\nservers = ["{backend.addr()}"]\n\n' + routes("app"),
                          workers=1)
        labels = {"upstream": "app", "server": backend.addr()}
        t = threading.Thread(target=lambda: self._ignore(get, srv.port, "/app/hold"),
                             daemon=True)
        t.start()
        self.assertTrue(backend.held.wait(10), "the backend never got the request")
        self.assertEqual(value(parse(scrape(srv)), "wraith_upstream_in_flight", **labels), 1)
        [worker] = srv.worker_pids()
        os.kill(worker, signal.SIGKILL)
        srv.wait_workers(1, exclude=(worker,))
        wait_for(lambda: self._ignore(lambda: value(parse(scrape(srv)),
                                                    "wraith_upstream_in_flight", **labels) == 0),
                 timeout=10, what="in flight back to 0 after the worker was lost")
        backend.release.set()
        t.join(10)

    @staticmethod
    def _ignore(fn, *args):
        try:
            return fn(*args)
        except (OSError, http.client.HTTPException):
            return None


if __name__ == "__main__":
    unittest.main()
