"""HTTP/2 to upstream servers (protocol = "h2", pass = "h2c://", "grpc://", "grpcs://") against
Debian's nghttpd (package nghttp2-server): h2c with prior knowledge and h2 over verified TLS
(ALPN h2), files checked by hash, an upload echoed back, response trailers passed on to an
HTTP/2 client, many concurrent requests over a server that allows few streams per connection,
a server that refuses ALPN h2, a dead server, a server killed in the middle of a download,
and the config errors."""

import hashlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import tlsutil
from harness import WraithTestCase, Wraith, curl, free_port, toml_str, wait_for, write_file
from test_proxy import ProxyServer, h2curl

NGHTTPD = shutil.which("nghttpd") or "/usr/sbin/nghttpd"
SMALL = random.Random(7).randbytes(1024)
BIG = random.Random(8).randbytes(20 << 20)


class Nghttpd:
    """nghttpd on 127.0.0.1 serving `htdocs`: h2c, or TLS with `cert` (ALPN h2)."""

    def __init__(self, htdocs, cert=None, max_streams=100, port=None):
        self.port = port or free_port(ipv6_too=False)
        args = [NGHTTPD, "-a", "127.0.0.1", "-d", htdocs, "--echo-upload",
                "--trailer", "x-checksum: sha-of-nothing", "-m", str(max_streams)]
        if cert is None:
            args += ["--no-tls", str(self.port)]
        else:
            args += [str(self.port), cert.key, cert.chain]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.listening, what=f"nghttpd on port {self.port}")

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def connections(self):
        """Client-side TCP sockets towards this server in any state, TIME_WAIT included (from
        /proc/net/tcp): a connection opened and closed in the last minute still counts."""
        n = 0
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[2].split(":")[1], 16) == self.port:
                    n += 1
        return n


class H1OnlyTls(ThreadingHTTPServer):
    """An HTTPS server whose ALPN offers only http/1.1."""

    daemon_threads = True

    def __init__(self, cert):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.chain, cert.key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        super().__init__(("127.0.0.1", 0), BaseHTTPRequestHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        sock, addr = super().get_request()
        return self.ctx.wrap_socket(sock, server_side=True), addr

    def handle_error(self, request, client_address):
        pass

    def stop(self):
        self.shutdown()
        self.server_close()


def h2get(port, path, *args):
    """nghttp (an HTTP/2 client) against Wraith's h2c listener; returns (rc, verbose log)."""
    r = subprocess.run(["nghttp", "-v", *args, f"http://127.0.0.1:{port}{path}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace")


class ProxyH2Test(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(NGHTTPD):
            raise AssertionError("nghttpd is missing: install the Debian package "
                                 "nghttp2-server (make deps)")
        cls.tmp = tempfile.mkdtemp(prefix="wraith-h2up-")
        os.chmod(cls.tmp, 0o755)
        htdocs = os.path.join(cls.tmp, "htdocs")
        os.makedirs(htdocs)
        os.chmod(htdocs, 0o755)
        write_file(os.path.join(htdocs, "small.bin"), SMALL)
        write_file(os.path.join(htdocs, "big.bin"), BIG)
        cls.htdocs = htdocs
        pki = tlsutil.TestPki(os.path.join(cls.tmp, "pki"))
        cls.ca = pki.ca("h2-upstream-ca")
        other = pki.ca("other-ca")
        cls.cert = cls.ca.issue("h2backend", ["backend.test", "127.0.0.1"])
        cls.h2c = Nghttpd(htdocs)
        cls.few = Nghttpd(htdocs, max_streams=2)
        cls.tls = Nghttpd(htdocs, cert=cls.cert)
        cls.h1only = H1OnlyTls(cls.cert)
        empty = os.path.join(cls.tmp, "empty")
        os.makedirs(empty)
        os.chmod(empty, 0o755)
        cls.empty = Nghttpd(empty)
        ca = toml_str(cls.ca.cert)
        sites = f'''
[upstream.h2c]
servers = ["127.0.0.1:{cls.h2c.port}"]
protocol = "h2"

[upstream.few]
servers = ["127.0.0.1:{cls.few.port}"]
protocol = "h2"

[upstream.tls]
servers = ["127.0.0.1:{cls.tls.port}"]
protocol = "h2"
tls = {{ ca = {ca} }}

[upstream.wrongca]
servers = ["127.0.0.1:{cls.tls.port}"]
protocol = "h2"
tls = {{ ca = {toml_str(other.cert)} }}

[upstream.h1only]
servers = ["127.0.0.1:{cls.h1only.port}"]
protocol = "h2"
tls = {{ ca = {ca} }}

[upstream.pair]
servers = [{{ address = "127.0.0.1:{cls.empty.port}", weight = 100 }}, "127.0.0.1:{cls.h2c.port}"]
protocol = "h2"
fail_statuses = [404]
retry_budget = 100
max_fails = 0
keepalive_requests = 3

[upstream.dead]
servers = ["127.0.0.1:{free_port(ipv6_too=False)}"]
protocol = "h2"

[[site]]
hosts = ["*"]
'''
        for name in ("h2c", "few", "tls", "wrongca", "h1only", "dead", "pair"):
            sites += (f'  [[site.route]]\n  path = "/{name}/"\n'
                      f'  proxy = {{ upstream = "{name}", strip_prefix = "/{name}" }}\n')
        sites += (f'  [[site.route]]\n  path = "/grpc/"\n'
                  f'  proxy = {{ pass = "grpc://127.0.0.1:{cls.h2c.port}", strip_prefix = "/grpc" }}\n'
                  f'  [[site.route]]\n  path = "/buf/"\n'
                  f'  proxy = {{ upstream = "h2c", strip_prefix = "/buf", buffer_request_body = true }}\n')
        cls.srv = ProxyServer(sites, workers=1, http={"client_max_body_size": '"64m"'})
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        for s in (cls.h2c, cls.few, cls.tls, cls.empty):
            s.stop()
        cls.h1only.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, path, *args):
        r = curl("-s", "-o", "-", "-w", "\n%{http_code}", *args,
                 f"http://127.0.0.1:{self.srv.port}{path}", timeout=60)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code or 0), body

    def test_h2c_get_small_and_big(self):
        self.assertEqual(self.get("/h2c/small.bin"), (200, SMALL))
        status, body = self.get("/h2c/big.bin")
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(BIG).hexdigest())
        self.assertEqual(self.get("/grpc/small.bin"), (200, SMALL))
        self.assertEqual(self.get("/h2c/missing")[0], 404)

    def test_h2_over_verified_tls(self):
        self.assertEqual(self.get("/tls/small.bin"), (200, SMALL))
        status, body = self.get("/tls/big.bin")
        self.assertEqual((status, len(body)), (200, len(BIG)))
        self.assertEqual(self.get("/wrongca/small.bin")[0], 502)
        self.assertIn('TLS handshake with upstream "wrongca"', self.srv.error_log_text())

    def test_a_server_without_alpn_h2_is_502(self):
        self.assertEqual(self.get("/h1only/x")[0], 502)
        self.assertIn("did not agree to HTTP/2", self.srv.error_log_text())

    def test_upload_is_streamed_and_echoed(self):
        data = os.urandom(3 << 20)
        path = os.path.join(self.tmp, "up.bin")
        write_file(path, data)
        for route in ("/h2c/echo", "/buf/echo"):
            status, body = self.get(route, "-X", "POST", "--data-binary", "@" + path,
                                    "-H", "Transfer-Encoding: chunked")
            self.assertEqual(status, 200, route)
            self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest(),
                             route)

    def test_trailers_reach_an_http2_client(self):
        rc, out = h2get(self.srv.port, "/h2c/small.bin")
        self.assertEqual(rc, 0, out)
        tail = out[out.index("x-checksum") - 200 if "x-checksum" in out else 0:]
        self.assertRegex(out, r"recv \(stream_id=\d+\) x-checksum: sha-of-nothing")
        self.assertRegex(tail, r"recv HEADERS frame <[^>]*flags=0x05")

    def test_many_concurrent_requests_over_few_streams(self):
        # The server allows 2 streams per connection; 200 requests, 40 at a time, all served.
        r = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "10",
                            f"http://127.0.0.1:{self.srv.port}/few/small.bin"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = r.stdout.decode()
        self.assertIn("200 succeeded", out, out + self.srv.error_log_text()[-3000:])
        self.assertRegex(out, r"status codes: 200 2xx", out)

    def test_requests_share_a_connection(self):
        before = self.h2c.connections()  # other routes' sessions (grpc://, the pair upstream)
        r = subprocess.run(["h2load", "-n", "400", "-c", "4", "-m", "10",
                            f"http://127.0.0.1:{self.srv.port}/h2c/small.bin"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        self.assertIn("400 succeeded", r.stdout.decode())
        # 40 requests at a time from 4 client connections: at most one new upstream connection
        # (the server allows 100 streams on one), none opened and closed per request.
        self.assertLessEqual(self.h2c.connections() - before, 1)

    def test_fail_statuses_retry_on_another_server(self):
        # The heavy server has no such file (404, in fail_statuses): the other one answers.
        # keepalive_requests = 3: sessions are renewed on the way, nothing fails.
        for _ in range(8):
            self.assertEqual(self.get("/pair/small.bin"), (200, SMALL))
        self.assertRegex(self.srv.error_log_text(), r"answered 404; retrying on 127\.0\.0\.1:")

    def test_dead_server_is_a_fast_502(self):
        t0 = time.monotonic()
        self.assertEqual(self.get("/dead/x")[0], 502)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertIn("connect to 127.0.0.1:", self.srv.error_log_text())

    def test_server_killed_mid_download(self):
        victim = Nghttpd(self.htdocs)
        srv = ProxyServer(f'[upstream.v]\nservers = ["127.0.0.1:{victim.port}"]\n'
                          'protocol = "h2"\n[[site]]\nhosts = ["*"]\n  [[site.route]]\n'
                          '  path = "/"\n  proxy = { upstream = "v" }\n', workers=1)
        self.servers.append(srv)
        srv.start(wait=False)
        wait_for(lambda: srv.alive() and len(srv.worker_pids()) == 1, what="worker")
        time.sleep(0.3)
        # A client that reads slowly holds the download open; the server dies under it.
        p = subprocess.Popen(["curl", "-s", "--limit-rate", "2M", "-o", "/dev/null", "-w",
                              "%{http_code} %{size_download}",
                              f"http://127.0.0.1:{srv.port}/big.bin"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        victim.stop()
        out, _ = p.communicate(timeout=60)
        code, size = out.decode().split()
        self.assertEqual(code, "200")
        self.assertLess(int(size), len(BIG))  # cut short, not passed off as complete
        self.assertNotEqual(p.returncode, 0)
        wait_for(lambda: "upstream" in srv.error_log_text(), what="a log line")
        # The worker lives on; a new server on the same port is used again.
        again = Nghttpd(self.htdocs, port=victim.port)
        try:
            status = curl("-s", "-o", "/dev/null", "-w", "%{http_code}",
                          f"http://127.0.0.1:{srv.port}/small.bin").stdout
            self.assertEqual(status, b"200")
        finally:
            again.stop()

    def test_config_errors(self):
        cases = [
            ('[upstream.a]\nservers = ["127.0.0.1:1"]\nprotocol = "h3"\n', "upstream.a.protocol"),
            ('[upstream.a]\nservers = ["127.0.0.1:1"]\nprotocol = "h2"\n'
             '[upstream.a.health_check]\npath = "/"\n', 'health_check.type = "tcp"'),
        ]
        for text, message in cases:
            srv = Wraith(text + '[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                         '  proxy = { upstream = "a" }\n', workers=1)
            self.servers.append(srv)
            r = harness.run_wraith("check", "-c", srv.conf)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertRegex(r.stderr, r"wraith\.toml:\d+:\d+")


if __name__ == "__main__":
    harness.main()
