"""Reverse proxy (`proxy` route handler, [upstream.NAME]): requests and bodies forwarded to real
python3 http.server backends started here on 127.0.0.1, forwarded headers, smooth weighted round
robin, upstream keep-alive reuse, and the bad-upstream cases (refused, silent, malformed,
closed mid-body), over HTTP/1.1 and h2c."""

import hashlib
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import WraithTestCase, Wraith, curl, free_port, raw_request, write_file

BIG = random.Random(20).randbytes(20 << 20)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


class Backend(ThreadingHTTPServer):
    """A threaded test backend named `name` that counts the connections it accepted."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name):
        self.name = name
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), BackendHandler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def process_request(self, request, client_address):
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def stop(self):
        self.shutdown()
        self.server_close()


class BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body, True
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), False

    def reply(self, status, body, ctype="application/octet-stream", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        path = self.path
        if path.startswith("/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            view = memoryview(BIG)
            for i in range(0, len(BIG), 1 << 20):
                self.wfile.write(view[i:i + (1 << 20)])
            return
        if path.startswith("/slow"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                piece = f"piece {i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/midclose"):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 100000)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if path.startswith("/malformed"):
            self.wfile.write(b"HTTP/1.1 2x0 Oops\r\nContent-Length: 2\r\n\r\nok")
            self.close_connection = True
            return
        if path.startswith("/badheader"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok")
            self.close_connection = True
            return
        if path.startswith("/silent"):
            time.sleep(3)
            self.close_connection = True
            return
        if path.startswith("/name"):
            return self.reply(200, self.server.name.encode(), "text/plain")
        if path.startswith("/informational"):
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                             b"Link: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                             b"\r\nfinal")
            return
        body, chunked = self.read_body()
        info = {
            "server": self.server.name,
            "method": self.command,
            "path": path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "chunked": chunked,
            "body_len": len(body),
            "body_sha": hashlib.sha256(body).hexdigest(),
            "body": body[:200].decode("latin-1"),
        }
        self.reply(200, json.dumps(info).encode(), "application/json",
                   extra=[("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"),
                          ("Keep-Alive", "timeout=5"), ("X-Backend", self.server.name)])

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


def header_values(info, name):
    return [v for k, v in info["headers"] if k == name]


class ProxyServer(Wraith):
    """A Wraith whose listener speaks HTTP/1.1 and h2c."""

    def render(self, sites=None):
        text = super().render(sites)
        listen = f'address = "127.0.0.1:{self.port}"'
        return text.replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)


def h2curl(port, path, *args, timeout=60):
    r = curl("--http2-prior-knowledge", "-s", "-o", "-", "-w", "\n%{http_code} %{http_version}",
             *args, f"http://127.0.0.1:{port}{path}", timeout=timeout)
    body, _, tail = r.stdout.rpartition(b"\n")
    code, _, version = tail.decode().partition(" ")
    r.body = body
    return r, int(code or 0), version


class ProxyTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1")
        cls.b2 = Backend("b2")
        cls.refused_port = free_port(ipv6_too=False)
        sites = f'''
[upstream.main]
servers = ["127.0.0.1:{cls.b1.port}"]
keepalive = 8

[upstream.pair]
servers = [{{ address = "127.0.0.1:{cls.b1.port}", weight = 1 }},
           {{ address = "127.0.0.1:{cls.b2.port}", weight = 2 }}]
balance = "round_robin"

[upstream.quick]
servers = ["127.0.0.1:{cls.b1.port}"]
read_timeout = "1s"
connect_timeout = "1s"

[[site]]
hosts = ["rid.test"]
access_log = {{ path = "@DIR@/logs/json.log", format = "json" }}
  [[site.route]]
  path = "/"
  proxy = {{ upstream = "main" }}

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/trusted/"
  proxy = {{ upstream = "main", strip_prefix = "/trusted", trusted_proxies = ["10.0.0.0/8", "::1/128", "127.0.0.1/32"] }}
  [[site.route]]
  path = "/rules/"
  proxy = {{ upstream = "main", strip_prefix = "/rules", request_headers = {{ set = {{ "X-A" = "1", "host" = "rewritten.test" }}, add = {{ "x-added" = "2" }}, remove = ["x-b"] }}, response_headers = {{ set = {{ "x-resp" = "s" }}, add = {{ "x-resp-add" = "a" }}, remove = ["x-backend"] }} }}
  [[site.route]]
  path = "/old/"
  proxy = {{ upstream = "main", strip_prefix = "/old", replace_prefix = "/v2" }}
  [[site.route]]
  path = "/rr/"
  proxy = {{ upstream = "pair", strip_prefix = "/rr" }}
  [[site.route]]
  path = "/api/"
  proxy = {{ pass = "http://127.0.0.1:{cls.b1.port}", strip_prefix = "/api", preserve_host = true }}
  [[site.route]]
  path = "/refused/"
  proxy = {{ pass = "http://127.0.0.1:{cls.refused_port}" }}
  [[site.route]]
  path = "/silent"
  proxy = {{ upstream = "quick" }}
  [[site.route]]
  path = "/"
  proxy = {{ upstream = "main" }}
'''
        cls.srv = ProxyServer(sites, workers=1, http={"client_max_body_size": '"64m"'})
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.b1.stop()
        cls.b2.stop()

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            c.close()

    def assertHealthy(self):
        status, _, body = self.request("GET", "/name")
        self.assertEqual((status, body), (200, b"b1"))

    # -- forwarding

    def test_get_forwards_method_path_and_headers(self):
        status, headers, body = self.request(
            "GET", "/echo/a%20b?x=1&y=2",
            headers={"X-Test": "yes", "Connection": "keep-alive, X-Drop", "X-Drop": "1",
                     "Keep-Alive": "timeout=5", "Proxy-Authorization": "secret",
                     "X-Forwarded-For": "10.0.0.1", "TE": "deflate, trailers"})
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(info["method"], "GET")
        self.assertEqual(info["path"], "/echo/a%20b?x=1&y=2")
        self.assertEqual(header_values(info, "host"), [f"127.0.0.1:{self.b1.port}"])
        self.assertEqual(header_values(info, "x-test"), ["yes"])
        # The client is not a trusted proxy: its X-Forwarded-For is replaced, not appended to.
        self.assertEqual(header_values(info, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(header_values(info, "x-forwarded-proto"), ["http"])
        self.assertEqual(header_values(info, "x-forwarded-host"), [f"127.0.0.1:{self.srv.port}"])
        self.assertEqual(header_values(info, "via"), ["1.1 wraith"])
        for hop in ("x-drop", "keep-alive", "proxy-authorization", "connection"):
            self.assertEqual(header_values(info, hop), [], hop)
        # TE is hop-by-hop, but the proxy passes trailers on, so a client's "trailers" is
        # ours to say upstream; its other codings are not.
        self.assertEqual(header_values(info, "te"), ["trailers"])
        names = [k.lower() for k, _ in headers]
        self.assertIn("x-backend", names)
        for hop in ("x-hop", "keep-alive"):
            self.assertNotIn(hop, names)

    def test_x_forwarded_for_is_the_client_ip(self):
        _, _, body = self.request("GET", "/echo")
        self.assertEqual(header_values(json.loads(body), "x-forwarded-for"), ["127.0.0.1"])

    def test_post_body_forwarded(self):
        status, _, body = self.request("POST", "/echo", body=b"hello upstream",
                                       headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual((info["method"], info["body"]), ("POST", "hello upstream"))
        self.assertEqual(header_values(info, "content-length"), ["14"])

    def test_upload_5mib_hash_at_backend(self):
        data = random.Random(5).randbytes(5 << 20)
        status, _, body = self.request("PUT", "/echo", body=data)
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(info["body_len"], len(data))
        self.assertEqual(info["body_sha"], hashlib.sha256(data).hexdigest())
        self.assertFalse(info["chunked"])

    def test_curl_upload_with_expect_continue(self):
        data = random.Random(8).randbytes(2 << 20)
        path = write_file(os.path.join(self.srv.dir, "expect.bin"), data)
        r = curl("-s", "--http1.1", "-H", "Expect: 100-continue", "--data-binary", f"@{path}",
                 f"http://127.0.0.1:{self.srv.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(info["body_sha"], hashlib.sha256(data).hexdigest())
        self.assertEqual(header_values(info, "expect"), [])

    def test_chunked_upload_is_rechunked(self):
        data = random.Random(6).randbytes(300000)

        def gen():
            for i in range(0, len(data), 70000):
                yield data[i:i + 70000]

        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        c.request("POST", "/echo", body=gen(), encode_chunked=True)
        r = c.getresponse()
        info = json.loads(r.read())
        c.close()
        self.assertEqual(r.status, 200)
        self.assertTrue(info["chunked"])
        self.assertEqual(info["body_sha"], hashlib.sha256(data).hexdigest())

    def test_download_20mib(self):
        status, _, body = self.request("GET", "/big")
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(BIG))
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)

    def test_head_has_no_body(self):
        status, headers, body = self.request("HEAD", "/echo")
        self.assertEqual((status, body), (200, b""))

    def test_slow_stream(self):
        start = time.monotonic()
        status, _, body = self.request("GET", "/slow")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"".join(f"piece {i}\n".encode() for i in range(5)))
        self.assertGreater(time.monotonic() - start, 0.4)

    def test_informational_responses_skipped(self):
        status, _, body = self.request("GET", "/informational")
        self.assertEqual((status, body), (200, b"final"))

    def test_strip_prefix_and_preserve_host(self):
        _, _, body = self.request("GET", "/api/echo?q=1", headers={"Host": "example.test"})
        info = json.loads(body)
        self.assertEqual(info["path"], "/echo?q=1")
        self.assertEqual(header_values(info, "host"), ["example.test"])

    # -- forwarded headers, request ids, header rules, prefix replace

    SPOOF = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "evil.test", "Forwarded": "for=6.6.6.6;proto=https"}

    def test_untrusted_forwarding_headers_are_replaced(self):
        _, _, body = self.request("GET", "/echo", headers=self.SPOOF)
        info = json.loads(body)
        self.assertEqual(header_values(info, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(header_values(info, "x-forwarded-proto"), ["http"])
        self.assertEqual(header_values(info, "x-forwarded-host"), [f"127.0.0.1:{self.srv.port}"])
        self.assertEqual(header_values(info, "forwarded"),
                         [f'for=127.0.0.1;proto=http;host="127.0.0.1:{self.srv.port}"'])

    def test_trusted_forwarding_headers_are_kept_and_appended(self):
        _, _, body = self.request("GET", "/trusted/echo", headers=self.SPOOF)
        info = json.loads(body)
        self.assertEqual(info["path"], "/echo")
        self.assertEqual(header_values(info, "x-forwarded-for"), ["6.6.6.6, 127.0.0.1"])
        self.assertEqual(header_values(info, "x-forwarded-proto"), ["https"])
        self.assertEqual(header_values(info, "x-forwarded-host"), ["evil.test"])
        self.assertEqual(header_values(info, "forwarded"), [
            f'for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host="127.0.0.1:{self.srv.port}"'])

    def test_forwarded_without_incoming_headers(self):
        _, _, body = self.request("GET", "/trusted/echo", headers={"Host": "example.test"})
        info = json.loads(body)
        self.assertEqual(header_values(info, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(header_values(info, "forwarded"),
                         ["for=127.0.0.1;proto=http;host=example.test"])

    def test_request_id_generated_when_absent(self):
        ids = set()
        for _ in range(3):
            status, headers, body = self.request("GET", "/echo")
            self.assertEqual(status, 200)
            rid = dict((k.lower(), v) for k, v in headers)["x-request-id"]
            self.assertRegex(rid, r"^[0-9a-f]{32}$")
            self.assertEqual(header_values(json.loads(body), "x-request-id"), [rid])
            ids.add(rid)
        self.assertEqual(len(ids), 3)

    def test_request_id_replaced_when_untrusted(self):
        _, headers, body = self.request("GET", "/echo", headers={"X-Request-ID": "client-id-1"})
        rid = dict((k.lower(), v) for k, v in headers)["x-request-id"]
        self.assertRegex(rid, r"^[0-9a-f]{32}$")
        self.assertEqual(header_values(json.loads(body), "x-request-id"), [rid])

    def test_request_id_kept_when_trusted(self):
        _, headers, body = self.request("GET", "/trusted/echo",
                                        headers={"X-Request-ID": "abc.DEF_12-3"})
        self.assertEqual(dict((k.lower(), v) for k, v in headers)["x-request-id"], "abc.DEF_12-3")
        self.assertEqual(header_values(json.loads(body), "x-request-id"), ["abc.DEF_12-3"])
        # Malformed ids are replaced even from a trusted proxy.
        _, headers, body = self.request("GET", "/trusted/echo",
                                        headers={"X-Request-ID": "bad id!"})
        rid = dict((k.lower(), v) for k, v in headers)["x-request-id"]
        self.assertRegex(rid, r"^[0-9a-f]{32}$")
        self.assertEqual(header_values(json.loads(body), "x-request-id"), [rid])

    def test_request_id_in_json_access_log(self):
        status, headers, body = self.request("GET", "/echo/rid-log",
                                             headers={"Host": "rid.test"})
        self.assertEqual(status, 200)
        rid = dict((k.lower(), v) for k, v in headers)["x-request-id"]
        self.assertEqual(header_values(json.loads(body), "x-request-id"), [rid])
        log = self.srv.path("logs", "json.log")

        def find():
            for line in self.srv.access_log_lines(log):
                if "rid-log" in line:
                    return json.loads(line)
            return None
        entry = harness.wait_for(find, 10, what="json access log line")
        self.assertEqual(entry["request_id"], rid)

    def test_request_and_response_header_rules(self):
        status, headers, body = self.request(
            "GET", "/rules/echo", headers={"X-A": "client", "X-B": "drop me", "X-Added": "1"})
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(header_values(info, "x-a"), ["1"])
        self.assertEqual(header_values(info, "x-b"), [])
        self.assertEqual(header_values(info, "x-added"), ["1", "2"])
        self.assertEqual(header_values(info, "host"), ["rewritten.test"])
        names = [k.lower() for k, _ in headers]
        got = dict((k.lower(), v) for k, v in headers)
        self.assertNotIn("x-backend", names)
        self.assertEqual(got.get("x-resp"), "s")
        self.assertEqual(got.get("x-resp-add"), "a")

    def test_replace_prefix(self):
        _, _, body = self.request("GET", "/old/x/y?q=1")
        self.assertEqual(json.loads(body)["path"], "/v2/x/y?q=1")

    # -- balancing and pooling

    def test_round_robin_weights(self):
        counts = {}
        for _ in range(30):
            status, _, body = self.request("GET", "/rr/name")
            self.assertEqual(status, 200)
            counts[body.decode()] = counts.get(body.decode(), 0) + 1
        self.assertEqual(counts, {"b1": 10, "b2": 20})

    def test_keepalive_reuse(self):
        before = self.b1.connections
        for _ in range(20):
            status, _, _ = self.request("GET", "/echo")
            self.assertEqual(status, 200)
        used = self.b1.connections - before
        self.assertLess(used, 5, f"backend saw {used} connections for 20 requests")

    # -- bad upstreams

    def test_refused_is_502(self):
        status, _, body = self.request("GET", "/refused/x")
        self.assertEqual(status, 502)
        self.srv.wait_log_line(lambda l: "Connection refused" in l, path=self.srv.error_log,
                               what="connect refused log line")

    def test_silent_backend_is_504(self):
        start = time.monotonic()
        status, _, _ = self.request("GET", "/silent")
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - start, 2.9)

    def test_malformed_status_line_is_502(self):
        self.assertEqual(self.request("GET", "/malformed")[0], 502)
        self.assertEqual(self.request("GET", "/badheader")[0], 502)
        self.assertHealthy()

    def test_mid_body_close_aborts_client(self):
        res = raw_request(self.srv.port, b"GET /midclose HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
        self.assertEqual(res.status, 200)
        self.assertTrue(res.closed, res)
        head, _, body = res.data.partition(b"\r\n\r\n")
        self.assertIn(b"content-length: 1000000", head.lower())
        self.assertLess(len(body), 1000000)
        self.assertHealthy()

    def worker_fds(self):
        pid = self.srv.worker_pids()[0]
        return len(os.listdir(f"/proc/{pid}/fd"))

    def test_client_abort_and_errors_leak_no_fds(self):
        self.assertHealthy()
        before = self.worker_fds()
        for _ in range(5):
            # The client goes away in the middle of a 20 MiB download.
            s = harness.connect(self.srv.port)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
            s.close()
            self.request("GET", "/refused/")
            self.request("GET", "/malformed")
            raw_request(self.srv.port, b"GET /midclose HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertHealthy()
        # Idle pooled connections (keepalive = 8 per upstream) may remain; nothing else.
        harness.wait_for(lambda: self.worker_fds() <= before + 8, timeout=10,
                         what=f"worker fds back near {before} (now {self.worker_fds()})")

    # -- HTTP/2 frontend

    def test_h2_get_and_upload(self):
        r, status, version = h2curl(self.srv.port, "/echo?h2=1", "-H", "X-Test: h2")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        info = json.loads(r.body)
        self.assertEqual(info["path"], "/echo?h2=1")
        self.assertEqual(header_values(info, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(header_values(info, "via"), ["1.1 wraith"])
        data = random.Random(7).randbytes(3 << 20)
        path = write_file(os.path.join(self.srv.dir, "upload.bin"), data)
        r, status, _ = h2curl(self.srv.port, "/echo", "--data-binary", f"@{path}")
        self.assertEqual(status, 200, r.stderr)
        info = json.loads(r.body)
        self.assertEqual(info["body_sha"], hashlib.sha256(data).hexdigest())

    def test_h2_download_and_errors(self):
        r, status, _ = h2curl(self.srv.port, "/big")
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), BIG_SHA)
        self.assertEqual(h2curl(self.srv.port, "/refused/")[1], 502)
        self.assertEqual(h2curl(self.srv.port, "/malformed")[1], 502)
        r, status, _ = h2curl(self.srv.port, "/midclose")
        self.assertNotEqual(r.returncode, 0, "curl should see the stream reset")
        self.assertLess(len(r.body), 1000000)
        self.assertHealthy()


class ProxyConfigTest(WraithTestCase):
    def check(self, sites):
        srv = Wraith(sites, workers=1)
        self.servers.append(srv)
        return srv.cli("check")

    def test_bad_proxy_header_config_is_reported(self):
        for bad, what in (
                ('trusted_proxies = ["10.0.0.0/33"]', "bad prefix length"),
                ('trusted_proxies = ["nope"]', "expected an IP address"),
                ('request_headers = { set = { "bad name" = "1" } }', "not a valid header name"),
                ('response_headers = { add = { "x-a" = "a\\r\\nb" } }', "CR, LF"),
                ('request_headers = { remove = ["content-length"] }', "managed by the proxy"),
                ('replace_prefix = "/v2"', "needs strip_prefix")):
            r = self.check('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                           '  proxy = { pass = "http://127.0.0.1:9", ' + bad + ' }\n')
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn(what, r.stderr, bad)
            self.assertRegex(r.stderr, r"\.toml:\d+:\d+: ", bad)

    def test_unknown_upstream_is_an_error(self):
        r = self.check('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                       '  proxy = { upstream = "nope" }\n')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('unknown upstream "nope"', r.stderr)

    def test_bad_host_names_are_reported(self):
        for bad, what in (('"backend..example:80"', "bad host name"),
                          ('"backend.example"', 'expected "HOST:PORT"'),
                          ('"backend.example:99999"', "bad port")):
            r = self.check(f'[upstream.app]\nservers = [{bad}]\n')
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(what, r.stderr)

    def test_balance_methods_and_their_mistakes(self):
        site = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                '  proxy = { upstream = "app" }\n')
        for method in ("round_robin", "least_conn", "random_two", "hash"):
            r = self.check(f'[upstream.app]\nservers = ["127.0.0.1:80", "127.0.0.1:81"]\n'
                           f'balance = "{method}"\n\n' + site)
            self.assertEqual(r.returncode, 0, method + r.stderr)
        r = self.check('[upstream.app]\nservers = ["127.0.0.1:80"]\nbalance = "fastest"\n')
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"\.toml:\d+:\d+: upstream\.app\.balance: expected one of "
                                   r"\"round_robin\", \"least_conn\", \"random_two\", \"hash\"")
        r = self.check('[upstream.app]\nservers = ["127.0.0.1:80"]\nhash_key = "uri"\n')
        self.assertIn('applies to balance = "hash"', r.stderr)
        r = self.check('[upstream.app]\nservers = ["127.0.0.1:80"]\nbalance = "hash"\n'
                       'hash_key = "body"\n')
        self.assertIn("header:NAME", r.stderr)
        r = self.check('[upstream.app]\nservers = [{ address = "127.0.0.1:80", down = true },'
                       ' { address = "127.0.0.1:81", backup = true }]\n')
        self.assertIn("neither down nor backup", r.stderr)


if __name__ == "__main__":
    harness.main()
