"""The stream (L4) layer and its first protocol, `tcp`: a listener with `protocols = ["tcp"]`
relays each connection's bytes to an upstream, both ways, with backpressure and half-close;
over TLS when the listener has `tls = true` (TLS offload). Real sockets on loopback: an echo
upstream, a server-first upstream (it speaks before the client does), an upstream that is not
there, and an idle relay; the config errors name their position; a relay survives a reload.
"""

import hashlib
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time

import harness
import tlsutil
from harness import IO_TIMEOUT, WraithTestCase, free_port, toml_str, wait_for


class Upstream:
    """A TCP server on loopback: `mode` echo (echoes, closes after the client's FIN), banner
    (sends a greeting first, then echoes)."""

    def __init__(self, mode="echo"):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        try:
            if self.mode == "banner":
                c.sendall(b"220 hello from upstream\r\n")
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopped = True
        self.sock.close()


def relay_round_trip(sock, data, timeout=IO_TIMEOUT, read_after=0.0):
    """Sends `data`, half-closes, and reads everything back until EOF; with `read_after`, the
    reading starts that many seconds late, so the relay's queue towards us fills first."""
    got = bytearray()
    errors = []

    def reader():
        time.sleep(read_after)
        try:
            while True:
                d = sock.recv(65536)
                if not d:
                    return
                got.extend(d)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"no EOF from the relay within {timeout}s ({len(got)} bytes read)")
    if errors:
        raise errors[0]
    return bytes(got)


def stream_listen(port, pass_port, extra="", tls=False):
    return (f'\n[[listen]]\naddress = "127.0.0.1:{port}"\nprotocols = ["tcp"]\n'
            + ("tls = true\n" if tls else "")
            + f'tcp = {{ pass = "127.0.0.1:{pass_port}"{extra} }}\n')


SITE = '''
[[site]]
hosts = ["*"]
  [[site.route]]
  respond = { status = 200, body = "http" }
'''


class TcpRelayTest(WraithTestCase):
    def setUp(self):
        super().setUp()
        self.upstream = Upstream()
        self.addCleanup(self.upstream.close)

    def test_bytes_both_ways_with_half_close_and_backpressure(self):
        port = free_port()
        srv = self.server(stream_listen(port, self.upstream.port) + SITE)
        data = os.urandom(8 << 20)  # more than any buffer on the way: backpressure matters
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            # A late reader: the relay must stop reading the upstream, then start again.
            got = relay_round_trip(s, data, timeout=60 * harness.TIME_SCALE, read_after=1.0)
        self.assertEqual(len(got), len(data))
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(data).digest())
        # The HTTP listener beside it still speaks HTTP.
        status, _, body = harness.http_get(srv.port, "/")
        self.assertEqual((status, body), (200, b"http"))

    def test_many_connections_at_once(self):
        port = free_port()
        self.server(stream_listen(port, self.upstream.port) + SITE)
        results = {}

        def one(i):
            payload = f"connection {i} ".encode() * 1000
            with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
                results[i] = relay_round_trip(s, payload) == payload

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(sorted(results), list(range(40)))
        self.assertTrue(all(results.values()), results)
        self.assertEqual(self.upstream.accepted, 40)

    def test_a_server_first_upstream_speaks_before_the_client(self):
        banner = Upstream("banner")
        self.addCleanup(banner.close)
        port = free_port()
        self.server(stream_listen(port, banner.port) + SITE)
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            self.assertEqual(s.recv(100), b"220 hello from upstream\r\n")
            self.assertEqual(relay_round_trip(s, b"ping"), b"ping")

    def test_over_tls_the_relay_offloads_tls(self):
        d = tempfile.mkdtemp(prefix="wraith-stream-pki-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        ca = tlsutil.TestPki(d).ca("stream-ca")
        leaf = ca.issue("db.test", ["db.test", "127.0.0.1"])
        port = free_port()
        sites = stream_listen(port, self.upstream.port, tls=True) + f'''
[[site]]
hosts = ["db.test"]
tls = {{ cert = {toml_str(leaf.chain)}, key = {toml_str(leaf.key)} }}
  [[site.route]]
  respond = {{ status = 200 }}
'''
        self.server(sites)
        ctx = ssl.create_default_context(cafile=ca.cert)
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="db.test") as s:
                self.assertIsNone(s.selected_alpn_protocol())
                data = os.urandom(1 << 20)
                got = bytearray()
                s.sendall(data)
                while len(got) < len(data):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got.extend(chunk)
                self.assertEqual(bytes(got), data)

    def test_an_upstream_that_is_not_there_closes_the_client(self):
        gone = socket.socket()
        gone.bind(("127.0.0.1", 0))
        dead_port = gone.getsockname()[1]
        gone.close()
        port = free_port()
        srv = self.server(stream_listen(port, dead_port, ', connect_timeout = "2s"') + SITE)
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            s.settimeout(IO_TIMEOUT)
            try:
                self.assertEqual(s.recv(10), b"")
            except ConnectionResetError:
                pass  # a close with unread bytes may reach us as a reset: also a close
        wait_for(lambda: f"127.0.0.1:{dead_port}" in srv.error_log_text(),
                 what="the failed connect in the error log")
        self.assertRegex(srv.error_log_text(), rf"tcp: client 127\.0\.0\.1:\d+ to "
                                               rf"127\.0\.0\.1:{dead_port}: ")

    def test_an_idle_relay_is_closed_after_idle_timeout(self):
        port = free_port()
        srv = self.server(stream_listen(port, self.upstream.port, ', idle_timeout = "1s"')
                          + SITE)
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            s.sendall(b"hello")
            self.assertEqual(s.recv(5), b"hello")
            t0 = time.monotonic()
            s.settimeout(10 * harness.TIME_SCALE)
            self.assertEqual(s.recv(10), b"")  # closed by the relay, not by the client
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        wait_for(lambda: "idle for 1 s" in srv.error_log_text(), what="the idle close logged")

    def test_a_relay_outlives_a_reload(self):
        port = free_port()
        srv = self.server(stream_listen(port, self.upstream.port) + SITE)
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            s.sendall(b"before")
            self.assertEqual(s.recv(6), b"before")
            r = srv.reload()
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            s.sendall(b"after the reload")
            self.assertEqual(relay_round_trip(s, b"!"), b"after the reload!")
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
            self.assertEqual(relay_round_trip(s, b"new"), b"new")


class StreamConfigTest(WraithTestCase):
    def check(self, listen_text):
        srv = harness.Wraith(listen_text + SITE)
        self.servers.append(srv)
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout)
        return r.stderr

    def test_errors_name_their_position(self):
        err = self.check('\n[[listen]]\naddress = "127.0.0.1:1"\nprotocols = ["tcp"]\n')
        self.assertRegex(err, r"wraith\.toml:\d+:\d+: listen\.tcp\.pass: required")
        err = self.check('\n[[listen]]\naddress = "127.0.0.1:1"\nprotocols = ["tcp"]\n'
                         'tcp = { pass = "nowhere" }\n')
        self.assertRegex(err, r"wraith\.toml:\d+:\d+: listen\.tcp\.pass: expected HOST:PORT")
        err = self.check('\n[[listen]]\naddress = "127.0.0.1:1"\nprotocols = ["http/1.1", "tcp"]'
                         '\ntcp = { pass = "127.0.0.1:2" }\n')
        self.assertIn("\"tcp\" must be the listener's only protocol", err)
        err = self.check('\n[[listen]]\naddress = "127.0.0.1:1"\n'
                         'tcp = { pass = "127.0.0.1:2" }\n')
        self.assertIn("the listener does not carry \"tcp\"", err)
        err = self.check('\n[[listen]]\naddress = "127.0.0.1:1"\nprotocols = ["smtp"]\n')
        self.assertRegex(err, r"unknown protocol \"smtp\" .*or a stream protocol: \"tcp\"")


if __name__ == "__main__":
    harness.main()
