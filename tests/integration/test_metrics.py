"""Metrics: the `observe` filter counts every exchange into shared memory and `metrics = {}`
answers a scrape in Prometheus's text format. Traffic goes over HTTP/1.1 and HTTP/2 (curl) and
HTTP/3 (h3get) to one server; the counts are checked exactly (as differences between two
scrapes), across a reload, and through a real Prometheus (Debian's `prometheus`) that scrapes
Wraith and is queried over its HTTP API."""

import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import harness
import test_http3 as h3
from harness import WraithTestCase, curl, write_file

PROMETHEUS = shutil.which("prometheus")

ROUTES = '''  [[site.route]]
  path = "=/metrics"
  metrics = {}
  [[site.route]]
  path = "=/hello"
  respond = { status = 200, body = "hello, metrics\\n" }
  [[site.route]]
  path = "=/quiet"
  observe = false
  respond = { status = 200, body = "not counted\\n" }
'''
HELLO = len("hello, metrics\n")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def setUpModule():
    h3.setUpModule()


def parse(text):
    """{(name, frozenset of (label, value)): float} of a text-format or OpenMetrics
    exposition; checks every line is a comment or a well-formed sample, and every sample's
    family has a TYPE."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        # A histogram's samples, and (OpenMetrics) a counter's, add a suffix to the family.
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert name in typed or family in typed, f"no TYPE line before {name}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(name, labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        srv = h3.H3Server(h3.static_site(routes=ROUTES), workers=2)
        write_file(srv.path("www", "index.html"), b"index\n")
        h3.start_class_server(cls, srv)

    def scrape(self):
        """The exposition, fetched over HTTP/2 (so HTTP/1.1 and HTTP/3 counts are exact)."""
        r = curl("--http2", "--cacert", h3.PKI.ca.cert, "-D", "-", self.srv.url("/metrics"),
                 check=True)
        head, _, body = r.stdout.decode().partition("\r\n\r\n")
        self.assertRegex(head, r"^HTTP/2 200", head)
        self.assertIn("content-type: text/plain; version=0.0.4", head.lower())
        return parse(body)

    def h1(self, path, *args):
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-o", "/dev/null", "-w",
                 "%{http_code}", *args, self.srv.url(path))
        return r.stdout.decode()

    def h2(self, path):
        r = curl("--http2", "--cacert", h3.PKI.ca.cert, "-o", "/dev/null", "-w",
                 "%{http_code} %{http_version}", self.srv.url(path))
        return r.stdout.decode()

    def settle(self, before_requests):
        """Waits until the scrape itself and everything before it went through the log
        phase (the log phase runs as each exchange ends): a scrape whose h2 count moved."""
        for _ in range(50):
            s = self.scrape()
            if value(s, "wraith_requests_total", protocol="h2", method="GET",
                     code="2xx") > before_requests:
                return s
            time.sleep(0.05)
        self.fail("scrapes are not counted")

    def test_counts_by_protocol_method_status_and_route(self):
        before = self.scrape()
        for _ in range(5):
            self.assertEqual(self.h1("/hello"), "200")
        self.assertEqual(self.h1("/hello", "--data-binary", "x" * 100), "200")
        self.assertEqual(self.h1("/nothing-here.html"), "404")
        for _ in range(3):
            self.assertEqual(self.h2("/hello"), "200 2")
        self.assertEqual(self.h2("/quiet"), "200 2")
        r = h3.h3get(self, self.srv, ["/hello"], "-n", "4", "--summary")
        self.assertEqual(r.returncode, 0, r)
        time.sleep(0.2)
        after = self.settle(value(before, "wraith_requests_total", protocol="h2",
                                  method="GET", code="2xx") + 3)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("wraith_requests_total", protocol="h1", method="GET",
                               code="2xx"), 5)
        self.assertEqual(delta("wraith_requests_total", protocol="h1", method="POST",
                               code="2xx"), 1)
        self.assertEqual(delta("wraith_requests_total", protocol="h1", method="GET",
                               code="4xx"), 1)
        self.assertEqual(delta("wraith_requests_total", protocol="h3", method="GET",
                               code="2xx"), 4)
        # Three to /hello and the first scrape at least; /quiet is left out (observe = false).
        self.assertGreaterEqual(delta("wraith_requests_total", protocol="h2", method="GET",
                                      code="2xx"), 4)
        self.assertEqual(delta("wraith_route_requests_total", site="localhost", route="=/hello",
                               code="2xx"), 5 + 1 + 3 + 4)
        self.assertEqual(delta("wraith_route_requests_total", site="localhost", route="=/quiet",
                               code="2xx"), 0)
        self.assertEqual(delta("wraith_route_response_body_bytes_total", site="localhost",
                               route="=/hello"), 13 * HELLO)
        self.assertEqual(delta("wraith_request_body_bytes_total", protocol="h1"), 100)
        self.assertEqual(delta("wraith_response_body_bytes_total", protocol="h3"), 4 * HELLO)
        # The histogram: cumulative buckets, +Inf equals the count, which equals the requests.
        self.assertEqual(delta("wraith_request_duration_seconds_count", protocol="h3"), 4)
        les = sorted(((float(dict(l)["le"]), v) for (n, l), v in after.items()
                      if n == "wraith_request_duration_seconds_bucket" and
                      dict(l)["protocol"] == "h1"), key=lambda e: e[0])
        self.assertEqual([v for _, v in les], sorted(v for _, v in les), "not cumulative")
        self.assertEqual(les[-1][0], float("inf"))
        self.assertEqual(les[-1][1], value(after, "wraith_request_duration_seconds_count",
                                           protocol="h1"))
        self.assertEqual(value(after, "wraith_workers", state="serving"), 2)
        self.assertGreaterEqual(value(after, "wraith_config_generation"), 1)

    def test_a_reload_neither_resets_nor_double_counts(self):
        for _ in range(3):
            self.assertEqual(self.h1("/hello"), "200")
        before = self.scrape()
        generation = value(before, "wraith_config_generation")
        r = self.srv.reload()
        self.assertEqual(r.returncode, 0, r)
        for _ in range(2):
            self.assertEqual(self.h1("/hello"), "200")
        after = self.scrape()
        # Every worker that answers is of the new generation once the reload is answered.
        self.assertGreater(value(after, "wraith_config_generation"), generation)
        for key, v in before.items():
            if key[0].endswith("_total") or key[0].endswith("_count"):
                self.assertGreaterEqual(after.get(key, 0.0), v, f"{key} went down")
        hello = {"site": "localhost", "route": "=/hello", "code": "2xx"}
        self.assertEqual(value(after, "wraith_route_requests_total", **hello) -
                         value(before, "wraith_route_requests_total", **hello), 2)

    def test_promtool_finds_nothing_to_lint(self):
        """Debian's promtool (from the prometheus package) checks the exposition's syntax and
        Prometheus's naming conventions (units, _total on counters)."""
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is not installed (Debian package prometheus)")
        self.assertEqual(self.h1("/hello"), "200")
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, self.srv.url("/metrics"), check=True)
        lint = subprocess.run([promtool, "check", "metrics"], input=r.stdout,
                              capture_output=True, timeout=30)
        self.assertEqual((lint.returncode, lint.stdout, lint.stderr), (0, b"", b""))

    def test_openmetrics_when_the_client_asks(self):
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-D", "-", "-H",
                 "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                 self.srv.url("/metrics"), check=True)
        head, _, body = r.stdout.decode().partition("\r\n\r\n")
        self.assertIn("content-type: application/openmetrics-text; version=1.0.0",
                      head.lower())
        self.assertTrue(body.endswith("\n# EOF\n"), body[-200:])
        self.assertIn("\n# TYPE wraith_requests counter\n", body)
        self.assertIn("\n# TYPE wraith_request_duration_seconds histogram\n", body)
        samples = parse(body)
        self.assertGreater(sum(v for (n, _), v in samples.items()
                               if n == "wraith_requests_total"), 0)

    def test_only_get_and_head(self):
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-o", "/dev/null", "-w",
                 "%{http_code}", "-X", "DELETE", self.srv.url("/metrics"))
        self.assertEqual(r.stdout.decode(), "405")
        r = curl("--http1.1", "--cacert", h3.PKI.ca.cert, "-I", self.srv.url("/metrics"))
        self.assertRegex(r.stdout.decode(), r"^HTTP/1.1 200")
        self.assertIn("content-length:", r.stdout.decode().lower())


class BadConfigTest(WraithTestCase):
    def test_unknown_options_are_errors_with_their_position(self):
        d = tempfile.mkdtemp(prefix="wraith-metrics-conf-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "wraith.toml")
        write_file(path, b"""[[listen]]
address = "127.0.0.1:8080"
[[site]]
hosts = ["localhost"]
  [[site.route]]
  path = "=/metrics"
  metrics = { format = "json" }
  [[site.route]]
  path = "/"
  observe = 7
  respond = { status = 200 }
""")
        r = harness.run_wraith("check", "-c", path)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(f'{path}:7:15: unknown key "format" in metrics', r.stderr)
        self.assertIn(f"{path}:10:13: site.route.observe: expected a table or true/false, got 7",
                      r.stderr)


class UpstreamStateTest(WraithTestCase):
    """Modules add series of their own (ModuleSpec::export_metrics): the proxy's upstream
    servers, from the passive-health table every worker shares."""

    def test_an_ejected_server_shows(self):
        dead = harness.free_port()
        srv = self.server(f"""
[upstream.app]
servers = ["127.0.0.1:@PORT@", "127.0.0.1:{dead}"]
max_fails = 1
fail_timeout = "60s"

[[site]]
hosts = ["localhost", "127.0.0.1"]
default = true
""" + ROUTES + """  [[site.route]]
  path = "/app/"
  proxy = { upstream = "app", strip_prefix = "/app" }
""")

        def states():
            _, _, body = harness.http_get(srv.port, "/metrics")
            s = parse(body.decode())
            return {(dict(l)["server"], dict(l)["state"]): v for (n, l), v in s.items()
                    if n == "wraith_upstream_server_state"}

        live = f"127.0.0.1:{srv.port}"
        gone = f"127.0.0.1:{dead}"
        before = states()
        self.assertEqual(before[(live, "up")], 1)
        self.assertEqual(before[(gone, "up")], 1, "a server is up until it fails")
        for _ in range(4):  # round robin meets the dead server; the retry goes to the live one
            status, _, body = harness.http_get(srv.port, "/app/hello")
            self.assertEqual((status, body), (200, b"hello, metrics\n"))
        after = states()
        self.assertEqual(after[(gone, "ejected")], 1, after)
        self.assertEqual(after[(gone, "up")], 0, after)
        self.assertEqual(after[(live, "up")], 1, after)
        self.assertEqual(sum(v for (server, _), v in after.items() if server == gone), 1)


class LimitSeriesTest(WraithTestCase):
    """The limit module's decisions, from its zone's counters: the numbers match what the
    client got (200 or 429)."""

    def test_decisions_match_the_answers(self):
        srv = self.server("""
[limit.api]
rate = "1/m"
burst = 2

[[site]]
hosts = ["localhost", "127.0.0.1"]
default = true
""" + ROUTES + """  [[site.route]]
  path = "/api/"
  limit = ["api"]
  respond = { status = 200, body = "api\\n" }
""")
        got = [harness.http_get(srv.port, "/api/x")[0] for _ in range(6)]
        self.assertEqual(sorted(set(got)), [200, 429], got)
        _, _, body = harness.http_get(srv.port, "/metrics")
        s = parse(body.decode())
        self.assertEqual(value(s, "wraith_limit_requests_total", zone="api", decision="passed"),
                         got.count(200))
        self.assertEqual(value(s, "wraith_limit_requests_total", zone="api",
                               decision="rejected"), got.count(429))
        self.assertEqual(value(s, "wraith_limit_evictions_total", zone="api", state="active"), 0)


@unittest.skipIf(PROMETHEUS is None, "prometheus is not installed (Debian package prometheus)")
class RealPrometheusTest(WraithTestCase):
    """Debian's Prometheus scrapes Wraith every second over plain HTTP; the test asks
    Prometheus's HTTP API what it stored, before and after a reload."""

    PROMETHEUS_FLAGS = []

    def setUp(self):
        super().setUp()
        self.srv = self.server('[[site]]\nhosts = ["localhost", "127.0.0.1"]\ndefault = true\n'
                               + ROUTES)
        self.dir = tempfile.mkdtemp(prefix="wraith-prometheus-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.port = harness.free_port()
        write_file(os.path.join(self.dir, "prometheus.yml"), f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: wraith
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{self.srv.port}"]
""".encode())
        log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        self.prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"] + self.PROMETHEUS_FLAGS, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.addCleanup(self.stop_prometheus)
        self.wait_for(lambda: self.api("/-/ready") is not None, "Prometheus ready")

    def stop_prometheus(self):
        if self.prom.poll() is None:
            self.prom.send_signal(signal.SIGTERM)
            try:
                self.prom.wait(10)
            except subprocess.TimeoutExpired:
                self.prom.kill()
                self.prom.wait()

    def api(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read()
        except OSError:
            return None

    def query(self, expr):
        raw = self.api("/api/v1/query?query=" + urllib.parse.quote(expr))
        if raw is None:
            return None
        result = json.loads(raw)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, ok, what, timeout=40):
        deadline = time.monotonic() + timeout * harness.TIME_SCALE
        while time.monotonic() < deadline:
            if ok():
                return
            if self.prom.poll() is not None:
                self.fail(f"prometheus exited: {self.read_log()}")
            time.sleep(0.25)
        self.fail(f"timed out waiting for {what}; prometheus log:\n{self.read_log()}")

    def read_log(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def hello(self, n):
        for _ in range(n):
            status, _, body = harness.http_get(self.srv.port, "/hello")
            self.assertEqual((status, body), (200, b"hello, metrics\n"))

    def test_prometheus_scrapes_and_counters_survive_a_reload(self):
        hello = 'sum(wraith_route_requests_total{route="=/hello",code="2xx"})'
        self.wait_for(lambda: self.query('up{job="wraith"}') == 1.0, "a successful scrape")
        self.hello(7)
        self.wait_for(lambda: self.query(hello) == 7.0, "7 requests to /hello in Prometheus")
        # Prometheus's own scrapes are HTTP/1.1 GETs too.
        self.assertGreaterEqual(self.query('sum(wraith_requests_total{protocol="h1",'
                                           'method="GET",code="2xx"})'), 7)
        generation = self.query("max(wraith_config_generation)")
        r = self.srv.reload()
        self.assertEqual(r.returncode, 0, r)
        self.hello(5)
        self.wait_for(lambda: self.query("max(wraith_config_generation)") == generation + 1,
                      "a scrape of the new generation")
        self.wait_for(lambda: self.query(hello) == 12.0, "12 requests to /hello after a reload")
        # No counter went backwards in what Prometheus stored (a reset would show here).
        self.assertEqual(self.query("sum(resets(wraith_requests_total[5m]))"), 0.0)
        self.assertEqual(self.query("sum(resets(wraith_route_requests_total[5m]))"), 0.0)


@unittest.skipIf(PROMETHEUS is None, "prometheus is not installed (Debian package prometheus)")
class NativeHistogramTest(RealPrometheusTest):
    """With native histograms on, Prometheus asks for the protobuf exposition first: every
    series still arrives, and the request duration is a native histogram."""

    PROMETHEUS_FLAGS = ["--enable-feature=native-histograms"]

    # test_prometheus_scrapes_and_counters_survive_a_reload runs here too, over protobuf.

    def test_request_duration_is_a_native_histogram(self):
        self.wait_for(lambda: self.query('up{job="wraith"}') == 1.0, "a successful scrape")
        self.hello(20)
        count = 'histogram_count(wraith_request_duration_seconds{protocol="h1"})'
        # Prometheus's own scrapes are h1 requests too: at least our 20.
        self.wait_for(lambda: (self.query(count) or 0) >= 20, "a native histogram's count")
        # A native series has no _bucket series beside it.
        self.assertIsNone(self.query('sum(wraith_request_duration_seconds_bucket)'))
        median = self.query('histogram_quantile(0.5, wraith_request_duration_seconds'
                            '{protocol="h1"})')
        self.assertIsNotNone(median)
        self.assertGreater(median, 0)
        self.assertLess(median, 1.0)
        # Other families came through the protobuf too.
        self.assertGreaterEqual(self.query('sum(wraith_route_requests_total{route="=/hello"})'),
                                20)

    def test_the_exposition_decodes(self):
        """The delimited messages parse, by a decoder written from the .proto here."""
        self.hello(3)
        accept = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                  "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.request("GET", "/metrics", headers={"Accept": accept})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("content-type").startswith(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"))
        families = {f[1][0].decode(): f for f in decode_delimited(body)}
        text = parse(harness.http_get(self.srv.port, "/metrics")[2].decode())
        names = {n for n, _ in text if not n.endswith(("_bucket", "_sum", "_count"))}
        names |= {n[:-7] for n, _ in text if n.endswith("_bucket")}
        self.assertEqual(set(families), names)
        duration = families["wraith_request_duration_seconds"]
        self.assertEqual(duration[3][0], 4)  # HISTOGRAM
        for metric in duration[4]:
            m = decode(metric)
            h = decode(m[7][0])
            self.assertEqual(unzigzag(h[5][0]), 3)  # schema
            deltas = [unzigzag(d) for d in h.get(13, [])]
            counts, c = [], 0
            for d in deltas:
                c += d
                counts.append(c)
            self.assertTrue(all(n > 0 for n in counts), counts)
            self.assertEqual(sum(counts) + h.get(7, [0])[0], h[1][0])


def varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if b < 0x80:
            return n, i


def unzigzag(n):
    return (n >> 1) ^ -(n & 1)


def decode(data):
    """{field: [values]} of one protobuf message (varints as ints, length-delimited as bytes,
    64-bit as doubles)."""
    out, i = {}, 0
    while i < len(data):
        key, i = varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(data, i)
        elif wire == 1:
            v = struct.unpack("<d", data[i:i + 8])[0]
            i += 8
        elif wire == 2:
            n, i = varint(data, i)
            v = data[i:i + n]
            i += n
        else:
            raise AssertionError(f"wire type {wire}")
        out.setdefault(field, []).append(v)
    return out


def decode_delimited(data):
    i = 0
    while i < len(data):
        n, i = varint(data, i)
        yield decode(data[i:i + n])
        i += n


if __name__ == "__main__":
    unittest.main()
