"""HTTP/3 over QUIC on a TLS listener (protocols default to h3, h2, http/1.1).

Clients: the in-repo `h3get` (build/h3get, next to the wraith binary, or H3GET_BIN) and Debian's
ngtcp2 example client `gtlsclient` (package ngtcp2-client); curl for the TCP side (Alt-Svc);
raw UDP sockets from Python for what no client sends (garbage, truncated and forged packets).

What is pinned down: static files (small, multi-megabyte, HEAD, 404, Range, ETag/304, gzip),
redirect and respond routes, 400 concurrent streams on one connection, `HTTP/3.0` access log
lines, Alt-Svc on TCP responses, connection migration and NAT rebinding with four workers
(packets steered to the worker that owns the connection ID), a long download across a reload
and across a graceful stop (GOAWAY), Retry, 0-RTT (safe methods only, 425 otherwise),
hostile datagrams: Version Negotiation, stateless resets, forged Retry tokens, and malformed
HTTP/3 frames and QPACK over a real connection (h3get --raw-*): the RFC's error codes, and
no worker dies.

Neither client can be missing: each test that needs one fails with how to get it.
"""

import collections
import gzip
import hashlib
import hmac
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness
import tlsutil
from harness import Wraith, WraithTestCase, curl, make_dir, toml_str, wait_for, write_file

H3GET = os.environ.get("H3GET_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(harness.WRAITH_BIN)), "h3get")
GTLSCLIENT = os.environ.get("GTLSCLIENT_BIN") or shutil.which("gtlsclient")

QUIC_V1 = 0x00000001
CID_LENGTH = 18           # every server connection ID: [worker socket index, marker, 16 random]
RANGE_BODY = bytes(range(48, 48 + 75)) + b"abcdefghijklmnopqrstuvwxy"  # 100 bytes
TEXT_10K = "".join(f"line {i:05d}: the quick brown fox jumps over the lazy dog\n"
                   for i in range(200)).encode()[:10240]
RESPOND_BODY = b"hello from a respond route over h3\n"

SUMMARY_LINE = re.compile(r"^(?:(?P<status>\d{3}) (?P<bytes>\d+) (?P<sha>[0-9a-f]{64})|"
                          r"ERROR (?P<error>\S+)) (?P<url>\S+)$")
COMBINED = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>HTTP/[\d.]+)" '
                      r'(?P<status>\d{3}) (?P<bytes>\d+|-) "[^"]*" "(?P<ua>[^"]*)"$')

PKI = None  # set by setUpModule: the CA and the one leaf every server uses


def setUpModule():
    global PKI
    d = tempfile.mkdtemp(prefix="wraith-h3-pki-")
    os.chmod(d, 0o755)
    ca = tlsutil.TestPki(d).ca("h3-ca")
    leaf = ca.issue("h3", ["localhost", "127.0.0.1", "early.test", "late.test"])
    PKI = collections.namedtuple("Pki", "dir ca leaf")(d, ca, leaf)


def tearDownModule():
    if PKI and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(PKI.dir, ignore_errors=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def toml_text(s):
    """A TOML basic string for text that may hold line breaks."""
    return toml_str(s).replace("\n", "\\n")


def tls_table(extra=""):
    return (f"{{ cert = {toml_str(PKI.leaf.chain)}, key = {toml_str(PKI.leaf.key)}"
            f"{extra} }}")


def static_site(hosts=("localhost", "127.0.0.1"), default=True, tls_extra="", routes=""):
    """A site serving @DIR@/www, with ETag, gzip and the given extra routes before it."""
    names = ", ".join(toml_str(h) for h in hosts)
    return (f"[[site]]\nhosts = [{names}]\n" + ("default = true\n" if default else "")
            + f"tls = {tls_table(tls_extra)}\n" + routes
            + '  [[site.route]]\n  path = "/"\n'
            + '  static = { root = "@DIR@/www", index = ["index.html"], etag = true }\n'
            + '  compress = { min_size = "1k", encodings = ["gzip"] }\n')


def write_sparse(path, size, islands):
    """A sparse file of `size` bytes: zeros except 64 KiB of random bytes at each offset in
    `islands` (so a misplaced or lost chunk changes the hash). Returns its SHA-256."""
    make_dir(os.path.dirname(path))
    with open(path, "wb") as f:
        f.truncate(size)
        for off in islands:
            f.seek(off)
            f.write(os.urandom(min(65536, size - off)))
    os.chmod(path, 0o644)
    return file_sha256(path)


# --------------------------------------------------------------------------------------------
# The server


def udp_and_tcp_port():
    """A port free on 127.0.0.1 for both TCP and UDP (harness.free_port checks TCP only)."""
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


class H3Server(Wraith):
    """A Wraith with a TLS listener on TLS_PORT (default protocols: h3, h2, http/1.1, so UDP on
    the same port), optional [http3] keys, and optionally a second TLS listener on H2_PORT with
    protocols = ["h2", "http/1.1"] (no QUIC there)."""

    def __init__(self, sites, http3=None, h2_listener=False, **kw):
        self.http3_conf = dict(http3 or {})
        self.h2_port = harness.free_port() if h2_listener else None
        super().__init__(sites, tls_listen="", **kw)
        self.tls_port = udp_and_tcp_port()
        self.write_config()

    def start(self, wait=True):
        # QUIC clients (ours and other tests') take ephemeral UDP ports from the same range:
        # one may grab ours between the check and the bind. Then pick another.
        for attempt in range(3):
            try:
                return super().start(wait)
            except AssertionError:
                if attempt == 2 or "Address already in use" not in self.read(self.stderr_path):
                    raise
                self.stop()
                self.tls_port = udp_and_tcp_port()
                self.write_config()

    def render(self, sites=None):
        text = super().render(sites)
        if self.h2_port is not None:
            text += (f'\n[[listen]]\naddress = "127.0.0.1:{self.h2_port}"\ntls = true\n'
                     'protocols = ["h2", "http/1.1"]\n')
        if self.http3_conf:
            text += "\n[http3]\n" + "".join(f"{k} = {v}\n" for k, v in self.http3_conf.items())
        return text

    def url(self, path, host="localhost"):
        return f"https://{host}:{self.tls_port}{path}"

    def udp_port_free(self):
        """True when nothing holds UDP 127.0.0.1:TLS_PORT any more."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", self.tls_port))
            return True
        except OSError:
            return False
        finally:
            s.close()


def start_class_server(cls, srv):
    """Starts srv (its files already written) as cls's class-wide server, which
    WraithTestCase.tearDownClass stops and checks for crashes; sets cls.srv and cls.workers."""
    cls.class_servers = [srv]
    try:
        srv.start()
        cls.workers = srv.wait_workers(srv.workers)
    except BaseException:
        srv.cleanup()
        cls.class_servers = []
        raise
    cls.srv = srv


# --------------------------------------------------------------------------------------------
# Clients


class H3Result:
    """One h3get run: exit status, stdout (bytes), stderr (text)."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def summary(self):
        """--summary lines as dicts (status/bytes/sha/url, or error/url)."""
        out = []
        for line in self.stdout.decode(errors="replace").splitlines():
            m = SUMMARY_LINE.match(line)
            if not m:
                raise AssertionError(f"not a summary line: {line!r}\n{self!r}")
            out.append(m.groupdict())
        return out

    def response(self):
        """(status, [(name, value)], body) of a single -i response."""
        head, sep, body = self.stdout.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"no header block in h3get -i output: {self!r}")
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"^HTTP/3 (\d{3})$", lines[0])
        if not m:
            raise AssertionError(f"bad status line {lines[0]!r}: {self!r}")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            headers.append((name, value))
        return int(m.group(1)), headers, body

    def __repr__(self):
        out = self.stdout if len(self.stdout) < 1500 else self.stdout[:1500] + b"..."
        return (f"h3get {' '.join(self.args)}\n-> exit {self.returncode}\nstderr: "
                f"{self.stderr[-3000:]}\nstdout: {out!r}")


def header(headers, name):
    values = [v for k, v in headers if k == name]
    return values[0] if values else None


def require_h3get(test):
    if not os.access(H3GET, os.X_OK):
        test.fail(f"{H3GET} is missing: build it with `cmake --build BUILD --target h3get` "
                  "(or set H3GET_BIN)")


def require_gtlsclient(test):
    if not GTLSCLIENT:
        test.fail("gtlsclient is missing: install the Debian package ngtcp2-client (make deps)")


def h3get_cmd(srv, paths, *args, host="localhost"):
    return [H3GET, "--cacert", PKI.ca.cert, "--resolve", f"{host}:{srv.tls_port}:127.0.0.1",
            *[str(a) for a in args], *[srv.url(p, host) for p in paths]]


def h3get(test, srv, paths, *args, host="localhost", timeout=60):
    """Runs h3get (verifying the certificate against the test CA) on the given paths."""
    require_h3get(test)
    cmd = h3get_cmd(srv, paths, *args, host=host)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return H3Result(cmd[1:], p.returncode, p.stdout, p.stderr.decode(errors="replace"))


class GtlsResult:
    """One gtlsclient run. Its exit status says nothing (0 even after a handshake timeout):
    the downloaded files and, when verbose, the log tell what happened."""

    def __init__(self, args, returncode, log_path, download_dir):
        self.args = args
        self.returncode = returncode
        self.log_path = log_path
        self.dir = download_dir

    @property
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def body(self, name):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def statuses(self):
        """{stream id: status} from the verbose log."""
        return {int(sid, 16): int(st) for sid, st in
                re.findall(r"http: stream 0x([0-9a-f]+) \[:status: (\d{3})\]", self.log)}

    def server_cids(self):
        """[(cid hex, stateless reset token hex)] from the server's NEW_CONNECTION_ID frames."""
        return re.findall(r"frm rx \d+ 1RTT NEW_CONNECTION_ID\(0x18\) seq=\d+ cid=0x([0-9a-f]+) "
                          r"retire_prior_to=\d+ stateless_reset_token=0x([0-9a-f]+)", self.log)

    def local_ports_receiving(self):
        return set(re.findall(r"Received packet: local=\[127\.0\.0\.1\]:(\d+)", self.log))

    def __repr__(self):
        tail = self.log[-3000:] if os.path.exists(self.log_path) else "(no log)"
        return f"gtlsclient {' '.join(self.args)} -> {self.returncode}\n{tail}"


def gtlsclient(test, srv, paths, *args, verbose=False, timeout=60):
    """Runs gtlsclient against 127.0.0.1:TLS_PORT (SNI localhost), downloading into a fresh
    folder. verbose keeps its QUIC/HTTP event log (not the packet dumps)."""
    require_gtlsclient(test)
    d = tempfile.mkdtemp(prefix="gtls-", dir=srv.dir)
    log = d + ".log"
    cmd = [GTLSCLIENT, "--exit-on-all-streams-close", "--sni=localhost", f"--download={d}",
           "--handshake-timeout=10s", "--timeout=15s"]
    cmd += ["--no-quic-dump", "--no-http-dump"] if verbose else ["-q"]
    cmd += [str(a) for a in args] + ["127.0.0.1", str(srv.tls_port)]
    cmd += [srv.url(p) for p in paths]
    with open(log, "wb") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    return GtlsResult(cmd[1:], p.returncode, log, d)


class PacedDownload:
    """h3get writing one body to a pipe that this side reads at its own pace. Once `pause_at`
    bytes were read, reading stops until resume(): h3get then blocks on the pipe, credits no
    more stream window, and the server's stream stalls mid-way."""

    def __init__(self, test, cmd, pause_at):
        self.pause_at = pause_at
        self.sha = hashlib.sha256()
        self.count = 0
        self.go = threading.Event()
        self.paused = threading.Event()
        fd, self.stderr_path = tempfile.mkstemp(prefix="h3get-", suffix=".stderr")
        self._stderr = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        test.addCleanup(self.close)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            if self.count >= self.pause_at and not self.go.is_set():
                self.paused.set()
                self.go.wait()
            chunk = self.proc.stdout.read1(1 << 20)
            if not chunk:
                return
            self.sha.update(chunk)
            self.count += len(chunk)

    def wait_paused(self, timeout=30):
        """Waits until `pause_at` bytes were read (fails if h3get exits first)."""
        wait_for(lambda: self.paused.is_set() or self.proc.poll() is not None, timeout,
                 what=f"{self.pause_at} bytes of the download")
        if not self.paused.is_set():
            self.thread.join(5)
            raise AssertionError(f"h3get exited ({self.proc.returncode}) after {self.count} "
                                 f"bytes:\n{self.stderr}")

    def resume(self):
        self.go.set()

    def finish(self, timeout=60):
        """Resumes, waits for h3get to exit; returns its exit status."""
        self.resume()
        self.thread.join(timeout)
        return self.proc.wait(timeout)

    @property
    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        self.go.set()
        if self.proc.poll() is None:
            self.proc.kill()  # only this h3get, by its own handle
            self.proc.wait()
        self.thread.join(10)  # the pipe is at its end now
        self.proc.stdout.close()
        self._stderr.close()
        os.unlink(self.stderr_path)


# --------------------------------------------------------------------------------------------
# QUIC packets by hand (RFC 9000 §17, RFC 9001 §5): enough to build probes and read the
# server's stateless answers. AES comes from the openssl CLI (the stdlib has none).


def encode_varint(v):
    if v < 1 << 6:
        return bytes([v])
    if v < 1 << 14:
        return (v | 0x4000).to_bytes(2, "big")
    if v < 1 << 30:
        return (v | 0x80000000).to_bytes(4, "big")
    return (v | 0xc000000000000000).to_bytes(8, "big")


def decode_varint(buf, pos):
    if pos >= len(buf):
        raise ValueError("varint past the end")
    n = 1 << (buf[pos] >> 6)
    if pos + n > len(buf):
        raise ValueError("truncated varint")
    v = buf[pos] & 0x3f
    for b in buf[pos + 1:pos + n]:
        v = (v << 8) | b
    return v, pos + n


LongHeader = collections.namedtuple(
    "LongHeader", "first version dcid scid type token length pn_offset token_offset "
                  "length_offset")


def parse_long_header(pkt):
    """The header of a long-header packet (version 1 field layout). Raises ValueError. For
    a Version Negotiation packet (version 0), pn_offset is where the version list starts."""
    if len(pkt) < 7 or not pkt[0] & 0x80:
        raise ValueError("not a long header")
    version = int.from_bytes(pkt[1:5], "big")
    pos = 5
    dcid = pkt[pos + 1:pos + 1 + pkt[pos]]
    pos += 1 + pkt[pos]
    if pos >= len(pkt):
        raise ValueError("truncated")
    scid = pkt[pos + 1:pos + 1 + pkt[pos]]
    pos += 1 + pkt[pos]
    if version == 0:
        return LongHeader(pkt[0], 0, dcid, scid, None, b"", len(pkt) - pos, pos, None, None)
    ptype = (pkt[0] >> 4) & 3
    token, token_offset = b"", None
    if ptype == 0:
        token_offset = pos
        n, pos = decode_varint(pkt, pos)
        token = pkt[pos:pos + n]
        pos += n
    length_offset = pos
    length, pos = decode_varint(pkt, pos)
    return LongHeader(pkt[0], version, dcid, scid, ptype, token, length, pos, token_offset,
                      length_offset)


def with_token(initial, token, dcid=None):
    """The Initial `initial` (which carries no token) with `token` inserted, and optionally
    another DCID. The payload no longer authenticates; the token is checked before any
    decryption."""
    h = parse_long_header(initial)
    if dcid is None:
        dcid = h.dcid
    head = initial[:5] + bytes([len(dcid)]) + dcid + bytes([len(h.scid)]) + h.scid
    _, after = decode_varint(initial, h.token_offset)
    return head + encode_varint(len(token)) + token + initial[after:]


def parse_retry(pkt):
    """(SCID, token) of a Retry packet (RFC 9000 §17.2.5: the token runs up to the 16-byte
    integrity tag). Raises ValueError."""
    h = parse_long_header(pkt)
    if h.type != 3:
        raise ValueError(f"not a Retry: {pkt[:16].hex()}")
    start = 7 + len(h.dcid) + len(h.scid)
    return h.scid, pkt[start:len(pkt) - 16]


def long_header_probe(version, dcid, scid, size=1200, first=0xc0):
    """A long-header datagram of `size` bytes with the given version and CIDs, then zeros."""
    pkt = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid
    return pkt + bytes(size - len(pkt))


_INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def _hkdf_expand_label(secret, label, length):
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac_sha256(secret, t + info + bytes([i]))
        out += t
        i += 1
    return out[:length]


def hmac_sha256(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def initial_keys(dcid, side):
    """(key, iv, hp) of the Initial packets `side` ("client"/"server") sends, derived from the
    client's first Destination Connection ID (RFC 9001 §5.2)."""
    secret = hmac_sha256(_INITIAL_SALT_V1, dcid)
    s = _hkdf_expand_label(secret, f"{side} in", 32)
    return (_hkdf_expand_label(s, "quic key", 16), _hkdf_expand_label(s, "quic iv", 12),
            _hkdf_expand_label(s, "quic hp", 16))


def _aes(mode, key, data, iv=None):
    cmd = [tlsutil.OPENSSL, "enc", f"-aes-128-{mode}", "-nopad", "-K", key.hex()]
    if iv is not None:
        cmd += ["-iv", iv.hex()]
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True).stdout


def open_initial(pkt, dcid, side):
    """Removes header protection and decrypts the first (Initial) packet of `pkt` with the
    Initial keys of `side` derived from `dcid`. Returns (packet number, plaintext frames).
    The AEAD tag is not checked: with the wrong keys the frames come out as noise."""
    key, iv, hp = initial_keys(dcid, side)
    h = parse_long_header(pkt)
    sample = pkt[h.pn_offset + 4:h.pn_offset + 20]
    if len(sample) < 16:
        raise ValueError("packet too short to sample")
    mask = _aes("ecb", hp, sample)
    pn_len = ((pkt[0] ^ mask[0]) & 0x03) + 1
    pn = int.from_bytes(bytes(a ^ b for a, b in zip(pkt[h.pn_offset:h.pn_offset + pn_len],
                                                    mask[1:1 + pn_len])), "big")
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ciphertext = pkt[h.pn_offset + pn_len:h.pn_offset + h.length - 16]
    # AES-GCM without the tag is AES-CTR starting at counter 2 (NIST SP 800-38D §7.2).
    return pn, _aes("ctr", key, ciphertext, nonce + b"\x00\x00\x00\x02")


def first_frames(plain):
    """(type, ...) of the frames at the start of a decrypted payload: PADDING skipped, then
    ACK / CRYPTO / CONNECTION_CLOSE read far enough to name them. Noise (a payload opened with
    the wrong keys) ends in ("OTHER", type) or ("TRUNCATED",)."""
    frames, pos = [], 0
    try:
        while pos < len(plain) and len(frames) < 4:
            ftype, pos = decode_varint(plain, pos)
            if ftype == 0x00:
                continue
            if ftype in (0x1c, 0x1d):  # CONNECTION_CLOSE: error code, [frame type], reason
                code, pos = decode_varint(plain, pos)
                if ftype == 0x1c:
                    _, pos = decode_varint(plain, pos)
                n, pos = decode_varint(plain, pos)
                frames.append(("CONNECTION_CLOSE", code, plain[pos:pos + n]))
                pos += n
            elif ftype == 0x06:  # CRYPTO: offset, length, data
                off, pos = decode_varint(plain, pos)
                n, pos = decode_varint(plain, pos)
                frames.append(("CRYPTO", off, plain[pos:pos + n]))
                pos += n
            elif ftype in (0x02, 0x03):  # ACK: largest, delay, range count, first range, ...
                _, pos = decode_varint(plain, pos)
                _, pos = decode_varint(plain, pos)
                count, pos = decode_varint(plain, pos)
                _, pos = decode_varint(plain, pos)
                for _ in range(2 * count + (3 if ftype == 0x03 else 0)):
                    _, pos = decode_varint(plain, pos)
                frames.append(("ACK",))
            else:
                frames.append(("OTHER", ftype))
                break
    except ValueError:
        frames.append(("TRUNCATED",))
    return frames


def capture_initial(test, authority):
    """The first datagram (a real 1200-byte Initial with a ClientHello for `authority`) that
    gtlsclient sends, caught on a UDP socket of ours; the client is then killed by its pid."""
    require_gtlsclient(test)
    trap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    trap.bind(("127.0.0.1", 0))
    trap.settimeout(harness.IO_TIMEOUT)
    proc = subprocess.Popen([GTLSCLIENT, "-q", "--sni=localhost", "127.0.0.1",
                             str(trap.getsockname()[1]), f"https://{authority}/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        data, _ = trap.recvfrom(65536)
    finally:
        proc.kill()
        proc.wait()
        trap.close()
    return data


class UdpProbe:
    """A client UDP socket towards the server's QUIC port."""

    def __init__(self, test, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = ("127.0.0.1", port)
        test.addCleanup(self.sock.close)

    def send(self, data):
        self.sock.sendto(data, self.addr)

    def recv(self, timeout=harness.IO_TIMEOUT):
        """The next datagram from the server, or None after `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data, addr = self.sock.recvfrom(65536)
                if addr == self.addr:
                    return data
        except socket.timeout:
            return None

    def until(self, predicate, timeout=harness.IO_TIMEOUT):
        """Datagrams received until one satisfies predicate (included, last) or timeout."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.recv(max(0.01, deadline - time.monotonic()))
            if d is None:
                break
            got.append(d)
            if predicate(d):
                break
        return got


def is_version_negotiation(d, dcid=None, scid=None):
    """d is a Version Negotiation packet (RFC 9000 §17.2.1) answering a packet that had
    DCID `dcid` and SCID `scid` (echoed swapped)."""
    try:
        h = parse_long_header(d)
    except ValueError:
        return False
    if h.version != 0:
        return False
    return (dcid is None or h.scid == dcid) and (scid is None or h.dcid == scid)


def is_stateless_reset_shape(d, trigger_len):
    return 21 <= len(d) < trigger_len and d[0] & 0x40 and not d[0] & 0x80


# --------------------------------------------------------------------------------------------


class Http3StaticTest(WraithTestCase):
    """One server, two workers: static files, routes, logs and Alt-Svc over HTTP/3 and TCP."""

    ROUTES = (
        '  [[site.route]]\n  path = "=/old"\n'
        '  redirect = { to = "https://localhost/moved$request_uri", status = 301 }\n'
        '  [[site.route]]\n  path = "=/hello"\n'
        f'  respond = {{ status = 200, body = {toml_text(RESPOND_BODY.decode())}, '
        'content_type = "text/plain" }\n')

    @classmethod
    def setUpClass(cls):
        srv = H3Server(static_site(routes=cls.ROUTES), workers=2, h2_listener=True,
                       http3={"alt_svc_max_age": '"1h"'})
        www = srv.path("www")
        cls.files = {
            "index.html": b"<h1>h3 home</h1>\n",
            "small.txt": b"small file over http/3\n",
            "range.txt": RANGE_BODY,
            "text10k.txt": TEXT_10K,
            "big.bin": os.urandom(6 << 20),
        }
        for name, data in cls.files.items():
            write_file(os.path.join(www, name), data)
        start_class_server(cls, srv)

    def unique(self):
        """A fresh query/path tag, so this test finds its own access log lines."""
        return f"m{random.getrandbits(48):012x}"

    def log_line(self, target, method="GET"):
        """The parsed access log line of `method target`."""
        line = self.srv.wait_log_line(
            lambda l: f'"{method} {target} ' in l, what=f"access log line for {method} {target}")
        m = COMBINED.search(line)
        self.assertIsNotNone(m, line)
        return m

    # ---- gtlsclient

    def test_gtlsclient_downloads_small_and_multi_megabyte_files_intact(self):
        r = gtlsclient(self, self.srv, ["/index.html", "/big.bin"])
        for name in ("index.html", "big.bin"):
            body = r.body(name)
            self.assertIsNotNone(body, f"{name} not downloaded: {r!r}")
            self.assertEqual(len(body), len(self.files[name]), name)
            self.assertEqual(sha256(body), sha256(self.files[name]), name)

    def test_gtlsclient_sees_200_404_and_respond_route(self):
        tag = self.unique()
        r = gtlsclient(self, self.srv, ["/small.txt", f"/nope-{tag}", "/hello"], verbose=True)
        self.assertEqual(r.statuses(), {0: 200, 4: 404, 8: 200}, r)
        self.assertEqual(r.body("small.txt"), self.files["small.txt"])
        self.assertEqual(r.body("hello"), RESPOND_BODY)
        line = self.log_line(f"/nope-{tag}")
        self.assertEqual((line["proto"], line["status"]), ("HTTP/3.0", "404"))
        self.assertEqual(line["ua"], "nghttp3/ngtcp2 client")

    def test_client_key_update_before_the_request(self):
        # RFC 9001 §6: the client moves to the next key phase 100 ms after the handshake and
        # only then asks; the server (which freed its TLS session after the handshake)
        # follows with keys derived from its own copy of the secrets.
        r = gtlsclient(self, self.srv, ["/big.bin"], "--key-update=100ms",
                       "--delay-stream=300ms", verbose=True)
        self.assertIn("key update confirmed", r.log, r)
        self.assertRegex(r.log, r"pkt rx .*type=1RTT k=1", "nothing arrived in key phase 1")
        self.assertEqual(sha256(r.body("big.bin") or b""), sha256(self.files["big.bin"]), r)

    # ---- h3get

    def test_h3get_summary_of_small_large_and_missing(self):
        r = h3get(self, self.srv, ["/small.txt", "/big.bin", "/missing.txt"], "--summary")
        self.assertEqual(r.returncode, 0, r)
        # One line per request as it finishes, in any order.
        got = {s["url"].rsplit("/", 1)[1]: (s["status"], int(s["bytes"]), s["sha"])
               for s in r.summary()}
        self.assertEqual(len(got), 3, r)
        for name in ("small.txt", "big.bin"):
            self.assertEqual(got[name], ("200", len(self.files[name]),
                                         sha256(self.files[name])), r)
        self.assertEqual(got["missing.txt"][0], "404", r)

    def test_h3get_output_file_is_the_multi_megabyte_file(self):
        out = os.path.join(tempfile.mkdtemp(dir=self.srv.dir), "big.out")
        r = h3get(self, self.srv, ["/big.bin"], "-o", out)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(os.path.getsize(out), 6 << 20)
        self.assertEqual(file_sha256(out), sha256(self.files["big.bin"]))

    def test_head_has_length_and_no_body(self):
        r = h3get(self, self.srv, ["/big.bin"], "-I")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 200)
        self.assertEqual(header(headers, "content-length"), str(6 << 20))
        self.assertEqual(body, b"")

    def test_range_gets_206_with_the_right_bytes(self):
        r = h3get(self, self.srv, ["/range.txt"], "-i", "-H", "Range: bytes=10-29")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 206, r)
        self.assertEqual(header(headers, "content-range"), "bytes 10-29/100")
        self.assertEqual(body, RANGE_BODY[10:30])
        r = h3get(self, self.srv, ["/range.txt"], "-i", "-H", "Range: bytes=-7")
        status, headers, body = r.response()
        self.assertEqual((status, header(headers, "content-range"), body),
                         (206, "bytes 93-99/100", RANGE_BODY[-7:]), r)

    def test_if_none_match_with_the_etag_gets_304(self):
        first = h3get(self, self.srv, ["/small.txt"], "-i")
        status, headers, body = first.response()
        self.assertEqual((status, body), (200, self.files["small.txt"]), first)
        etag = header(headers, "etag")
        self.assertRegex(etag or "", r'^(W/)?"[^"]+"$', first)
        r = h3get(self, self.srv, ["/small.txt"], "-i", "-H", f"If-None-Match: {etag}")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual((status, body), (304, b""), r)
        self.assertEqual(header(headers, "etag"), etag)
        r = h3get(self, self.srv, ["/small.txt"], "-i", "-H", 'If-None-Match: "other"')
        self.assertEqual(r.response()[0], 200, r)

    def test_gzip_on_request_and_body_gunzips_to_the_file(self):
        r = h3get(self, self.srv, ["/text10k.txt"], "-i", "-H", "Accept-Encoding: gzip")
        self.assertEqual(r.returncode, 0, r)
        status, headers, body = r.response()
        self.assertEqual(status, 200)
        self.assertEqual(header(headers, "content-encoding"), "gzip", r)
        self.assertLess(len(body), len(TEXT_10K))
        self.assertEqual(gzip.decompress(body), TEXT_10K)
        plain = h3get(self, self.srv, ["/text10k.txt"], "-i")
        status, headers, body = plain.response()
        self.assertIsNone(header(headers, "content-encoding"), plain)
        self.assertEqual(body, TEXT_10K)

    def test_redirect_route(self):
        r = h3get(self, self.srv, ["/old?x=1"], "-i")
        self.assertEqual(r.returncode, 0, r)
        status, headers, _ = r.response()
        self.assertEqual(status, 301, r)
        self.assertEqual(header(headers, "location"), "https://localhost/moved/old?x=1")

    def test_respond_route(self):
        r = h3get(self, self.srv, ["/hello"], "-i")
        status, headers, body = r.response()
        self.assertEqual((status, body), (200, RESPOND_BODY), r)
        self.assertTrue(header(headers, "content-type").startswith("text/plain"), r)

    def test_400_concurrent_streams_on_one_connection(self):
        tag = self.unique()
        names = ["small.txt", "range.txt", "text10k.txt", "index.html"]
        r = h3get(self, self.srv, [f"/{n}?burst={tag}" for n in names], "--summary",
                  "-n", "100", timeout=120)
        self.assertEqual(r.returncode, 0, r)
        lines = r.summary()
        self.assertEqual(len(lines), 400, r)
        counts = collections.Counter()
        for s in lines:
            name = s["url"].rsplit("/", 1)[1].split("?")[0]
            self.assertEqual((s["status"], int(s["bytes"]), s["sha"]),
                             ("200", len(self.files[name]), sha256(self.files[name])), s)
            counts[name] += 1
        self.assertEqual(set(counts.values()), {100}, counts)
        # Every one of them is in the access log as HTTP/3.0 200.
        wait_for(lambda: len([l for l in self.srv.access_log_lines()
                              if f"burst={tag} HTTP/3.0\" 200 " in l]) == 400,
                 what="400 access log lines")

    # ---- access log

    def test_access_log_shows_http3_with_status_and_bytes(self):
        tag = self.unique()
        got = h3get(self, self.srv, [f"/big.bin?{tag}", f"/nope?{tag}", f"/hello?{tag}"],
                    "--summary")
        self.assertEqual(got.returncode, 0, got)
        sent = {s["url"].split(str(self.srv.tls_port), 1)[1]: s for s in got.summary()}
        head = h3get(self, self.srv, [f"/small.txt?{tag}"], "-I")
        rng = h3get(self, self.srv, [f"/range.txt?{tag}"], "-H", "Range: bytes=0-9")
        self.assertEqual(rng.stdout, RANGE_BODY[:10], rng)
        for target, status in ((f"/big.bin?{tag}", "200"), (f"/nope?{tag}", "404"),
                               (f"/hello?{tag}", "200")):
            line = self.log_line(target)
            self.assertEqual(line["proto"], "HTTP/3.0", line.string)
            self.assertEqual(line["status"], status, line.string)
            self.assertEqual(line["bytes"], sent[target]["bytes"], line.string)
            self.assertEqual(line["ua"], "h3get/0.1")
        line = self.log_line(f"/small.txt?{tag}", "HEAD")
        self.assertEqual((line["proto"], line["status"]), ("HTTP/3.0", "200"), line.string)
        self.assertIn(line["bytes"], ("0", "-"), line.string)
        line = self.log_line(f"/range.txt?{tag}")
        self.assertEqual((line["proto"], line["status"], line["bytes"]),
                         ("HTTP/3.0", "206", "10"), line.string)

    # ---- Alt-Svc on TCP

    def tcp_headers(self, port, *flags):
        r = curl(*flags, "--cacert", PKI.ca.cert, "--resolve", f"localhost:{port}:127.0.0.1",
                 "-D", "-", "-o", os.devnull, "-w", "\nversion=%{http_version}",
                 f"https://localhost:{port}/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode("latin-1")
        version = re.search(r"version=(\S+)", text).group(1)
        headers = [l.split(":", 1) for l in text.splitlines() if ":" in l]
        return version, {k.strip().lower(): v.strip() for k, v in headers
                         if not k.startswith("version")}

    def test_alt_svc_on_http11_and_http2_names_the_udp_port(self):
        want = f'h3=":{self.srv.tls_port}"; ma=3600'
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            got_version, headers = self.tcp_headers(self.srv.tls_port, flag)
            self.assertEqual(got_version, version)
            self.assertEqual(headers.get("alt-svc"), want, headers)

    def test_no_alt_svc_on_a_listener_without_h3(self):
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            got_version, headers = self.tcp_headers(self.srv.h2_port, flag)
            self.assertEqual(got_version, version)
            self.assertNotIn("alt-svc", headers)


# --------------------------------------------------------------------------------------------


class Http3MigrationTest(WraithTestCase):
    """Four workers: a client that moves to a new local port mid-download keeps its
    connection, because the CID in its packets (not its address) picks the worker."""

    SIZE = 12 << 20

    @classmethod
    def setUpClass(cls):
        srv = H3Server(static_site(), workers=4)
        cls.data = os.urandom(cls.SIZE)
        write_file(srv.path("www", "mig.bin"), cls.data)
        start_class_server(cls, srv)

    def assertWorkersUnchanged(self):
        self.assertEqual(self.srv.worker_pids(), self.workers, "a worker died or was replaced")

    def run_h3get(self, option):
        for i in range(6):
            r = h3get(self, self.srv, ["/mig.bin"], "--summary", option, str(2 << 20))
            self.assertEqual(r.returncode, 0, f"run {i + 1}: {r!r}")
            [s] = r.summary()
            self.assertEqual((s["status"], int(s["bytes"]), s["sha"]),
                             ("200", self.SIZE, sha256(self.data)), f"run {i + 1}: {r!r}")
            m = re.search(r"^migrated: (\d+) -> (\d+)$", r.stderr, re.M)
            self.assertIsNotNone(m, f"run {i + 1} did not migrate: {r!r}")
            self.assertNotEqual(m.group(1), m.group(2))
        self.assertWorkersUnchanged()

    def test_h3get_active_migration(self):
        self.run_h3get("--migrate-after")

    def test_h3get_nat_rebinding(self):
        self.run_h3get("--local-port-change-after")

    def test_gtlsclient_change_local_addr(self):
        markers = set()
        for i in range(6):
            r = gtlsclient(self, self.srv, ["/mig.bin"], "--change-local-addr=30ms",
                           verbose=True)
            body = r.body("mig.bin")
            self.assertIsNotNone(body, f"run {i + 1}: nothing downloaded: {r!r}")
            self.assertEqual(sha256(body), sha256(self.data), f"run {i + 1}")
            self.assertGreaterEqual(len(r.local_ports_receiving()), 2,
                                    f"run {i + 1}: the server never answered on the new "
                                    f"address: {r!r}")
            # Every CID of one connection names one worker (byte 0) and the master (byte 1).
            cids = [bytes.fromhex(c) for c, _ in r.server_cids()]
            self.assertTrue(cids, r)
            self.assertEqual({len(c) for c in cids}, {CID_LENGTH})
            self.assertEqual(len({c[:2] for c in cids}), 1, cids)
            self.assertLess(cids[0][0], 4)
            markers.add(cids[0][1])
            os.unlink(r.log_path)
        self.assertEqual(len(markers), 1, markers)
        self.assertWorkersUnchanged()


# --------------------------------------------------------------------------------------------


class Http3ReloadStopTest(WraithTestCase):
    """A download in flight survives `wraith reload` (the old worker drains it) and a graceful
    `wraith stop` (GOAWAY: what was asked is served, nothing new is taken)."""

    def server(self, http3=None, files=()):
        srv = H3Server(static_site(), workers=2, http3=http3)
        self.servers.append(srv)
        write_file(srv.path("www", "small.txt"), b"small\n")
        for name, size in files:
            self.hashes[name] = write_sparse(srv.path("www", name), size,
                                             [0, size // 3 + 12345, 2 * size // 3, size - 4096])
        srv.start()
        srv.wait_workers(2)
        return srv

    def setUp(self):
        super().setUp()
        self.hashes = {}

    def test_download_in_flight_survives_reload_and_old_workers_exit_after(self):
        size = 300 << 20
        srv = self.server(files=[("huge.bin", size)])
        old = srv.worker_pids()
        require_h3get(self)
        dl = PacedDownload(self, h3get_cmd(srv, ["/huge.bin"], "--max-time", "120"),
                           pause_at=32 << 20)
        dl.wait_paused()

        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stderr)
        def new_generation():
            kids = set(srv.worker_pids()) - set(old)
            return sorted(kids) if len(kids) == 2 else None

        new = wait_for(new_generation, what="the new generation's two workers")
        self.assertTrue(any(harness.pid_alive(p) for p in old),
                        "no old worker is left to finish the download")
        # A new connection is served meanwhile (by the new generation).
        small = h3get(self, srv, ["/small.txt"])
        self.assertEqual((small.returncode, small.stdout), (0, b"small\n"), small)

        rc = dl.finish()
        self.assertEqual(rc, 0, dl.stderr)
        self.assertEqual(dl.count, size, dl.stderr)
        self.assertEqual(dl.sha.hexdigest(), self.hashes["huge.bin"])
        wait_for(lambda: not any(harness.pid_alive(p) for p in old), timeout=15,
                 what="the old generation's workers to exit")
        self.assertEqual(srv.worker_pids(), new, "a new worker was replaced")
        line = srv.wait_log_line(lambda l: '"GET /huge.bin HTTP/3.0"' in l)
        self.assertRegex(line, rf'" 200 {size} ')
        again = h3get(self, srv, ["/small.txt"])
        self.assertEqual((again.returncode, again.stdout), (0, b"small\n"), again)

    def stop_in_background(self, srv):
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", srv.cli_stop()), daemon=True)
        t.start()
        wait_for(lambda: "graceful stop" in srv.error_log_text(), what="the graceful stop")
        return t, result

    def assertStoppedClean(self, srv, thread, result):
        thread.join(harness.STOP_TIMEOUT + 15)
        self.assertIn("r", result, "wraith stop did not return")
        self.assertEqual(result["r"].returncode, 0, result["r"].stderr)
        self.assertEqual(srv.wait_exit(), 0)
        for pid, started in srv.known_children.items():
            self.assertFalse(harness.pid_alive(pid) and harness.proc_starttime(pid) == started,
                             f"worker {pid} outlived the master")
        self.assertTrue(srv.udp_port_free(), "the QUIC port is still held")

    def test_graceful_stop_lets_the_download_in_flight_finish(self):
        size = 64 << 20
        srv = self.server(files=[("stop.bin", size)])
        require_h3get(self)
        dl = PacedDownload(self, h3get_cmd(srv, ["/stop.bin"], "--max-time", "60"),
                           pause_at=8 << 20)
        dl.wait_paused()
        thread, result = self.stop_in_background(srv)
        self.assertTrue(srv.alive(), "the master did not wait for the download")
        rc = dl.finish()
        self.assertEqual(rc, 0, dl.stderr)
        self.assertEqual((dl.count, dl.sha.hexdigest()), (size, self.hashes["stop.bin"]))
        self.assertStoppedClean(srv, thread, result)

    def test_graceful_stop_sends_goaway_requests_not_taken_fail_cleanly(self):
        # One stream at a time: when the stop comes, most requests are not sent yet; GOAWAY
        # tells the client not to, and the one in flight completes.
        size = 8 << 20
        srv = self.server(http3={"max_concurrent_streams": "1"}, files=[("seq.bin", size)])
        require_h3get(self)
        proc = subprocess.Popen(h3get_cmd(srv, ["/seq.bin"], "--summary", "-n", "100",
                                          "--max-time", "60"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        first = proc.stdout.readline().decode()
        self.assertRegex(first, r"^200 ", "the first request did not complete")
        thread, result = self.stop_in_background(srv)
        rest, err = proc.communicate(timeout=60)
        lines = [first] + rest.decode().splitlines()
        self.assertEqual(len(lines), 100, lines)
        done, goaway, rejected = 0, 0, 0
        for line in lines:
            m = SUMMARY_LINE.match(line.strip())
            self.assertIsNotNone(m, line)
            if m["status"]:
                self.assertEqual((m["status"], int(m["bytes"]), m["sha"]),
                                 ("200", size, self.hashes["seq.bin"]), line)
                done += 1
            elif m["error"] == "goaway":
                goaway += 1
            else:
                # RFC 9114 §5.2: a request the server never processed may be rejected.
                self.assertEqual(m["error"], "stream-reset:H3_REQUEST_REJECTED", lines)
                rejected += 1
        self.assertGreater(goaway, 0, f"no request was held back by GOAWAY: {lines}")
        self.assertEqual(proc.returncode, 3, err)
        sys.stderr.write(f"[test_http3] stop: {done} served, {goaway} not sent (GOAWAY), "
                         f"{rejected} rejected\n")
        self.assertStoppedClean(srv, thread, result)


# --------------------------------------------------------------------------------------------


class Http3RetryTest(WraithTestCase):
    """http3.retry = "always": every new connection is validated with a Retry first."""

    @classmethod
    def setUpClass(cls):
        srv = H3Server(static_site(), workers=2, http3={"retry": '"always"'})
        cls.data = os.urandom(3 << 20)
        write_file(srv.path("www", "r.bin"), cls.data)
        start_class_server(cls, srv)

    def assertHealthy(self):
        self.assertEqual(self.srv.worker_pids(), self.workers, "a worker died or was replaced")
        r = h3get(self, self.srv, ["/r.bin"], "--summary")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.summary()[0]["sha"], sha256(self.data), r)

    def test_gtlsclient_follows_retry(self):
        r = gtlsclient(self, self.srv, ["/r.bin"], verbose=True)
        self.assertRegex(r.log, r"pkt rx .*type=Retry", "the server sent no Retry")
        self.assertEqual(r.body("r.bin"), self.data, r)

    def test_h3get_follows_retry(self):
        r = h3get(self, self.srv, ["/r.bin"], "--summary", "-n", "3")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual([(s["status"], s["sha"]) for s in r.summary()],
                         [("200", sha256(self.data))] * 3, r)

    def fresh(self, initial, token=b""):
        """(`initial` with `token` and a fresh DCID, that DCID). A fresh DCID because the
        server already knows the captured one once it saw it."""
        dcid = os.urandom(len(parse_long_header(initial).dcid))
        return with_token(initial, token, dcid), dcid

    def answers_to(self, probe, pkt, dcid):
        """What the server sends back for `pkt` (DCID `dcid`): the packet is followed by an
        unknown-version probe with the same DCID (same worker, answered at once, like a
        refused token), and everything before that probe's Version Negotiation is returned."""
        scid = os.urandom(6)
        probe.send(pkt)
        probe.send(long_header_probe(0x1a2a3a4a, dcid, scid))
        got = probe.until(lambda d: is_version_negotiation(d, dcid, scid))
        self.assertTrue(got and is_version_negotiation(got[-1], dcid, scid),
                        "no Version Negotiation for the probe")
        return got[:-1]

    def retry_for(self, probe, initial):
        """(the Retry's SCID, its token) the server sends `probe` for `initial`."""
        pkt, dcid = self.fresh(initial)
        replies = self.answers_to(probe, pkt, dcid)
        self.assertEqual(len(replies), 1, "not one answer to a first Initial")
        return parse_retry(replies[0])

    def test_token_not_ours_is_no_token(self):
        """A token that does not open with the server's secret (a forgery, or a Retry token
        with a bit flipped on the path) is no token (RFC 9000 §8.1.3): the Initial gets the
        Retry an Initial without a token gets, never a close. A close would let anyone who can
        flip one bit of a client's first Initial end its connection attempt; the AEAD of a
        bent Initial fails anyway, and the client sends it again."""
        initial = capture_initial(self, f"localhost:{self.srv.tls_port}")
        probe = UdpProbe(self, self.srv.tls_port)
        _, real = self.retry_for(probe, initial)
        self.assertEqual(real[0], 0xb7, "not an ngtcp2 Retry token (version 2)")
        bent = bytearray(real)
        bent[len(bent) // 2] ^= 0x10
        tokens = [bytes(bent)] + [magic + os.urandom(80) for magic in (b"\xb7", b"\xb6")] * 5
        for token in tokens:
            pkt, dcid = self.fresh(initial, token)
            replies = self.answers_to(probe, pkt, dcid)
            self.assertEqual(len(replies), 1, f"token {token[:8].hex()}: {replies}")
            h = parse_long_header(replies[0])
            self.assertEqual((h.version, h.type), (QUIC_V1, 3),
                             f"token {token[:8].hex()}: not a Retry: {replies[0][:40].hex()}")
            self.assertEqual(h.dcid, parse_long_header(pkt).scid, "not addressed to the client")
        self.assertHealthy()

    def test_stale_retry_token_gets_a_close_the_client_can_read(self):
        """RFC 9000 §8.1.2: a Retry token of ours that fails verification (here: sent from
        another address than the one it was issued to) is answered with CONNECTION_CLOSE
        (INVALID_TOKEN), and the client can read it: it is protected with the Initial keys of
        the client's Destination Connection ID (RFC 9001 §5.2)."""
        # The decoder itself: RFC 9001 Appendix A.1 keys, then a real client's ClientHello.
        self.assertEqual([k.hex() for k in initial_keys(bytes.fromhex("8394c8f03e515708"),
                                                       "server")],
                         ["cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e",
                          "c206b8d9b9f0f37644430b490eeaa314"])
        initial = capture_initial(self, f"localhost:{self.srv.tls_port}")
        _, plain = open_initial(initial, parse_long_header(initial).dcid, "client")
        crypto = [f for f in first_frames(plain) if f[0] == "CRYPTO"]
        self.assertTrue(crypto and crypto[0][2][:1] == b"\x01", "cannot read a real Initial")

        retry_scid, token = self.retry_for(UdpProbe(self, self.srv.tls_port), initial)
        pkt = with_token(initial, token, retry_scid)  # as the client sends it after a Retry
        moved = UdpProbe(self, self.srv.tls_port)     # but from another port
        replies = self.answers_to(moved, pkt, retry_scid)
        self.assertEqual(len(replies), 1, f"not one answer: {replies}")
        reply = replies[0]
        h = parse_long_header(reply)
        self.assertEqual((h.version, h.type), (QUIC_V1, 0))
        self.assertEqual(h.dcid, parse_long_header(pkt).scid, "not addressed to the client")
        _, plain = open_initial(reply, retry_scid, "server")
        frames = first_frames(plain)
        if frames and frames[0][:2] == ("CONNECTION_CLOSE", 0x0b):
            return
        _, own = open_initial(reply, h.scid, "server")
        self.fail(f"the server's answer does not open with the Initial keys of the client's "
                  f"DCID (frames read: {frames}), so no client can see the INVALID_TOKEN close; "
                  f"with keys derived from the server's own SCID it reads "
                  f"{first_frames(own)[:1]}")


class Http3RefusedConnectionTest(WraithTestCase):
    """http3.max_connections: the connection over the limit is refused, readably."""

    def test_client_over_max_connections_is_refused_at_once(self):
        """RFC 9000 §5.2.2: a refused connection gets CONNECTION_CLOSE(CONNECTION_REFUSED) in
        an Initial; a client that can read it fails at once instead of waiting out its
        handshake timeout. One worker, http3.max_connections = 1, one connection held open."""
        srv = H3Server(static_site(), workers=1, http3={"max_connections": "1"})
        self.servers.append(srv)
        write_sparse(srv.path("www", "held.bin"), 64 << 20, [0])
        write_file(srv.path("www", "small.txt"), b"small\n")
        srv.start()
        require_h3get(self)
        held = PacedDownload(self, h3get_cmd(srv, ["/held.bin"]), pause_at=4 << 20)
        held.wait_paused()
        r = h3get(self, srv, ["/small.txt"], "--max-time", "5")
        self.assertIn("max_connections (1) reached", srv.error_log_text())
        self.assertEqual(r.returncode, 2, r)
        self.assertNotIn("timed out", r.stderr, "the client never saw the refusal")
        self.assertEqual(held.finish(), 0, held.stderr)


# --------------------------------------------------------------------------------------------


class Http3EarlyDataTest(WraithTestCase):
    """0-RTT: early.test allows early data, late.test does not. Safe methods are served from
    early data only on early.test; everything else sent early gets 425 Too Early."""

    POST_ROUTE = ('  [[site.route]]\n  path = "=/form"\n'
                  '  respond = { status = 200, body = "posted\\n", content_type = "text/plain" }\n')

    @classmethod
    def setUpClass(cls):
        sites = (static_site(["early.test"], tls_extra=", early_data = true",
                             routes=cls.POST_ROUTE)
                 + static_site(["late.test"], default=False, routes=cls.POST_ROUTE))
        srv = H3Server(sites, workers=2)
        write_file(srv.path("www", "index.html"), b"early index\n")
        start_class_server(cls, srv)

    def session(self, host):
        """A session file holding a ticket from a first, full handshake with `host`."""
        path = os.path.join(tempfile.mkdtemp(dir=self.srv.dir), "session")
        r = h3get(self, self.srv, ["/"], "--session-file", path, host=host)
        self.assertEqual((r.returncode, r.stdout), (0, b"early index\n"), r)
        self.assertTrue(os.path.exists(path) and os.path.getsize(path) > 0,
                        f"no session saved: {r!r}")
        return path

    def early(self, host, session, path, *args):
        r = h3get(self, self.srv, [path], "--session-file", session, "--early-data", "-i",
                  *args, host=host)
        self.assertEqual(r.returncode, 0, r)
        m = re.search(r"^early data: (accepted|rejected)$", r.stderr, re.M)
        self.assertIsNotNone(m, f"0-RTT was not attempted: {r!r}")
        status, _, body = r.response()
        return m.group(1), status, body, r

    def test_get_and_head_are_served_from_early_data(self):
        session = self.session("early.test")
        verdict, status, body, r = self.early("early.test", session, "/")
        self.assertEqual((verdict, status, body), ("accepted", 200, b"early index\n"), r)
        verdict, status, body, r = self.early("early.test", session, "/", "-I")
        self.assertEqual((verdict, status), ("accepted", 200), r)

    def test_post_in_early_data_gets_425(self):
        session = self.session("early.test")
        verdict, status, _, r = self.early("early.test", session, "/form", "-X", "POST",
                                           "-d", "x")
        self.assertEqual((verdict, status), ("accepted", 425), r)
        # The same POST after the handshake is served.
        r = h3get(self, self.srv, ["/form"], "-X", "POST", "-d", "x", host="early.test")
        self.assertEqual((r.returncode, r.stdout), (0, b"posted\n"), r)
        self.srv.wait_log_line(lambda l: '"POST /form HTTP/3.0" 425 ' in l)

    def test_site_without_early_data_serves_nothing_from_early_data(self):
        session = self.session("late.test")
        for args in ((), ("-X", "POST", "-d", "x")):
            path = "/form" if args else "/"
            verdict, status, body, r = self.early("late.test", session, path, *args)
            if verdict == "accepted":
                self.assertEqual(status, 425, f"served from early data: {r!r}")
            else:  # sent again after the handshake
                self.assertEqual(status, 200, r)
            sys.stderr.write(f"[test_http3] late.test {'POST' if args else 'GET'} in 0-RTT: "
                             f"early data {verdict}, {status}\n")

    def test_server_without_any_early_data_site_rejects_0rtt(self):
        srv = H3Server(static_site(["late.test"]), workers=1)
        self.servers.append(srv)
        write_file(srv.path("www", "index.html"), b"no early\n")
        srv.start()
        path = os.path.join(srv.dir, "session")
        r = h3get(self, srv, ["/"], "--session-file", path, host="late.test")
        self.assertEqual((r.returncode, r.stdout), (0, b"no early\n"), r)
        for args in ((), ("-X", "POST", "-d", "x")):
            r = h3get(self, srv, ["/"], "--session-file", path, "--early-data", "-i", *args,
                      host="late.test")
            self.assertEqual(r.returncode, 0, r)
            self.assertRegex(r.stderr, r"(?m)^early data: rejected$", r)
            if not args:  # sent again after the handshake
                self.assertEqual(r.response()[::2], (200, b"no early\n"), r)


# --------------------------------------------------------------------------------------------


class Http3HostileDatagramTest(WraithTestCase):
    """Raw UDP at the QUIC port: garbage, truncated and malformed packets are dropped without
    an answer, an unknown version gets Version Negotiation, a short header packet for an
    unknown connection gets a stateless reset; no worker dies."""

    @classmethod
    def setUpClass(cls):
        srv = H3Server(static_site(), workers=2)
        write_file(srv.path("www", "index.html"), b"still here\n")
        start_class_server(cls, srv)

    def assertHealthy(self):
        self.assertEqual(self.srv.worker_pids(), self.workers, "a worker died or was replaced")
        r = h3get(self, self.srv, ["/index.html"])
        self.assertEqual((r.returncode, r.stdout), (0, b"still here\n"), r)
        g = gtlsclient(self, self.srv, ["/index.html"])
        self.assertEqual(g.body("index.html"), b"still here\n", g)

    def vn_probe(self, dcid):
        """An unknown-version packet with `dcid` (so it reaches the same worker as other
        packets with that DCID) and a fresh SCID; returns (packet, scid)."""
        scid = os.urandom(6)
        return long_header_probe(0x1a2a3a4a, dcid, scid), scid

    def test_random_datagrams_get_no_answer_but_negotiation_or_reset(self):
        rnd = random.Random()
        probes = [UdpProbe(self, self.srv.tls_port) for _ in range(5)]
        for i in range(500):
            n = rnd.randint(1, 1500)
            probes[i % 5].send(rnd.randbytes(n))
        for p in probes:
            dcid = os.urandom(8)
            pkt, scid = self.vn_probe(dcid)
            p.send(pkt)
            got = p.until(lambda d: is_version_negotiation(d, dcid, scid))
            self.assertTrue(got and is_version_negotiation(got[-1], dcid, scid),
                            "no Version Negotiation after the garbage")
            for d in got:
                # Garbage may look like an unknown version (VN) or a short header for an
                # unknown connection (stateless reset, smaller than any trigger >= 42 bytes).
                self.assertTrue(is_version_negotiation(d) or
                                is_stateless_reset_shape(d, 1501), d[:64].hex())
        self.assertHealthy()

    def test_truncated_and_malformed_initials_are_dropped_silently(self):
        initial = capture_initial(self, f"localhost:{self.srv.tls_port}")
        h = parse_long_header(initial)
        self.assertEqual((len(initial), h.version, h.type), (1200, QUIC_V1, 0))
        bad = [initial[:n] for n in (1, 4, 5, 6, 7, 20, 30, h.pn_offset, h.pn_offset + 10,
                                     600, 1100, 1199)]
        n = h.pn_offset - h.length_offset  # the Length field, re-encoded in as many bytes
        self.assertIn(n, (2, 4, 8))
        longer = (8000 | {2: 1 << 14, 4: 2 << 30, 8: 3 << 62}[n]).to_bytes(n, "big")
        bad.append(initial[:h.length_offset] + longer + initial[h.pn_offset:])  # > datagram
        corrupt = bytearray(initial)
        corrupt[h.pn_offset + 200] ^= 0xff                                       # fails AEAD
        bad.append(bytes(corrupt))
        bad.append(initial[:5] + bytes([21]) + initial[6:])                       # 21-byte DCID
        # RFC 9000 §6.1: never a Version Negotiation in answer to one.
        bad.append(long_header_probe(0, h.dcid, h.scid))
        probe = UdpProbe(self, self.srv.tls_port)
        for pkt in bad:
            probe.send(pkt)
        # Then the intact Initial, same DCID (so the same worker, after those): the first thing
        # to come back must be the server's first Initial of a fresh handshake, packet number
        # 0 with the ServerHello. An answer to anything above (sent at once, or queued on a
        # connection the garbage opened) would come before it or take packet number 0.
        probe.send(initial)
        reply = probe.recv()
        self.assertIsNotNone(reply, "no answer to the intact Initial")
        r = parse_long_header(reply)
        self.assertEqual((r.version, r.type, r.dcid), (QUIC_V1, 0, h.scid),
                         f"not the handshake's first Initial: {reply[:48].hex()}")
        pn, plain = open_initial(reply, h.dcid, "server")
        crypto = [f for f in first_frames(plain) if f[0] == "CRYPTO"]
        self.assertEqual(pn, 0, "the server sent Initial packets before")
        self.assertTrue(crypto and crypto[0][1] == 0 and crypto[0][2][:1] == b"\x02",
                        f"no ServerHello: {first_frames(plain)}")
        self.assertHealthy()

    def test_unknown_version_gets_version_negotiation(self):
        dcid, scid = os.urandom(8), os.urandom(6)
        probe = UdpProbe(self, self.srv.tls_port)
        # RFC 9000 §5.2.2: below 1200 bytes an unknown version is dropped.
        probe.send(long_header_probe(0x1a2a3a4a, dcid, b"small!", size=1199))
        probe.send(long_header_probe(0x1a2a3a4a, dcid, scid, first=0xc5))
        got = probe.until(lambda d: is_version_negotiation(d))
        self.assertEqual(len(got), 1, [d[:32].hex() for d in got])
        vn = got[0]
        self.assertTrue(vn[0] & 0x80)
        self.assertEqual(vn[1:5], b"\x00\x00\x00\x00")
        h = parse_long_header(vn)
        self.assertEqual((h.dcid, h.scid), (scid, dcid), "CIDs not echoed swapped")
        versions = vn[h.pn_offset:]
        self.assertTrue(versions and len(versions) % 4 == 0, vn.hex())
        listed = [int.from_bytes(versions[i:i + 4], "big") for i in range(0, len(versions), 4)]
        self.assertIn(QUIC_V1, listed)
        self.assertNotIn(0x1a2a3a4a, listed)
        self.assertHealthy()

    def test_version_one_bit_off_ours_is_dropped(self):
        """A first datagram whose version is one bit away from v1 or v2 is our version bent on
        the path: no Version Negotiation (Chromium would abandon its attempt on one listing
        its own version); the client's retransmission gets through."""
        probe = UdpProbe(self, self.srv.tls_port)
        for bent in (QUIC_V1 ^ 0x100, QUIC_V1 ^ 0x80000000, 0x6b3343cf ^ 0x10):
            dcid, scid, mark = os.urandom(8), os.urandom(6), os.urandom(6)
            probe.send(long_header_probe(bent, dcid, scid))
            probe.send(long_header_probe(0x1a2a3a4a, dcid, mark))  # same worker, in order
            got = probe.until(lambda d: is_version_negotiation(d, dcid, mark))
            self.assertTrue(got and is_version_negotiation(got[-1], dcid, mark),
                            "no Version Negotiation for the reserved version")
            self.assertEqual(got[:-1], [], f"version {bent:#010x} was answered")
        self.assertHealthy()

    def short_header(self, dcid, length=100):
        return bytes([0x40 | random.getrandbits(6)]) + dcid + \
            os.urandom(length - 1 - len(dcid))

    def test_unknown_connection_id_gets_a_stateless_reset(self):
        probe = UdpProbe(self, self.srv.tls_port)
        marker = self.marker()
        for dcid in (bytes([0, marker]) + os.urandom(16),      # ours in shape, unknown
                     bytes([1, marker]) + os.urandom(16),
                     bytes([0x77, marker ^ 0xff]) + os.urandom(16)):  # foreign
            probe.send(self.short_header(dcid, 100))
            reply = probe.recv(timeout=5)
            self.assertIsNotNone(reply, f"no stateless reset for {dcid.hex()}")
            self.assertTrue(is_stateless_reset_shape(reply, 100),
                            f"{len(reply)} bytes, first byte {reply[0]:#04x}")
        self.assertHealthy()

    def marker(self):
        """The per-master marker (byte 1 of every server CID), read from a real connection."""
        r = gtlsclient(self, self.srv, ["/index.html"], verbose=True)
        cids = r.server_cids()
        self.assertTrue(cids, r)
        return bytes.fromhex(cids[0][0])[1]

    def test_stateless_reset_of_an_ended_connection_carries_its_token(self):
        """Once a connection is gone, a packet for one of its CIDs gets a reset ending with the
        token the server announced for that CID, so the client recognises it (RFC 9000 §10.3)."""
        r = gtlsclient(self, self.srv, ["/index.html"], verbose=True)
        self.assertEqual(r.body("index.html"), b"still here\n", r)
        cid_hex, token_hex = r.server_cids()[0]
        cid, token = bytes.fromhex(cid_hex), bytes.fromhex(token_hex)
        probe = UdpProbe(self, self.srv.tls_port)

        def reset():
            probe.send(self.short_header(cid, 100))
            d = probe.recv(timeout=0.2)
            return d if d is not None and is_stateless_reset_shape(d, 100) else None

        d = wait_for(reset, timeout=10, what="a stateless reset for the ended connection")
        self.assertEqual(d[-16:].hex(), token.hex())



# --------------------------------------------------------------------------------------------
# HTTP/3 frames and QPACK field sections by hand (RFC 9114 §7, RFC 9204 §4.5), for h3get's
# --raw-* options: no Huffman coding, static table only unless a test says otherwise.


def h3_frame(ftype, payload=b""):
    return encode_varint(ftype) + encode_varint(len(payload)) + payload


def qpack_int(value, prefix_bits, flags=0):
    """An integer with an N-bit prefix (RFC 7541 §5.1); `flags` are the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def qpack_str(text, prefix_bits=7, flags=0):
    data = text.encode() if isinstance(text, str) else text
    return qpack_int(len(data), prefix_bits, flags) + data


def qpack_indexed_static(index):
    """Indexed Field Line, static table (RFC 9204 §4.5.2): 0b11 + index."""
    return qpack_int(index, 6, 0xc0)


def qpack_literal_static_name(index, value):
    """Literal Field Line with Name Reference, static table (§4.5.4): 0b0101 + index."""
    return qpack_int(index, 4, 0x50) + qpack_str(value)


def qpack_literal(name, value):
    """Literal Field Line with Literal Name (§4.5.6): 0b0010 + name length, as given."""
    return qpack_str(name, 3, 0x20) + qpack_str(value)


# RFC 9204 Appendix A
QPACK_AUTHORITY, QPACK_PATH, QPACK_METHOD_GET, QPACK_SCHEME_HTTPS = 0, 1, 17, 23

RAW_CLOSED = re.compile(r"^closed: (0x[0-9a-f]+) (\S+)$", re.M)
RAW_RESET = re.compile(r"^stream reset: (\d+) (0x[0-9a-f]+) (\S+)$", re.M)
RAW_STOP = re.compile(r"^stop sending: (\d+) (0x[0-9a-f]+) (\S+)$", re.M)
RAW_RESPONSE = re.compile(r"^response: (\d+)$", re.M)


class Http3BodyTimeoutTest(WraithTestCase):
    """http.body_timeout on HTTP/3 as on HTTP/1.1 and HTTP/2: a request whose body stops
    coming gets 408, long before QUIC's idle timeout; the connection and worker live on."""

    @classmethod
    def setUpClass(cls):
        routes = ('  [[site.route]]\n  path = "/upload"\n'
                  '  proxy = { pass = "http://127.0.0.1:9", buffer_request_body = true }\n')
        srv = H3Server(static_site(routes=routes), workers=1, http={"body_timeout": '"1s"'},
                       http3={"idle_timeout": '"60s"'})
        write_file(srv.path("www", "index.html"), b"still serving\n")
        start_class_server(cls, srv)

    def test_stalled_body_gets_408(self):
        block = b"\x00\x00" + qpack_indexed_static(20)  # :method POST (RFC 9204 Appendix A)
        block += qpack_indexed_static(QPACK_SCHEME_HTTPS)
        block += qpack_literal_static_name(QPACK_AUTHORITY, f"localhost:{self.srv.tls_port}")
        block += qpack_literal_static_name(QPACK_PATH, "/upload")
        block += qpack_literal_static_name(4, "100")   # content-length
        request = h3_frame(0x01, block) + h3_frame(0x00, b"x" * 10)  # 10 of 100 bytes, no FIN
        started = time.monotonic()
        r = h3get(self, self.srv, ["/upload"], "--max-time", "20", "--raw-request",
                  request.hex())
        elapsed = time.monotonic() - started
        m = RAW_RESPONSE.search(r.stderr)
        self.assertEqual(m.group(1) if m else "no response", "408", r)
        self.assertLess(elapsed, 15, "the 408 waited for something else than body_timeout")
        self.assertIn("timed out sending the request body", self.srv.error_log_text())
        self.assertEqual(self.srv.worker_pids(), self.workers)
        ok = h3get(self, self.srv, ["/index.html"])
        self.assertEqual((ok.returncode, ok.stdout), (0, b"still serving\n"), ok)


class Http3MalformedInputTest(WraithTestCase):
    """Bad HTTP/3 and QPACK input over a real QUIC connection (h3get --raw-*): each closes the
    connection (or resets the stream) with the code RFC 9114 §7-§8 / RFC 9204 §6 name, and
    no worker dies; unknown frame and stream types are ignored (RFC 9114 §9). The expected
    codes come from the RFCs, not from what the server happens to send."""

    @classmethod
    def setUpClass(cls):
        srv = H3Server(static_site(), workers=2)
        write_file(srv.path("www", "index.html"), b"still serving\n")
        write_file(srv.path("www", "long.bin"), os.urandom(8 << 20))
        start_class_server(cls, srv)

    def request_headers(self, path="/index.html", extra=(), drop=()):
        """A HEADERS frame for GET https://localhost:PORT/path, hand-encoded; `extra` field
        lines are appended, pseudo-header names in `drop` left out."""
        lines = [(":method", qpack_indexed_static(QPACK_METHOD_GET)),
                 (":scheme", qpack_indexed_static(QPACK_SCHEME_HTTPS)),
                 (":authority", qpack_literal_static_name(QPACK_AUTHORITY,
                                                          f"localhost:{self.srv.tls_port}")),
                 (":path", qpack_literal_static_name(QPACK_PATH, path))]
        block = b"\x00\x00"  # Required Insert Count 0, Delta Base 0 (RFC 9204 §4.5.1)
        block += b"".join(line for name, line in lines if name not in drop) + b"".join(extra)
        return h3_frame(0x01, block)

    def raw(self, *args):
        """h3get with raw options against /index.html; then checks the server survived."""
        r = h3get(self, self.srv, ["/index.html"], "--max-time", "10",
                  *[a.hex() if isinstance(a, bytes) else a for a in args])
        self.assertSurvived(r)
        return r

    def assertSurvived(self, r):
        """No crash, no respawn, and a plain request still gets its file."""
        self.assertEqual(self.srv.worker_pids(), self.workers,
                         f"a worker died or was replaced after: {r!r}")
        self.assertEqual(self.srv.crashes(), [], f"crash logged after: {r!r}")
        ok = h3get(self, self.srv, ["/index.html"])
        self.assertEqual((ok.returncode, ok.stdout), (0, b"still serving\n"),
                         f"plain request after {r!r}\nfailed: {ok!r}")

    def assertConnectionError(self, r, code, name):
        m = RAW_CLOSED.search(r.stderr)
        got = f"{m.group(1)} {m.group(2)}" if m else "no CONNECTION_CLOSE"
        self.assertEqual(got, f"{code:#x} {name}", f"expected the connection closed with "
                         f"{name} ({code:#x}): {r!r}")
        self.assertEqual(r.returncode, 2, r)
        self.assertIsNone(RAW_RESPONSE.search(r.stderr), f"served anyway: {r!r}")

    def assertStreamError(self, r, stream_id, code, name, path):
        # First what matters most: not served, and the connection was not closed for it.
        self.assertIsNone(RAW_RESPONSE.search(r.stderr), f"a response came: {r!r}")
        self.assertIsNone(RAW_CLOSED.search(r.stderr),
                          f"a stream error (RFC 9114 §4.1.2) closed the connection: {r!r}")
        # Workers flush their access log every second: whatever it got is written by now.
        time.sleep(1.5)
        served = [l for l in self.srv.access_log_lines() if f" {path} " in l and
                  re.search(r'" 2\d\d ', l)]
        self.assertEqual(served, [], "the malformed request was served")
        m = RAW_RESET.search(r.stderr)
        got = f"{m.group(1)} {m.group(2)} {m.group(3)}" if m else "no RESET_STREAM"
        self.assertEqual(got, f"{stream_id} {code:#x} {name}",
                         f"expected stream {stream_id} reset with {name} ({code:#x}): {r!r}")
        self.assertEqual(r.returncode, 3, r)

    def unique(self):
        return f"/index.html?m{random.getrandbits(48):012x}"

    def test_crypto_data_after_the_handshake_is_an_unexpected_message(self):
        # RFC 9001 leaves a client no TLS message to send after the handshake (no KeyUpdate,
        # no post-handshake authentication). The server, which frees its TLS session then,
        # closes with CRYPTO_ERROR carrying unexpected_message (0x100 + 10). A TLS KeyUpdate
        # goes out as soon as the handshake is confirmed, in the middle of an 8 MiB download.
        r = h3get(self, self.srv, ["/long.bin"], "--max-time", "10", "--raw-crypto",
                  "1800000100")
        m = re.search(r"^closed: (0x[0-9a-f]+) CRYPTO_ERROR", r.stderr, re.M)
        self.assertEqual(m.group(1) if m else "no CONNECTION_CLOSE", "0x10a", r)
        self.assertSurvived(r)

    # ---- the raw mode itself

    def test_hand_encoded_request_is_served(self):
        """The control case: a well-formed HEADERS frame sent raw gets 200 and the file."""
        r = self.raw("--raw-request", self.request_headers(), "--raw-fin")
        self.assertEqual((r.returncode, r.stdout), (0, b"still serving\n"), r)
        self.assertRegex(r.stderr, r"(?m)^response: 200$", r)

    # ---- request streams (RFC 9114 §4.1, §7)

    def test_data_before_headers_closes_with_frame_unexpected(self):
        r = self.raw("--raw-request", h3_frame(0x00, b"abc"), "--raw-fin")
        self.assertConnectionError(r, 0x105, "H3_FRAME_UNEXPECTED")

    def test_settings_on_a_request_stream_closes_with_frame_unexpected(self):
        r = self.raw("--raw-request", h3_frame(0x04) + self.request_headers(), "--raw-fin")
        self.assertConnectionError(r, 0x105, "H3_FRAME_UNEXPECTED")

    def test_http2_priority_frame_on_a_request_stream_closes_with_frame_unexpected(self):
        """RFC 9114 §7.2.8: HTTP/2's frame types (0x02 PRIORITY here) must not be sent."""
        r = self.raw("--raw-request", h3_frame(0x02, b"\x00" * 5) + self.request_headers(),
                     "--raw-fin")
        self.assertConnectionError(r, 0x105, "H3_FRAME_UNEXPECTED")

    def test_field_list_far_past_the_limits_resets_the_stream(self):
        # 500 field lines of one byte each (accept-encoding from QPACK's static table) expand
        # to ~32 KB, past four times http.max_headers: a decoder bomb's shape. The stream is
        # reset with H3_EXCESSIVE_LOAD (RFC 9114 §8.1) instead of being decoded to its end.
        path = self.unique()
        r = self.raw("--raw-request",
                     self.request_headers(path, extra=[qpack_indexed_static(31)] * 500),
                     "--raw-fin")
        self.assertStreamError(r, 0, 0x107, "H3_EXCESSIVE_LOAD", path)

    def test_truncated_frame_then_fin_closes_with_frame_error(self):
        """RFC 9114 §7.1: HEADERS says 16 bytes, 2 come, then FIN."""
        r = self.raw("--raw-request", bytes([0x01, 0x10, 0x00, 0x00]), "--raw-fin")
        self.assertConnectionError(r, 0x106, "H3_FRAME_ERROR")

    def test_frame_type_cut_short_by_fin_closes_with_frame_error(self):
        """RFC 9114 §7.1 again, cut inside the next frame's type: a whole HEADERS frame, then
        0x40 (a 2-byte varint) and FIN."""
        r = self.raw("--raw-request", self.request_headers() + b"\x40", "--raw-fin")
        self.assertConnectionError(r, 0x106, "H3_FRAME_ERROR")

    # ---- control streams (RFC 9114 §6.2.1, §7.2.4)

    def test_second_settings_on_the_control_stream_closes_with_frame_unexpected(self):
        r = self.raw("--raw-control", h3_frame(0x04))
        self.assertConnectionError(r, 0x105, "H3_FRAME_UNEXPECTED")

    def test_control_stream_not_starting_with_settings_closes_with_missing_settings(self):
        r = self.raw("--raw-control-stream", h3_frame(0x0d, encode_varint(0)))  # MAX_PUSH_ID
        self.assertConnectionError(r, 0x10a, "H3_MISSING_SETTINGS")

    def test_http2_ping_frame_on_the_control_stream_closes_with_frame_unexpected(self):
        r = self.raw("--raw-control", h3_frame(0x06, b"\x00" * 8))
        self.assertConnectionError(r, 0x105, "H3_FRAME_UNEXPECTED")

    def test_second_control_stream_closes_with_stream_creation_error(self):
        r = self.raw("--raw-uni", "0:" + h3_frame(0x04).hex())
        self.assertConnectionError(r, 0x103, "H3_STREAM_CREATION_ERROR")

    def test_fin_on_the_control_stream_closes_with_closed_critical_stream(self):
        r = self.raw("--raw-control-fin")
        self.assertConnectionError(r, 0x104, "H3_CLOSED_CRITICAL_STREAM")

    # ---- QPACK (RFC 9204 §4.3, §4.5, §6)

    def test_encoder_stream_capacity_above_the_limit_closes_with_encoder_stream_error(self):
        """Set Dynamic Table Capacity (§4.3.1) to 1 MiB, above the 4 KiB the server allows."""
        r = self.raw("--raw-qpack-encoder", qpack_int(1 << 20, 5, 0x20))
        self.assertConnectionError(r, 0x201, "QPACK_ENCODER_STREAM_ERROR")

    def test_encoder_stream_insert_naming_a_missing_entry_closes_with_encoder_stream_error(self):
        """Capacity 100, then Insert with Name Reference (§4.3.2) to dynamic entry 0, which
        does not exist."""
        r = self.raw("--raw-qpack-encoder",
                     qpack_int(100, 5, 0x20) + qpack_int(0, 6, 0x80) + qpack_str("x"))
        self.assertConnectionError(r, 0x201, "QPACK_ENCODER_STREAM_ERROR")

    def test_headers_naming_a_missing_dynamic_entry_closes_with_decompression_failed(self):
        """Required Insert Count 0, then an Indexed Field Line into the dynamic table (§2.2.3:
        an index at or past the Required Insert Count)."""
        block = b"\x00\x00" + qpack_int(0, 6, 0x80)
        r = self.raw("--raw-request", h3_frame(0x01, block), "--raw-fin")
        self.assertConnectionError(r, 0x200, "QPACK_DECOMPRESSION_FAILED")

    # ---- malformed requests (RFC 9114 §4.1.2, §4.2, §4.3.1): a stream error, not served

    def test_uppercase_header_name_resets_the_stream_with_message_error(self):
        path = self.unique()
        r = self.raw("--raw-request",
                     self.request_headers(path, extra=[qpack_literal("X-Upper", "1")]),
                     "--raw-fin")
        self.assertStreamError(r, 0, 0x10e, "H3_MESSAGE_ERROR", path)

    def test_missing_path_resets_the_stream_with_message_error(self):
        path = self.unique()
        r = self.raw("--raw-request", self.request_headers(path, drop=(":path",)), "--raw-fin")
        self.assertStreamError(r, 0, 0x10e, "H3_MESSAGE_ERROR", path)

    # ---- extension points are ignored (RFC 9114 §9, §7.2.8, §6.2.3)

    def test_unknown_frame_types_on_a_request_stream_are_ignored(self):
        grease = 0x1f * 3 + 0x21
        r = self.raw("--raw-request", h3_frame(0x21, b"before") + self.request_headers()
                     + h3_frame(grease, b"after"), "--raw-fin")
        self.assertEqual((r.returncode, r.stdout), (0, b"still serving\n"), r)
        self.assertRegex(r.stderr, r"(?m)^response: 200$", r)

    def test_unknown_frame_type_on_the_control_stream_is_ignored(self):
        r = self.raw("--raw-control", h3_frame(0x1f * 7 + 0x21, b"grease"))
        self.assertEqual((r.returncode, r.stdout), (0, b"still serving\n"), r)
        self.assertRegex(r.stderr, r"(?m)^response: 200$", r)

    def test_unknown_unidirectional_stream_type_is_ignored(self):
        r = self.raw("--raw-uni", f"{0x1f * 5 + 0x21:#x}:0102030405")
        self.assertEqual((r.returncode, r.stdout), (0, b"still serving\n"), r)
        self.assertRegex(r.stderr, r"(?m)^response: 200$", r)
        # §6.2: reading it may be aborted, then SHOULD be with H3_STREAM_CREATION_ERROR.
        m = RAW_STOP.search(r.stderr)
        if m:
            self.assertEqual(m.group(3), "H3_STREAM_CREATION_ERROR", r)


if __name__ == "__main__":
    harness.main()
