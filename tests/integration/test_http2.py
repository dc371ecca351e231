"""HTTP/2 over cleartext with prior knowledge (h2c): static files, ranges, conditionals, HEAD,
compression and large files through curl, many concurrent streams through h2load and nghttp,
request bodies and their limit, HTTP/1.1 on the same listener, the flood and bomb attacks
(rapid reset, CONTINUATION, PING, SETTINGS, HPACK) with raw frames, and the graceful GOAWAY
drain on reload."""

import gzip
import hashlib
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import WraithTestCase, Wraith, curl, http_get, make_dir, write_file

try:
    import hpack
except ImportError:  # Debian's python3-hpack, when python3 is not the system one
    sys.path.append("/usr/lib/python3/dist-packages")
    import hpack

# Frame types and error codes (RFC 9113 §6, §7).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x2, 0xb
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

TEXT_10K = "".join(f"line {i:05d}: the quick brown fox jumps over the lazy dog\n"
                   for i in range(200)).encode()[:10240]
RANGE_BODY = bytes(range(48, 48 + 75)) + b"abcdefghijklmnopqrstuvwxy"  # 100 bytes
CUSTOM_404 = b"<html><body>custom not found page</body></html>\n"

SITES = r'''
[[site]]
hosts = ["h2.test"]
default = true
error_pages = { "404" = "/errors/404.html" }
  [[site.route]]
  path = "/echo"
  respond = { status = 200, body = "posted\n" }
  [[site.route]]
  path = "=/trailers"
  respond = { status = 200, body = "with trailers\n", trailers = { "x-checksum" = "abc123" } }
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www", index = ["index.html"], etag = true }
  compress = { min_size = "1k", encodings = ["gzip"] }
'''


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream_id & 0x7fffffff) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


class H2Server(Wraith):
    """A Wraith whose listener speaks HTTP/1.1 and h2c, with optional [http2] keys."""

    def __init__(self, sites, http2=None, **kw):
        self.http2_conf = dict(http2 or {})
        super().__init__(sites, **kw)

    def render(self, sites=None):
        text = super().render(sites)
        listen = f'address = "127.0.0.1:{self.port}"'
        text = text.replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)
        if self.http2_conf:
            text += "\n[http2]\n" + "".join(f"{k} = {v}\n" for k, v in self.http2_conf.items())
        return text


def split_frames(buf):
    """The whole frames at the start of `buf` as (type, flags, stream id, payload), and the
    bytes left over."""
    frames = []
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff,
                       buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


class RawH2:
    """A minimal HTTP/2 client speaking frames directly, for what real clients refuse to do."""

    def __init__(self, port, window=65535, settings=()):
        self.sock = harness.connect(port)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.buf = b""
        self.closed = False
        self.goaways = []      # (last_stream_id, error_code)
        self.goaway_at = []    # DATA bytes received when each GOAWAY came
        self.resets = {}       # stream id -> error code
        self.headers = {}      # stream id -> list of header lists
        self.data = {}         # stream id -> bytes
        self.ended = set()     # streams the server ended
        self.window = window
        self.auto_window = True
        self.sock.sendall(PREFACE + settings_frame(
            [(0x4, window)] + list(settings)))

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def request_frame(self, stream_id, method="GET", path="/", extra=(), end_stream=True,
                      end_headers=True):
        block = self.enc.encode([(":method", method), (":scheme", "http"),
                                 (":authority", "h2.test"), (":path", path)] + list(extra))
        flags = END_STREAM if end_stream else 0
        # Blocks larger than the default SETTINGS_MAX_FRAME_SIZE go on in CONTINUATION frames.
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)] or [b""]
        out = b""
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            f = (END_HEADERS if last and end_headers else 0)
            out += frame(HEADERS if i == 0 else CONTINUATION, f | (flags if i == 0 else 0),
                         stream_id, piece)
        return out

    def _frames(self):
        frames, self.buf = split_frames(self.buf)
        return frames

    def _handle(self, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK:
            self.send(settings_frame(ack=True))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaways.append((last & 0x7fffffff, code))
            self.goaway_at.append(sum(len(d) for d in self.data.values()))
        elif ftype == RST_STREAM:
            self.resets[sid] = struct.unpack(">I", payload)[0]
        elif ftype in (HEADERS, CONTINUATION):
            self.headers.setdefault(sid, []).append(self.dec.decode(payload))
        elif ftype == DATA:
            self.data[sid] = self.data.get(sid, b"") + payload
            if payload and self.auto_window:
                inc = struct.pack(">I", len(payload))
                self.send(frame(WINDOW_UPDATE, 0, sid, inc) + frame(WINDOW_UPDATE, 0, 0, inc))
        if ftype in (HEADERS, DATA) and flags & END_STREAM:
            self.ended.add(sid)

    def pump(self, until=None, timeout=harness.IO_TIMEOUT):
        """Reads and handles frames until `until()` is true, the server closes, or timeout.
        Returns whether `until()` became true."""
        deadline = time.monotonic() + timeout
        while True:
            if until is not None and until():
                return True
            if self.closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                continue
            self.buf += chunk
            for f in list(self._frames()):
                self._handle(*f)

    def status(self, sid):
        for block in self.headers.get(sid, []):
            for k, v in block:
                if k == ":status":
                    return int(v)
        return None

    def close(self):
        self.sock.close()


def build_docroot(base):
    www = make_dir(os.path.join(base, "www"))
    write_file(os.path.join(www, "index.html"), b"<h1>h2 home</h1>\n")
    write_file(os.path.join(www, "text10k.txt"), TEXT_10K)
    write_file(os.path.join(www, "range.txt"), RANGE_BODY)
    write_file(os.path.join(www, "errors/404.html"), CUSTOM_404)
    big = random.Random(2024).randbytes(20 * 1024 * 1024)
    write_file(os.path.join(www, "big.bin"), big)
    return hashlib.sha256(big).hexdigest()


def h2curl(port, path, *args, timeout=60):
    """curl over h2c prior knowledge; returns (CompletedProcess, status, version)."""
    r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}",
             *args, f"http://127.0.0.1:{port}{path}", timeout=timeout)
    body, _, tail = r.stdout.rpartition(b"\n")
    code, _, version = tail.decode().partition(" ")
    r.body = body
    return r, int(code or 0), version


def curl_headers(port, path, *args):
    r = curl("--http2-prior-knowledge", "-s", "-D", "-", "-o", "/dev/null", *args,
             f"http://127.0.0.1:{port}{path}")
    return r.stdout.decode("latin-1").lower()


class Http2Test(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = H2Server(SITES, workers=1, http={"client_max_body_size": '"64k"'})
        cls.big_sha = build_docroot(cls.srv.dir)
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            raise
        cls.port = cls.srv.port

    def assertHealthy(self):
        r, status, version = h2curl(self.port, "/index.html")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        self.assertEqual(r.body, b"<h1>h2 home</h1>\n")

    # ---- static files over h2 through curl

    def test_get_index(self):
        r, status, version = h2curl(self.port, "/")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        self.assertEqual(r.body, b"<h1>h2 home</h1>\n")
        head = curl_headers(self.port, "/")
        self.assertIn("server: wraith", head)
        self.assertRegex(head, r"date: \w{3}, \d\d \w{3} \d{4}")
        self.assertIn("content-length: 17", head)
        line = self.srv.wait_log_line(lambda l: '"GET / HTTP/2.0" 200' in l)
        self.assertIn(" 17 ", line)

    def test_custom_404_page(self):
        r, status, _ = h2curl(self.port, "/missing.html")
        self.assertEqual(status, 404)
        self.assertEqual(r.body, CUSTOM_404)

    def test_range_single(self):
        r, status, _ = h2curl(self.port, "/range.txt", "-H", "Range: bytes=10-19")
        self.assertEqual(status, 206)
        self.assertEqual(r.body, RANGE_BODY[10:20])
        self.assertIn("content-range: bytes 10-19/100",
                      curl_headers(self.port, "/range.txt", "-H", "Range: bytes=10-19"))

    def test_range_multi(self):
        head = curl_headers(self.port, "/range.txt", "-H", "Range: bytes=0-4,90-94")
        m = re.search(r'content-type: multipart/byteranges; ?boundary="?([^";\r\n]+)', head)
        self.assertTrue(m, head)
        r, status, _ = h2curl(self.port, "/range.txt", "-H", "Range: bytes=0-4,90-94")
        self.assertEqual(status, 206)
        body = r.body.lower()
        self.assertIn(b"content-range: bytes 0-4/100\r\n\r\n" + RANGE_BODY[0:5].lower(), body)
        self.assertIn(b"content-range: bytes 90-94/100\r\n\r\n" + RANGE_BODY[90:95].lower(),
                      body)
        self.assertRegex(body, rb"\r\n--[0-9a-z]+--\r\n$")

    def test_conditional_304(self):
        head = curl_headers(self.port, "/range.txt")
        etag = re.search(r'etag: ("[^"]+")', head).group(1)
        r, status, _ = h2curl(self.port, "/range.txt", "-H", f"If-None-Match: {etag}")
        self.assertEqual(status, 304)
        self.assertEqual(r.body, b"")

    def test_head_has_length_and_no_body(self):
        r = curl("--http2-prior-knowledge", "-I", f"http://127.0.0.1:{self.port}/text10k.txt")
        text = r.stdout.decode().lower()
        self.assertIn("http/2 200", text)
        self.assertIn("content-length: 10240", text)
        # Raw frames: the response ends without DATA payload.
        c = RawH2(self.port)
        c.send(c.request_frame(1, "HEAD", "/text10k.txt"))
        self.assertTrue(c.pump(lambda: 1 in c.ended))
        self.assertEqual(c.status(1), 200)
        self.assertEqual(c.data.get(1, b""), b"")
        c.close()

    def test_gzip_on_the_fly(self):
        head = curl_headers(self.port, "/text10k.txt", "-H", "Accept-Encoding: gzip")
        self.assertIn("content-encoding: gzip", head)
        r, status, _ = h2curl(self.port, "/text10k.txt", "-H", "Accept-Encoding: gzip")
        self.assertEqual(status, 200)
        self.assertEqual(gzip.decompress(r.body), TEXT_10K)

    def test_20mib_file_hash(self):
        r, status, version = h2curl(self.port, "/big.bin", timeout=120)
        self.assertEqual((status, version), (200, "2"))
        self.assertEqual(len(r.body), 20 * 1024 * 1024)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), self.big_sha)

    # ---- many streams on one connection

    def test_h2load_many_concurrent_streams(self):
        r = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "50",
                            f"http://127.0.0.1:{self.port}/index.html"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = r.stdout.decode()
        self.assertIn("1000 succeeded, 0 failed, 0 errored", out, out)
        self.assertIn("status codes: 1000 2xx", out, out)

    def test_nghttp_100_streams_one_connection(self):
        r = subprocess.run(["nghttp", "-n", "-s", "-m", "100",
                            f"http://127.0.0.1:{self.port}/text10k.txt"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(len(re.findall(r"/text10k\.txt", out)), 100, out)

    def test_response_trailers_end_the_stream(self):
        r = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{self.port}/trailers"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("trailer: x-checksum", out)  # announced in the response head
        # After the body, a HEADERS frame with END_STREAM carries the trailer field.
        tail = out[out.index("with trailers"):]
        self.assertRegex(tail, r"recv \(stream_id=\d+\) x-checksum: abc123")
        self.assertRegex(tail, r"recv HEADERS frame <[^>]*flags=0x05")

    # ---- request bodies

    def test_post_body_to_respond_route(self):
        body = os.urandom(40000)
        path = self.srv.path("post.bin")
        with open(path, "wb") as f:
            f.write(body)
        r, status, _ = h2curl(self.port, "/echo", "--data-binary", f"@{path}")
        self.assertEqual(status, 200, r.stderr)
        self.assertEqual(r.body, b"posted\n")
        self.assertHealthy()

    def test_body_over_limit_with_length_is_413(self):
        path = self.srv.path("over.bin")
        with open(path, "wb") as f:
            f.write(b"x" * 100000)  # > 64k
        r, status, _ = h2curl(self.port, "/echo", "--data-binary", f"@{path}")
        self.assertEqual(status, 413, r.stderr)
        self.assertHealthy()

    def test_large_unread_body_is_reset_with_no_error_after_response(self):
        # RFC 9113 §8.1: a complete response, then RST_STREAM(NO_ERROR) to stop the upload.
        c = RawH2(self.port)
        c.send(c.request_frame(1, "POST", "/echo", extra=[("content-length", str(10 << 20))],
                               end_stream=False) + frame(DATA, 0, 1, b"z" * 16384))
        self.assertTrue(c.pump(lambda: 1 in c.resets))
        self.assertEqual(c.status(1), 413)
        self.assertIn(1, c.ended)
        self.assertEqual(c.resets[1], NO_ERROR)
        # The connection stays usable.
        c.send(c.request_frame(3, "GET", "/index.html"))
        self.assertTrue(c.pump(lambda: 3 in c.ended))
        self.assertEqual((c.status(3), c.data.get(3)), (200, b"<h1>h2 home</h1>\n"))
        c.close()

    def test_http11_same_listener(self):
        status, headers, body = http_get(self.port, "/index.html")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"<h1>h2 home</h1>\n")

    # ---- attacks

    def test_rapid_reset_gets_goaway(self):
        c = RawH2(self.port)
        batch = b""
        for i in range(1500):
            sid = 1 + 2 * i
            batch += c.request_frame(sid, "GET", "/index.html") + \
                frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))
            if len(batch) > 32768:
                c.send(batch)
                batch = b""
        c.send(batch)
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed, "connection not closed")
        self.assertIn(ENHANCE_YOUR_CALM, [code for _, code in c.goaways], c.goaways)
        c.close()
        self.assertIn("rapid reset", self.srv.error_log_text())
        self.assertHealthy()

    def test_continuation_flood_closes(self):
        c = RawH2(self.port)
        c.send(c.request_frame(1, "GET", "/", end_headers=False))
        filler = frame(CONTINUATION, 0, 1, b"\x40\x01x\x01y")  # literal x: y, indexed
        for _ in range(200):
            c.send(filler * 50)
            if c.closed:
                break
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed, "connection not closed")
        self.assertIn(ENHANCE_YOUR_CALM, [code for _, code in c.goaways], c.goaways)
        c.close()
        self.assertHealthy()

    def test_ping_flood_closes(self):
        c = RawH2(self.port)
        c.send(frame(PING, 0, 0, b"12345678") * 2000)
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed)
        self.assertIn((0, ENHANCE_YOUR_CALM), c.goaways)
        c.close()
        self.assertHealthy()

    def test_settings_flood_closes(self):
        c = RawH2(self.port)
        c.send(settings_frame([(0x3, 100)]) * 2000)
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed)
        self.assertIn((0, ENHANCE_YOUR_CALM), c.goaways)
        c.close()
        self.assertHealthy()

    def test_header_list_too_large_is_431(self):
        c = RawH2(self.port)
        big = [(f"x-big-{i}", "v" * 4000) for i in range(10)]  # ~40 KiB > 32 KiB
        c.send(c.request_frame(1, "GET", "/index.html", extra=big))
        self.assertTrue(c.pump(lambda: 1 in c.ended))
        self.assertEqual(c.status(1), 431)
        c.close()

    def test_hpack_bomb_resets_stream_and_connection_lives(self):
        c = RawH2(self.port)
        # One 4000-byte field into the dynamic table, then 3000 one-byte references to it:
        # a 6 KiB frame that decodes to 12 MB of header list.
        base = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                       (":authority", "h2.test"), (":path", "/")])
        block = base + b"\x40\x06x-bomb" + hpack_str(b"A" * 4000) + bytes([0x80 | 62]) * 3000
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        self.assertTrue(c.pump(lambda: 1 in c.resets or 1 in c.ended))
        if 1 in c.resets:
            self.assertIn(c.resets[1], (INTERNAL_ERROR, ENHANCE_YOUR_CALM, PROTOCOL_ERROR))
        else:
            self.assertEqual(c.status(1), 431)
        # The connection goes on (the HPACK state stayed in sync): a normal request works.
        # Static-table references only: the dynamic tables of the two sides are not ours here.
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, bytes([0x82, 0x86, 0x84]) +
                     b"\x01\x07h2.test"))
        self.assertTrue(c.pump(lambda: 3 in c.ended), (c.goaways, c.resets))
        self.assertEqual(c.status(3), 200)
        c.close()
        self.assertHealthy()


def hpack_str(raw):
    """An HPACK string literal without Huffman coding (RFC 7541 §5.2)."""
    return hpack_int(len(raw), 7, 0) + raw


def hpack_int(value, prefix_bits, first_byte_flags):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Http2LifecycleTest(WraithTestCase):
    def h2_server(self, **kw):
        srv = H2Server(SITES, workers=1, **kw)
        self.servers.append(srv)
        srv.big_sha = build_docroot(srv.dir)
        srv.start()
        return srv

    def test_idle_connection_gets_goaway_after_keepalive_timeout(self):
        srv = self.h2_server(http={"keepalive_timeout": '"1s"'})
        c = RawH2(srv.port)
        c.send(c.request_frame(1, "GET", "/index.html"))
        self.assertTrue(c.pump(lambda: 1 in c.ended))
        started = time.monotonic()
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed)
        self.assertIn((1, NO_ERROR), c.goaways)
        self.assertGreater(time.monotonic() - started, 0.8)
        c.close()

    def test_preface_without_request_closes_after_header_timeout(self):
        srv = self.h2_server(http={"header_timeout": '"1s"'})
        c = RawH2(srv.port)
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed)
        self.assertIn((0, NO_ERROR), c.goaways)
        c.close()

    def test_reload_sends_goaway_and_download_completes(self):
        # drain_timeout well above the paced download's length, so a slow (shared) machine
        # cannot turn a drain into a timeout.
        srv = self.h2_server(server={"drain_timeout": '"120s"'})
        big_sha = srv.big_sha
        c = RawH2(srv.port)
        c.auto_window = False
        c.send(c.request_frame(1, "GET", "/big.bin"))
        # Pace the download with flow control at 5 MiB/s: about four seconds for 20 MiB.
        credited = [0]
        started = time.monotonic()

        def credit():
            allowed = int((time.monotonic() - started) * (5 << 20))
            target = min(len(c.data.get(1, b"")), allowed)
            if target > credited[0]:
                inc = struct.pack(">I", target - credited[0])
                c.send(frame(WINDOW_UPDATE, 0, 1, inc) + frame(WINDOW_UPDATE, 0, 0, inc))
                credited[0] = target
            return False

        self.assertTrue(c.pump(lambda: len(c.data.get(1, b"")) > 0))
        old = srv.worker_pids()
        reload_result = {}
        t = threading.Thread(target=lambda: reload_result.setdefault("r", srv.reload()))
        t.start()
        deadline = time.monotonic() + 60
        while 1 not in c.ended and not c.closed and time.monotonic() < deadline:
            c.pump(credit, timeout=0.02)
            credit()
            time.sleep(0.005)
        t.join(30)
        self.assertEqual(reload_result["r"].returncode, 0, reload_result["r"].stderr)
        self.assertIn(1, c.ended, f"download did not complete: {len(c.data.get(1, b''))} bytes")
        self.assertEqual(hashlib.sha256(c.data[1]).hexdigest(), big_sha)
        # Two-step GOAWAY: a notice with the maximum id, then the last stream served.
        c.pump(lambda: c.closed, timeout=10)
        self.assertTrue(c.closed, "old worker did not close the drained connection")
        self.assertIn((0x7fffffff, NO_ERROR), c.goaways)
        self.assertIn((1, NO_ERROR), c.goaways)
        self.assertLess(c.goaway_at[0], 20 << 20, "GOAWAY came only after the download")
        c.close()
        srv.wait_workers(1, exclude=old, timeout=15)
        r, status, _ = h2curl(srv.port, "/index.html")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    harness.main()
