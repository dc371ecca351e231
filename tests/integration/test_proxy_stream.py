"""Proxied bodies beyond plain streaming: response trailers passed on to HTTP/1.1 (chunked) and
HTTP/2 clients (HTTP/3: test_http3_proxy), buffer_request_body (a chunked or length-less
upload reaches the backend with a Content-Length, large ones through a temporary file with flat
worker memory, and a buffered body is sent again when a retry goes to another server), and a
retry after the request head was already sent (first_byte_timeout, a backend that hangs up)."""

import hashlib
import http.client
import os
import socket
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import WraithTestCase, proc_status, raw_request
from test_proxy import ProxyServer

TRAILER_BODY = b"hello trailers\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/api/redirect":
            self.send_response(301)
            self.send_header("Location", f"http://{self.headers['Host']}/api/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/redirect"):
            # An absolute Location built from the Host the proxy sent (the upstream's address),
            # and one to somewhere else.
            target = (f"http://{self.headers['Host']}/login?next=1" if self.path == "/redirect"
                      else "https://other.example/x")
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/trailers":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum, X-Other")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(TRAILER_BODY), TRAILER_BODY))
            # Content-Length is no trailer (RFC 9110 §6.5.1): the proxy must drop it.
            self.wfile.write(b"0\r\nX-Checksum: sha=1\r\nContent-Length: 99\r\n"
                             b"X-Other:  v2 \r\n\r\n")
            return
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        te = self.headers.get("Transfer-Encoding")
        length = self.headers.get("Content-Length")
        digest, got = hashlib.sha256(), 0
        if te:
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(size)
                digest.update(chunk)
                got += len(chunk)
                self.rfile.readline()
        else:
            left = int(length or 0)
            while left:
                chunk = self.rfile.read(min(left, 65536))
                digest.update(chunk)
                got += len(chunk)
                left -= len(chunk)
        body = f"{self.server.name} {length} {te} {got} {digest.hexdigest()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name):
        self.name = name
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class Misbehaving:
    """A TCP server that reads each request (head and Content-Length body) and then either
    hangs up without a word ("hangup") or says nothing for ever ("silent")."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        data = b""
        conn.settimeout(10)
        try:
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return conn.close()
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(body) < length:
                piece = conn.recv(65536)
                if not piece:
                    break
                body += piece
        except OSError:
            return conn.close()
        self.requests += 1
        if self.mode == "hangup":
            conn.close()
        else:
            self.held.append(conn)

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


class ProxyStreamTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.live = Backend("live")
        cls.hangup = Misbehaving("hangup")
        cls.silent = Misbehaving("silent")
        live = f"127.0.0.1:{cls.live.port}"
        sites = f'''
[upstream.live]
servers = ["{live}"]

[upstream.replay]
servers = [{{ address = "127.0.0.1:{cls.hangup.port}", weight = 100 }}, "{live}"]
max_fails = 0

[upstream.think]
servers = [{{ address = "127.0.0.1:{cls.silent.port}", weight = 100 }}, "{live}"]
max_fails = 0
first_byte_timeout = "300ms"

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/stream/"
  proxy = {{ upstream = "live", strip_prefix = "/stream" }}
  [[site.route]]
  path = "/buf/"
  proxy = {{ upstream = "live", strip_prefix = "/buf", buffer_request_body = true }}
  [[site.route]]
  path = "/replay/"
  proxy = {{ upstream = "replay", strip_prefix = "/replay", buffer_request_body = true }}
  [[site.route]]
  path = "/noreplay/"
  proxy = {{ upstream = "replay", strip_prefix = "/noreplay" }}
  [[site.route]]
  path = "/raw/"
  proxy = {{ upstream = "live", strip_prefix = "/raw", redirect_rewrite = false }}
  [[site.route]]
  path = "/v1/"
  proxy = {{ upstream = "live", strip_prefix = "/v1", replace_prefix = "/api" }}
  [[site.route]]
  path = "/think/"
  proxy = {{ upstream = "think", strip_prefix = "/think" }}
'''
        cls.srv = ProxyServer(sites, workers=1, http={"client_max_body_size": '"100m"'})
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        cls.live.stop()
        cls.hangup.stop()
        cls.silent.stop()

    def put(self, path, body, chunked=False, method="PUT"):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        try:
            if chunked:
                c.request(method, path, body=iter([body[i:i + 100000]
                                                   for i in range(0, len(body), 100000)]),
                          encode_chunked=True)
            else:
                c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    # ---- trailers

    def test_trailers_reach_an_http1_client_in_the_chunked_body(self):
        r = raw_request(self.srv.port, b"GET /stream/trailers HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
        head, _, body = r.data.partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        # (Field names are case-insensitive; HTTP/1.1 responses capitalise them.)
        self.assertEqual(body.lower(), b"%x\r\n%s\r\n0\r\nx-checksum: sha=1\r\n"
                         b"x-other: v2\r\n\r\n" % (len(TRAILER_BODY), TRAILER_BODY))

    def test_trailers_reach_an_http2_client(self):
        r = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{self.srv.port}/stream/trailers"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        tail = out[out.index("hello trailers"):]
        self.assertRegex(tail, r"recv \(stream_id=\d+\) x-checksum: sha=1")
        self.assertRegex(tail, r"recv \(stream_id=\d+\) x-other: v2")
        self.assertNotRegex(tail, r"recv \(stream_id=\d+\) content-length")
        self.assertRegex(tail, r"recv HEADERS frame <[^>]*flags=0x05")

    # ---- buffer_request_body

    def test_buffered_upload_gets_a_content_length(self):
        for size in (1000, 3 << 20):  # in memory; through the temporary file
            body = os.urandom(size)
            sha = hashlib.sha256(body).hexdigest()
            status, text = self.put("/buf/x", body, chunked=True)
            self.assertEqual((status, text), (200, f"live {size} None {size} {sha}"))
            # The same upload streamed: chunked to the backend, as it came.
            status, text = self.put("/stream/x", body, chunked=True)
            self.assertEqual((status, text), (200, f"live None chunked {size} {sha}"))

    def test_buffered_upload_from_http2_without_length(self):
        body = os.urandom(200000)
        path = self.srv.path("up.bin")
        harness.write_file(path, body)
        r = harness.curl("--http2-prior-knowledge", "-s", "-X", "PUT", "-H",
                         "Content-Length:", "--data-binary", "@" + path,
                         f"http://127.0.0.1:{self.srv.port}/buf/x")
        self.assertEqual(r.stdout.decode(),
                         f"live 200000 None 200000 {hashlib.sha256(body).hexdigest()}")

    def test_large_buffered_upload_keeps_worker_memory_flat(self):
        (pid,) = self.srv.worker_pids()
        self.put("/buf/x", b"warm" * 1000, chunked=True)
        before = int(proc_status(pid)["VmRSS"].split()[0])
        body = os.urandom(40 << 20)
        status, text = self.put("/buf/x", body, chunked=True)
        self.assertEqual(status, 200)
        self.assertTrue(text.endswith(hashlib.sha256(body).hexdigest()), text)
        after = int(proc_status(pid)["VmRSS"].split()[0])
        # 40 MiB went through a temporary file, not the worker's heap.
        self.assertLess(after - before, 8 * 1024, (before, after))

    def test_buffered_body_is_sent_again_to_the_next_server(self):
        body = os.urandom(300000)  # beyond the in-memory part
        sha = hashlib.sha256(body).hexdigest()
        before = self.hangup.requests
        status, text = self.put("/replay/x", body)
        self.assertEqual((status, text), (200, f"live 300000 None 300000 {sha}"))
        self.assertEqual(self.hangup.requests, before + 1)  # it got the body, then hung up
        # Streamed, the body is gone once sent: no retry, a 502.
        status, _ = self.put("/noreplay/x", body)
        self.assertEqual(status, 502)
        self.assertIn("before a complete response head", self.srv.error_log_text())

    # ---- redirects

    def location(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
        try:
            c.request("GET", path, headers={"Host": "www.example.test"})
            r = c.getresponse()
            r.read()
            return r.status, r.getheader("Location")
        finally:
            c.close()

    def test_a_location_naming_the_upstream_is_rewritten(self):
        live = f"127.0.0.1:{self.live.port}"
        # As NGINX's proxy_redirect default: the client's host, the route's prefix back.
        self.assertEqual(self.location("/stream/redirect"),
                         (302, "http://www.example.test/stream/login?next=1"))
        # A Location elsewhere is left alone; redirect_rewrite = false leaves all.
        self.assertEqual(self.location("/stream/redirect-away"),
                         (302, "https://other.example/x"))
        self.assertEqual(self.location("/raw/redirect"),
                         (302, f"http://{live}/login?next=1"))
        # replace_prefix undone: the backend's /api/login is the client's /v1/login.
        self.assertEqual(self.location("/v1/redirect"), (301, "http://www.example.test/v1/login"))

    # ---- retries after the head was sent

    def test_retry_after_first_byte_timeout_sends_the_request_again(self):
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
        c.request("GET", "/think/name")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"live"))
        self.assertLess(time.monotonic() - t0, 3.0)
        c.close()
        self.assertIn("timed out before responding; retrying on", self.srv.error_log_text())


if __name__ == "__main__":
    harness.main()
