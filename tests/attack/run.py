#!/usr/bin/env python3
"""The attack table (issue 15): every attack runs against a real Wraith configured with the
defences a production config would have, while a legitimate client beside it, from another
loopback address (127.0.0.5; the attackers use 127.0.0.1), makes one request every 20 ms. The
table gives, per attack, the legitimate client's success rate and latency; a case passes at
>= 99% success and p99 < 50 ms, and only if no worker crashed or was replaced.

    WRAITH_BIN=build/wraith python3 tests/attack/run.py [--seconds 10] [CASE ...]

Run by `make check-attacks` (part of `make check-system`). Cases reuse the frame builders of
tests/integration/test_http2.py and test_http3.py; the slow-HTTP cases are Debian's
slowhttptest. The defences under test, and why the legitimate client keeps being served, are
in docs/decisions.md ("Limits" and "Attack table").
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

# The defences: what a production config facing the Internet would set.
ZONES = '''
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
    srv.start()
    srv.workers_at_start = srv.wait_workers(2)
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
    """h3load: one HTTP/3 connection, one request every 20 ms (--interval). Its report counts
    what failed (errors, resets, timeouts, a connection it could not make again); the log
    gives each completed request's time."""
    log = tempfile.mktemp(prefix="legit-h3-")
    p = subprocess.run([H3LOAD, "-c", "1", "-m", "1", "-D", str(seconds), "--interval",
                        str(LEGIT_INTERVAL), "--cacert", ca, "--resolve",
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
        os.unlink(log)
    except OSError:
        pass
    report = p.stdout.decode(errors="replace")
    m = re.search(r"requests: \d+ total, (\d+) started, \d+ done, \d+ succeeded, (\d+) failed",
                  report)
    started, failed = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    # Started but not in the log: errored or timed out (the failed count includes them).
    lost = max(0, started - len(results))
    results += [(False, LEGIT_TIMEOUT)] * lost
    if not m or started < seconds / LEGIT_INTERVAL / 2:
        # No report, or the client stopped early (its connection failed for good).
        results += [(False, LEGIT_TIMEOUT)] * int(seconds / LEGIT_INTERVAL / 2)
    out.put(results)


# --------------------------------------------------------------------------------------------
# The attackers. Each runs until `stop` is set (processes) or its tool's own duration ends.


def until_stopped(stop, fn):
    while not stop.is_set():
        try:
            fn()
        except (OSError, ssl.SSLError, ValueError):
            time.sleep(0.01)  # refused or reset: try again at once, as an attacker would


def h2_rapid_reset(port, stop):
    def one():
        c = RawH2(port)
        batch = b""
        for i in range(1500):
            sid = 1 + 2 * i
            batch += c.request_frame(sid, "GET", "/index.html") + \
                frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))
            if len(batch) > 32768:
                c.send(batch)
                batch = b""
        c.send(batch)
        c.pump(lambda: c.closed, timeout=2)
        c.close()
    until_stopped(stop, one)


def h2_continuation_flood(port, stop):
    def one():
        c = RawH2(port)
        c.send(c.request_frame(1, "GET", "/", end_headers=False))
        filler = frame(CONTINUATION, 0, 1, b"\x40\x01x\x01y") * 50
        for _ in range(400):
            c.send(filler)
            if c.closed:
                break
        c.pump(lambda: c.closed, timeout=2)
        c.close()
    until_stopped(stop, one)


def h2_control_flood(port, stop):
    """SETTINGS, PING and RST_STREAM, each far over what a real peer sends."""
    kinds = [frame(PING, 0, 0, b"12345678") * 2000,
             settings_frame([(0x3, 100)]) * 2000,
             b"".join(frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 0x8))
                      for i in range(2000))]
    n = [0]

    def one():
        c = RawH2(port)
        if n[0] % 3 == 2:
            # RST_STREAM for streams that were opened: the rapid-reset budget, not a
            # protocol error, is what stops this one.
            c.send(b"".join(c.request_frame(1 + 2 * i, "GET", "/index.html")
                            for i in range(100)))
        c.send(kinds[n[0] % 3])
        n[0] += 1
        c.pump(lambda: c.closed, timeout=2)
        c.close()
    until_stopped(stop, one)


def h2_hpack_bomb(port, stop):
    base = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                   (":authority", "h2.test"), (":path", "/")])
    block = base + b"\x40\x06x-bomb" + hpack_str(b"A" * 4000) + bytes([0x80 | 62]) * 3000

    def one():
        c = RawH2(port)
        for sid in range(1, 200, 2):
            c.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
            if c.closed:
                break
        c.pump(lambda: c.closed, timeout=1)
        c.close()
    until_stopped(stop, one)


def h2_zero_window(port, stop):
    """Connections that ask for a 1 MiB file on 100 streams and open no window, held open."""
    held = []

    def one():
        c = RawH2(port, window=0)
        c.auto_window = False
        c.send(b"".join(c.request_frame(1 + 2 * i, "GET", "/big.bin") for i in range(100)))
        held.append(c)
        if len(held) > 300:
            held.pop(0).close()
        time.sleep(0.005)
    until_stopped(stop, one)
    for c in held:
        c.close()


def tls_handshake_flood(tls_port, stop):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def worker():
        def one():
            with socket.create_connection(("127.0.0.1", tls_port), timeout=2) as s:
                with ctx.wrap_socket(s, server_hostname="localhost"):
                    pass
        until_stopped(stop, one)
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


def run_tool_loop(cmd_fn, stop, parallel):
    """Runs the command cmd_fn() again and again, `parallel` copies at once, until stop."""
    def worker():
        while not stop.is_set():
            subprocess.run(cmd_fn(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def h3get_base(tls_port):
    return [H3GET, "-k", "-s", "--resolve", f"localhost:{tls_port}:127.0.0.1"]


def h3_stream_flood(tls_port, stop):
    """Connections holding every stream the server allows open: POST heads announcing a
    megabyte of body that never comes."""
    head = h3_headers(tls_port, "/post", method_post=True).hex()
    run_tool_loop(lambda: h3get_base(tls_port) + [
        "-n", "100", "--raw-request", head, "--max-time", "3",
        f"https://localhost:{tls_port}/post"], stop, parallel=6)


def h3_qpack_flood(tls_port, stop):
    """The QPACK encoder stream stuffed with insertions far over the table's capacity, and
    requests blocked on entries that never come."""
    # Set Dynamic Table Capacity 4096 (§4.3.1), then Insert With Literal Name (§4.3.3) of
    # 1 KiB entries, 400 of them: the table turns over a hundred times.
    insert = qpack_str(b"x-flood", 5, 0x40) + qpack_str(b"v" * 1000)
    encoder = (qpack_int(4096, 5, 0x20) + insert * 400).hex()
    # A field section needing Required Insert Count 100 (encoded 101, §4.5.1.1) that never
    # arrives: the stream blocks; a hundred of them use up SETTINGS_QPACK_BLOCKED_STREAMS.
    blocked = h3_frame(0x01, bytes([0x65, 0x00, 0x80])).hex()
    n = [0]

    def cmd():
        n[0] += 1
        if n[0] % 2:
            return h3get_base(tls_port) + ["--raw-qpack-encoder", encoder, "--max-time", "3",
                                           f"https://localhost:{tls_port}/index.html"]
        return h3get_base(tls_port) + ["-n", "100", "--raw-request", blocked, "--max-time",
                                       "3", f"https://localhost:{tls_port}/index.html"]
    run_tool_loop(cmd, stop, parallel=6)


def h3_handshake_flood(tls_port, stop):
    """New QUIC connections as fast as a client can make them (one GET each)."""
    run_tool_loop(lambda: [H3LOAD, "-k", "-c", "600", "--connect-concurrency", "300", "-n",
                           "600", "--resolve", f"localhost:{tls_port}:127.0.0.1",
                           f"https://localhost:{tls_port}/index.html"], stop, parallel=1)


def slowhttptest(args, url_fn):
    def attack(port, stop, seconds):
        cmd = ["slowhttptest", *args, "-l", str(int(seconds) + 2), "-u", url_fn(port)]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        stop.wait()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
        p.wait()
    return attack


def wrk_flood(port, stop, seconds):
    p = subprocess.Popen(["wrk", "-t1", "-c64", f"-d{int(seconds) + 2}s",
                          f"http://127.0.0.1:{port}/api/"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    stop.wait()
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    p.wait()


# --------------------------------------------------------------------------------------------
# The cases: (name, attacker, how many attacker processes, legitimate client, its path)

def plain(fn):
    return lambda srv, stop, seconds: fn(srv.port, stop)


def on_tls(fn):
    return lambda srv, stop, seconds: fn(srv.tls_port, stop)


def timed(fn):
    return lambda srv, stop, seconds: fn(srv.port, stop, seconds)


CASES = [
    ("slowloris (slowhttptest -H)", timed(slowhttptest(
        ["-H", "-c", "2000", "-r", "500", "-i", "5"],
        lambda port: f"http://127.0.0.1:{port}/")), 1, legit_http, "/index.html"),
    ("slow body (slowhttptest -B)", timed(slowhttptest(
        ["-B", "-c", "2000", "-r", "500", "-i", "5", "-s", "1000000"],
        lambda port: f"http://127.0.0.1:{port}/post")), 1, legit_http, "/index.html"),
    ("slow read (slowhttptest -X)", timed(slowhttptest(
        ["-X", "-c", "1000", "-r", "500", "-w", "1", "-y", "16", "-n", "5", "-z", "32"],
        lambda port: f"http://127.0.0.1:{port}/big.bin")), 1, legit_http, "/index.html"),
    ("range / Apache killer (slowhttptest -R)", timed(slowhttptest(
        ["-R", "-c", "1000", "-r", "500", "-a", "5", "-b", "2000"],
        lambda port: f"http://127.0.0.1:{port}/big.bin")), 1, legit_http, "/index.html"),
    ("HTTP/2 rapid reset (CVE-2023-44487)", plain(h2_rapid_reset), 2, legit_h2c,
     "/index.html"),
    ("HTTP/2 CONTINUATION flood", plain(h2_continuation_flood), 2, legit_h2c, "/index.html"),
    ("HTTP/2 SETTINGS/PING/RST flood", plain(h2_control_flood), 2, legit_h2c, "/index.html"),
    ("HTTP/2 HPACK bomb", plain(h2_hpack_bomb), 2, legit_h2c, "/index.html"),
    ("HTTP/2 zero-window stalls", plain(h2_zero_window), 1, legit_h2c, "/index.html"),
    ("HTTP/3 stream-count flood", on_tls(h3_stream_flood), 1, legit_h3, "/index.html"),
    ("HTTP/3 QPACK flood", on_tls(h3_qpack_flood), 1, legit_h3, "/index.html"),
    ("HTTP/3 handshake flood (Retry)", on_tls(h3_handshake_flood), 1, legit_h3,
     "/index.html"),
    ("TLS handshake flood", on_tls(tls_handshake_flood), 3, "legit_tls", "/index.html"),
    ("request flood on a limited route (wrk)", timed(wrk_flood), 1, legit_http, "/api/"),
]


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def retry_seen(srv, pki):
    """A gtlsclient probe during the flood: did the server answer its Initial with Retry?"""
    if not GTLSCLIENT:
        return None
    p = subprocess.run([GTLSCLIENT, "--exit-on-all-streams-close", "--sni=localhost",
                        "--no-quic-dump", "--no-http-dump", "--handshake-timeout=5s",
                        "--timeout=5s", "127.0.0.1", str(srv.tls_port),
                        f"https://localhost:{srv.tls_port}/index.html"],
                       capture_output=True, timeout=30)
    return "type=Retry" in (p.stdout + p.stderr).decode(errors="replace")


def run_case(case, pki, seconds):
    name, attack, procs, legit, path = case
    srv = start_server(pki)
    try:
        out = multiprocessing.Queue()
        if legit == "legit_tls":
            legit_fn, tls = legit_http, srv.tls_port
        else:
            legit_fn, tls = legit, (srv.tls_port if legit is legit_h3 else None)
        lp = multiprocessing.Process(target=legit_fn,
                                     args=(srv.port, path, tls, pki.ca, seconds, out))
        lp.start()
        time.sleep(0.3)  # the legitimate client is connected before the attack starts
        stop = multiprocessing.Event()
        attackers = [multiprocessing.Process(target=attack, args=(srv, stop, seconds))
                     for _ in range(procs)]
        for a in attackers:
            a.start()
        evidence = ""
        if "Retry" in name:
            time.sleep(seconds / 2)
            seen = retry_seen(srv, pki)
            evidence = {None: "gtlsclient missing", True: "Retry seen by a probe",
                        False: "no Retry seen"}[seen]
        results = out.get(timeout=seconds + 60)
        lp.join()
        stop.set()
        for a in attackers:
            a.join(timeout=30)
            if a.is_alive():
                a.terminate()
        crashes = srv.crashes()
        replaced = set(srv.record_children()) != set(srv.workers_at_start)
        log = srv.error_log_text()
        refusals = len(re.findall(r"refused a connection", log))
        if not evidence:
            evidence = f"{refusals} refusals logged" if refusals else ""
        ok = [t for good, t in results if good]
        success = 100.0 * len(ok) / len(results) if results else 0.0
        times = [t * 1000 for _, t in results]
        row = {
            "case": name, "requests": len(results), "success": success,
            "p50": percentile(times, 50), "p99": percentile(times, 99),
            "max": max(times) if times else float("nan"),
            "server": "crash" if crashes else "worker replaced" if replaced else "ok",
            "evidence": evidence,
        }
        row["pass"] = (success >= TARGET_SUCCESS and row["p99"] < TARGET_P99_MS
                       and row["server"] == "ok"
                       and ("Retry" not in name or evidence != "no Retry seen"))
        return row
    finally:
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("ATTACK_SECONDS",
                                                                          "10")))
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("cases", nargs="*", help="substrings of case names (default: all)")
    args = ap.parse_args()
    for tool in ("slowhttptest", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install {tool}")
    for tool in (H3GET, H3LOAD):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: build the tools (cmake --build build)")
    pki_dir = tempfile.mkdtemp(prefix="wraith-attack-pki-")
    os.chmod(pki_dir, 0o755)
    ca = tlsutil.TestPki(pki_dir).ca("attack-ca")
    leaf = ca.issue("attack", ["localhost", "127.0.0.1"])
    Pki = collections.namedtuple("Pki", "chain key ca")(leaf.chain, leaf.key, ca.cert)
    cases = [c for c in CASES if not args.cases or any(s in c[0] for s in args.cases)]
    rows = []
    try:
        for case in cases:
            sys.stderr.write(f"attack: {case[0]} ({args.seconds:.0f}s)\n")
            rows.append(run_case(case, Pki, args.seconds))
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    print(f"\nLegitimate client beside each attack: one request every "
          f"{LEGIT_INTERVAL * 1000:.0f} ms from {LEGIT_SOURCE}, {args.seconds:.0f} s per case; "
          f"target >= {TARGET_SUCCESS:.0f}% and p99 < {TARGET_P99_MS:.0f} ms\n")
    print(f"| {'attack':<40} | {'requests':>8} | {'success':>8} | {'p50 ms':>7} | "
          f"{'p99 ms':>7} | {'max ms':>7} | {'workers':<7} | {'result':<6} | evidence")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|"
          f"{'-' * 8}|{'-' * 10}")
    for r in rows:
        print(f"| {r['case']:<40} | {r['requests']:>8} | {r['success']:>7.2f}% | "
              f"{r['p50']:>7.2f} | {r['p99']:>7.2f} | {r['max']:>7.1f} | {r['server']:<7} | "
              f"{'PASS' if r['pass'] else 'FAIL':<6} | {r['evidence']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    sys.exit(0 if rows and all(r["pass"] for r in rows) else 1)


if __name__ == "__main__":
    main()
