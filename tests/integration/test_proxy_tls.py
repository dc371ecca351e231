"""HTTPS upstreams ([upstream.NAME] tls, pass = "https://..."): python3 http.server backends
wrapped in `ssl` on 127.0.0.1, with a test CA made here (tlsutil).

What is pinned down: a verified connection with `ca`; a server certificate from another CA
and one for another name both answer 502 with a log line naming the upstream, the server and
the verify error (counted as a failure: the other server of a pair takes over); verify = false
connects anyway; tls = true and pass = "https://..." verify against the system bundle
(SSL_CERT_FILE, pointed at the test CA here); SNI is server_name, or nothing for an IP literal; a backend that requires a
client certificate gets ours from cert/key and refuses the connection without one; keep-alive
reuse over TLS (many requests, few connections); a new connection resumes the last session;
20 MiB bodies both ways (sha256) over HTTP/1.1 and h2 clients, and to a slow client; a WebSocket tunnelled over TLS
with close_notify carrying the client's half-close; a TLS handshake that never completes is
bounded by connect_timeout (504); `wraith check` reports a missing CA file, a CA file with no
certificate and a key that is not the certificate's as FILE:LINE:COL.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import tlsutil
from harness import Wraith, WraithTestCase, curl, free_port, run_wraith, toml_str, wait_for

BIG = random.Random(31).randbytes(20 << 20)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PKI = None  # setUpModule: CAs, the backend's certificates and a client certificate


def setUpModule():
    global PKI
    d = tempfile.mkdtemp(prefix="wraith-uptls-pki-")
    os.chmod(d, 0o755)
    pki = tlsutil.TestPki(d)
    ca = pki.ca("upstream-ca")
    other = pki.ca("other-ca")
    client_ca = pki.ca("client-ca")

    class Pki:
        pass
    PKI = Pki()
    PKI.dir = d
    PKI.ca = ca
    PKI.backend = ca.issue("backend", ["backend.test", "127.0.0.1"])
    PKI.foreign = other.issue("foreign", ["backend.test", "127.0.0.1"])
    PKI.client_ca = client_ca
    PKI.client = client_ca.issue("wraith-client", [], client=True, cn="wraith-proxy")
    PKI.mismatched = client_ca.issue_mismatched("mismatched", [])
    PKI.not_pem = harness.write_file(os.path.join(d, "not-a-ca.pem"), b"no certificate here\n")


def tearDownModule():
    if PKI and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(PKI.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The backend


class TlsBackend(ThreadingHTTPServer):
    """A threaded HTTPS backend that records, per accepted TLS connection, the SNI it got,
    whether the session was resumed and the client certificate's CN; handshakes run in the
    connection's thread, so a client that stalls holds up no one else."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cert, client_ca=None, name="backend"):
        self.name = name
        self.lock = threading.Lock()
        self.handshakes = []  # dicts: sni, reused, client_cn
        self.failures = []    # str(exception) of failed handshakes
        self.ws_events = []   # what the WebSocket handler saw, in order
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.chain, cert.key)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.ctx.sni_callback = self._on_sni
        super().__init__(("127.0.0.1", 0), TlsBackendHandler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _on_sni(sock, name, ctx):
        sock.sni_seen = name

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.failures.append(str(e))
            return
        cn = None
        peer = tls.getpeercert()
        if peer:
            cn = dict(x[0] for x in peer["subject"]).get("commonName")
        with self.lock:
            self.handshakes.append({"sni": getattr(tls, "sni_seen", None),
                                    "reused": tls.session_reused, "client_cn": cn})
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-request: not the test's business

    def reset(self):
        with self.lock:
            self.handshakes.clear()
            self.failures.clear()
            self.ws_events.clear()

    def stop(self):
        self.shutdown()
        self.server_close()


class TlsBackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            view = memoryview(BIG)
            for i in range(0, len(BIG), 1 << 20):
                self.wfile.write(view[i:i + (1 << 20)])
            return
        if self.path.startswith("/ws"):
            return self.websocket()
        info = {"server": self.server.name, "path": self.path,
                "host": self.headers.get("Host"),
                "proto": self.headers.get("X-Forwarded-Proto")}
        self.reply(200, json.dumps(info).encode())

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        if self.path.startswith("/mirror"):
            return self.reply(200, body, "application/octet-stream")
        self.reply(200, json.dumps({"len": len(body),
                                    "sha": hashlib.sha256(body).hexdigest()}).encode())

    # RFC 6455 echo: each message comes back; on the client's close the handler waits for the
    # TLS end of the client's direction (close_notify), then answers close and closes.
    def websocket(self):
        ev = self.server.ws_events
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                         .encode())
        self.wfile.flush()
        while True:
            opcode, payload = read_frame(self.rfile, masked=True)
            if opcode is None:
                ev.append("eof")
                return
            if opcode == 0x8:
                ev.append("close")
                try:
                    rest = self.rfile.read(1)  # b"" only after close_notify (ragged EOF raises)
                    ev.append("close_notify" if rest == b"" else "more bytes")
                except ssl.SSLError as e:
                    ev.append(f"ragged: {e}")
                self.wfile.write(frame(0x8, payload))
                self.wfile.flush()
                self.connection.unwrap()
                self.close_connection = True
                return
            ev.append(f"msg {len(payload)}")
            self.wfile.write(frame(opcode, payload))
            self.wfile.flush()


def frame(opcode, payload, mask=False):
    n = len(payload)
    head = bytes([0x80 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data)) if hasattr(f, "read") else f.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(f, masked):
    head = read_exact(f, 2)
    if head is None:
        return None, None
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(f, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(f, 8))[0]
    key = read_exact(f, 4) if masked else None
    payload = read_exact(f, n) if n else b""
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload


# --------------------------------------------------------------------------------------------
# Tests


class H2Server(Wraith):
    """A Wraith whose plain listener also speaks h2c (prior knowledge)."""

    def render(self, sites=None):
        text = super().render(sites)
        listen = f'address = "127.0.0.1:{self.port}"'
        return text.replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)


class ProxyTlsTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.good = TlsBackend(PKI.backend, name="good")
        cls.foreign = TlsBackend(PKI.foreign, name="foreign")
        cls.mtls = TlsBackend(PKI.backend, client_ca=PKI.client_ca.cert, name="mtls")
        cls.pair_good = TlsBackend(PKI.backend, name="pair-good")
        cls.backends = [cls.good, cls.foreign, cls.mtls, cls.pair_good]
        # A server that accepts TCP and never says a word: the handshake cannot finish.
        cls.mute = socket.socket()
        cls.mute.bind(("127.0.0.1", 0))
        cls.mute.listen(16)
        ca = toml_str(PKI.ca.cert)
        g = cls.good.port
        sites = f'''
[upstream.verified]
servers = ["127.0.0.1:{g}"]
tls = {{ ca = {ca} }}
keepalive = 4

[upstream.named]
servers = ["127.0.0.1:{g}"]
tls = {{ ca = {ca}, server_name = "backend.test" }}

[upstream.wrongname]
servers = ["127.0.0.1:{g}"]
tls = {{ ca = {ca}, server_name = "other.test" }}

[upstream.wrongca]
servers = ["127.0.0.1:{cls.foreign.port}"]
tls = {{ ca = {ca} }}

[upstream.noverify]
servers = ["127.0.0.1:{cls.foreign.port}"]
tls = {{ verify = false }}

[upstream.systemca]
servers = ["127.0.0.1:{g}"]
tls = true

[upstream.client]
servers = ["127.0.0.1:{cls.mtls.port}"]
tls = {{ ca = {ca}, cert = {toml_str(PKI.client.cert)}, key = {toml_str(PKI.client.key)} }}

[upstream.noclient]
servers = ["127.0.0.1:{cls.mtls.port}"]
tls = {{ ca = {ca} }}

[upstream.fresh]
servers = ["127.0.0.1:{g}"]
tls = {{ ca = {ca}, server_name = "backend.test" }}
keepalive = 0

[upstream.noresume]
servers = ["127.0.0.1:{g}"]
tls = {{ ca = {ca}, session_reuse = false }}
keepalive = 0

[upstream.pair]
servers = ["127.0.0.1:{cls.foreign.port}", "127.0.0.1:{cls.pair_good.port}"]
tls = {{ ca = {ca} }}
retries = 0

[upstream.mute]
servers = ["127.0.0.1:{cls.mute.getsockname()[1]}"]
tls = {{ ca = {ca} }}
connect_timeout = "1s"

[[site]]
hosts = ["*"]
'''
        for name in ("verified", "named", "wrongname", "wrongca", "noverify", "systemca",
                     "client", "noclient", "fresh", "noresume", "pair", "mute"):
            sites += f'''  [[site.route]]
  path = "/{name}/"
  proxy = {{ upstream = "{name}", strip_prefix = "/{name}" }}
'''
        sites += f'''  [[site.route]]
  path = "/pass/"
  proxy = {{ pass = "https://127.0.0.1:{g}", strip_prefix = "/pass" }}
'''
        sites += '''  [[site.route]]
  path = "/"
  respond = { status = 200, body = "ok" }
'''
        cls.srv = H2Server(sites, workers=1, http={"client_max_body_size": '"64m"'})
        cls.class_servers = [cls.srv]
        # The "system" bundle of this server is the test CA (OpenSSL's SSL_CERT_FILE), so
        # tls = true and pass = "https://..." can be tried against the test backend.
        saved = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = PKI.ca.cert
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            raise
        finally:
            if saved is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = saved

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for b in cls.backends:
            b.stop()
        cls.mute.close()

    def setUp(self):
        super().setUp()
        for b in self.backends:
            b.reset()

    def request(self, method, path, body=None, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if conn is None:
                c.close()

    def get_json(self, path):
        status, body = self.request("GET", path)
        self.assertEqual(status, 200, body[:300])
        return json.loads(body)

    def wait_error_log(self, needle):
        return wait_for(lambda: needle in self.srv.error_log_text(), 5,
                        what=f"error log line with {needle!r}")

    # -- verification

    def test_verified_with_ca(self):
        info = self.get_json("/verified/hello")
        self.assertEqual((info["server"], info["path"]), ("good", "/hello"))
        # The client's scheme, not the upstream's, is what X-Forwarded-Proto tells.
        self.assertEqual(info["proto"], "http")

    def test_foreign_ca_is_502_with_the_verify_error_logged(self):
        # The backend sends its chain up to the other CA: a root we do not trust.
        status, _ = self.request("GET", "/wrongca/x")
        self.assertEqual(status, 502)
        self.wait_error_log(f'TLS handshake with upstream "wrongca" server '
                            f'127.0.0.1:{self.foreign.port} failed: certificate verify failed: '
                            f'self-signed certificate in certificate chain')

    def test_wrong_name_is_502(self):
        status, _ = self.request("GET", "/wrongname/x")
        self.assertEqual(status, 502)
        self.wait_error_log('upstream "wrongname" server 127.0.0.1:%d failed: certificate verify '
                            'failed: hostname mismatch (expected other.test)' % self.good.port)

    def test_tls_true_verifies_against_the_system_bundle(self):
        self.assertEqual(self.get_json("/systemca/x")["server"], "good")

    def test_pass_https_verifies_the_ip_address(self):
        info = self.get_json("/pass/x")
        self.assertEqual((info["server"], info["path"]), ("good", "/x"))
        self.assertEqual(info["host"], f"127.0.0.1:{self.good.port}")

    def test_verify_false_connects_anyway(self):
        self.assertEqual(self.get_json("/noverify/x")["server"], "foreign")

    def test_verify_failure_counts_for_passive_health(self):
        # The first server presents a foreign certificate; once it failed (max_fails = 1) it is
        # out of service and every request goes to the other one.
        results = [self.request("GET", "/pair/x")[0] for _ in range(6)]
        self.assertIn(502, results[:2])
        self.assertEqual(results[2:], [200] * 4)
        self.wait_error_log('upstream "pair" server 127.0.0.1:%d taken out of service'
                            % self.foreign.port)

    # -- names

    def test_sni_is_server_name(self):
        self.get_json("/named/x")
        self.assertEqual([h["sni"] for h in self.good.handshakes], ["backend.test"])

    def test_ip_literal_gets_no_sni_and_is_checked_against_ip_sans(self):
        # noresume has no server_name (and keepalive = 0: a new connection each time).
        self.assertEqual(self.get_json("/noresume/x")["server"], "good")
        self.assertEqual([h["sni"] for h in self.good.handshakes], [None])

    # -- client certificates

    def test_client_certificate_from_cert_and_key(self):
        self.assertEqual(self.get_json("/client/x")["server"], "mtls")
        self.assertEqual([h["client_cn"] for h in self.mtls.handshakes], ["wraith-proxy"])

    def test_no_client_certificate_is_refused(self):
        status, _ = self.request("GET", "/noclient/x")
        self.assertEqual(status, 502)
        self.assertEqual(self.mtls.handshakes, [])
        wait_for(lambda: self.mtls.failures, 5, what="the backend's failed handshake")

    # -- connections and sessions

    def test_keepalive_reuses_tls_connections(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            for i in range(30):
                status, body = self.request("GET", f"/verified/{i}", conn=c)
                self.assertEqual(status, 200)
        finally:
            c.close()
        self.assertLessEqual(len(self.good.handshakes), 2, self.good.handshakes)

    def test_new_connection_resumes_the_session(self):
        for i in range(4):
            self.assertEqual(self.request("GET", f"/fresh/{i}")[0], 200)
        reused = [h["reused"] for h in self.good.handshakes]
        self.assertEqual(len(reused), 4)
        self.assertFalse(reused[0])
        self.assertTrue(all(reused[1:]), reused)

    def test_session_reuse_false_never_resumes(self):
        for i in range(3):
            self.assertEqual(self.request("GET", f"/noresume/{i}")[0], 200)
        self.assertEqual([h["reused"] for h in self.good.handshakes], [False] * 3)

    def test_handshake_bounded_by_connect_timeout(self):
        start = time.monotonic()
        status, _ = self.request("GET", "/mute/x")
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - start, 5)
        self.wait_error_log('TLS handshake with upstream "mute" server 127.0.0.1:%d timed out'
                            % self.mute.getsockname()[1])

    # -- bodies

    def test_20mib_download(self):
        status, body = self.request("GET", "/verified/big")
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)

    def test_20mib_download_to_a_slow_client(self):
        # Backpressure over TLS: upstream reads stop while the client's writer is full and
        # resume when it drains (records read ahead meanwhile are read then too).
        r = curl("--limit-rate", "8M", "-o", "-", f"http://127.0.0.1:{self.srv.port}/verified/big")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), BIG_SHA)

    def test_20mib_both_ways(self):
        status, body = self.request("POST", "/verified/mirror", body=BIG)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(BIG))
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)

    def test_h2_client_to_tls_upstream(self):
        path = os.path.join(self.srv.dir, "up.bin")
        with open(path, "wb") as f:
            f.write(BIG)
        r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}",
                 "--data-binary", f"@{path}", f"http://127.0.0.1:{self.srv.port}/verified/sum")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"200 2", r.stderr)
        self.assertEqual(json.loads(body), {"len": len(BIG), "sha": BIG_SHA})
        r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}",
                 f"http://127.0.0.1:{self.srv.port}/verified/big")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"200 2", r.stderr)
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)

    # -- WebSocket

    def test_websocket_over_tls_with_half_close(self):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=15)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET /verified/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(1)
                self.assertTrue(chunk, head)
                head += chunk
            self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
            f = s.makefile("rb")
            for size in (5, 300, 70000):
                msg = os.urandom(size)
                s.sendall(frame(0x2, msg, mask=True))
                self.assertEqual(read_frame(f, masked=False), (0x2, msg))
            s.sendall(frame(0x8, struct.pack("!H", 1000), mask=True))
            s.shutdown(socket.SHUT_WR)  # reaches the backend as close_notify, then FIN
            self.assertEqual(read_frame(f, masked=False), (0x8, struct.pack("!H", 1000)))
            self.assertEqual(f.read(), b"")  # the backend's end reaches us as a FIN
        finally:
            s.close()
        self.assertEqual(self.good.ws_events,
                         ["msg 5", "msg 300", "msg 70000", "close", "close_notify"])


class TlsHealthCheckTest(WraithTestCase):
    """Active health checks of a TLS upstream speak TLS (verified like requests): a server
    whose certificate does not verify fails them; a verified one passes."""

    def test_health_checks_over_tls(self):
        good = TlsBackend(PKI.backend, name="good")
        foreign = TlsBackend(PKI.foreign, name="foreign")
        try:
            srv = Wraith(f'''
[upstream.app]
servers = ["127.0.0.1:{good.port}", "127.0.0.1:{foreign.port}"]
tls = {{ ca = {toml_str(PKI.ca.cert)} }}
max_fails = 0
[upstream.app.health_check]
path = "/healthz"
interval = "200ms"
fall = 1
rise = 1

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  proxy = {{ upstream = "app" }}
''', workers=1)
            self.servers.append(srv)
            srv.start(wait=False)
            wait_for(lambda: "failed its health check" in srv.error_log_text(),
                     what="the foreign server out of service")
            log = srv.error_log_text()
            self.assertIn(f"server 127.0.0.1:{foreign.port} failed its health check", log)
            self.assertIn("TLS handshake failed", log)
            self.assertNotIn(f"server 127.0.0.1:{good.port} failed", log)
            # The verified server got checks over TLS (requests to /healthz, in handshakes).
            wait_for(lambda: len(good.handshakes) >= 2, what="checks over TLS")
            for _ in range(6):
                r = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                r.request("GET", "/x")
                resp = r.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertEqual(json.loads(resp.read())["server"], "good")
                r.close()
        finally:
            good.stop()
            foreign.stop()


class ProxyTlsConfigTest(WraithTestCase):
    def check(self, upstream_tls, pass_url=None):
        d = tempfile.mkdtemp(prefix="wraith-uptls-check-")
        self.addCleanup(shutil.rmtree, d, True)
        route = f'proxy = {{ pass = "{pass_url}" }}' if pass_url else 'proxy = { upstream = "a" }'
        text = f'''[[listen]]
address = "127.0.0.1:{free_port()}"

[upstream.a]
servers = ["127.0.0.1:9"]
tls = {upstream_tls}

[[site]]
hosts = ["*"]
  [[site.route]]
  {route}
'''
        path = os.path.join(d, "w.toml")
        with open(path, "w") as f:
            f.write(text)
        r = run_wraith("check", "-c", path)
        return r.returncode, (r.stdout + r.stderr).replace(path, "w.toml")

    def test_missing_ca_file(self):
        code, out = self.check('{ ca = "/nonexistent/ca.pem" }')
        self.assertNotEqual(code, 0)
        self.assertIn('w.toml:6:14: upstream.a.tls.ca: cannot read "/nonexistent/ca.pem"', out)

    def test_ca_file_without_certificates(self):
        code, out = self.check(f"{{ ca = {toml_str(PKI.not_pem)} }}")
        self.assertNotEqual(code, 0)
        self.assertIn("w.toml:6:14: upstream.a.tls.ca: cannot load CA certificates from", out)

    def test_key_that_is_not_the_certificates(self):
        m = PKI.mismatched
        code, out = self.check(f"{{ cert = {toml_str(m.cert)}, key = {toml_str(m.key)} }}")
        self.assertNotEqual(code, 0)
        self.assertIn(f"w.toml:6:16: upstream.a.tls.key: private key {m.key} does not match "
                      f"certificate {m.cert}", out)

    def test_valid_tls_table_and_https_pass(self):
        code, out = self.check(f'{{ ca = {toml_str(PKI.ca.cert)}, server_name = "backend.test", '
                               f'min_version = "1.3" }}', pass_url="https://127.0.0.1")
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    harness.main()
