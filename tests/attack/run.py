#!/usr/bin/env python3
"""The attack table (issue 15): every attack runs against a real Wraith configured with the
defences a production config would have, while a legitimate client beside it, from another
loopback address (127.0.0.5; the attackers use 127.0.0.1), makes one request every 20 ms. The
table gives, per attack, what the attacker sent, and the legitimate client's success rate and
latency; a case passes at >= 99% success and p99 < 50 ms, and only if no worker crashed or was
replaced.

    WRAITH_BIN=build/wraith python3 tests/attack/run.py [--seconds 10] [CASE ...]

Run by `make attack` (and by `make check-system`); not part of `make test`. Needs Debian's
slowhttptest (the Makefile's ATTACK_TOOLS, which `make attack` installs), wrk, python3-h2
and ngtcp2-client (gtlsclient, the Retry probe) from its DEPS, and build/h3get and
build/h3load (the tools build). Every server and client binds 127.0.0.1 (the attackers) or
127.0.0.5 (the legitimate client) on ephemeral ports; processes are started and stopped by
their PIDs (a tool in a session of its own, signalled as that group). Cases reuse the frame
builders of tests/integration/test_http2.py and test_http3.py. The defences under test, and
why the legitimate client keeps being served, are in docs/decisions.md ("Limits").
"""

import argparse
import collections
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import tlsutil  # noqa: E402
from harness import Wraith, make_dir, toml_str, write_file  # noqa: E402
from test_http2 import (CONTINUATION, END_HEADERS, END_STREAM, HEADERS, PING,  # noqa: E402
                        RST_STREAM, RawH2, frame, hpack, hpack_str, settings_frame)
from test_http3 import (QPACK_AUTHORITY, QPACK_METHOD_GET, QPACK_PATH,  # noqa: E402
                        QPACK_SCHEME_HTTPS, h3_frame, qpack_indexed_static, qpack_int,
                        qpack_literal_static_name, qpack_str)

BUILD_DIR = os.path.dirname(os.path.abspath(harness.WRAITH_BIN))
H3GET = os.path.join(BUILD_DIR, "h3get")
H3LOAD = os.path.join(BUILD_DIR, "h3load")
GTLSCLIENT = shutil.which("gtlsclient")

LEGIT_SOURCE = "127.0.0.5"  # the attackers connect from 127.0.0.1
LEGIT_INTERVAL = 0.02       # one request every 20 ms
LEGIT_TIMEOUT = 2.0         # a request slower than this failed
TARGET_SUCCESS = 99.0
TARGET_P99_MS = 50.0

INDEX = b"<!doctype html><title>legit</title>" + b"x" * 1000 + b"\n"

# The defences: what a production config facing the Internet would set. The upstream of
# /upload is the server itself (/post): the body is read whole first (buffer_request_body),
# so a slow upload holds a connection of ours until body_timeout, never one of the app's.
ZONES = '''
[upstream.app]
servers = ["127.0.0.1:@PORT@"]

[limit.per_ip]            # concurrent connections per client address, at accept
connections = 256
[limit.new_conns]         # new connections per client address, at accept (before TLS)
connection_rate = "100/s"
burst = 200
[limit.api]               # the limited route
rate = "100/s"
burst = 100
'''

SITES = '''
[[site]]
hosts = ["*"]
default = true
tls = {tls}
  [[site.route]]
  path = "/api/"
  limit = ["api"]
  static = {{ root = "@DIR@/www" }}
  [[site.route]]
  path = "=/post"
  respond = {{ status = 200, body = "posted\\n" }}
  [[site.route]]
  path = "/upload"
  proxy = {{ upstream = "app", strip_prefix = "/upload", replace_prefix = "/post", buffer_request_body = true }}
  [[site.route]]
  path = "/"
  static = {{ root = "@DIR@/www" }}
'''


class AttackServer(Wraith):
    """Plain listener with HTTP/1.1 and h2c (@PORT@), TLS listener with h3, h2, http/1.1."""

    def render(self, sites=None):
        text = super().render(sites)
        listen = f'address = "127.0.0.1:{self.port}"'
        return text.replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)


def start_server(pki):
    tls = f"{{ cert = {toml_str(pki.chain)}, key = {toml_str(pki.key)} }}"
    srv = AttackServer(SITES.format(tls=tls) + ZONES, workers=2, tls_listen="",
                       server={"limit": '["per_ip", "new_conns"]'},
                       http={"header_timeout": '"10s"', "body_timeout": '"10s"',
                             "send_timeout": '"10s"'})
    www = make_dir(srv.path("www"))
    write_file(os.path.join(www, "index.html"), INDEX)
    write_file(os.path.join(www, "api", "index.html"), INDEX)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    os.chmod(os.path.join(www, "big.bin"), 0o644)
    try:
        srv.start()
        srv.workers_at_start = srv.wait_workers(2)
    except BaseException:
        sys.stderr.write(srv.diagnostics())
        srv.cleanup()
        raise
    return srv


# --------------------------------------------------------------------------------------------
# The legitimate clients. Each runs in its own process (no GIL shared with the attackers) and
# reports [(ok, seconds), ...].


def legit_http(port, path, tls_port, ca, seconds, out):
    ctx = None
    if tls_port:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
    import http.client
    results = []
    next_at = time.monotonic()
    end = next_at + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        ok = False
        try:
            if ctx:
                c = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=LEGIT_TIMEOUT,
                                                source_address=(LEGIT_SOURCE, 0), context=ctx)
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=LEGIT_TIMEOUT,
                                               source_address=(LEGIT_SOURCE, 0))
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            ok = r.status == 200 and body == INDEX
            c.close()
        except (OSError, http.client.HTTPException):
            ok = False
        took = time.monotonic() - t0
        results.append((ok and took < LEGIT_TIMEOUT, took))
        next_at += LEGIT_INTERVAL
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.put(results)


def legit_h2c(port, path, tls_port, ca, seconds, out):
    """HTTP/2 with prior knowledge, a new connection per request (python3-h2)."""
    try:
        import h2.config
    except ImportError:  # Debian's python3-h2, when python3 is not the system one
        sys.path.append("/usr/lib/python3/dist-packages")
        import h2.config
    import h2.connection
    import h2.events
    results = []
    next_at = time.monotonic()
    end = next_at + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        ok = False
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=LEGIT_TIMEOUT,
                                         source_address=(LEGIT_SOURCE, 0))
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                                  (":authority", "legit.test"), (":path", path)],
                              end_stream=True)
            s.sendall(conn.data_to_send())
            body, status, done = b"", None, False
            while not done and time.monotonic() - t0 < LEGIT_TIMEOUT:
                data = s.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers).get(b":status")
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, 1)
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset,
                                         h2.events.ConnectionTerminated)):
                        done = True
                s.sendall(conn.data_to_send())
            ok = status == b"200" and body == INDEX
            s.close()
        except OSError:
            ok = False
        took = time.monotonic() - t0
        results.append((ok and took < LEGIT_TIMEOUT, took))
        next_at += LEGIT_INTERVAL
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.put(results)


def legit_h3(port, path, tls_port, ca, seconds, out):
    """h3load: one request every 20 ms (--interval), each on a new HTTP/3 connection
    (--new-connection; the time includes the handshake, and a handshake that fails is a
    failed request). Its report counts what failed (errors, resets, timeouts); the log gives
    each request's time."""
    fd, log = tempfile.mkstemp(prefix="wraith-legit-h3-")
    os.close(fd)
    p = subprocess.run([H3LOAD, "-c", "1", "-m", "1", "-D", str(seconds), "--interval",
                        str(LEGIT_INTERVAL), "--new-connection", "--local-address", LEGIT_SOURCE,
                        "--cacert", ca, "--resolve",
                        f"localhost:{tls_port}:127.0.0.1", "--log-file", log,
                        f"https://localhost:{tls_port}{path}"],
                       capture_output=True, timeout=seconds + 30)
    results = []
    try:
        with open(log) as f:
            for line in f:
                _, status, us = line.split()
                results.append((status == "200" and int(us) < LEGIT_TIMEOUT * 1e6,
                                int(us) / 1e6))
    except OSError:
        pass
    finally:
        os.unlink(log)
    report = p.stdout.decode(errors="replace")
    m = re.search(r"requests: \d+ total, (\d+) started, \d+ done, \d+ succeeded, (\d+) failed",
                  report)
    started, failed = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    # Started in the window and answered after it: not counted (the window's end cut it).
    late = re.search(r"late: (\d+) requests", report)
    started -= int(late.group(1)) if late else 0
    # Started but not in the log: errored or timed out (the failed count includes them).
    lost = max(0, started - len(results))
    results += [(False, LEGIT_TIMEOUT)] * lost
    if not m or started < seconds / LEGIT_INTERVAL / 2:
        # No report, or the client stopped early (its connection failed for good).
        results += [(False, LEGIT_TIMEOUT)] * int(seconds / LEGIT_INTERVAL / 2)
    out.put(results)


# --------------------------------------------------------------------------------------------
# The attackers. Each runs until `stop` is set (processes) or its tool's own duration ends, and
# puts on `report` a dict of what it did (a Tally): the table's attacker column sums them over
# the case's attacker processes.


class Tally(collections.Counter):
    """What one attacker process sent and saw, e.g. conns, streams, refused (at accept)."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def add(self, key, n=1):
        with self.lock:
            self[key] += n


def until_stopped(stop, fn, tally):
    while not stop.is_set():
        try:
            fn()
        except (OSError, ssl.SSLError, ValueError):
            tally.add("errors")
            time.sleep(0.01)  # refused or reset: try again at once, as an attacker would


def raw_h2(port, tally, **kw):
    c = RawH2(port, **kw)
    tally.add("conns")
    return c


def h2_outcome(c, tally):
    """What ended the connection: the accept phase's 429 (HTTP/1.1 text, not frames) or a
    GOAWAY."""
    if c.buf.startswith(b"HTTP/1.1 429") or c.buf.startswith(b"HTTP/1.1 503"):
        tally.add("refused")
    elif c.goaways:
        tally.add("goaway")


def h2_rapid_reset(port, stop, tally):
    """HEADERS then RST_STREAM(CANCEL) at once, 1500 streams per connection (CVE-2023-44487)."""
    def one():
        c = raw_h2(port, tally)
        batch, n = b"", 0
        for i in range(1500):
            sid = 1 + 2 * i
            batch += c.request_frame(sid, "GET", "/index.html") + \
                frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))
            n += 1
            if len(batch) > 32768:
                c.send(batch)
                if c.closed:
                    break
                tally.add("streams", n)
                batch, n = b"", 0
        if not c.closed:
            c.send(batch)
            tally.add("streams", n)
        c.pump(lambda: c.closed, timeout=2)
        h2_outcome(c, tally)
        c.close()
    until_stopped(stop, one, tally)


def h2_continuation_flood(port, stop, tally):
    """A HEADERS without END_HEADERS, then CONTINUATION frames that never end it."""
    def one():
        c = raw_h2(port, tally)
        c.send(c.request_frame(1, "GET", "/", end_headers=False))
        filler = frame(CONTINUATION, 0, 1, b"\x40\x01x\x01y") * 50
        for _ in range(400):
            c.send(filler)
            if c.closed:
                break
            tally.add("frames", 50)
        c.pump(lambda: c.closed, timeout=2)
        h2_outcome(c, tally)
        c.close()
    until_stopped(stop, one, tally)


def h2_control_flood(port, stop, tally):
    """SETTINGS, PING and RST_STREAM, each far over what a real peer sends."""
    kinds = [frame(PING, 0, 0, b"12345678") * 2000,
             settings_frame([(0x3, 100)]) * 2000,
             b"".join(frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 0x8))
                      for i in range(2000))]
    n = [0]

    def one():
        c = raw_h2(port, tally)
        if n[0] % 3 == 2:
            # RST_STREAM for streams that were opened: the rapid-reset budget, not a
            # protocol error, is what stops this one.
            c.send(b"".join(c.request_frame(1 + 2 * i, "GET", "/index.html")
                            for i in range(100)))
        c.send(kinds[n[0] % 3])
        if not c.closed:
            tally.add("frames", 2000)
        n[0] += 1
        c.pump(lambda: c.closed, timeout=2)
        h2_outcome(c, tally)
        c.close()
    until_stopped(stop, one, tally)


def h2_hpack_bomb(port, stop, tally):
    """A 4 KB header put in the HPACK table, then referenced 3000 times per block: each
    HEADERS frame of ~7 KB would decode to 12 MB of fields."""
    base = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                   (":authority", "h2.test"), (":path", "/")])
    block = base + b"\x40\x06x-bomb" + hpack_str(b"A" * 4000) + bytes([0x80 | 62]) * 3000

    def one():
        c = raw_h2(port, tally)
        for i, sid in enumerate(range(1, 2001, 2)):
            c.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
            if c.closed:
                break
            tally.add("blocks")
            if i % 20 == 19:
                c.pump(lambda: False, timeout=0.001)  # the answers (431, resets): keep reading
        c.pump(lambda: c.closed, timeout=0.2)
        h2_outcome(c, tally)
        c.close()
    until_stopped(stop, one, tally)


def h2_zero_window(port, stop, tally):
    """Connections that ask for a 1 MiB file on 100 streams and open no window, held open."""
    held = []

    def one():
        c = raw_h2(port, tally, window=0)
        c.auto_window = False
        c.send(b"".join(c.request_frame(1 + 2 * i, "GET", "/big.bin") for i in range(100)))
        if not c.closed:
            tally.add("streams", 100)
        held.append(c)
        if len(held) > 300:
            old = held.pop(0)
            old.pump(lambda: False, timeout=0.001)
            h2_outcome(old, tally)
            old.close()
        time.sleep(0.005)
    until_stopped(stop, one, tally)
    for c in held:
        c.close()


def tls_handshake_flood_h2(tls_port, stop, tally):
    """New TLS connections (h2 ALPN, full handshakes) as fast as h3load --h2 makes them, 300
    in flight: each connection that is accepted then asks for one page."""
    def on_exit(code, out, err):
        tally.add("conns", 600)
        m = re.search(r"connection errors: (\d+)", out)
        if m:  # the accept phase's refusal: a TLS alert before any handshake
            tally.add("refused", int(m.group(1)))
    run_tool_loop(lambda: [H3LOAD, "--h2", "-k", "-c", "600", "--connect-concurrency", "300",
                           "-n", "600", "--resolve", f"localhost:{tls_port}:127.0.0.1",
                           f"https://localhost:{tls_port}/index.html"], stop, 1, tally, on_exit)


def tls_handshake_flood(tls_port, stop, tally):
    """Full TLS handshakes (no resumption), 8 threads, each closing and starting again."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def worker():
        while not stop.is_set():
            tally.add("conns")
            try:
                with socket.create_connection(("127.0.0.1", tls_port), timeout=2) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost"):
                        tally.add("handshakes")
            except ssl.SSLError as e:
                # The accept phase's refusal is a plain alert record (internal_error).
                tally.add("refused" if "INTERNAL_ERROR" in str(e).upper() else "errors")
            except OSError:
                tally.add("errors")
                time.sleep(0.01)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def h3_headers(tls_port, path, method_post=False):
    """A HEADERS frame, static-table references only (RFC 9204 Appendix A: 17 GET, 20 POST,
    4 content-length)."""
    lines = [qpack_indexed_static(20 if method_post else QPACK_METHOD_GET),
             qpack_indexed_static(QPACK_SCHEME_HTTPS),
             qpack_literal_static_name(QPACK_AUTHORITY, f"localhost:{tls_port}"),
             qpack_literal_static_name(QPACK_PATH, path)]
    if method_post:
        lines.append(qpack_literal_static_name(4, "1000000"))
    return h3_frame(0x01, b"\x00\x00" + b"".join(lines))


def run_tool_loop(cmd_fn, stop, parallel, tally, on_exit=None):
    """Runs the command cmd_fn() again and again, `parallel` copies at once, until stop.
    on_exit(returncode, stdout, stderr) adds to the tally."""
    procs = set()
    lock = threading.Lock()

    def worker():
        while not stop.is_set():
            with lock:
                if stop.is_set():
                    return
                p = subprocess.Popen(cmd_fn(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
                procs.add(p)
            out, err = p.communicate()
            with lock:
                procs.discard(p)
            tally.add("runs")
            if on_exit:
                on_exit(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    stop.wait()
    with lock:
        for p in procs:  # the runs in flight: by their own PIDs
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
    for t in threads:
        t.join()


def h3get_base(tls_port):
    return [H3GET, "-k", "-s", "--resolve", f"localhost:{tls_port}:127.0.0.1"]


def h3get_outcome(tally, err):
    """How an h3get run ended, from its stderr: the accept phase's CONNECTION_CLOSE
    (CONNECTION_REFUSED, before any handshake), the server closing a connection it had taken
    (a protocol limit), or our --max-time with the streams still held."""
    tally.add("conns")
    if "CONNECTION_REFUSED" in err:
        tally.add("refused")
        return False
    if "server closed the connection" in err:
        tally.add("closed")
    return True


def h3_stream_flood(tls_port, stop, tally):
    """Connections opening every stream the server allows (MAX_STREAMS), each holding an
    unfinished HEADERS frame (a valid field section, 2000 bytes announced): held until the
    server's header timeout or ours (3 s), then again on a new connection."""
    fields = h3_headers(tls_port, "/index.html")[2:]  # a one-byte type, a one-byte length
    head = (bytes([0x01]) + struct.pack(">H", 0x4000 | 2000) + fields).hex()  # RFC 9000 §16

    def on_exit(code, out, err):
        if h3get_outcome(tally, err):
            tally.add("streams", 100)
    run_tool_loop(lambda: h3get_base(tls_port) + [
        "-n", "100", "--raw-request", head, "--max-time", "3",
        f"https://localhost:{tls_port}/index.html"], stop, 6, tally, on_exit)


def h3_qpack_flood(tls_port, stop, tally, workdir):
    """The QPACK encoder stream stuffed with insertions far over the table's capacity, and
    requests blocked on entries that never come."""
    # Set Dynamic Table Capacity 4096 (§4.3.1), then Insert With Literal Name (§4.3.3) of
    # 1 KiB entries, 400 of them: the table turns over a hundred times. Too long for one
    # argument: h3get reads it from a file.
    insert = qpack_str(b"x-flood", 5, 0x40) + qpack_str(b"v" * 1000)
    encoder = os.path.join(workdir, "qpack-encoder.hex")
    with open(encoder, "w") as f:
        f.write((qpack_int(4096, 5, 0x20) + insert * 400).hex())
    # A field section needing Required Insert Count 100 (encoded 101, §4.5.1.1) that never
    # arrives: the stream blocks; a hundred of them use up SETTINGS_QPACK_BLOCKED_STREAMS.
    blocked = h3_frame(0x01, bytes([0x65, 0x00, 0x80])).hex()
    n = [0]

    def cmd():
        n[0] += 1
        if n[0] % 2:
            return h3get_base(tls_port) + ["--raw-qpack-encoder", "@" + encoder, "--max-time",
                                           "3", f"https://localhost:{tls_port}/index.html"]
        return h3get_base(tls_port) + ["-n", "100", "--raw-request", blocked, "--max-time",
                                       "3", f"https://localhost:{tls_port}/index.html"]

    def on_exit(code, out, err):
        h3get_outcome(tally, err)
    run_tool_loop(cmd, stop, 6, tally, on_exit)
    # What the runs asked for, odd runs the encoder flood, even ones the blocked streams.
    tally["encoder_kb"] = (tally["runs"] + 1) // 2 * 400  # ~1 KB per insert
    tally["blocked"] = tally["runs"] // 2 * 100


def h3_handshake_flood(tls_port, stop, tally):
    """New QUIC connections as fast as a client can make them (one GET each), 300
    handshakes in flight."""
    def on_exit(code, out, err):
        tally.add("conns", 600)
        m = re.search(r"connection errors: (\d+)", out)
        if m:  # the accept phase's CONNECTION_REFUSED, after Retry validated the address
            tally.add("refused", int(m.group(1)))
    run_tool_loop(lambda: [H3LOAD, "-k", "-c", "600", "--connect-concurrency", "300", "-n",
                           "600", "--resolve", f"localhost:{tls_port}:127.0.0.1",
                           f"https://localhost:{tls_port}/index.html"], stop, 1, tally, on_exit)


def slowhttptest(args, url_fn):
    def attack(port, stop, seconds, tally, workdir):
        stats = os.path.join(workdir, "slowhttptest")
        cmd = ["slowhttptest", *args, "-l", str(int(seconds) + 2), "-g", "-o", stats,
               "-u", url_fn(port)]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        stop.wait()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # its own session: only it and its children
        p.wait()
        # Seconds,Closed,Pending,Connected,...: one row per second it reported.
        try:
            with open(stats + ".csv") as f:
                rows = [r.split(",") for r in f.read().splitlines()[1:] if r]
            last = [int(x) for x in rows[-1][1:4]]
            tally["conns"] = sum(last)
            tally["peak_open"] = max(int(r[3]) for r in rows)
            tally["closed"] = last[0]
        except (OSError, IndexError, ValueError):
            pass
    return attack


def wrk_flood(port, stop, seconds, tally):
    """64 keep-alive connections asking for the limited route back to back."""
    p = subprocess.Popen(["wrk", "-t1", "-c64", f"-d{int(seconds) + 2}s",
                          f"http://127.0.0.1:{port}/api/"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    stop.wait()
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)  # wrk prints its report on SIGINT
    out = p.communicate()[0].decode(errors="replace")
    m = re.search(r"(\d+) requests in", out)
    if m:
        tally["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    tally["rejected"] = int(m.group(1)) if m else 0


# --------------------------------------------------------------------------------------------
# The cases: (name, attacker, how many attacker processes, legitimate client, its path,
# what the attacker column shows: [(tally key, label)], the first also as a rate).

def plain(fn):
    return lambda srv, stop, seconds, tally, workdir: fn(srv.port, stop, tally)


def on_tls(fn):
    return lambda srv, stop, seconds, tally, workdir: fn(srv.tls_port, stop, tally)


def timed(fn):
    return lambda srv, stop, seconds, tally, workdir: fn(srv.port, stop, seconds, tally)


def slow(args, path):
    attack = slowhttptest(args, lambda port: f"http://127.0.0.1:{port}{path}")
    return lambda srv, stop, seconds, tally, workdir: attack(srv.port, stop, seconds, tally,
                                                             workdir)


H2_SHOW = [("refused", "refused at accept"), ("goaway", "GOAWAY")]
SLOW_SHOW = [("conns", "conns"), ("peak_open", "open at peak (client view)")]

def no_attack(srv, stop, seconds, tally, workdir):
    stop.wait()


CASES = [
    # The legitimate clients alone, on the machine as it is at the time: what the attacks
    # below are compared with.
    ("no attack: HTTP/1.1", no_attack, 1, legit_http, "/index.html", [], []),
    ("no attack: h2c", no_attack, 1, legit_h2c, "/index.html", [], []),
    ("no attack: HTTP/1.1 over TLS", no_attack, 1, "legit_tls", "/index.html", [], []),
    ("no attack: HTTP/3", no_attack, 1, legit_h3, "/index.html", [], []),
    ("slowloris (slowhttptest -H)",
     slow(["-H", "-c", "2000", "-r", "500", "-i", "5"], "/"), 1, legit_http, "/index.html",
     SLOW_SHOW, []),
    ("slow body (slowhttptest -B)",
     slow(["-B", "-c", "2000", "-r", "500", "-i", "5", "-s", "1000000"], "/upload"), 1,
     legit_http, "/index.html", SLOW_SHOW, []),
    ("slow read (slowhttptest -X)",
     slow(["-X", "-c", "1000", "-r", "500", "-w", "1", "-y", "16", "-n", "5", "-z", "32"],
          "/big.bin"), 1, legit_http, "/index.html", SLOW_SHOW, []),
    ("range / Apache killer (slowhttptest -R)",
     slow(["-R", "-c", "1000", "-r", "500", "-a", "5", "-b", "2000"], "/big.bin"), 1,
     legit_http, "/index.html", SLOW_SHOW, []),
    ("HTTP/2 rapid reset (CVE-2023-44487)", plain(h2_rapid_reset), 2, legit_h2c,
     "/index.html", [("streams", "streams reset"), ("conns", "conns")], H2_SHOW),
    ("HTTP/2 CONTINUATION flood", plain(h2_continuation_flood), 2, legit_h2c, "/index.html",
     [("frames", "CONTINUATION"), ("conns", "conns")], H2_SHOW),
    ("HTTP/2 SETTINGS/PING/RST flood", plain(h2_control_flood), 2, legit_h2c, "/index.html",
     [("frames", "frames"), ("conns", "conns")], H2_SHOW),
    ("HTTP/2 HPACK bomb", plain(h2_hpack_bomb), 2, legit_h2c, "/index.html",
     [("blocks", "12 MB header blocks"), ("conns", "conns")], H2_SHOW),
    ("HTTP/2 zero-window stalls", plain(h2_zero_window), 1, legit_h2c, "/index.html",
     [("streams", "stalled streams"), ("conns", "conns")], H2_SHOW),
    ("HTTP/3 stream-count flood", on_tls(h3_stream_flood), 1, legit_h3, "/index.html",
     [("streams", "streams held open"), ("conns", "conns")],
     [("refused", "conns refused at accept"), ("closed", "closed by server")]),
    ("HTTP/3 QPACK flood",
     lambda srv, stop, seconds, tally, workdir: h3_qpack_flood(srv.tls_port, stop, tally,
                                                               workdir),
     1, legit_h3, "/index.html",
     [("encoder_kb", "KB encoder stream"), ("blocked", "blocked streams"), ("conns", "conns")],
     [("refused", "conns refused at accept"), ("closed", "closed by server")]),
    ("HTTP/3 handshake flood (Retry)", on_tls(h3_handshake_flood), 1, legit_h3,
     "/index.html", [("conns", "conns")], [("refused", "conns not accepted")]),
    ("TLS handshake flood", on_tls(tls_handshake_flood), 3, "legit_tls", "/index.html",
     [("conns", "conns"), ("handshakes", "handshakes")], [("refused", "refused at accept")]),
    ("TLS handshake flood (h3load --h2)", on_tls(tls_handshake_flood_h2), 1, "legit_tls",
     "/index.html", [("conns", "conns")], [("refused", "conns not accepted")]),
    ("request flood on a limited route (wrk)", timed(wrk_flood), 1, legit_http, "/api/",
     [("requests", "requests")], [("rejected", "answered 429")]),
]


def human(n):
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def describe(totals, show, seconds):
    if not show:
        return "-"
    parts = []
    for i, (key, label) in enumerate(show):
        n = totals.get(key, 0)
        if i == 0:
            parts.append(f"{human(n)} {label} ({human(n / seconds)}/s)")
        elif n:
            parts.append(f"{human(n)} {label}")
    return ", ".join(parts)


def percentile(values, p):
    """Nearest rank."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def retry_seen(srv):
    """A gtlsclient probe during the flood: did the server answer its Initial with Retry?"""
    p = subprocess.run([GTLSCLIENT, "--exit-on-all-streams-close", "--sni=localhost",
                        "--no-quic-dump", "--no-http-dump", "--handshake-timeout=5s",
                        "--timeout=5s", "127.0.0.1", str(srv.tls_port),
                        f"https://localhost:{srv.tls_port}/index.html"],
                       capture_output=True, timeout=30)
    return "type=Retry" in (p.stdout + p.stderr).decode(errors="replace")


LEGIT_NICE = -10  # see legit_main
LOAD_AT_START = ""


def legit_main(legit_fn, *args):
    """The legitimate client at a higher priority than the attackers (root only). On one
    2-core machine a CPU-bound attacker (Python sending frames, forking h3get) otherwise slows
    the client itself, and the table would show the client's scheduling delay, not the
    server's answer time; on the Internet the two do not share a CPU. The server gets no such
    favour: its workers compete with the attackers as they are."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, LEGIT_NICE)
    except OSError:
        pass
    legit_fn(*args)


def socket_count(pids):
    """Sockets the workers hold open now: TCP connections, plus a few listeners and control
    sockets (QUIC connections share their listener's UDP socket and do not show)."""
    n = 0
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                except OSError:
                    pass
        except OSError:
            pass
    return n


def schedstat(pids):
    """(ns on a CPU, ns runnable but waiting for one) summed over the workers' threads
    (/proc/PID/task/TID/schedstat): a server that is slow because it has too much to do
    shows the first growing, one slowed by the machine's other processes the second."""
    run = wait = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    on_cpu, waiting, _ = f.read().split()
                run += int(on_cpu)
                wait += int(waiting)
        except OSError:
            pass
    return run, wait


def sample_sockets(pids, stop, peak):
    while not stop.wait(0.25):
        peak[0] = max(peak[0], socket_count(pids))


ATTACKER_NICE = 0  # --attacker-nice


def attacker_main(attack, srv, stop, seconds, report, workdir):
    if ATTACKER_NICE:
        os.nice(ATTACKER_NICE)  # inherited by the tools it starts
    tally = Tally()
    try:
        attack(srv, stop, seconds, tally, workdir)
    finally:
        report.put(dict(tally))


def run_case(case, pki, seconds):
    name, attack, procs, legit, path, show, evidence_show = case
    srv = start_server(pki)
    workdir = srv.path("attack")
    os.makedirs(workdir, exist_ok=True)
    try:
        out = multiprocessing.Queue()
        report = multiprocessing.Queue()
        if legit == "legit_tls":
            legit_fn, tls = legit_http, srv.tls_port
        else:
            legit_fn, tls = legit, (srv.tls_port if legit is legit_h3 else None)
        lp = multiprocessing.Process(target=legit_main,
                                     args=(legit_fn, srv.port, path, tls, pki.ca, seconds, out))
        lp.start()
        time.sleep(0.3)  # the legitimate client is connected before the attack starts
        stop = multiprocessing.Event()
        attackers = [multiprocessing.Process(target=attacker_main,
                                             args=(attack, srv, stop, seconds, report, workdir))
                     for _ in range(procs)]
        for a in attackers:
            a.start()
        sched_start, t_start = schedstat(srv.workers_at_start), time.monotonic()
        peak = [socket_count(srv.workers_at_start)]
        sampler_stop = threading.Event()
        sampler = threading.Thread(target=sample_sockets,
                                   args=(srv.workers_at_start, sampler_stop, peak))
        sampler.start()
        evidence = []
        retries = None
        if "Retry" in name and GTLSCLIENT:
            # Retry is per worker and second ("auto": over retry_above new handshakes in the
            # current second), so a probe early in a second may pass without: three probes.
            retries = 0
            for _ in range(3):
                time.sleep(seconds / 4)
                retries += bool(retry_seen(srv))
            evidence.append(f"Retry for {retries} of 3 probes")
        elif "Retry" in name:
            evidence.append("gtlsclient missing: Retry not checked")
        results = out.get(timeout=seconds + 60)
        sched_end, t_end = schedstat(srv.workers_at_start), time.monotonic()
        lp.join()
        stop.set()
        sampler_stop.set()
        sampler.join()
        totals = collections.Counter()
        for _ in attackers:
            try:
                totals.update(report.get(timeout=60))
            except Exception:  # noqa: BLE001 - an attacker that died reports nothing
                pass
        for a in attackers:
            a.join(timeout=30)
            if a.is_alive():
                a.terminate()  # by its PID
                a.join()
        crashes = srv.crashes()
        replaced = set(srv.record_children()) != set(srv.workers_at_start)
        evidence += [f"{human(totals[k])} {label}" for k, label in evidence_show
                     if totals.get(k)]
        if "HTTP/3" not in name:
            evidence.append(f"workers held <= {peak[0]} sockets")
        ok = [t for good, t in results if good]
        success = 100.0 * len(ok) / len(results) if results else 0.0
        times = [t * 1000 for _, t in results]
        row = {
            "case": name, "attacker": describe(totals, show, seconds),
            "attacker_totals": dict(totals), "requests": len(results), "success": success,
            "p50": percentile(times, 50), "p99": percentile(times, 99),
            "max": max(times) if times else float("nan"),
            "server": "crash" if crashes else "worker replaced" if replaced else "ok",
            # % of one CPU over the case, all workers: running, and runnable but waiting
            "worker_cpu": (sched_end[0] - sched_start[0]) / 1e7 / (t_end - t_start),
            "worker_wait": (sched_end[1] - sched_start[1]) / 1e7 / (t_end - t_start),
            "evidence": ", ".join(evidence),
        }
        row["control"] = attack is no_attack
        row["pass"] = (success >= TARGET_SUCCESS and row["p99"] < TARGET_P99_MS
                       and row["server"] == "ok"
                       and (retries is None or retries > 0))
        return row
    finally:
        srv.cleanup()


def print_table(rows, seconds):
    priority = f"nice {LEGIT_NICE}" if os.geteuid() == 0 else "nice 0 (not root)"
    print(f"\nLegitimate client beside each attack: one request every "
          f"{LEGIT_INTERVAL * 1000:.0f} ms from {LEGIT_SOURCE} ({priority}; each on a new "
          f"connection, handshake included), attackers at nice {ATTACKER_NICE}, "
          f"{seconds:.0f} s per case; target >= {TARGET_SUCCESS:.0f}% and p99 < "
          f"{TARGET_P99_MS:.0f} ms. Load average at the start: {LOAD_AT_START}\n")
    width = max([len("attacker from 127.0.0.1")] + [len(r["attacker"]) for r in rows])
    print(f"| {'attack':<40} | {'attacker from 127.0.0.1':<{width}} | {'legit':>5} | "
          f"{'success':>8} | {'p50 ms':>6} | {'p99 ms':>6} | {'max ms':>7} | {'workers':<7} | "
          f"{'cpu/wait':>8} | {'result':<6} | defence seen")
    print(f"|{'-' * 42}|{'-' * (width + 2)}|{'-' * 7}|{'-' * 10}|{'-' * 8}|{'-' * 8}|"
          f"{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 14}")
    for r in rows:
        load = f"{r['worker_cpu']:.0f}/{r['worker_wait']:.0f}%"
        result = ("ok" if r["pass"] else "MISS") if r["control"] else \
            ("PASS" if r["pass"] else "FAIL")
        print(f"| {r['case']:<40} | {r['attacker']:<{width}} | {r['requests']:>5} | "
              f"{r['success']:>7.2f}% | {r['p50']:>6.2f} | {r['p99']:>6.2f} | "
              f"{r['max']:>7.1f} | {r['server']:<7} | {load:>8} | "
              f"{result:<6} | {r['evidence']}")
    print(f"\nlegit: requests the legitimate client made ({seconds / LEGIT_INTERVAL:.0f} in "
          f"{seconds:.0f} s; h3load skips the turns that pass while a request is slow, the "
          "Python clients catch up); cpu/wait: the workers' time on a CPU, and "
          "runnable but waiting for one, in % of one CPU (2 workers, 2 cores: 200% is all of "
          "the machine); no attack: controls, the legitimate client alone (ok or MISS against "
          "the same target; they do not decide the exit status)")
    if any(r["control"] and not r["pass"] for r in rows):
        print("A control missed the target with no attack running: the machine is busy with "
              "other work, and the attack rows' latencies carry that too.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("ATTACK_SECONDS",
                                                                          "10")))
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--attacker-nice", type=int, default=0,
                    help="run the attackers at this nice value (default 0): a way to tell "
                         "the server's limits from CPU the attacker takes on a shared machine")
    ap.add_argument("cases", nargs="*", help="substrings of case names (default: all)")
    args = ap.parse_args()
    for tool in ("slowhttptest", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install {tool} (make deps)")
    for tool in (harness.WRAITH_BIN, H3GET, H3LOAD):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: build first (make build)")
    global LOAD_AT_START, ATTACKER_NICE
    ATTACKER_NICE = args.attacker_nice
    LOAD_AT_START = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cases = [c for c in CASES if not args.cases or any(s in c[0] for s in args.cases)]
    if not cases:
        sys.exit("no case matches " + " ".join(args.cases))
    pki_dir = tempfile.mkdtemp(prefix="wraith-attack-pki-")
    os.chmod(pki_dir, 0o755)
    rows = []
    try:
        ca = tlsutil.TestPki(pki_dir).ca("attack-ca")
        leaf = ca.issue("attack", ["localhost", "127.0.0.1"])
        pki = collections.namedtuple("Pki", "chain key ca")(leaf.chain, leaf.key, ca.cert)
        for case in cases:
            sys.stderr.write(f"attack: {case[0]} ({args.seconds:.0f}s)\n")
            rows.append(run_case(case, pki, args.seconds))
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    print_table(rows, args.seconds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    attacks = [r for r in rows if not r["control"]]
    sys.exit(0 if all(r["pass"] for r in attacks) else 1)


if __name__ == "__main__":
    main()
