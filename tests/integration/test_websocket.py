"""WebSockets through the `proxy` handler: an HTTP/1.1 Upgrade tunnelled both ways, and the
extended CONNECT of RFC 8441 (HTTP/2, h2c here) and RFC 9220 (HTTP/3, through the in-repo
h3get's --connect-protocol mode) mapped to an HTTP/1.1 Upgrade to the backend.

The backend is a small threaded WebSocket echo server started here, which also checks that what
reached it is a proper RFC 6455 opening handshake; the clients are a few lines of RFC 6455
framing over a socket, an h2 stream (python3-h2) or h3get's stdin/stdout.

What is pinned down: echo of text, binary and fragmented messages, 1 MiB messages both ways at
once (backpressure), ping/pong, the close handshake started by either side with half-close
carried through, bytes the backend sends right behind its 101, the tunnel idle timeout, a
refused upgrade (403 passed on), a wrong Sec-WebSocket-Accept (502 for h2/h3 clients, passed
through to HTTP/1.1 clients, who judge it), requests for a tunnel on routes that cannot be one
(HTTP/1.1: served plainly; extended CONNECT: 405) or for another protocol (501), the access
log line written when the tunnel ends (101 / 200, bytes both ways), and a drain that lets a
tunnel run until server.drain_timeout.
"""

import base64
import collections
import hashlib
import json
import os
import random
import select
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
import tlsutil
from harness import Wraith, WraithTestCase, toml_str, wait_for

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:  # Debian's python3-h2, when python3 is not the system one
    sys.path.append("/usr/lib/python3/dist-packages")
    import h2.config
    import h2.connection
    import h2.events

H3GET = os.environ.get("H3GET_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(harness.WRAITH_BIN)), "h3get")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
IO_TIMEOUT = 15.0 * harness.TIME_SCALE
MIB = 1 << 20

PKI = None  # set by setUpModule: a CA and the leaf the HTTP/3 listener uses


def setUpModule():
    global PKI
    d = tempfile.mkdtemp(prefix="wraith-ws-pki-")
    os.chmod(d, 0o755)
    ca = tlsutil.TestPki(d).ca("ws-ca")
    leaf = ca.issue("ws", ["localhost", "127.0.0.1", "ws.test"])
    PKI = collections.namedtuple("Pki", "dir ca leaf")(d, ca, leaf)


def tearDownModule():
    if PKI and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(PKI.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# RFC 6455 framing


def accept_for(key):
    """RFC 6455 §4.2.2: the Sec-WebSocket-Accept for `key` (str)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def xor_mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload, mask, fin=True):
    """One frame; clients mask (RFC 6455 §5.3), servers do not."""
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


Frame = collections.namedtuple("Frame", "fin opcode payload masked")


class FrameReader:
    """Incremental frame parser: feed() bytes, next() returns a Frame or None."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def next(self):
        b = self.buf
        if len(b) < 2:
            return None
        fin, opcode = bool(b[0] & 0x80), b[0] & 0x0F
        masked, n = bool(b[1] & 0x80), b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack("!H", b[2:4])[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack("!Q", b[2:10])[0]
            pos = 10
        key = b""
        if masked:
            if len(b) < pos + 4:
                return None
            key = bytes(b[pos:pos + 4])
            pos += 4
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        if masked:
            payload = xor_mask(payload, key)
        return Frame(fin, opcode, payload, masked)


# --------------------------------------------------------------------------------------------
# The backend: a WebSocket echo server that checks the handshake it receives


class WsBackend(socketserver.ThreadingTCPServer):
    """Echo server on 127.0.0.1. Paths (after any prefix): .../refuse answers 403,
    .../badaccept switches with a wrong Sec-WebSocket-Accept, .../greet sends a text frame in
    the same write as its 101, .../server-close says goodbye and starts the close handshake;
    everything else echoes. `handshakes` holds (path, {name: value}) of each request;
    `events` what each tunnel saw at its end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), WsHandler)
        self.port = self.server_address[1]
        self.lock = threading.Lock()
        self.handshakes = []
        self.events = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def record(self, kind, value):
        with self.lock:
            (self.handshakes if kind == "handshake" else self.events).append(value)

    def last_handshake(self, suffix):
        with self.lock:
            for path, headers in reversed(self.handshakes):
                if path.endswith(suffix):
                    return path, headers
        return None

    def has_event(self, event):
        with self.lock:
            return event in self.events

    def stop(self):
        self.shutdown()
        self.server_close()


class WsHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.settimeout(IO_TIMEOUT)
        self.reader = FrameReader()

    def read_head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head.decode("latin-1"), rest

    def send(self, data):
        self.request.sendall(data)

    def handle(self):
        head, rest = self.read_head()
        if head is None:
            return
        lines = head.split("\r\n")
        method, path, version = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
        self.server.record("handshake", (path, headers))
        if path.endswith("/refuse"):
            body = b"no websockets here\n"
            self.send(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            return
        key = headers.get("sec-websocket-key", "")
        tokens = lambda v: [t.strip().lower() for t in v.split(",")]  # noqa: E731
        problems = []
        if method != "GET" or version != "HTTP/1.1":
            problems.append(f"request line {lines[0]!r}")
        if "websocket" not in tokens(headers.get("upgrade", "")):
            problems.append("no Upgrade: websocket")
        if "upgrade" not in tokens(headers.get("connection", "")):
            problems.append("no Connection: upgrade")
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                problems.append("key is not 16 bytes")
        except ValueError:
            problems.append(f"bad key {key!r}")
        if headers.get("sec-websocket-version") != "13":
            problems.append("version is not 13")
        if "content-length" in headers or "transfer-encoding" in headers:
            problems.append("body framing on a handshake")
        if problems:
            self.server.record("event", ("bad-handshake", path, tuple(problems)))
            self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                      b"Connection: close\r\n\r\n")
            return
        accept = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" if path.endswith("/badaccept") else accept_for(key)
        out = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
               f"X-Backend: ws-echo\r\n")
        if "chat" in tokens(headers.get("sec-websocket-protocol", "")):
            out += "Sec-WebSocket-Protocol: chat\r\n"
        out = out.encode() + b"\r\n"
        if path.endswith("/greet"):
            out += encode_frame(OP_TEXT, b"welcome", mask=False)
        self.send(out)
        self.reader.feed(rest)
        if path.endswith("/server-close"):
            return self.server_close_handshake(path)
        self.echo(path)

    def next_frame(self):
        """The next frame, or None at EOF."""
        while True:
            f = self.reader.next()
            if f is not None:
                return f
            chunk = self.request.recv(1 << 18)
            if not chunk:
                return None
            self.reader.feed(chunk)

    def wait_eof(self):
        try:
            while self.request.recv(65536):
                pass
            return True
        except OSError:
            return False

    def echo(self, path):
        message, message_op = b"", None
        while True:
            f = self.next_frame()
            if f is None:
                self.server.record("event", ("eof-without-close", path))
                return
            if not f.masked:
                self.server.record("event", ("unmasked-frame", path))
                self.send(encode_frame(OP_CLOSE, close_payload(1002), mask=False))
                return
            if f.opcode == OP_PING:
                self.send(encode_frame(OP_PONG, f.payload, mask=False))
            elif f.opcode == OP_CLOSE:
                # Echo the close, end our side, and wait for the client's end (RFC 6455 §7).
                self.send(encode_frame(OP_CLOSE, f.payload, mask=False))
                self.request.shutdown(socket.SHUT_WR)
                code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None
                self.server.record("event", ("client-close", path, code))
                if self.wait_eof():
                    self.server.record("event", ("eof-after-close", path))
                return
            elif f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if f.opcode != OP_CONT:
                    message_op = f.opcode
                message += f.payload
                if f.fin:
                    self.send(encode_frame(message_op, message, mask=False))
                    message = b""

    def server_close_handshake(self, path):
        self.send(encode_frame(OP_TEXT, b"bye soon", mask=False) +
                  encode_frame(OP_CLOSE, close_payload(1001, b"going away"), mask=False))
        while True:
            f = self.next_frame()
            if f is None:
                self.server.record("event", ("eof-before-close-reply", path))
                return
            if f.opcode == OP_CLOSE:
                self.server.record("event", ("close-reply", path, f.payload[:2]))
                break
        # The server closes the TCP connection first (RFC 6455 §7.1.1).
        self.request.shutdown(socket.SHUT_WR)
        if self.wait_eof():
            self.server.record("event", ("eof-after-close", path))


# --------------------------------------------------------------------------------------------
# Client transports: the same WebSocket client over an HTTP/1.1 socket, an h2 stream or h3get


class H1Transport:
    def __init__(self, sock, already=b""):
        self.sock = sock
        self.pending = already

    def write(self, data):
        self.sock.sendall(data)

    def write_big(self, data):
        # Echoes come back while we send: another thread sends so that we can read.
        t = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        t.start()
        return t

    def read(self, timeout):
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1 << 18)
        except ConnectionResetError:
            return b""

    def close_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


class TlsTransport(H1Transport):
    """wss: the same over TLS. One SSL object must not be used by two threads at once, so big
    writes interleave with reads in this thread (what arrives meanwhile is kept)."""

    def write_big(self, data):
        view = memoryview(data)
        self.sock.setblocking(False)
        try:
            while view:
                r, w, _ = select.select([self.sock], [self.sock], [], IO_TIMEOUT)
                if not r and not w:
                    raise AssertionError("the TLS tunnel stalled")
                if r or self.sock.pending():
                    try:
                        self.pending += self.sock.recv(1 << 18)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
                if w:
                    try:
                        view = view[self.sock.send(view[:16384]):]
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
        finally:
            self.sock.setblocking(True)
        return None

    def close_write(self):
        # close_notify, then FIN: a clean end of our side.
        self.sock = self.sock.unwrap()
        self.sock.shutdown(socket.SHUT_WR)


def tls_connect(port):
    ctx = ssl.create_default_context(cafile=PKI.ca.cert)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def h1_handshake(port, path, headers=(), key=None, tls=False, rcvbuf=None, early=b""):
    """Sends a WebSocket opening handshake; returns (status, {name: value}, body, transport,
    key). For a non-101 answer the body is read by Content-Length. `rcvbuf` pins the client
    socket's receive buffer (no kernel autotuning to soak up what we do not read)."""
    key = key or new_key()
    if rcvbuf:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(IO_TIMEOUT)
        sock.connect(("127.0.0.1", port))
    else:
        sock = tls_connect(port) if tls else harness.connect(port, timeout=IO_TIMEOUT)
    req = (f"GET {path} HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    req += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    sock.sendall(req.encode() + early)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    body = b""
    if status != 101 and "content-length" in fields:
        n = int(fields["content-length"])
        body = rest
        while len(body) < n:
            body += sock.recv(65536)
        rest = body[n:]
        body = body[:n]
    return status, fields, body, (TlsTransport if tls else H1Transport)(sock, rest), key


class H2Tunnel:
    """One extended CONNECT stream (RFC 8441) on an h2c connection with prior knowledge."""

    def __init__(self, port, path, protocol="websocket", extra=()):
        self.sock = harness.connect(port, timeout=IO_TIMEOUT)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.remote_settings = {}
        self.data = bytearray()
        self.ended = False
        self.reset = None
        self.response = None
        deadline = time.monotonic() + IO_TIMEOUT
        while 0x8 not in self.remote_settings and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [(":method", "CONNECT"), (":protocol", protocol),
                                          (":scheme", "http"), (":path", path),
                                          (":authority", "ws.test"),
                                          ("sec-websocket-version", "13")] + list(extra))
        self.sock.sendall(self.conn.data_to_send())
        while self.response is None and self.reset is None and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        if self.response is None:
            raise AssertionError(f"no response to the extended CONNECT (reset {self.reset})")
        self.status = int(dict(self.response)[":status"])
        self.headers = {k: v for k, v in self.response if not k.startswith(":")}

    def _pump(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.ended = True
            return False
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                for code, setting in ev.changed_settings.items():
                    self.remote_settings[int(code)] = setting.new_value
            elif isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == self.sid:
                self.response = ev.headers
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == self.sid:
                self.data += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
                self.ended = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
                self.reset = ev.error_code
                self.ended = True
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)
        return True

    def write(self, data):
        view = memoryview(data)
        deadline = time.monotonic() + IO_TIMEOUT
        while view:
            window = min(self.conn.local_flow_control_window(self.sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                if time.monotonic() > deadline:
                    raise AssertionError("no flow-control window from the server")
                self._pump(0.5)  # WINDOW_UPDATEs; echoed DATA is kept meanwhile
                continue
            self.conn.send_data(self.sid, bytes(view[:window]))
            self.sock.sendall(self.conn.data_to_send())
            view = view[window:]

    def write_big(self, data):
        self.write(data)  # reads while it waits for window: no second thread needed
        return None

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.data and not self.ended and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        if self.data:
            out = bytes(self.data)
            self.data.clear()
            return out
        if self.ended:
            return b""
        raise socket.timeout("nothing from the h2 stream")

    def close_write(self):
        self.conn.end_stream(self.sid)
        self.sock.sendall(self.conn.data_to_send())

    def close(self):
        self.sock.close()


class H3Tunnel:
    """h3get --connect-protocol websocket: stdin is our side, stdout (after the -i head) the
    server's."""

    def __init__(self, srv, path, protocol="websocket", max_time=60):
        self.args = [H3GET, "--cacert", PKI.ca.cert, "--resolve",
                     f"localhost:{srv.tls_port}:127.0.0.1", "-i", "-s", "-m", str(max_time),
                     "--connect-protocol", protocol, f"https://localhost:{srv.tls_port}{path}"]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while b"\r\n\r\n" not in self.buf:
            chunk = self._read_some(deadline - time.monotonic())
            if not chunk:
                raise AssertionError(f"h3get printed no head: {self.buf!r} {self.finish()}")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            self.headers[name] = value

    def _read_some(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], max(timeout, 0))
        if not r:
            raise socket.timeout("nothing from h3get")
        return os.read(fd, 1 << 18)

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def write_big(self, data):
        t = threading.Thread(target=self.write, args=(data,), daemon=True)
        t.start()
        return t

    def read(self, timeout):
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        return self._read_some(timeout)

    def close_write(self):
        self.proc.stdin.close()

    def finish(self, timeout=IO_TIMEOUT):
        """Waits for h3get to exit; returns (exit status, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        return self.proc.returncode, err

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


class WsClient:
    """The client end of a WebSocket over one of the transports above."""

    def __init__(self, transport):
        self.t = transport
        self.reader = FrameReader()

    def send(self, opcode, payload, fin=True):
        self.t.write(encode_frame(opcode, payload, mask=True, fin=fin))

    def frame(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            f = self.reader.next()
            if f is not None:
                if f.masked:
                    raise AssertionError("the server side sent a masked frame")
                return f
            data = self.t.read(max(deadline - time.monotonic(), 0.01))
            if not data:
                raise EOFError("the tunnel closed")
            self.reader.feed(data)

    def message(self, timeout=IO_TIMEOUT):
        """(opcode, payload) of the next whole data message; control frames are returned as
        they come."""
        f = self.frame(timeout)
        if f.opcode >= 0x8 or f.fin:
            return f.opcode, f.payload
        op, payload = f.opcode, f.payload
        while True:
            f = self.frame(timeout)
            payload += f.payload
            if f.fin:
                return op, payload

    def expect_eof(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        extra = b""
        while time.monotonic() < deadline:
            try:
                data = self.t.read(max(deadline - time.monotonic(), 0.01))
            except socket.timeout:
                break
            if not data:
                return extra
            extra += data
        raise AssertionError(f"the tunnel did not close (got {extra!r} meanwhile)")


# --------------------------------------------------------------------------------------------
# The server


def udp_and_tcp_port():
    for _ in range(50):
        port = harness.free_port(ipv6_too=False)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no port free for both TCP and UDP")


class WsServer(Wraith):
    """Plain listener with HTTP/1.1 and h2c; a TLS listener (h3, h2, http/1.1) for HTTP/3."""

    def __init__(self, sites, **kw):
        super().__init__(sites, tls_listen="", **kw)
        self.tls_port = udp_and_tcp_port()
        self.write_config()

    def render(self, sites=None):
        text = super().render(sites)
        listen = f'address = "127.0.0.1:{self.port}"'
        return text.replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)


def sites_for(backend_port):
    tls = f"{{ cert = {toml_str(PKI.leaf.chain)}, key = {toml_str(PKI.leaf.key)} }}"
    return f'''
[[site]]
hosts = ["ws.test", "localhost", "127.0.0.1"]
default = true
tls = {tls}
access_log = {{ path = "@DIR@/logs/ws.json", format = "json" }}
  [[site.route]]
  path = "/ws/"
  proxy = {{ pass = "http://127.0.0.1:{backend_port}" }}
  [[site.route]]
  path = "/idle/"
  proxy = {{ pass = "http://127.0.0.1:{backend_port}", tunnel_timeout = "1s" }}
  [[site.route]]
  path = "/plain"
  respond = {{ status = 200, body = "plain answer\\n" }}
  [[site.route]]
  path = "/"
  respond = {{ status = 200, body = "ok\\n" }}
'''


class TunnelChecks:
    """Echo, ping, big messages and the close handshake, the same over every transport."""

    def check_echo(self, ws):
        ws.send(OP_TEXT, "hello, tunnel \u2713".encode())
        self.assertEqual(ws.message(), (OP_TEXT, "hello, tunnel \u2713".encode()))
        binary = bytes(range(256)) * 3
        ws.send(OP_BINARY, binary)
        self.assertEqual(ws.message(), (OP_BINARY, binary))
        # A message in three fragments comes back whole (the backend reassembles it).
        ws.send(OP_TEXT, b"frag-", fin=False)
        ws.send(OP_CONT, b"ment-", fin=False)
        ws.send(OP_CONT, b"ed", fin=True)
        self.assertEqual(ws.message(), (OP_TEXT, b"frag-ment-ed"))

    def check_ping(self, ws):
        ws.send(OP_PING, b"are you there")
        self.assertEqual(ws.message(), (OP_PONG, b"are you there"))

    def check_big(self, ws, count=4, size=MIB):
        rng = random.Random(size + count)
        messages = [rng.randbytes(size) for _ in range(count)]
        wire = b"".join(encode_frame(OP_BINARY, m, mask=True) for m in messages)
        sender = ws.t.write_big(wire)
        for m in messages:
            op, payload = ws.message(timeout=60)
            self.assertEqual(op, OP_BINARY)
            self.assertEqual(len(payload), len(m))
            self.assertEqual(hashlib.sha256(payload).digest(), hashlib.sha256(m).digest())
        if sender is not None:
            sender.join(timeout=60)
        return len(wire)

    def check_client_close(self, ws, code=1000):
        ws.send(OP_CLOSE, close_payload(code, b"done"))
        op, payload = ws.message()
        self.assertEqual(op, OP_CLOSE)
        self.assertEqual(struct.unpack("!H", payload[:2])[0], code)
        # The backend ended its side after its close frame: so does the tunnel towards us,
        # while ours stays open until we end it (half-close).
        ws.expect_eof()
        ws.t.close_write()


class WebSocketTest(WraithTestCase, TunnelChecks):
    @classmethod
    def setUpClass(cls):
        cls.backend = WsBackend()
        cls.srv = WsServer(sites_for(cls.backend.port), workers=1)
        cls.json_log = cls.srv.path("logs", "ws.json")
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            cls.backend.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.backend.stop()

    def log_entry(self, path, method=None, status=None, timeout=10):
        """The JSON access log entry for `path` (waits for it)."""
        def find():
            for line in self.srv.access_log_lines(self.json_log):
                e = json.loads(line)
                if e["path"] == path and (method is None or e["method"] == method) and \
                        (status is None or e["status"] == status):
                    return e
            return None
        return wait_for(find, timeout, what=f"access log entry for {path}")

    def logged(self, path):
        return [json.loads(l) for l in self.srv.access_log_lines(self.json_log)
                if json.loads(l)["path"] == path]

    # -- HTTP/1.1

    def test_h1_handshake_echo_and_close_by_client(self):
        status, fields, _, t, key = h1_handshake(
            self.srv.port, "/ws/h1-echo", headers=[("Sec-WebSocket-Protocol", "chat, superchat"),
                                                   ("Origin", "http://ws.test")])
        try:
            self.assertEqual(status, 101, fields)
            self.assertEqual(fields.get("upgrade", "").lower(), "websocket")
            self.assertEqual(fields.get("connection", "").lower(), "upgrade")
            self.assertEqual(fields.get("sec-websocket-accept"), accept_for(key))
            self.assertEqual(fields.get("sec-websocket-protocol"), "chat")
            self.assertEqual(fields.get("x-backend"), "ws-echo")
            self.assertNotIn("content-length", fields)
            self.assertNotIn("transfer-encoding", fields)
            ws = WsClient(t)
            self.check_echo(ws)
            self.check_ping(ws)
            # No access log line while the tunnel is open.
            time.sleep(1.2)
            self.assertEqual(self.logged("/ws/h1-echo"), [])
            self.check_client_close(ws, 1000)
        finally:
            t.close()
        path, hs = self.backend.last_handshake("/h1-echo")
        self.assertEqual(path, "/ws/h1-echo")
        self.assertEqual(hs["sec-websocket-key"], key)  # the client's own key, untouched
        self.assertEqual(hs["sec-websocket-protocol"], "chat, superchat")
        self.assertEqual(hs["origin"], "http://ws.test")
        self.assertEqual(hs["x-forwarded-for"], "127.0.0.1")
        wait_for(lambda: self.backend.has_event(("client-close", "/ws/h1-echo", 1000)),
                 what="the backend saw the close frame")
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h1-echo")),
                 what="our end of the tunnel reached the backend as EOF")
        e = self.log_entry("/ws/h1-echo")
        self.assertEqual((e["method"], e["protocol"], e["status"]), ("GET", "HTTP/1.1", 101))
        self.assertGreater(e["bytes"], 700)
        self.assertGreater(e.get("request_bytes", 0), 700)
        self.assertNotIn("aborted", e)

    def test_h1_one_mib_messages_both_ways(self):
        status, fields, _, t, _ = h1_handshake(self.srv.port, "/ws/h1-big")
        try:
            self.assertEqual(status, 101, fields)
            ws = WsClient(t)
            sent = self.check_big(ws)
            self.check_client_close(ws)
        finally:
            t.close()
        e = self.log_entry("/ws/h1-big")
        self.assertGreaterEqual(e["bytes"], 4 * MIB)
        self.assertGreaterEqual(e["request_bytes"], sent)

    def test_wss_echo_big_messages_and_close(self):
        # HTTP/1.1 over TLS: close_notify ends each side; TLS records larger than the room
        # left in the read buffer must not stall the tunnel.
        status, fields, _, t, key = h1_handshake(self.srv.tls_port, "/ws/wss-echo", tls=True)
        try:
            self.assertEqual(status, 101, fields)
            self.assertEqual(fields.get("sec-websocket-accept"), accept_for(key))
            ws = WsClient(t)
            self.check_echo(ws)
            self.check_big(ws, count=3)
            self.check_client_close(ws)
        finally:
            t.close()
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/wss-echo")),
                 what="our close_notify reached the backend as EOF")
        e = self.log_entry("/ws/wss-echo")
        self.assertEqual(e["status"], 101)
        self.assertNotIn("aborted", e)

    def test_h1_backpressure_holds_a_reader_that_does_not_read(self):
        # 16 MiB echoed while we read nothing for 2 s (and our receive buffer is small): the
        # worker must stop reading the backend instead of queueing its bytes. (Kernel buffers
        # on loopback hold much of it; what matters is that the worker does not.)
        def rss_kib():
            return int(harness.proc_status(self.srv.worker_pids()[0])["VmRSS"].split()[0])

        status, _, _, t, _ = h1_handshake(self.srv.port, "/ws/h1-stalled", rcvbuf=32768)
        try:
            self.assertEqual(status, 101)
            ws = WsClient(t)
            rng = random.Random(16)
            messages = [rng.randbytes(MIB) for _ in range(16)]
            before = rss_kib()
            sender = t.write_big(b"".join(encode_frame(OP_BINARY, m, mask=True)
                                          for m in messages))
            time.sleep(2)
            grown = rss_kib() - before
            self.assertLess(grown, 4096, f"the worker grew by {grown} KiB")
            for m in messages:
                op, payload = ws.message(timeout=60)
                self.assertEqual((op, hashlib.sha256(payload).digest()),
                                 (OP_BINARY, hashlib.sha256(m).digest()))
            sender.join(timeout=60)
            self.check_client_close(ws)
        finally:
            t.close()

    def test_h1_close_started_by_backend(self):
        status, fields, _, t, _ = h1_handshake(self.srv.port, "/ws/h1/server-close")
        try:
            self.assertEqual(status, 101, fields)
            ws = WsClient(t)
            self.assertEqual(ws.message(), (OP_TEXT, b"bye soon"))
            op, payload = ws.message()
            self.assertEqual((op, struct.unpack("!H", payload[:2])[0]), (OP_CLOSE, 1001))
            ws.send(OP_CLOSE, payload[:2])
            ws.expect_eof()  # the backend closed its TCP side first: so does the tunnel
            t.close_write()
        finally:
            t.close()
        wait_for(lambda: self.backend.has_event(("close-reply", "/ws/h1/server-close",
                                                 struct.pack("!H", 1001))),
                 what="the backend got our close reply")
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h1/server-close")),
                 what="the backend saw our EOF")
        self.assertEqual(self.log_entry("/ws/h1/server-close")["status"], 101)

    def test_h1_client_half_close_reaches_backend(self):
        # No close frame: the client ends its TCP side after a message. The backend sees EOF,
        # its echo still comes back, then the tunnel closes.
        status, _, _, t, _ = h1_handshake(self.srv.port, "/ws/h1-halfclose")
        try:
            self.assertEqual(status, 101)
            ws = WsClient(t)
            ws.send(OP_TEXT, b"last words")
            t.close_write()
            self.assertEqual(ws.message(), (OP_TEXT, b"last words"))
            ws.expect_eof()
        finally:
            t.close()
        wait_for(lambda: self.backend.has_event(("eof-without-close", "/ws/h1-halfclose")),
                 what="the backend saw the client's half-close")
        e = self.log_entry("/ws/h1-halfclose")
        self.assertEqual(e["status"], 101)
        self.assertNotIn("aborted", e)

    def test_h1_frames_sent_with_the_handshake(self):
        # A client that does not wait for the 101: its first frames share the request's
        # packet and must become the tunnel's first bytes, not a second request.
        early = encode_frame(OP_TEXT, b"eager", mask=True) + encode_frame(OP_PING, b"p", mask=True)
        status, _, _, t, _ = h1_handshake(self.srv.port, "/ws/h1-early", early=early)
        try:
            self.assertEqual(status, 101)
            ws = WsClient(t)
            self.assertEqual(ws.message(), (OP_TEXT, b"eager"))
            self.assertEqual(ws.message(), (OP_PONG, b"p"))
            self.check_client_close(ws)
        finally:
            t.close()

    def test_h1_bytes_right_behind_the_101(self):
        status, _, _, t, _ = h1_handshake(self.srv.port, "/ws/h1/greet")
        try:
            self.assertEqual(status, 101)
            ws = WsClient(t)
            self.assertEqual(ws.message(), (OP_TEXT, b"welcome"))
            ws.send(OP_TEXT, b"and back")
            self.assertEqual(ws.message(), (OP_TEXT, b"and back"))
            self.check_client_close(ws)
        finally:
            t.close()

    def test_h1_idle_tunnel_is_closed_after_tunnel_timeout(self):
        status, _, _, t, _ = h1_handshake(self.srv.port, "/idle/h1")
        try:
            self.assertEqual(status, 101)
            ws = WsClient(t)
            # Traffic keeps it open past the 1 s timeout...
            for i in range(3):
                time.sleep(0.5)
                ws.send(OP_TEXT, b"tick %d" % i)
                self.assertEqual(ws.message(), (OP_TEXT, b"tick %d" % i))
            # ...silence closes it.
            started = time.monotonic()
            ws.expect_eof(timeout=10)
            self.assertGreater(time.monotonic() - started, 0.7)
        finally:
            t.close()
        e = self.log_entry("/idle/h1")
        self.assertEqual(e["status"], 101)
        self.assertTrue(e.get("aborted"))
        wait_for(lambda: "idle for" in self.srv.error_log_text(), what="the idle log line")

    def test_h1_refused_upgrade_is_passed_on(self):
        status, fields, body, t, _ = h1_handshake(self.srv.port, "/ws/h1/refuse")
        try:
            self.assertEqual(status, 403)
            self.assertEqual(body, b"no websockets here\n")
            self.assertNotIn("upgrade", fields)
            # An ordinary request/response: the connection stays usable.
            t.write(b"GET /plain HTTP/1.1\r\nHost: ws.test\r\n\r\n")
            got = b""
            while b"plain answer" not in got:
                got += t.read(IO_TIMEOUT)
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        finally:
            t.close()
        self.assertEqual(self.log_entry("/ws/h1/refuse")["status"], 403)

    def test_h1_wrong_accept_reaches_the_client(self):
        # The key is the client's own: it judges the answer (RFC 6455 §4.1), we pass it on.
        status, fields, _, t, key = h1_handshake(self.srv.port, "/ws/h1/badaccept")
        try:
            self.assertEqual(status, 101)
            self.assertEqual(fields["sec-websocket-accept"], "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            self.assertNotEqual(fields["sec-websocket-accept"], accept_for(key))
        finally:
            t.close()

    def test_h1_upgrade_on_a_route_that_cannot_tunnel_is_served_plainly(self):
        status, fields, body, t, _ = h1_handshake(self.srv.port, "/plain")
        try:
            self.assertEqual(status, 200)
            self.assertEqual(body, b"plain answer\n")
            self.assertNotIn("upgrade", fields)
            t.write(b"GET /plain HTTP/1.1\r\nHost: ws.test\r\n\r\n")
            got = b""
            while b"plain answer" not in got:
                got += t.read(IO_TIMEOUT)
        finally:
            t.close()

    def test_h1_other_upgrade_tokens_go_upstream_as_plain_requests(self):
        # Upgrade: h2c through the proxy is not a tunnel: a plain GET without Upgrade.
        sock = harness.connect(self.srv.port)
        try:
            sock.sendall(b"GET /ws/plain-get HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\n"
                         b"Upgrade: h2c\r\n\r\n")
            res = harness.read_until_close(sock, timeout=IO_TIMEOUT,
                                           stop=lambda d: b"\r\n\r\n" in d)
        finally:
            sock.close()
        # The echo backend answers 400 to a request that is no WebSocket handshake.
        self.assertTrue(res.data.startswith(b"HTTP/1.1 400"), res.data)
        _, hs = self.backend.last_handshake("/plain-get")
        self.assertNotIn("upgrade", hs)

    # -- HTTP/2 (RFC 8441)

    def test_h2_settings_enable_connect_protocol(self):
        t = H2Tunnel(self.srv.port, "/ws/h2-settings")
        try:
            self.assertEqual(t.remote_settings.get(0x8), 1)
            self.assertEqual(t.status, 200)
        finally:
            t.close()

    def test_h2_extended_connect_echo(self):
        t = H2Tunnel(self.srv.port, "/ws/h2-echo",
                     extra=[("sec-websocket-protocol", "chat"), ("origin", "http://ws.test")])
        try:
            self.assertEqual(t.status, 200, t.headers)
            self.assertNotIn("sec-websocket-accept", t.headers)
            self.assertNotIn("content-length", t.headers)
            self.assertEqual(t.headers.get("sec-websocket-protocol"), "chat")
            self.assertEqual(t.headers.get("x-backend"), "ws-echo")
            ws = WsClient(t)
            self.check_echo(ws)
            self.check_ping(ws)
            sent = self.check_big(ws)
            self.check_client_close(ws)
            t._pump(0.3)  # a reset, if any, would come now
            self.assertIsNone(t.reset)
        finally:
            t.close()
        path, hs = self.backend.last_handshake("/h2-echo")
        self.assertEqual(path, "/ws/h2-echo")
        self.assertEqual(len(base64.b64decode(hs["sec-websocket-key"])), 16)  # made by us
        self.assertEqual(hs["sec-websocket-version"], "13")
        self.assertEqual(hs["sec-websocket-protocol"], "chat")
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h2-echo")),
                 what="END_STREAM reached the backend as EOF")
        e = self.log_entry("/ws/h2-echo")
        self.assertEqual((e["method"], e["protocol"], e["status"]), ("CONNECT", "HTTP/2.0", 200))
        self.assertGreaterEqual(e["bytes"], 4 * MIB)
        self.assertGreaterEqual(e["request_bytes"], sent)
        self.assertNotIn("aborted", e)

    def test_h2_close_started_by_backend(self):
        t = H2Tunnel(self.srv.port, "/ws/h2/server-close")
        try:
            self.assertEqual(t.status, 200)
            ws = WsClient(t)
            self.assertEqual(ws.message(), (OP_TEXT, b"bye soon"))
            op, payload = ws.message()
            self.assertEqual(op, OP_CLOSE)
            ws.send(OP_CLOSE, payload[:2])
            ws.expect_eof()  # END_STREAM from the server
            t.close_write()
        finally:
            t.close()
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h2/server-close")),
                 what="the backend saw our END_STREAM")

    def test_h2_wrong_accept_is_502(self):
        t = H2Tunnel(self.srv.port, "/ws/h2/badaccept")
        try:
            self.assertEqual(t.status, 502)
        finally:
            t.close()
        wait_for(lambda: "Sec-WebSocket-Accept" in self.srv.error_log_text(),
                 what="the error log names the wrong accept")

    def test_h2_refused_upgrade_is_passed_on(self):
        t = H2Tunnel(self.srv.port, "/ws/h2/refuse")
        try:
            self.assertEqual(t.status, 403)
            deadline = time.monotonic() + IO_TIMEOUT
            while not t.ended and time.monotonic() < deadline:
                t._pump(0.2)
            self.assertEqual(bytes(t.data), b"no websockets here\n")
        finally:
            t.close()

    def test_h2_extended_connect_to_a_route_that_cannot_tunnel_is_405(self):
        t = H2Tunnel(self.srv.port, "/plain")
        try:
            self.assertEqual(t.status, 405)
            self.assertIn("GET", t.headers.get("allow", ""))
        finally:
            t.close()

    def test_h2_extended_connect_for_another_protocol_is_501(self):
        t = H2Tunnel(self.srv.port, "/ws/other", protocol="connect-udp")
        try:
            self.assertEqual(t.status, 501)
        finally:
            t.close()
        self.assertIsNone(self.backend.last_handshake("/ws/other"))

    def test_h2_idle_tunnel_is_reset_after_tunnel_timeout(self):
        t = H2Tunnel(self.srv.port, "/idle/h2")
        try:
            self.assertEqual(t.status, 200)
            deadline = time.monotonic() + 10
            while not t.ended and time.monotonic() < deadline:
                t._pump(0.2)
            self.assertTrue(t.ended)
            self.assertIsNotNone(t.reset)
        finally:
            t.close()
        e = self.log_entry("/idle/h2")
        self.assertEqual((e["status"], e.get("aborted")), (200, True))

    # -- HTTP/3 (RFC 9220)

    def require_h3get(self):
        if not os.access(H3GET, os.X_OK):
            self.fail(f"{H3GET} is missing: build it with `cmake --build BUILD --target h3get`")

    def test_h3_extended_connect_echo(self):
        self.require_h3get()
        t = H3Tunnel(self.srv, "/ws/h3-echo")
        try:
            self.assertEqual(t.status, 200, t.headers)
            self.assertNotIn("sec-websocket-accept", t.headers)
            self.assertEqual(t.headers.get("x-backend"), "ws-echo")
            ws = WsClient(t)
            self.check_echo(ws)
            self.check_ping(ws)
            sent = self.check_big(ws, count=2)
            self.check_client_close(ws)
            code, err = t.finish()
            self.assertEqual(code, 0, err)
        finally:
            t.close()
        path, hs = self.backend.last_handshake("/h3-echo")
        self.assertEqual(len(base64.b64decode(hs["sec-websocket-key"])), 16)
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h3-echo")),
                 what="the end of our QUIC stream reached the backend as EOF")
        e = self.log_entry("/ws/h3-echo")
        self.assertEqual((e["method"], e["protocol"], e["status"]), ("CONNECT", "HTTP/3.0", 200))
        self.assertGreaterEqual(e["bytes"], 2 * MIB)
        self.assertGreaterEqual(e["request_bytes"], sent)
        self.assertNotIn("aborted", e)

    def test_h3_close_started_by_backend(self):
        self.require_h3get()
        t = H3Tunnel(self.srv, "/ws/h3/server-close")
        try:
            self.assertEqual(t.status, 200)
            ws = WsClient(t)
            self.assertEqual(ws.message(), (OP_TEXT, b"bye soon"))
            op, payload = ws.message()
            self.assertEqual(op, OP_CLOSE)
            ws.send(OP_CLOSE, payload[:2])
            ws.expect_eof()
            t.close_write()
            code, err = t.finish()
            self.assertEqual(code, 0, err)
        finally:
            t.close()
        wait_for(lambda: self.backend.has_event(("eof-after-close", "/ws/h3/server-close")),
                 what="the backend saw our FIN")

    def test_h3_wrong_accept_is_502(self):
        self.require_h3get()
        t = H3Tunnel(self.srv, "/ws/h3/badaccept")
        try:
            self.assertEqual(t.status, 502)
            code, err = t.finish()
            self.assertEqual(code, 0, err)
        finally:
            t.close()

    def test_h3_extended_connect_to_a_route_that_cannot_tunnel_is_405(self):
        self.require_h3get()
        t = H3Tunnel(self.srv, "/plain")
        try:
            self.assertEqual(t.status, 405)
            t.finish()
        finally:
            t.close()


class WebSocketDrainTest(WraithTestCase, TunnelChecks):
    """A reload drains the old worker: its open tunnels (HTTP/1.1 and HTTP/3 here; python3-h2
    cannot go on after a GOAWAY) keep working until drain_timeout, then they are closed (and
    logged)."""

    def test_tunnels_survive_a_drain_until_drain_timeout(self):
        backend = WsBackend()
        try:
            srv = WsServer(sites_for(backend.port), workers=1,
                           server={"drain_timeout": '"3s"'})
            self.servers.append(srv)
            srv.start()
            status, _, _, t1, _ = h1_handshake(srv.port, "/ws/drained-h1")
            if not os.access(H3GET, os.X_OK):
                self.fail(f"{H3GET} is missing: build it with `cmake --build BUILD --target h3get`")
            t2 = H3Tunnel(srv, "/ws/drained-h3")
            try:
                self.assertEqual((status, t2.status), (101, 200))
                tunnels = [WsClient(t1), WsClient(t2)]
                for ws in tunnels:
                    ws.send(OP_TEXT, b"before")
                    self.assertEqual(ws.message(), (OP_TEXT, b"before"))
                r = srv.reload()
                self.assertEqual(r.returncode, 0, r.stderr)
                drain_started = time.monotonic()
                # The old worker drains, and its tunnels still carry messages.
                for ws in tunnels:
                    ws.send(OP_TEXT, b"during the drain")
                    self.assertEqual(ws.message(), (OP_TEXT, b"during the drain"))
                for ws in tunnels:
                    ws.expect_eof(timeout=15)
                    waited = time.monotonic() - drain_started
                    self.assertGreater(waited, 2.0)
                    self.assertLess(waited, 12.0)
            finally:
                t1.close()
                t2.close()
            json_log = srv.path("logs", "ws.json")
            for path, status in (("/ws/drained-h1", 101), ("/ws/drained-h3", 200)):
                line = srv.wait_log_line(lambda l: path in l, path=json_log,
                                         what=f"the access log line of {path}")
                e = json.loads(line)
                self.assertEqual((e["status"], e.get("aborted")), (status, True))
            self.assertIn("drain_timeout reached", srv.error_log_text())
        finally:
            backend.stop()


if __name__ == "__main__":
    harness.main()
