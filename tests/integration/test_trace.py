"""W3C Trace Context and OTLP export: with [trace], every request carries a traceparent to its
upstream (the client's trace continued, or a new one), tracestate passes unchanged, the access
log has the trace ID, and the spans of sampled traces reach an OTLP/HTTP collector (a Python
HTTP server here that records what it is sent). A collector that is down, silent or slow costs
counters, never a request."""

import json
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import tlsutil
from harness import Wraith, WraithTestCase, http_get, toml_str, wait_for
from test_metrics import parse, value

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records requests: the backend (headers) and the
    collector (POSTed JSON). `mode`: "ok", "fail" (503), "silent" (reads, never answers)."""

    daemon_threads = True

    def __init__(self, tls_cert=None):
        self.requests = []
        self.mode = "ok"
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self, body):
                with recorder.lock:
                    recorder.requests.append((self.command, self.path, dict(self.headers), body))
                if recorder.mode == "silent":
                    time.sleep(3)
                    return
                status = 503 if recorder.mode == "fail" else 200
                payload = b"{}" if self.command == "POST" else b"backend\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self.handle_one(b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.handle_one(self.rfile.read(n))

        super().__init__(("127.0.0.1", 0), Handler)
        if tls_cert:  # an https collector: tlsutil.Cert
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert.chain, tls_cert.key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        out = []
        with self.lock:
            posts = [r for r in self.requests if r[0] == "POST"]
        for _, path, headers, body in posts:
            doc = json.loads(body)
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out.extend(ss["spans"])
        return out

    def close(self):
        self.shutdown()
        self.server_close()


def site(backend_port):
    return f'''
[upstream.app]
servers = [{{ address = "127.0.0.1:{backend_port}" }}]

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "=/metrics"
  metrics = {{}}
  trace = false
  [[site.route]]
  path = "/"
  proxy = {{ upstream = "app" }}
'''


class TraceTest(WraithTestCase):
    def start(self, trace_keys, collector=True, host="127.0.0.1", tls_cert=None):
        self.backend = Recorder()
        self.addCleanup(self.backend.close)
        self.collector = None
        otlp = ""
        if collector:
            self.collector = Recorder(tls_cert)
            self.addCleanup(self.collector.close)
            scheme = "https" if tls_cert else "http"
            otlp = f'otlp = "{scheme}://{host}:{self.collector.port}/v1/traces"\n'
        text = f"[trace]\n{otlp}{trace_keys}\n" + site(self.backend.port)
        srv = Wraith(text, workers=1, access_log={"path": '"@DIR@/logs/access.log"',
                                                  "format": '"json"'})
        srv.access_log_conf = {"path": toml_str(srv.access_log), "format": '"json"'}
        srv.write_config()
        self.servers.append(srv)
        srv.start()
        self.srv = srv
        return srv

    def backend_saw(self, marker):
        def find():
            with self.backend.lock:
                for method, path, headers, _ in self.backend.requests:
                    if marker in path:
                        return {k.lower(): v for k, v in headers.items()}
        return wait_for(find, what=f"the backend's copy of {marker}")

    def log_entry(self, marker):
        line = self.srv.wait_log_line(lambda l: marker in l, what=f"the log line of {marker}")
        return json.loads(line)

    def span_for(self, trace_id):
        return wait_for(lambda: next((s for s in self.collector.spans()
                                      if s["traceId"] == trace_id), None),
                        what=f"the span of trace {trace_id}")

    def scrape(self):
        status, _, body = http_get(self.srv.port, "/metrics")
        self.assertEqual(status, 200)
        return parse(body.decode())

    def test_a_trace_starts_and_is_exported(self):
        self.start('interval = "100ms"')
        status, _, _ = http_get(self.srv.port, "/new?x=1")
        self.assertEqual(status, 200)
        headers = self.backend_saw("/new")
        m = TRACEPARENT.match(headers["traceparent"])
        self.assertTrue(m, headers["traceparent"])
        trace_id, our_span, flags = m.groups()
        self.assertEqual(flags, "01")
        self.assertNotIn("tracestate", headers)
        self.assertEqual(self.log_entry("/new")["trace_id"], trace_id)
        span = self.span_for(trace_id)
        self.assertEqual(span["spanId"], our_span)
        self.assertNotIn("parentSpanId", span)
        self.assertEqual(span["name"], "GET /")
        self.assertEqual(span["kind"], 2)
        attrs = {a["key"]: a["value"] for a in span["attributes"]}
        self.assertEqual(attrs["url.path"]["stringValue"], "/new")
        self.assertEqual(attrs["http.request.method"]["stringValue"], "GET")
        self.assertEqual(attrs["http.response.status_code"]["intValue"], "200")
        self.assertLessEqual(int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"]))
        self.assertLess(abs(int(span["startTimeUnixNano"]) / 1e9 - time.time()), 60)
        with self.collector.lock:
            post = [r for r in self.collector.requests if r[0] == "POST"][0]
        self.assertEqual(post[1], "/v1/traces")
        self.assertEqual(post[2]["Content-Type"], "application/json")
        doc = json.loads(post[3])
        resource = doc["resourceSpans"][0]["resource"]["attributes"]
        self.assertIn({"key": "service.name", "value": {"stringValue": "wraith"}}, resource)

    def test_the_clients_trace_continues_and_tracestate_passes(self):
        self.start('interval = "100ms"')
        incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        status, _, _ = http_get(self.srv.port, "/continued",
                                headers={"traceparent": incoming, "tracestate": "vendor=x,o=1"})
        self.assertEqual(status, 200)
        headers = self.backend_saw("/continued")
        m = TRACEPARENT.match(headers["traceparent"])
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")  # our span is the new parent
        self.assertEqual(headers["tracestate"], "vendor=x,o=1")
        span = self.span_for("4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(span["parentSpanId"], "00f067aa0ba902b7")
        self.assertEqual(span["spanId"], m.group(2))

    def test_invalid_traceparents_restart_the_trace(self):
        self.start('interval = "100ms"')
        for n, bad in enumerate([
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # v00 + extra
                "garbage"]):
            status, _, _ = http_get(self.srv.port, f"/bad{n}",
                                    headers={"traceparent": bad, "tracestate": "a=b"})
            self.assertEqual(status, 200)
            headers = self.backend_saw(f"/bad{n}")
            m = TRACEPARENT.match(headers["traceparent"])
            self.assertTrue(m, (bad, headers["traceparent"]))
            self.assertNotEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736", bad)
            self.assertNotIn("tracestate", headers, bad)
        # A later version with extra fields is read by its known prefix.
        status, _, _ = http_get(self.srv.port, "/future", headers={
            "traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"})
        self.assertEqual(status, 200)
        m = TRACEPARENT.match(self.backend_saw("/future")["traceparent"])
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")

    def test_unsampled_traces_propagate_but_are_not_exported(self):
        self.start('interval = "100ms"')
        incoming = "00-11111111111111111111111111111111-2222222222222222-00"
        http_get(self.srv.port, "/unsampled", headers={"traceparent": incoming})
        m = TRACEPARENT.match(self.backend_saw("/unsampled")["traceparent"])
        self.assertEqual((m.group(1), m.group(3)), ("11111111111111111111111111111111", "00"))
        http_get(self.srv.port, "/sampled")
        sampled = TRACEPARENT.match(self.backend_saw("/sampled")["traceparent"]).group(1)
        self.span_for(sampled)  # exported after the unsampled one was logged
        self.assertFalse(any(s["traceId"] == "1" * 32 for s in self.collector.spans()))

    def test_without_trust_or_generate(self):
        self.start('trust_incoming = false\ngenerate = false', collector=False)
        incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        http_get(self.srv.port, "/untrusted", headers={"traceparent": incoming,
                                                         "tracestate": "a=b"})
        headers = self.backend_saw("/untrusted")
        self.assertNotIn("traceparent", headers)
        self.assertNotIn("tracestate", headers)
        self.assertNotIn("trace_id", self.log_entry("/untrusted"))

    def test_a_collector_that_is_down_or_silent_costs_counters_only(self):
        srv = self.start('interval = "100ms"\ntimeout = "300ms"')
        self.collector.mode = "fail"
        for i in range(3):
            self.assertEqual(http_get(srv.port, f"/down{i}")[0], 200)
        wait_for(lambda: value(self.scrape(), "wraith_trace_spans_total", result="failed") >= 3,
                 what="failed spans counted")
        self.collector.mode = "silent"
        before = value(self.scrape(), "wraith_trace_spans_total", result="failed")
        t0 = time.monotonic()
        for i in range(3):
            self.assertEqual(http_get(srv.port, f"/silent{i}")[0], 200)
        self.assertLess(time.monotonic() - t0, 2, "requests waited for the collector")
        wait_for(lambda: value(self.scrape(), "wraith_trace_spans_total",
                               result="failed") > before, what="timed-out spans counted")
        self.assertIn("trace: OTLP export", srv.read(srv.error_log))
        self.assertEqual(srv.crashes(), [])

    def exported_one(self, marker):
        """A request, and its span at the collector."""
        self.assertEqual(http_get(self.srv.port, marker)[0], 200)
        trace_id = TRACEPARENT.match(self.backend_saw(marker)["traceparent"]).group(1)
        return self.span_for(trace_id)

    def test_a_collector_by_host_name(self):
        # localhost is ::1 and 127.0.0.1; the collector listens on 127.0.0.1 only, so the
        # refused IPv6 address moves on to IPv4 at once (Happy Eyeballs).
        self.start('interval = "100ms"', host="localhost")
        self.assertEqual(self.exported_one("/by-name")["name"], "GET /")
        with self.collector.lock:
            post = [r for r in self.collector.requests if r[0] == "POST"][0]
        self.assertEqual(post[2]["Host"], f"localhost:{self.collector.port}")

    def pki(self):
        """Two unrelated CAs (each in a folder of its own)."""
        cas = []
        for name in ("otlp-ca", "other-ca"):
            d = tempfile.mkdtemp(prefix=f"wraith-{name}-")
            self.addCleanup(shutil.rmtree, d, True)
            cas.append(tlsutil.Ca(d, name))
        return cas

    def test_an_https_collector(self):
        ca, _ = self.pki()
        cert = ca.issue("collector", ["localhost"])
        self.start(f'interval = "100ms"\notlp_ca = {toml_str(ca.cert)}', host="localhost",
                   tls_cert=cert)
        span = self.exported_one("/over-tls")
        self.assertEqual(span["name"], "GET /")
        self.assertEqual(value(self.scrape(), "wraith_trace_spans_total", result="failed"), 0)

    def test_an_https_collector_with_an_untrusted_certificate(self):
        ca, other = self.pki()
        cert = other.issue("collector", ["localhost"])
        srv = self.start(f'interval = "100ms"\notlp_ca = {toml_str(ca.cert)}',
                         host="localhost", tls_cert=cert)
        for i in range(3):
            self.assertEqual(http_get(srv.port, f"/untrusted{i}")[0], 200)
        wait_for(lambda: value(self.scrape(), "wraith_trace_spans_total", result="failed") >= 3,
                 what="spans to an untrusted collector counted as failed")
        self.assertEqual(value(self.scrape(), "wraith_trace_spans_total", result="exported"), 0)
        self.assertIn("certificate verify failed", srv.read(srv.error_log))
        self.assertEqual(self.collector.spans(), [])

    def test_an_unreachable_collector(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.backend = Recorder()
        self.addCleanup(self.backend.close)
        text = (f'[trace]\notlp = "http://127.0.0.1:{port}/v1/traces"\ninterval = "100ms"\n' +
                site(self.backend.port))
        self.srv = srv = Wraith(text, workers=1)
        self.servers.append(srv)
        srv.start()
        for i in range(5):
            self.assertEqual(http_get(srv.port, f"/nowhere{i}")[0], 200)
        wait_for(lambda: value(self.scrape(), "wraith_trace_spans_total", result="failed") >= 5,
                 what="spans to an unreachable collector counted as failed")

    def test_a_full_queue_drops_and_counts(self):
        srv = self.start('interval = "10s"\nqueue = 4\nbatch = 4\ntimeout = "5s"')
        self.collector.mode = "silent"  # the first batch of 4 hangs; the rest find no room
        before = self.scrape()
        for i in range(12):
            self.assertEqual(http_get(srv.port, f"/full{i}")[0], 200)
        after = self.scrape()

        def delta(result):
            return (value(after, "wraith_trace_spans_total", result=result) -
                    value(before, "wraith_trace_spans_total", result=result))

        self.assertGreaterEqual(delta("dropped"), 4)
        self.assertEqual(delta("queued") + delta("dropped"), 12)

    def test_trace_id_in_a_log_format(self):
        self.backend = Recorder()
        self.addCleanup(self.backend.close)
        srv = Wraith("[trace]\n" + site(self.backend.port), workers=1)
        srv.access_log_conf = {"path": toml_str(srv.access_log),
                               "format": toml_str("$request_uri trace=$trace_id span=$span_id")}
        srv.write_config()
        self.servers.append(srv)
        srv.start()
        self.srv = srv
        http_get(srv.port, "/fmt")
        tp = TRACEPARENT.match(self.backend_saw("/fmt")["traceparent"])
        line = srv.wait_log_line(lambda l: l.startswith("/fmt"))
        self.assertEqual(line, f"/fmt trace={tp.group(1)} span={tp.group(2)}")

    def test_bad_tables(self):
        for keys, message in [
                ('otlp = "ftp://127.0.0.1:4318/v1/traces"', "expected http:// or https://"),
                ('otlp = "http://bad_host!:4318/v1/traces"', "neither an IP address nor a host"),
                ('otlp = "http://127.0.0.1:99999/v1/traces"', "bad port"),
                ('otlp = "http://127.0.0.1:4318/"\notlp_ca = "ca.pem"', "needs an https://"),
                ('otlp = "https://127.0.0.1:4318/"\notlp_ca = "/nonexistent/ca.pem"',
                 "otlp_ca"),
                ("queue = 2\nbatch = 8", "batch: must not exceed queue"),
                ("sample = 3", 'unknown key "sample"')]:
            srv = Wraith(f"[trace]\n{keys}\n" + site(1), workers=1)
            self.servers.append(srv)
            r = harness.run_wraith("check", "-c", srv.conf)
            self.assertEqual(r.returncode, 1, keys)
            self.assertRegex(r.stderr, r"wraith\.toml:\d+:\d+: .*" + re.escape(message), keys)


if __name__ == "__main__":
    harness.main()
