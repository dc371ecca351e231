"""HTTP/3 in front of the reverse proxy, and HTTP/3 memory under a stalled download.

The proxy works over HTTP/3 through the shared request type like over HTTP/1.1 and HTTP/2: a
GET, a multi-megabyte upload streamed to the backend (its SHA-256 computed by the backend), a
download streamed from the backend, trailer fields of a chunked response passed on, and a
dead backend answered 502. A 1 GiB static download
whose client stops reading halfway does not pile up in the worker: the response waits in
QUIC flow control, not in memory."""

import hashlib
import os
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import test_http3 as h3
from harness import WraithTestCase, make_dir, proc_status, wait_for, write_file

BIG_UPLOAD = 6 * 1024 * 1024
STREAMED = 20 * 1024 * 1024


class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/hello":
            body = b"hello from the backend\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", "yes")
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/stream":
            # Chunked, in pieces: the proxy streams it on without knowing the length.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = bytes(range(256)) * 256  # 64 KiB
            for _ in range(STREAMED // len(block)):
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/trailers":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nhello\n\r\n0\r\nX-Checksum: sha=1\r\nContent-Length: 9\r\n\r\n")
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "-1"))
        digest = hashlib.sha256()
        got = 0
        if length >= 0:
            while got < length:
                chunk = self.rfile.read(min(65536, length - got))
                if not chunk:
                    break
                digest.update(chunk)
                got += len(chunk)
        else:  # chunked
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(size)
                digest.update(chunk)
                got += len(chunk)
                self.rfile.readline()
        body = f"{got} {digest.hexdigest()}\n".encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left without its body (the 100-continue test)


# RFC 9204 Appendix A
QPACK_CONTENT_LENGTH, QPACK_METHOD_POST = 4, 20


def dead_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def setUpModule():
    h3.setUpModule()


def tearDownModule():
    h3.tearDownModule()


class Http3ProxyTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        cls.backend.daemon_threads = True
        threading.Thread(target=cls.backend.serve_forever, daemon=True).start()
        port = cls.backend.server_address[1]
        routes = (f'  [[site.route]]\n  path = "/app/"\n'
                  f'  proxy = {{ pass = "http://127.0.0.1:{port}", strip_prefix = "/app" }}\n'
                  f'  [[site.route]]\n  path = "/dead/"\n'
                  f'  proxy = {{ pass = "http://127.0.0.1:{dead_port()}" }}\n')
        srv = h3.H3Server(h3.static_site(routes=routes), http={"client_max_body_size": '"64m"'})
        write_file(os.path.join(make_dir(srv.path("www")), "index.html"), b"static\n")
        h3.start_class_server(cls, srv)

    @classmethod
    def tearDownClass(cls):
        cls.backend.shutdown()
        cls.backend.server_close()
        super().tearDownClass()

    def test_get_through_the_proxy(self):
        r = h3.h3get(self, self.srv, ["/app/hello"], "-i")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello from the backend\n")
        self.assertEqual(h3.header(headers, "x-backend"), "yes")

    def test_upload_streams_to_the_backend(self):
        data = os.urandom(BIG_UPLOAD)
        path = self.srv.path("upload.bin")
        write_file(path, data)
        r = h3.h3get(self, self.srv, ["/app/echo"], "--data-binary", "@" + path)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.decode().split(),
                         [str(BIG_UPLOAD), hashlib.sha256(data).hexdigest()])

    def test_chunked_download_streams_from_the_backend(self):
        r = h3.h3get(self, self.srv, ["/app/stream"], "--summary")
        self.assertEqual(r.returncode, 0, r)
        (line,) = r.summary()
        expected = hashlib.sha256(bytes(range(256)) * 256 * (STREAMED // 65536)).hexdigest()
        self.assertEqual((line["status"], int(line["bytes"]), line["sha"]),
                         ("200", STREAMED, expected))

    def test_upstream_trailers_reach_the_client(self):
        r = h3.h3get(self, self.srv, ["/app/trailers"], "-i")
        self.assertEqual(r.returncode, 0, r)
        # h3get -i prints trailer fields after the body; content-length is no trailer.
        self.assertTrue(r.stdout.endswith(b"\r\n\r\nhello\nx-checksum: sha=1\r\n"), r.stdout)

    def test_expect_100_continue_is_answered_before_the_body(self):
        # RFC 9110 §10.1.1: the client waits for 100 (Continue) before it sends its body; the
        # proxy asks for the body, so the 100 goes out then, as over HTTP/1.1 and HTTP/2. The
        # request is hand-encoded: its body never comes, and the client only has to see the 100.
        block = (b"\x00\x00" + h3.qpack_indexed_static(QPACK_METHOD_POST) +
                 h3.qpack_indexed_static(h3.QPACK_SCHEME_HTTPS) +
                 h3.qpack_literal_static_name(h3.QPACK_AUTHORITY,
                                              f"localhost:{self.srv.tls_port}") +
                 h3.qpack_literal_static_name(h3.QPACK_PATH, "/app/echo") +
                 h3.qpack_literal_static_name(QPACK_CONTENT_LENGTH, "5") +
                 h3.qpack_literal("expect", "100-continue"))
        r = h3.h3get(self, self.srv, ["/app/echo"], "-i", "--max-time", "2",
                     "--raw-request", h3.h3_frame(0x01, block).hex())
        self.assertTrue(r.stdout.startswith(b"HTTP/3 100\r\n\r\n"), r)

    def test_dead_backend_is_502(self):
        r = h3.h3get(self, self.srv, ["/dead/x"], "-i")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.response()[0], 502)
        # And the worker serves on.
        r = h3.h3get(self, self.srv, ["/index.html"])
        self.assertEqual(r.stdout, b"static\n")


class Http3StalledDownloadMemoryTest(WraithTestCase):
    GIB = 1 << 30

    def test_a_stalled_1gib_download_waits_in_flow_control_not_in_memory(self):
        srv = h3.H3Server(h3.static_site(), workers=1)
        self.servers.append(srv)
        www = make_dir(srv.path("www"))
        big = os.path.join(www, "gib.bin")
        with open(big, "wb") as f:
            f.truncate(self.GIB)  # sparse zeros: no disk, the same bytes every read
        srv.start()
        (worker,) = srv.wait_workers(1)

        def rss_kib():
            return int(proc_status(worker)["VmRSS"].split()[0])

        before = rss_kib()
        cmd = h3.h3get_cmd(srv, ["/gib.bin"])
        h3.require_h3get(self)
        dl = h3.PacedDownload(self, cmd, pause_at=64 << 20)
        dl.wait_paused()
        # Sample for a second: time for the server to run ahead of the stalled reader if it
        # could (the one place this file waits on the clock; it is what is being measured).
        samples = []
        for _ in range(10):
            samples.append(rss_kib())
            time.sleep(0.1)
        grown = max(samples) - before
        # The client's receive windows bound what is in flight; nothing near the file size.
        self.assertLess(grown, 64 * 1024, f"worker RSS grew by {grown} KiB while stalled")
        self.assertEqual(dl.finish(timeout=120), 0, dl.stderr)
        self.assertEqual(dl.count, self.GIB)
        zeros = hashlib.sha256()
        block = bytes(1 << 20)
        for _ in range(1024):
            zeros.update(block)
        self.assertEqual(dl.sha.hexdigest(), zeros.hexdigest())
        print(f"\n[http3] 1 GiB download stalled at 64 MiB: worker RSS {before} KiB -> "
              f"max {max(samples)} KiB", flush=True)


if __name__ == "__main__":
    harness.main()
