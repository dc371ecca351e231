"""Zero-downtime operations under load (issue 6): continuous HTTP/1.1, HTTP/2 and HTTP/3 load
on a static and a proxied route while Wraith reloads 20 times (each reload moves both routes
between static and proxy, the same bytes either way) and then upgrades its binary; a broken
config sent mid-load; and the bad inputs: 10 HUPs in a second, a reload while the previous
generation still drains, a worker killed during drain, a new binary that exits at once, a
certificate that disappears between `wraith check` and the reload.

Clients, all started and stopped by their own handles:
  HTTP/1.1  Python keep-alive clients in threads (http.client), bodies compared byte for byte.
            A request whose reused keep-alive connection was closed before any byte of the
            answer is sent again on a new connection (RFC 9112 §9.3.1: the server may close an
            idle connection at any time, and it does so on drain); such retries are counted
            and printed. A reset (ECONNRESET/EPIPE) is never retried: it counts as a reset.
  HTTP/2    build/h3load --h2, in back-to-back `-n` runs. Not h2load: nghttp2-client 1.52's
            h2load stops a client for good at the first GOAWAY (Client::process_request_failure
            after nghttp2_session_check_request_allowed fails), so after the first reload it
            sends nothing more; h3load --h2 finishes the streams in flight and reconnects, as
            RFC 9113 §6.8 expects a client to. `-n` runs, not `-D`: every request of an `-n`
            run is counted, while `-D` leaves the requests that end after the window out of
            every count, failed ones included. h2load does run beside it in the broken-config
            test, where no GOAWAY is sent.
  HTTP/3    build/h3load, likewise.
  Downloads one large file per protocol (curl over HTTP/1.1, curl --http2, h3get) written to a
            pipe this side reads at 1 MiB/s until released (the way test_http3's PacedDownload
            paces h3get), so each stays in flight from before the first reload until after the
            old master has been told to QUIT; SHA-256 checked at the end.

Every count is printed to stderr ([zero-downtime] lines) before anything is asserted.
"""

import collections
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import harness
import test_websocket as wsmod

try:
    import hpack
except ImportError:  # Debian's python3-hpack, when python3 is not the system one
    sys.path.append("/usr/lib/python3/dist-packages")
    import hpack
import tlsutil
from harness import (TIME_SCALE, Wraith, WraithTestCase, children_of, pid_alive, proc_starttime,
                     toml_str, wait_for, write_file)

BIN_DIR = os.path.dirname(os.path.abspath(harness.WRAITH_BIN))
H3GET = os.environ.get("H3GET_BIN") or os.path.join(BIN_DIR, "h3get")
H3LOAD = os.environ.get("H3LOAD_BIN") or os.path.join(BIN_DIR, "h3load")

SMALL_SIZE = 4096
BIG_SIZE = 40 << 20       # each slow download
READ_RATE = 1 << 20       # bytes/s a held download is read at
RELOADS = 20
PER_GENERATION = 300      # requests a new generation serves before the next reload
H3LOAD_RUN = ["-c", "2", "-m", "4", "-n", "1500"]  # one run; runs follow each other

PKI = None


def setUpModule():
    global PKI
    d = tempfile.mkdtemp(prefix="wraith-zd-pki-")
    os.chmod(d, 0o755)
    ca = tlsutil.TestPki(d).ca("zero-downtime-ca")
    leaf = ca.issue("zd", ["localhost", "127.0.0.1"])
    PKI = collections.namedtuple("Pki", "dir ca leaf")(d, ca, leaf)
    wsmod.PKI = PKI  # H3Tunnel (h3get --connect-protocol) trusts this CA


def tearDownModule():
    if PKI and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(PKI.dir, ignore_errors=True)


def say(text):
    sys.stderr.write(f"[zero-downtime] {text}\n")
    sys.stderr.flush()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sparse(path, size):
    """Zeros with 64 KiB of random bytes every 4 MiB (a lost or misplaced chunk changes the
    hash); returns the SHA-256."""
    harness.make_dir(os.path.dirname(path))
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, 4 << 20):
            f.seek(off)
            f.write(os.urandom(min(65536, size - off)))
    os.chmod(path, 0o644)
    return file_sha256(path)


def require_tools(test):
    for tool in (H3GET, H3LOAD):
        if not os.access(tool, os.X_OK):
            test.fail(f"{tool} is missing: cmake --build BUILD --target h3get h3load")
    if not shutil.which("curl"):
        test.fail("curl is missing (make deps)")


# --------------------------------------------------------------------------------------------
# The upstream: serves the same directory as the static routes, so a route answers the same
# bytes whether it is static or proxied. `X-Served-By: backend` tells which one answered.


class Backend(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # proxied bursts must not wait in SYN retries

    def __init__(self, root):
        self.root = os.path.realpath(root)
        super().__init__(("127.0.0.1", 0), BackendHandler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


class BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = os.path.normpath(unquote(self.path.partition("?")[0])).lstrip("/")
        full = os.path.realpath(os.path.join(self.server.root, rel))
        if not full.startswith(self.server.root + os.sep) or not os.path.isfile(full):
            body = b"not found\n"
            self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
            return
        size = os.path.getsize(full)
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"X-Served-By: backend\r\nContent-Length: %d\r\n\r\n" % size)
        with open(full, "rb") as f:
            if size <= 1 << 20:
                self.wfile.write(head + f.read())
                return
            self.wfile.write(head)
            for chunk in iter(lambda: f.read(256 << 10), b""):
                self.wfile.write(chunk)


# --------------------------------------------------------------------------------------------
# The server


def sites(backend_port, swapped, cert=None, ws_port=None):
    """/a/ static and /b/ proxied (swapped: the other way round), /ws/ WebSockets to the echo
    backend (when ws_port), / static."""
    cert = cert or (PKI.leaf.chain, PKI.leaf.key)

    def route(path, kind):
        handler = ('static = { root = "@DIR@/www" }' if kind == "static"
                   else 'proxy = { upstream = "backend" }')
        return f'  [[site.route]]\n  path = "{path}"\n  {handler}\n'

    a, b = ("proxy", "static") if swapped else ("static", "proxy")
    ws_up = f'[upstream.ws]\nservers = ["127.0.0.1:{ws_port}"]\n\n' if ws_port else ""
    ws_route = ('  [[site.route]]\n  path = "/ws/"\n  proxy = { upstream = "ws" }\n'
                if ws_port else "")
    return (f'[upstream.backend]\nservers = ["127.0.0.1:{backend_port}"]\nkeepalive = 16\n\n'
            + ws_up + '[[site]]\nhosts = ["localhost", "127.0.0.1"]\ndefault = true\n'
            f'tls = {{ cert = {toml_str(cert[0])}, key = {toml_str(cert[1])} }}\n'
            + ws_route + route("/a/", a) + route("/b/", b) + route("/", "static"))


class RawH2Tunnel:
    """A WebSocket over an RFC 8441 extended CONNECT stream on h2c, written and read frame by
    frame. Unlike python3-h2 it goes on after a GOAWAY, which is what a client may do: a
    graceful GOAWAY keeps the streams below its id alive (RFC 9113 §6.8)."""

    DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW = 0, 1, 3, 4, 6, 7, 8

    def __init__(self, port, path):
        self.sock = harness.connect(port, timeout=30)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.data = bytearray()
        self.settings = {}
        self.status = None
        self.ended = False
        self.reset = None
        self.goaways = 0
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                          self.frame(self.SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 24)) +
                          self.frame(self.WINDOW, 0, 0, struct.pack(">I", 1 << 30)))
        deadline = time.monotonic() + 10
        while 8 not in self.settings and time.monotonic() < deadline:
            self._pump(0.5)
        if self.settings.get(8) != 1:
            raise AssertionError(f"no SETTINGS_ENABLE_CONNECT_PROTOCOL: {self.settings}")
        block = self.enc.encode([(":method", "CONNECT"), (":protocol", "websocket"),
                                 (":scheme", "http"), (":path", path), (":authority", "ws.test"),
                                 ("sec-websocket-version", "13")])
        self.sock.sendall(self.frame(self.HEADERS, 0x4, 1, block))
        while self.status is None and self.reset is None and time.monotonic() < deadline:
            self._pump(0.5)
        if self.status is None:
            raise AssertionError(f"no answer to the extended CONNECT (reset {self.reset})")

    @staticmethod
    def frame(ftype, flags, sid, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">I", sid) + payload

    def _pump(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            return
        if not chunk:
            self.ended = True
            return
        self.buf += chunk
        out = b""
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
            payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
            if ftype == self.SETTINGS and not flags & 1:
                for i in range(0, len(payload), 6):
                    k, v = struct.unpack(">HI", payload[i:i + 6])
                    self.settings[k] = v
                out += self.frame(self.SETTINGS, 1, 0)
            elif ftype == self.PING and not flags & 1:
                out += self.frame(self.PING, 1, 0, payload)
            elif ftype == self.HEADERS and sid == 1:
                self.status = int(dict(self.dec.decode(payload))[":status"])
            elif ftype == self.DATA and sid == 1:
                self.data += payload
                if payload:
                    inc = struct.pack(">I", len(payload))
                    out += self.frame(self.WINDOW, 0, 1, inc) + self.frame(self.WINDOW, 0, 0, inc)
                if flags & 1:
                    self.ended = True
            elif ftype == self.RST and sid == 1:
                self.reset = int.from_bytes(payload, "big")
                self.ended = True
            elif ftype == self.GOAWAY:
                self.goaways += 1  # graceful: our stream 1 is below any last-stream-id sent
        if out:
            self.sock.sendall(out)

    def write(self, data):
        for i in range(0, len(data), 16384):
            self.sock.sendall(self.frame(self.DATA, 0, 1, data[i:i + 16384]))

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
        self.sock.sendall(self.frame(self.DATA, 1, 1))

    def close(self):
        self.sock.close()


class ZdServer(Wraith):
    """A Wraith with a plain listener (HTTP/1.1) and a TLS listener (h3, h2, http/1.1 on the
    same TCP and UDP port), the sites of `sites()`, @DIR@/www filled by the test."""

    def __init__(self, backend_port, drain_timeout="120s", ws_port=None, **kw):
        self.backend_port = backend_port
        self.ws_port = ws_port
        self.swapped = False
        super().__init__(sites(backend_port, False, ws_port=ws_port), workers=2, tls_listen="",
                         server={"drain_timeout": toml_str(drain_timeout)}, **kw)

    def render(self, sites=None):
        # h2c on the plain listener too: the WebSocket over HTTP/2 (RFC 8441) uses it.
        listen = f'address = "127.0.0.1:{self.port}"'
        return super().render(sites).replace(listen,
                                             listen + '\nprotocols = ["http/1.1", "h2c"]', 1)

    def use(self, swapped):
        """Writes the config with the routes the given way round."""
        self.swapped = swapped
        self.sites = sites(self.backend_port, swapped, ws_port=self.ws_port)
        self.write_config()

    def start(self, wait=True):
        # A QUIC client elsewhere may take our UDP port between the check and the bind.
        for attempt in range(3):
            try:
                return super().start(wait)
            except AssertionError:
                if attempt == 2 or "Address already in use" not in self.read(self.stderr_path):
                    raise
                self.stop()
                self.tls_port = harness.free_port()
                self.write_config()

    def url(self, path):
        return f"https://localhost:{self.tls_port}{path}"

    def resolve(self):
        return f"localhost:{self.tls_port}:127.0.0.1"


def read_pid(path):
    with open(path) as f:
        return int(f.read())


STATUS_WORKER = re.compile(r"^worker (\d+)\s+generation (\d+)\s+pid (\d+)\s+state (\w+)\s+"
                           r"uptime \S+\s+connections (\d+)\s+requests (\d+)$", re.M)


def status_workers(srv):
    """[(generation, pid, state, requests)] from `wraith status` (whichever master owns the
    control socket)."""
    r = srv.status()
    if r.returncode != 0:
        raise AssertionError(f"wraith status failed: {r.stdout}{r.stderr}")
    return [(int(g), int(p), st, int(req)) for _, g, p, st, _, req in
            STATUS_WORKER.findall(r.stdout)]


def generation_requests(srv, gen):
    return sum(req for g, _, _, req in status_workers(srv) if g == gen)


# --------------------------------------------------------------------------------------------
# Clients


class H1Client(threading.Thread):
    """One keep-alive HTTP/1.1 client: GETs `paths` in turn until stopped, checks status 200
    and the exact body. Counts what it sees."""

    def __init__(self, port, paths, expected, host="127.0.0.1"):
        super().__init__(daemon=True)
        self.port, self.paths, self.expected, self.host = port, paths, expected, host
        self.stop_event = threading.Event()
        self.ok = 0
        self.failed = 0
        self.resets = 0
        self.retried = 0       # reused connection closed before any byte: sent again
        self.connections = 0
        self.errors = []       # first few failures, for the message

    def note(self, what):
        if len(self.errors) < 8:
            self.errors.append(what)

    def run(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        i = 0
        while not self.stop_event.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            for attempt in (0, 1):
                fresh = conn.sock is None
                if fresh:
                    self.connections += 1
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                except http.client.RemoteDisconnected as e:
                    # EOF before the status line: the server closed an idle keep-alive
                    # connection as this request went out.
                    conn.close()
                    if not fresh and attempt == 0:
                        self.retried += 1
                        continue
                    self.failed += 1
                    self.note(f"{path}: {e!r} on a {'new' if fresh else 'reused'} connection")
                    break
                except (ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    self.resets += 1
                    self.failed += 1
                    self.note(f"{path}: reset {e!r} on a {'new' if fresh else 'reused'} "
                              "connection")
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    self.failed += 1
                    self.note(f"{path}: {e!r}")
                    break
                if resp.status != 200 or body != self.expected[path]:
                    self.failed += 1
                    self.note(f"{path}: status {resp.status}, {len(body)} bytes"
                              + ("" if resp.status != 200 else " (wrong body)"))
                else:
                    self.ok += 1
                break
        conn.close()

    def stop(self):
        self.stop_event.set()


class H1Load:
    """`n` H1Clients on the plain listener."""

    def __init__(self, srv, paths, expected, n=2):
        self.clients = [H1Client(srv.port, paths[k:] + paths[:k], expected) for k in range(n)]
        for c in self.clients:
            c.start()

    def total(self, attr):
        return sum(getattr(c, attr) for c in self.clients)

    def stop(self):
        for c in self.clients:
            c.stop()
        for c in self.clients:
            c.join(30)

    def summary(self):
        return (f"{self.total('ok')} requests ok, {self.total('failed')} failed, "
                f"{self.total('resets')} resets, {self.total('retried')} sent again after a "
                f"keep-alive close, {self.total('connections')} connections")

    def errors(self):
        return [e for c in self.clients for e in c.errors]


REQUESTS_LINE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                           r"(\d+) failed, (\d+) errored, (\d+) timeout")


class H3LoadLoop(threading.Thread):
    """build/h3load (or --h2) in back-to-back `-n` runs until stopped; sums every report."""

    def __init__(self, srv, paths, h2=False):
        super().__init__(daemon=True)
        self.name_ = "HTTP/2" if h2 else "HTTP/3"
        self.alpn = "h2" if h2 else "h3"
        self.cmd = [H3LOAD] + (["--h2"] if h2 else []) + [
            "--cacert", PKI.ca.cert, "--resolve", srv.resolve(), *H3LOAD_RUN,
            *[srv.url(p) for p in paths]]
        self.stop_event = threading.Event()
        self.proc = None
        self.runs = 0
        self.counts = collections.Counter()
        self.problems = []   # unparsable reports, wrong ALPN, stderr lines

    def note(self, what):
        if len(self.problems) < 8:
            self.problems.append(what)

    def run(self):
        while not self.stop_event.is_set():
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
            try:
                out, err = self.proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                self.note("h3load ran over 120 s and was killed")
                self.counts["failed"] += 1
            self.runs += 1
            m = REQUESTS_LINE.search(out)
            if not m:
                self.counts["failed"] += 1
                self.note(f"no report (exit {self.proc.returncode}): {out[-400:]} {err[-400:]}")
                continue
            for key, value in zip(("total", "started", "done", "succeeded", "failed",
                                   "errored", "timeout"), m.groups()):
                self.counts[key] += int(value)
            c = re.search(r"^connection errors: (\d+)$", out, re.M)
            self.counts["connection errors"] += int(c.group(1)) if c else 0
            if f"Application protocol: {self.alpn}" not in out:
                self.counts["failed"] += 1
                self.note(f"ALPN was not {self.alpn}: {out[:300]}")
            for line in err.splitlines():
                self.note(line)

    def stop(self):
        self.stop_event.set()
        self.join(150)

    def kill(self):
        self.stop_event.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def summary(self):
        c = self.counts
        return (f"{c['succeeded']} succeeded, {c['failed']} failed, {c['errored']} errored, "
                f"{c['timeout']} timeout, {c['connection errors']} connection errors "
                f"({self.runs} h3load{' --h2' if self.alpn == 'h2' else ''} runs)")


class SlowDownload:
    """A client process writing one body to a pipe that this side reads at `rate` bytes/s,
    never past `hold_at` bytes, until release(); then at full speed. The server sees a slow
    reader (TCP window, QUIC flow control), so the response stays in flight for as long as
    the test wants."""

    def __init__(self, test, name, cmd, hold_at, rate=READ_RATE):
        self.name, self.cmd, self.hold_at, self.rate = name, cmd, hold_at, rate
        self.sha = hashlib.sha256()
        self.count = 0
        self.released = threading.Event()
        fd, self.stderr_path = tempfile.mkstemp(prefix="zd-download-", suffix=".stderr")
        self._stderr = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        test.addCleanup(self.close)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        started = time.monotonic()
        while True:
            if self.released.is_set():
                want = 1 << 20
            else:
                allowed = min(self.hold_at, int((time.monotonic() - started) * self.rate) + 65536)
                if self.count >= allowed:
                    self.released.wait(0.05)  # pacing: this is the slow reader
                    continue
                want = allowed - self.count
            chunk = self.proc.stdout.read1(want)
            if not chunk:
                return
            self.sha.update(chunk)
            self.count += len(chunk)

    def in_flight(self):
        return self.proc.poll() is None

    def release(self):
        self.released.set()

    def finish(self, timeout=120):
        """Releases, waits for the client to exit; returns its exit status."""
        self.release()
        self.thread.join(timeout)
        return self.proc.wait(timeout)

    @property
    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        self.released.set()
        if self.proc.poll() is None:
            self.proc.kill()  # this client only, by its own handle
            self.proc.wait()
        self.thread.join(10)
        self.proc.stdout.close()
        self._stderr.close()
        os.unlink(self.stderr_path)


def curl_download(test, srv, path, http2=False, hold_at=BIG_SIZE - (8 << 20)):
    if http2:
        cmd = ["curl", "-sS", "--http2", "--cacert", PKI.ca.cert, "--resolve", srv.resolve(),
               srv.url(path)]
    else:
        cmd = ["curl", "-sS", f"http://127.0.0.1:{srv.port}{path}"]
    cmd += ["--max-time", "240", "-o", "-",
            "-w", "%{stderr}http_version=%{http_version} status=%{http_code}\\n"]
    return SlowDownload(test, "HTTP/2 (curl)" if http2 else "HTTP/1.1 (curl)", cmd, hold_at)


def h3get_download(test, srv, path, hold_at=BIG_SIZE - (8 << 20)):
    cmd = [H3GET, "--cacert", PKI.ca.cert, "--resolve", srv.resolve(), "--max-time", "240",
           srv.url(path)]
    return SlowDownload(test, "HTTP/3 (h3get)", cmd, hold_at)


class PidWatch(threading.Thread):
    """Records every child (pid, start time) of the watched masters, every 50 ms."""

    def __init__(self, *masters):
        super().__init__(daemon=True)
        self.masters = list(masters)
        self.seen = set()  # (pid, start time): a reused pid is another process
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.start()

    def add_master(self, pid):
        with self.lock:
            self.masters.append(pid)
        self.scan()

    def scan(self):
        with self.lock:
            masters = list(self.masters)
        for m in masters:
            for pid in children_of(m):
                started = proc_starttime(pid)
                if started is not None:
                    self.seen.add((pid, started))

    def run(self):
        while not self.stop_event.wait(0.05):
            self.scan()

    def alive(self):
        """Workers seen that still run (a new master forked by an upgrade is not one)."""
        with self.lock:
            masters = set(self.masters)
        return sorted(p for p, started in list(self.seen)
                      if p not in masters and pid_alive(p) and proc_starttime(p) == started)

    def wait_only(self, pids, timeout=30):
        """Waits until `pids` are the only workers seen still alive; returns them."""
        try:
            return wait_for(lambda: self.alive() == sorted(pids) and pids, timeout=timeout,
                            what=f"only workers {sorted(pids)} left")
        except AssertionError as e:
            raise AssertionError(f"{e}; alive: {self.alive()}") from None

    def workers_seen(self):
        with self.lock:
            masters = set(self.masters)
        return len({p for p, _ in list(self.seen)} - masters)

    def stop(self):
        self.stop_event.set()
        self.join(5)


def kill_master(pid, started):
    """Stops a master that is not our child (the upgraded one) by pid; its workers go too."""
    if pid_alive(pid) and proc_starttime(pid) == started:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), timeout=30, what=f"master {pid} to exit")


# --------------------------------------------------------------------------------------------


class ZeroDowntimeBase(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.www = tempfile.mkdtemp(prefix="wraith-zd-www-")
        os.chmod(cls.www, 0o755)
        cls.small = {}
        for d in ("a", "b"):
            data = os.urandom(SMALL_SIZE)
            write_file(os.path.join(cls.www, d, "small.bin"), data)
            cls.small[f"/{d}/small.bin"] = data
        cls.big_sha = write_sparse(os.path.join(cls.www, "a", "big.bin"), BIG_SIZE)
        shutil.copy(os.path.join(cls.www, "a", "big.bin"), os.path.join(cls.www, "b", "big.bin"))
        os.chmod(os.path.join(cls.www, "b", "big.bin"), 0o644)
        write_file(os.path.join(cls.www, "index.html"), b"zero downtime\n")
        cls.backend = Backend(cls.www)
        cls.ws_backend = wsmod.WsBackend()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        cls.ws_backend.stop()
        shutil.rmtree(cls.www, ignore_errors=True)
        super().tearDownClass()

    def start_server(self, **kw):
        require_tools(self)
        srv = ZdServer(self.backend.port, ws_port=self.ws_backend.server_address[1], **kw)
        self.servers.append(srv)
        os.symlink(self.www, srv.path("www"))
        srv.start()
        srv.wait_workers(2)
        return srv

    def start_load(self, srv, protocols=("h1", "h2", "h3")):
        paths = sorted(self.small)
        load = {}
        if "h1" in protocols:
            load["h1"] = H1Load(srv, paths, self.small)
            self.addCleanup(load["h1"].stop)
        for proto in ("h2", "h3"):
            if proto in protocols:
                load[proto] = H3LoadLoop(srv, paths, h2=proto == "h2")
                load[proto].start()
                self.addCleanup(load[proto].kill)
        if "h1" in load:
            wait_for(lambda: load["h1"].total("ok") >= 50, timeout=30,
                     what="the HTTP/1.1 clients to get going")
        for proto in ("h2", "h3"):
            if proto in load:
                wait_for(lambda p=proto: load[p].runs >= 1, timeout=60,
                         what=f"a first {proto} h3load run")
        return load

    def open_websockets(self, srv):
        sockets = []
        for name, tls in (("HTTP/1.1", False), ("HTTP/1.1+TLS", True)):
            status, fields, _, transport, _ = wsmod.h1_handshake(
                srv.tls_port if tls else srv.port, "/ws/echo", tls=tls)
            self.assertEqual(status, 101, f"{name}: {fields}")
            sockets.append((name, transport, wsmod.WsClient(transport)))
        h2 = RawH2Tunnel(srv.port, "/ws/echo")
        self.assertEqual(h2.status, 200)
        sockets.append(("HTTP/2", h2, wsmod.WsClient(h2)))
        t = wsmod.H3Tunnel(srv, "/ws/echo")
        self.assertEqual(t.status, 200, t.headers)
        sockets.append(("HTTP/3", t, wsmod.WsClient(t)))
        for name, transport, _ in sockets:
            self.addCleanup(transport.close)
        return sockets

    def echo_all(self, sockets, when):
        for name, _, ws in sockets:
            text = f"{name} {when} {time.monotonic()}".encode()
            ws.send(wsmod.OP_TEXT, text)
            try:
                self.assertEqual(ws.message(), (wsmod.OP_TEXT, text), f"{name} {when}")
            except EOFError:
                self.fail(f"the {name} WebSocket closed {when}")
        return len(sockets)

    def close_websockets(self, sockets):
        for name, transport, ws in sockets:
            ws.send(wsmod.OP_CLOSE, wsmod.close_payload(1000))
            op, _ = ws.message()
            self.assertEqual(op, wsmod.OP_CLOSE, f"{name}: no close echoed")
            transport.close_write()
            ws.expect_eof()
            if isinstance(transport, wsmod.H3Tunnel):
                code, err = transport.finish()
                self.assertEqual(code, 0, f"HTTP/3 tunnel: {err}")

    @staticmethod
    def a_is_proxied(srv):
        status, headers, _ = harness.http_get(srv.port, "/a/small.bin")
        if status != 200:
            raise AssertionError(f"GET /a/small.bin answered {status}")
        return headers.get("X-Served-By") == "backend"

    def assertServesEverywhere(self, srv, swapped=None):
        """One request per protocol and route on new connections, right bytes; with
        `swapped` given, /a/ must come from the backend exactly when swapped."""
        for path, data in sorted(self.small.items()):
            status, headers, body = harness.http_get(srv.port, path)
            self.assertEqual((status, body), (200, data), f"HTTP/1.1 {path}")
            if swapped is not None and path == "/a/small.bin":
                self.assertEqual(headers.get("X-Served-By") == "backend", swapped,
                                 f"/a/ is not {'proxied' if swapped else 'static'}: {headers}")
            r = harness.curl("--http2", "--cacert", PKI.ca.cert, "--resolve", srv.resolve(),
                             "-w", "%{stderr}%{http_version}", srv.url(path))
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, data, b"2"),
                             f"HTTP/2 {path}")
            h3 = subprocess.run([H3GET, "--cacert", PKI.ca.cert, "--resolve", srv.resolve(),
                                 srv.url(path)], capture_output=True, timeout=60)
            self.assertEqual((h3.returncode, h3.stdout), (0, data),
                             f"HTTP/3 {path}: {h3.stderr.decode(errors='replace')}")


class ZeroDowntimeUnderLoad(ZeroDowntimeBase):
    def test_20_reloads_and_a_binary_upgrade_lose_no_request(self):
        srv = self.start_server()
        old_master = srv.pid
        watch = PidWatch(old_master)
        self.addCleanup(watch.stop)
        load = self.start_load(srv)
        downloads = [curl_download(self, srv, "/b/big.bin"),                # proxied at start
                     curl_download(self, srv, "/a/big.bin", http2=True),    # static at start
                     h3get_download(self, srv, "/b/big.bin")]               # proxied at start
        for dl in downloads:
            wait_for(lambda d=dl: d.count > 0 or not d.in_flight(), timeout=30,
                     what=f"the {dl.name} download to start")
            self.assertTrue(dl.in_flight(), f"{dl.name} ended at once:\n{dl.stderr}")
        # WebSockets through the proxy, opened before the first reload and used after each:
        # over HTTP/1.1, over HTTP/1.1 with TLS, over HTTP/2 (RFC 8441) and over HTTP/3
        # (RFC 9220).
        sockets = self.open_websockets(srv)
        echoes = 0

        reload_times = []
        for i in range(RELOADS):
            srv.use(swapped=not srv.swapped)
            t0 = time.monotonic()
            r = srv.reload()
            reload_times.append(time.monotonic() - t0)
            self.assertEqual(r.returncode, 0, f"reload {i + 1}: {r.stdout}{r.stderr}")
            gen = int(re.search(r"generation (\d+) serving", r.stdout).group(1))
            watch.scan()
            # The new generation takes the load before the next reload.
            wait_for(lambda: generation_requests(srv, gen) >= PER_GENERATION, timeout=30,
                     what=f"generation {gen} to serve {PER_GENERATION} requests")
            # A new connection gets the new routes (an old worker may still take one from
            # the backlog until its drain message arrives).
            wait_for(lambda: self.a_is_proxied(srv) == srv.swapped, timeout=10,
                     what=f"/a/ {'proxied' if srv.swapped else 'static'} after reload {i + 1}")
            echoes += self.echo_all(sockets, f"after reload {i + 1}")
        say(f"{RELOADS} reloads, each `wraith reload` returned 0 in "
            f"{min(reload_times) * 1000:.0f}..{max(reload_times) * 1000:.0f} ms "
            f"(mean {sum(reload_times) / len(reload_times) * 1000:.0f} ms)")

        # Binary upgrade: the new master serves beside the old one, then the old one drains.
        up = srv.cli("upgrade")
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
        new_master = read_pid(srv.pid_file)
        self.assertNotEqual(new_master, old_master)
        self.addCleanup(kill_master, new_master, proc_starttime(new_master))
        watch.add_master(new_master)
        wait_for(lambda: generation_requests(srv, 1) >= PER_GENERATION, timeout=30,
                 what=f"the new master's workers to serve {PER_GENERATION} requests")
        os.kill(old_master, signal.SIGQUIT)
        # The old workers drain; the WebSockets they hold still work, then end cleanly.
        echoes += self.echo_all(sockets, "after the old master's QUIT")
        self.close_websockets(sockets)
        h2_goaways = next(t.goaways for name, t, _ in sockets if name == "HTTP/2")
        say(f"WebSockets: {len(sockets)} tunnels (HTTP/1.1, HTTP/1.1+TLS, HTTP/2, HTTP/3) held "
            f"across {RELOADS} reloads and the upgrade, {echoes} echoes, all closed cleanly; "
            f"the HTTP/2 one went on past {h2_goaways} GOAWAY frame(s)")
        self.assertGreater(h2_goaways, 0, "the HTTP/2 tunnel's worker never drained")
        held = [dl.name for dl in downloads if dl.in_flight()]
        self.assertEqual(len(held), 3, "a download ended before the old master was told to "
                         "QUIT; the test proves less than it should")
        results = []
        for dl in downloads:
            rc = dl.finish()
            results.append((dl.name, rc, dl.count, dl.sha.hexdigest() == self.big_sha,
                            dl.stderr.strip()))
        old_rc = srv.wait_exit(timeout=60)
        say(f"binary upgrade done: old master {old_master} exited with {old_rc}, "
            f"new master {new_master} serving")

        # The final master reloads too, then the load stops.
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        final_gen = int(re.search(r"generation (\d+) serving", r.stdout).group(1))
        wait_for(lambda: generation_requests(srv, final_gen) >= PER_GENERATION, timeout=30,
                 what=f"the final generation to serve {PER_GENERATION} requests")
        load["h1"].stop()
        load["h2"].stop()
        load["h3"].stop()
        watch.scan()

        def final_workers():
            ws = status_workers(srv)
            return ws if len(ws) == 2 and all(g == final_gen for g, _, _, _ in ws) else None
        final = wait_for(final_workers, timeout=30,
                         what=f"generation {final_gen} alone in `wraith status`")
        final_pids = sorted(p for _, p, _, _ in final)
        left = watch.wait_only(final_pids)
        watch.stop()

        say(f"HTTP/1.1: {load['h1'].summary()}")
        for e in load["h1"].errors():
            say(f"  HTTP/1.1 failure: {e}")
        for proto in ("h2", "h3"):
            say(f"{load[proto].name_}: {load[proto].summary()}")
            for e in load[proto].problems:
                say(f"  {load[proto].name_} client said: {e}")
        for name, rc, count, sha_ok, err in results:
            say(f"download {name}: exit {rc}, {count} of {BIG_SIZE} bytes, SHA-256 "
                f"{'ok' if sha_ok else 'WRONG'} ({err})")
        say(f"workers seen: {watch.workers_seen()} (masters {old_master}, {new_master}); "
            f"alive at the end: {left}")

        self.assertServesEverywhere(srv, swapped=srv.swapped)
        kill_master(new_master, proc_starttime(new_master))

        self.assertEqual(old_rc, 0, "the old master did not exit cleanly after QUIT")
        # A draining worker keeps an idle keep-alive connection for a grace period and answers
        # a request that arrives with Connection: close, so no reused connection is closed
        # under a client: nothing had to be sent again.
        self.assertEqual((load["h1"].total("failed"), load["h1"].total("resets"),
                          load["h1"].total("retried")), (0, 0, 0),
                         f"HTTP/1.1: {load['h1'].summary()}: {load['h1'].errors()}")
        for proto in ("h2", "h3"):
            c = load[proto].counts
            self.assertGreater(c["succeeded"], 0, load[proto].summary())
            self.assertEqual((c["failed"], c["errored"], c["timeout"], c["connection errors"]),
                             (0, 0, 0, 0),
                             f"{load[proto].name_}: {load[proto].summary()}: "
                             f"{load[proto].problems}")
        for name, rc, count, sha_ok, err in results:
            self.assertEqual((rc, count, sha_ok), (0, BIG_SIZE, True), f"{name}: {err}")
        self.assertIn("http_version=1.1 status=200", results[0][4])
        self.assertIn("http_version=2 status=200", results[1][4])

    def test_wrk_sees_no_socket_errors_over_20_reloads(self):
        # wrk reuses keep-alive connections and never retries: a connection closed under it
        # is a read or write error. Reloads must not cause one.
        if not shutil.which("wrk"):
            self.fail("wrk is missing (make deps)")
        srv = self.start_server()
        duration = int(15 * harness.TIME_SCALE)
        wrk = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{duration}s",
                                f"http://127.0.0.1:{srv.port}/a/small.bin"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: wrk.poll() is None and (wrk.kill(), wrk.wait()))
        t0 = time.monotonic()
        wait_for(lambda: generation_requests(srv, 1) >= PER_GENERATION, timeout=30,
                 what="wrk to get going")
        for i in range(RELOADS):
            srv.use(swapped=not srv.swapped)
            r = srv.reload()
            self.assertEqual(r.returncode, 0, f"reload {i + 1}: {r.stdout}{r.stderr}")
            gen = int(re.search(r"generation (\d+) serving", r.stdout).group(1))
            wait_for(lambda: generation_requests(srv, gen) >= PER_GENERATION, timeout=30,
                     what=f"generation {gen} to serve {PER_GENERATION} requests")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, duration - 2, "the reloads outlasted wrk's run")
        out = wrk.communicate(timeout=duration + 60)[0]
        say(f"wrk over {RELOADS} reloads in {elapsed:.1f} s:\n{out.strip()}")
        self.assertEqual(wrk.returncode, 0, out)
        self.assertRegex(out, r"\d+ requests in")
        self.assertNotIn("Socket errors", out) # wrk prints the line only when one happened
        self.assertNotIn("Non-2xx or 3xx responses", out)

    def test_broken_config_mid_load_changes_nothing(self):
        # keepalive_requests: h2load stops a connection for good at the GOAWAY the default
        # 1000 would send.
        srv = self.start_server(http={"keepalive_requests": "1000000"})
        before = srv.wait_workers(2)
        load = self.start_load(srv)
        # h2load too: nothing here sends GOAWAY, so its counts mean what they say.
        h2load = subprocess.Popen(["h2load", "-c", "2", "-m", "4", "-D", "4",
                                   *[f"https://127.0.0.1:{srv.tls_port}{p}" for p in
                                     sorted(self.small)]],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: h2load.poll() is None and (h2load.kill(), h2load.wait()))
        text = srv.render().replace(f'static = {{ root = "{srv.dir}/www" }}',
                                    f'static = {{ root = "{srv.dir}/no-such-dir" }}', 1)
        srv.write_config(text=text)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if "no-such-dir" in l)
        where = rf"{re.escape(srv.conf)}:{line}:\d+: .*no-such-dir"

        r = srv.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, re.compile("^" + where, re.M))
        os.kill(srv.pid, signal.SIGHUP)
        wait_for(lambda: srv.error_log_text().count("reload refused") >= 2,
                 what="the refused SIGHUP reload in the error log")
        self.assertEqual(len(re.findall(r"reload: " + where, srv.error_log_text())), 2,
                         srv.error_log_text())
        # The load goes on against the same workers.
        h1_then = load["h1"].total("ok")
        wait_for(lambda: load["h1"].total("ok") >= h1_then + 200, timeout=30,
                 what="200 more HTTP/1.1 requests after the refused reloads")
        wait_for(lambda: load["h2"].runs >= 2 and load["h3"].runs >= 2, timeout=60,
                 what="two h3load runs per protocol")
        self.assertEqual(srv.worker_pids(), before, "the workers changed")
        self.assertEqual({g for g, _, _, _ in status_workers(srv)}, {1})
        h2load_out = h2load.communicate(timeout=60)[0]  # its 4 s are the point
        for name in ("h1", "h2", "h3"):
            load[name].stop()
        h2load_counts = REQUESTS_LINE.search(h2load_out)
        say(f"broken config: reload exit {r.returncode}, SIGHUP refused; "
            f"HTTP/1.1: {load['h1'].summary()}")
        say(f"broken config: h2load: {h2load_counts.group(0) if h2load_counts else h2load_out}")
        say(f"broken config: HTTP/2: {load['h2'].summary()}")
        say(f"broken config: HTTP/3: {load['h3'].summary()}")
        self.assertEqual((load["h1"].total("failed"), load["h1"].total("resets")), (0, 0),
                         load["h1"].errors())
        for proto in ("h2", "h3"):
            c = load[proto].counts
            self.assertEqual((c["failed"], c["errored"], c["connection errors"]), (0, 0, 0),
                             f"{load[proto].summary()}: {load[proto].problems}")
        self.assertIsNotNone(h2load_counts, h2load_out)
        self.assertIn("Application protocol: h2", h2load_out)
        total, started, done, succeeded, failed, errored, timeout = map(int, h2load_counts.groups())
        self.assertGreater(succeeded, 0, h2load_out)
        self.assertEqual((failed, errored, timeout, done - succeeded), (0, 0, 0, 0), h2load_out)

        srv.write_config()
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = srv.wait_workers(2, exclude=before)
        self.assertFalse(set(after) & set(before))
        self.assertServesEverywhere(srv)


class ZeroDowntimeBadInput(ZeroDowntimeBase):
    def test_ten_hups_in_a_second_end_in_one_serving_generation(self):
        srv = self.start_server()
        watch = PidWatch(srv.pid)
        self.addCleanup(watch.stop)
        load = self.start_load(srv, protocols=("h1",))
        ok_before = load["h1"].total("ok")
        t0 = time.monotonic()
        for i in range(10):
            # Ten signals spread over 0.9 s: the timing is what this test is about (stretched
            # by the sanitizer build's time scale, as the server is slower there).
            delay = t0 + i * 0.09 * TIME_SCALE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            srv.signal(signal.SIGHUP)
            watch.scan()
        self.assertLess(time.monotonic() - t0, 1.0 * TIME_SCALE)

        def settled():
            ws = status_workers(srv)
            gens = {g for g, _, _, _ in ws}
            return ws if len(ws) == 2 and len(gens) == 1 and \
                all(st == "serving" for _, _, st, _ in ws) else None
        final = wait_for(settled, timeout=30, what="one serving generation of two workers")
        final_pids = sorted(p for _, p, _, _ in final)
        watch.wait_only(final_pids)
        log = srv.error_log_text()
        self.assertEqual(log.count("SIGHUP: reloading configuration"), 10, log[-3000:])
        self.assertIn(f"reload complete: generation {final[0][0]} serving", log)
        load["h1"].stop()
        say(f"10 HUPs: {watch.workers_seen()} workers seen, generation {final[0][0]} serving; "
            f"HTTP/1.1 meanwhile: {load['h1'].summary()}")
        self.assertTrue(srv.alive())
        self.assertGreater(load["h1"].total("ok"), ok_before + 100, "serving stalled")
        # Resets on reused keep-alive connections are what the load test pins down (the same
        # drain path); anything else failing here is this test's business.
        self.assertEqual(load["h1"].total("failed") - load["h1"].total("resets"), 0,
                         load["h1"].errors())
        self.assertEqual(sorted(srv.worker_pids()), final_pids, "orphaned or extra workers")
        self.assertServesEverywhere(srv)

    def hold_download(self, srv):
        """A plain HTTP/1.1 download of /a/big.bin read only up to 8 MiB until released."""
        dl = curl_download(self, srv, "/a/big.bin", hold_at=8 << 20)
        wait_for(lambda: dl.count >= 8 << 20 or not dl.in_flight(), timeout=30,
                 what="8 MiB of the held download")
        self.assertTrue(dl.in_flight(), dl.stderr)
        return dl

    def test_reload_while_the_previous_generation_still_drains(self):
        srv = self.start_server()
        gen1 = srv.wait_workers(2)
        dl = self.hold_download(srv)
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("generation 2 serving", r.stdout)
        # Generation 1 keeps the worker with the download; its other worker exits.
        wait_for(lambda: [g for g, _, _, _ in status_workers(srv)].count(1) == 1,
                 what="generation 1 down to the worker holding the download")
        holder = [p for g, p, _, _ in status_workers(srv) if g == 1]
        self.assertEqual([st for g, _, st, _ in status_workers(srv) if g == 1], ["draining"])
        gen2 = sorted(p for g, p, _, _ in status_workers(srv) if g == 2)

        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("generation 3 serving", r.stdout)
        wait_for(lambda: not any(pid_alive(p) for p in gen2), timeout=30,
                 what="generation 2 to drain and exit")
        ws = status_workers(srv)
        self.assertEqual(sorted((g, st) for g, _, st, _ in ws),
                         [(1, "draining"), (3, "serving"), (3, "serving")], ws)
        self.assertTrue(pid_alive(holder[0]))
        self.assertServesEverywhere(srv)

        rc = dl.finish()
        self.assertEqual((rc, dl.count, dl.sha.hexdigest()), (0, BIG_SIZE, self.big_sha),
                         dl.stderr)
        wait_for(lambda: {g for g, _, _, _ in status_workers(srv)} == {3}, timeout=30,
                 what="generation 1 to exit once its download ended")
        self.assertFalse(any(pid_alive(p) for p in gen1 + gen2))
        self.assertIn("generation 1 finished", srv.error_log_text())
        say("reload while draining: generation 1 held a 40 MiB download across two reloads, "
            "hash ok, then exited")

    def test_worker_killed_during_drain_is_logged_and_not_respawned(self):
        srv = self.start_server()
        dl = self.hold_download(srv)
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        wait_for(lambda: [g for g, _, _, _ in status_workers(srv)].count(1) == 1,
                 what="generation 1 down to the worker holding the download")
        victim = [p for g, p, _, _ in status_workers(srv) if g == 1][0]
        serving = sorted(p for g, p, _, _ in status_workers(srv) if g == 2)
        os.kill(victim, signal.SIGKILL)
        line = wait_for(lambda: re.search(rf"^.*worker \d+/1 \(pid {victim}\) killed by signal 9"
                                          r".*$", srv.error_log_text(), re.M),
                        what="the master's log line about the killed worker")
        wait_for(lambda: not pid_alive(victim), what="the killed worker to be reaped")
        rc = dl.finish(timeout=60)  # reads what was sent before the kill, then the end
        self.assertTrue(rc != 0 and dl.count < BIG_SIZE,
                        f"the download of a killed worker completed? exit {rc}, {dl.count} bytes")
        self.assertIn("generation 1 finished", srv.error_log_text())
        ws = status_workers(srv)
        self.assertEqual(sorted(p for _, p, _, _ in ws), serving, f"respawned or replaced: {ws}")
        self.assertEqual({(g, st) for g, _, st, _ in ws}, {(2, "serving")})
        self.assertEqual(sorted(srv.worker_pids()), serving)
        self.assertNotIn("respawning worker", srv.error_log_text())
        self.assertServesEverywhere(srv)
        say(f"worker killed during drain: {line.group(0).strip()}; not respawned")

    def test_new_binary_that_exits_at_once_leaves_the_old_master_serving(self):
        bin_dir = tempfile.mkdtemp(prefix="wraith-zd-bin-")
        self.addCleanup(shutil.rmtree, bin_dir, True)
        os.chmod(bin_dir, 0o755)
        binary = os.path.join(bin_dir, "wraith")
        shutil.copy2(harness.WRAITH_BIN, binary)
        srv = self.start_server(binary=binary)
        master = srv.pid
        workers = srv.wait_workers(2)
        load = self.start_load(srv, protocols=("h1",))
        # A package upgrade that installed a binary which dies at once.
        broken = binary + ".new"
        write_file(broken, "#!/bin/sh\necho 'wraith: broken build' >&2\nexit 3\n", mode=0o755)
        os.rename(broken, binary)

        up = srv.cli("upgrade")
        self.assertEqual(up.returncode, 1, up.stdout + up.stderr)
        self.assertIn("exited with code 3", up.stdout + up.stderr)
        self.assertEqual(read_pid(srv.pid_file), master)
        self.assertFalse(os.path.exists(srv.pid_file + ".oldbin"))

        os.kill(master, signal.SIGUSR2)
        failed = re.compile(r"binary upgrade: new master \(pid \d+\) exited with code 3; this "
                            rf"master \(pid {master}\) keeps serving")
        wait_for(lambda: len(failed.findall(srv.error_log_text())) == 2,
                 what="the failed USR2 upgrade in the error log")
        wait_for(lambda: read_pid(srv.pid_file) == master, what="the pid file back in place")
        self.assertFalse(os.path.exists(srv.pid_file + ".oldbin"))
        h1_then = load["h1"].total("ok")
        wait_for(lambda: load["h1"].total("ok") >= h1_then + 100, timeout=30,
                 what="100 more HTTP/1.1 requests after the failed upgrades")
        load["h1"].stop()
        say(f"new binary exiting at once (upgrade and USR2): old master serves; "
            f"HTTP/1.1 meanwhile: {load['h1'].summary()}")
        self.assertEqual((load["h1"].total("failed"), load["h1"].total("resets")), (0, 0),
                         load["h1"].errors())
        self.assertTrue(srv.alive())
        self.assertEqual(srv.worker_pids(), workers)
        st = srv.status()
        self.assertIn(f"master pid {master}", st.stdout)
        self.assertServesEverywhere(srv)

    def test_certificate_gone_between_check_and_reload_is_refused(self):
        srv = self.start_server()
        workers = srv.wait_workers(2)
        tls_dir = harness.make_dir(srv.path("tls"))
        cert = shutil.copy(PKI.leaf.chain, os.path.join(tls_dir, "site.pem"))
        key = shutil.copy(PKI.leaf.key, os.path.join(tls_dir, "site.key"))
        srv.sites = sites(self.backend.port, False, cert=(cert, key))
        srv.write_config()
        chk = srv.cli("check")
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
        os.unlink(cert)

        r = srv.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(cert, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(srv.conf)}:\d+:\d+: ")
        self.assertIn("reload refused", srv.error_log_text())
        self.assertIn(cert, srv.error_log_text())
        self.assertEqual(srv.worker_pids(), workers)
        self.assertEqual({g for g, _, _, _ in status_workers(srv)}, {1})
        self.assertServesEverywhere(srv)
        say(f"certificate removed after check: reload refused with "
            f"{[l for l in r.stderr.splitlines() if cert in l][:1]}")


if __name__ == "__main__":
    harness.main()
