"""Interop matrix: Wraith's HTTP/3 server against three independent QUIC clients, in the test
cases of the QUIC Interop Runner, printed as a table client x case at the end (and written to
BUILD/interop.md).

Clients: `gtlsclient` (ngtcp2 1.11, Debian ngtcp2-client), headless Chromium (Google's QUIC,
forced onto QUIC for the origin as test_browser.py does), and a small client on Debian's
quic-go (tests/integration/quicgo_client, built here offline with golang-go). Every client
talks to the server through a UDP relay of this test (quic_relay.py) that drops, corrupts,
reorders, delays, blackholes and rebinds on a seeded schedule, and watches what passes. Every
downloaded body's SHA-256 is checked against the file. What the server negotiated (version,
cipher, resumption, 0-RTT, key updates, migrations) comes from its debug log.

A case a client cannot express is shown as n/a with the reason; everything else must pass.
Transfer sizes are small enough that the whole matrix takes a few minutes."""

import collections
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import quic_relay
import test_browser
import test_http3 as h3
import tlsutil
from harness import WraithTestCase, toml_str, write_file
from quic_relay import Impairment

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ("gtlsclient", "quic-go", "chromium")
CASES = ("handshake", "transfer", "multiplexing", "retry", "resumption", "zerortt", "http3",
         "multiconnect", "chacha20", "keyupdate", "v2", "ecn", "amplificationlimit",
         "rebind-port", "rebind-addr", "connectionmigration", "handshakeloss", "transferloss",
         "handshakecorruption", "transfercorruption", "blackhole")
# What a client cannot be made to do, and why (shown in the table instead of a result).
NOT_EXPRESSIBLE = {
    ("quic-go", "v2"): "quic-go 0.29 (Debian 12) speaks draft-ietf-quic-v2 (0x709a50c4), "
                       "not RFC 9369",
    ("quic-go", "connectionmigration"): "quic-go 0.29 has no API to move a client "
                                        "connection to a new path",
    ("chromium", "resumption"): "a headless page load cannot be told to reconnect with its "
                                "session ticket",
    ("chromium", "zerortt"): "a headless page load cannot be told to reconnect with its "
                             "session ticket",
    ("chromium", "keyupdate"): "Chromium has no switch to initiate a key update",
    ("chromium", "connectionmigration"): "headless Chromium has no switch to migrate a "
                                         "connection",
}
V2 = 0x6b3343cf
SEED = 20261207
TS = harness.TIME_SCALE
RESULTS = {}
RETRIED = set()    # (client, case) where a hung client run was tried again
CURRENT = [None]   # the (client, case) running
PKI = None
QUICGO = None  # the built client, or the reason there is none


def setUpModule():
    global PKI, QUICGO
    h3.setUpModule()
    d = tempfile.mkdtemp(prefix="wraith-interop-pki-")
    os.chmod(d, 0o755)
    ca = tlsutil.TestPki(d).ca("interop-rsa-ca", key_type="rsa")
    # A certificate flight well over 3 x 1200 bytes, so the anti-amplification limit bites.
    big = ca.issue("big", ["localhost", "127.0.0.1"] +
                   [f"name{i:03d}.amplification-limit.example" for i in range(300)],
                   key_type="rsa")
    PKI = collections.namedtuple("Pki", "dir big")(d, big)
    QUICGO = build_quicgo_client()


def tearDownModule():
    print_table()
    if PKI and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(PKI.dir, ignore_errors=True)
    if isinstance(QUICGO, str) and os.path.isfile(QUICGO):
        shutil.rmtree(os.path.dirname(QUICGO), ignore_errors=True)
    h3.tearDownModule()


def build_quicgo_client():
    """Builds quicgo_client offline in a temp GOPATH that lays it under quic-go's import path
    (so it may set quic-go's key update interval). Returns the binary, or an Exception."""
    go = shutil.which("go")
    gocode = "/usr/share/gocode/src/github.com/lucas-clemente/quic-go"
    if not go or not os.path.isdir(gocode):
        return Exception("quic-go client: install golang-go and "
                         "golang-github-lucas-clemente-quic-go-dev (make deps)")
    root = tempfile.mkdtemp(prefix="wraith-quicgo-")
    pkg = os.path.join(root, "src/github.com/lucas-clemente/quic-go")
    os.makedirs(pkg)
    for name in os.listdir(gocode):
        os.symlink(os.path.join(gocode, name), os.path.join(pkg, name))
    shutil.copytree(os.path.join(HERE, "quicgo_client"), os.path.join(pkg, "wraith_client"))
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{root}:/usr/share/gocode",
               GOCACHE=os.path.join(root, "cache"), GOFLAGS="", CGO_ENABLED="0")
    out = os.path.join(root, "quicgo_client")
    p = subprocess.run([go, "build", "-o", out, "."], cwd=os.path.join(pkg, "wraith_client"),
                       env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return Exception("quic-go client did not build:\n" + p.stderr[-3000:])
    return out


def print_table():
    width = max(len(c) for c in CASES)
    lines = ["", "### HTTP/3 interop (Wraith server)", "",
             "| case | " + " | ".join(CLIENTS) + " |",
             "|---|" + "---|" * len(CLIENTS)]
    notes = []
    for case in CASES:
        cells = []
        for client in CLIENTS:
            r = RESULTS.get((client, case))
            if r is None:
                cells.append("not run")
            elif r.startswith("n/a"):
                notes.append(f"- {client} / {case}: {r[5:]}")
                cells.append(f"n/a [{len(notes)}]")
            else:
                cells.append(r.split(":")[0] + ("*" if (client, case) in RETRIED else ""))
        lines.append(f"| {case.ljust(width)} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "n/a: the client cannot express the case:"]
        lines += [f"[{i}] {n[2:]}" for i, n in enumerate(notes, 1)]
    if RETRIED:
        lines += ["", "*: a client run hung and was tried once more: " +
                  ", ".join(f"{c} / {k}" for c, k in sorted(RETRIED))]
    failures = [f"- {c} / {k}: {v}" for (c, k), v in sorted(RESULTS.items())
                if v.startswith("FAIL")]
    if failures:
        lines += ["", "failures:"] + failures
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    build = os.environ.get("WRAITH_BUILD_DIR")
    if build and os.path.isdir(build):
        with open(os.path.join(build, "interop.md"), "w") as f:
            f.write(text)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --------------------------------------------------------------------------------------------
# Servers: one per configuration the cases need, started on first use, shared.

FILES = {"1k.bin": 1024, "64k.bin": 64 << 10, "512k.bin": 512 << 10, "2m.bin": 2 << 20}
MANY = [f"m{i:02d}.bin" for i in range(30)]  # multiplexing: 30 small files, 10 streams at once

PAGE = b"""<!doctype html><html><body><pre id="out">pending</pre><script>
async function get(p) {
  const r = await fetch(p, {cache: 'no-store'});
  const b = await r.arrayBuffer();
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b));
  return 'GOT ' + p + ' ' + r.status + ' ' + b.byteLength + ' ' +
         Array.from(d).map(x => x.toString(16).padStart(2, '0')).join('');
}
const files = new URLSearchParams(location.search).get('f').split(',');
Promise.all(files.map(get)).then(
  l => { document.getElementById('out').textContent = l.join('\\n') + '\\nALL DONE'; },
  e => { document.getElementById('out').textContent = 'FAILED ' + e; });
</script></body></html>
"""


class Servers:
    def __init__(self):
        self.running = {}
        self.hashes = {}

    def get(self, kind):
        if kind not in self.running:
            self.running[kind] = self.start(kind)
        return self.running[kind]

    def start(self, kind):
        tls_extra = ", early_data = true"
        cert = PKI.big if kind == "bigcert" else h3.PKI.leaf
        http3 = {"max_concurrent_streams": "10", "retry": '"never"'}
        if kind == "retry":
            http3["retry"] = '"always"'
        if kind == "chacha20":
            http3["cipher_suites"] = '["TLS_CHACHA20_POLY1305_SHA256"]'
        site = ("[[site]]\nhosts = [\"localhost\", \"127.0.0.1\"]\ndefault = true\n"
                f"tls = {{ cert = {toml_str(cert.chain)}, key = {toml_str(cert.key)}{tls_extra} }}\n"
                '  [[site.route]]\n  path = "/"\n  static = { root = "@DIR@/www" }\n')
        srv = h3.H3Server(site, workers=2, http3=http3, server={"log_level": '"debug"'})
        www = srv.path("www")
        rnd = __import__("random").Random(SEED)
        for name, size in FILES.items():
            write_file(os.path.join(www, name), rnd.randbytes(size))
        for name in MANY:
            write_file(os.path.join(www, name), rnd.randbytes(4096 + rnd.randrange(4096)))
        write_file(os.path.join(www, "page.html"), PAGE)
        for name in os.listdir(www):
            self.hashes.setdefault(name, sha256_file(os.path.join(www, name)))
        srv.cert = cert
        # The harness stops class servers, checks them for crashes and prints their logs.
        Interop.class_servers = Interop.class_servers + [srv]
        srv.start()
        srv.wait_workers(2)
        return srv


SERVERS = Servers()


# --------------------------------------------------------------------------------------------
# Clients. Each fetches `paths` from https://localhost:PORT through the relay and returns
# {path: (length, sha256)} of what it received (a missing path: not received).


class ClientError(Exception):
    pass


def run_gtlsclient(srv, port, paths, args=(), session=None, timeout=60):
    d = tempfile.mkdtemp(prefix="gtls-", dir=srv.dir)
    cmd = [h3.GTLSCLIENT, "--exit-on-all-streams-close", "--sni=localhost", f"--download={d}",
           "--no-quic-dump", "--no-http-dump", f"--handshake-timeout={int(15 * TS)}s",
           f"--timeout={int(15 * TS)}s"]
    if session:
        cmd += [f"--session-file={session}.ticket", f"--tp-file={session}.tp"]
    cmd += list(args) + ["127.0.0.1", str(port)] + [f"https://localhost:{port}/{p}"
                                                      for p in paths]
    log = d + ".log"
    with open(log, "wb") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout * TS)
    got = {}
    for p in paths:
        path = os.path.join(d, p)
        if os.path.exists(path):
            got[p] = (os.path.getsize(path), sha256_file(path))
    with open(log, "rb") as f:
        text = f.read().decode(errors="replace")
    return got, text


def run_quicgo(port, paths, args=(), timeout=60):
    if isinstance(QUICGO, Exception):
        raise ClientError(str(QUICGO))
    cmd = [QUICGO, f"-timeout={int(40 * TS)}s", *args] + \
        [f"https://localhost:{port}/{p}" for p in paths]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * TS)
    got = {}
    for line in p.stdout.splitlines():
        m = re.match(r"OK https://localhost:\d+/(\S+) (\d+) ([0-9a-f]{64})", line)
        if m:
            got[m.group(1)] = (int(m.group(2)), m.group(3))
    return got, p.stdout + p.stderr


def _chromium_once(srv, port, paths, args, timeout):
    profile = tempfile.mkdtemp(prefix="wraith-chromium-")
    origin = f"localhost:{port}"
    cmd = [test_browser.CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
           f"--origin-to-force-quic-on={origin}",
           f"--ignore-certificate-errors-spki-list={test_browser.spki_hash(srv.cert.cert)}",
           "--host-resolver-rules=MAP localhost 127.0.0.1",
           f"--virtual-time-budget={int(20000 * TS)}", *args, "--dump-dom",
           f"https://{origin}/page.html?f=" + ",".join("/" + p for p in paths)]
    # Its own process group: a browser that hangs goes with its renderer and network service.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout * TS)
        return out.decode(errors="replace"), err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, None
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def run_chromium(srv, port, paths, args=(), timeout=30):
    if not test_browser.CHROMIUM:
        raise ClientError("Chromium is not installed (Debian package chromium; make deps)")
    dom, err = _chromium_once(srv, port, paths, args, timeout)
    if dom is None:
        # Seen once in many runs under 30 % loss: a headless Chromium that never finishes its
        # page (the server had nothing in flight). Said in the table, and tried once more.
        RETRIED.add(CURRENT[0])
        dom, err = _chromium_once(srv, port, paths, args, timeout)
        if dom is None:
            raise ClientError(f"Chromium did not finish the page in {timeout * TS:.0f} s, twice")
    got = {}
    for m in re.finditer(r"GOT /(\S+) (\d{3}) (\d+) ([0-9a-f]{64})", dom):
        if m.group(2) == "200":
            got[m.group(1)] = (int(m.group(3)), m.group(4))
    return got, dom[-2000:] + err[-2000:]


# --------------------------------------------------------------------------------------------
# The matrix


class Interop(WraithTestCase):
    # ---- helpers

    def server(self, kind="default"):
        return SERVERS.get(kind)

    def relay(self, srv):
        r = quic_relay.Relay(srv.tls_port, seed=SEED)
        self.addCleanup(r.close)
        return r

    def log_mark(self, srv):
        return len(srv.error_log_text())

    def handshakes(self, srv, mark):
        """The server's 'handshake done' debug lines since `mark`."""
        text = srv.error_log_text()[mark:]
        return [l for l in text.splitlines() if "handshake done" in l]

    def log_since(self, srv, mark):
        return srv.error_log_text()[mark:]

    def check(self, got, paths, detail):
        for p in paths:
            want = SERVERS.hashes[p]
            if p not in got:
                raise AssertionError(f"{p} not received\n{detail[-3000:]}")
            if got[p][1] != want:
                raise AssertionError(f"{p}: SHA-256 {got[p][1]} != {want}\n{detail[-2000:]}")

    def fetch(self, client, srv, port, paths, mode="parallel", gtls_args=(), quicgo_args=(),
              chromium_args=(), session=None):
        """One connection (mode parallel/sequential) or one per path (multiconnect); checks
        every hash."""
        if mode == "multiconnect":
            for p in paths:
                self.fetch(client, srv, port, [p], "parallel", gtls_args, quicgo_args,
                           chromium_args)
            return ""
        if client == "gtlsclient":
            got, detail = run_gtlsclient(srv, port, paths, gtls_args, session)
        elif client == "quic-go":
            got, detail = run_quicgo(port, paths, ["-mode", mode, *quicgo_args])
        else:
            got, detail = run_chromium(srv, port, paths, chromium_args)
        self.check(got, paths, detail)
        return detail

    # ---- the cases: each returns None (pass) or raises

    def case_handshake(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        self.fetch(client, srv, r.port, ["1k.bin"])
        self.assertEqual(len(self.handshakes(srv, mark)), 1)

    def case_transfer(self, client):
        srv = self.server()
        r = self.relay(srv)
        # gtlsclient with small windows: the server waits for MAX_DATA / MAX_STREAM_DATA.
        self.fetch(client, srv, r.port, ["2m.bin", "512k.bin", "64k.bin"],
                   gtls_args=["--max-data=256K", "--max-stream-data-bidi-local=64K"])

    def case_multiplexing(self, client):
        srv = self.server()  # 10 streams at a time (max_concurrent_streams), 30 files
        r, mark = self.relay(srv), self.log_mark(srv)
        self.fetch(client, srv, r.port, MANY)
        self.assertEqual(len(self.handshakes(srv, mark)), 1, "not one connection")

    def case_retry(self, client):
        srv = self.server("retry")
        r = self.relay(srv)
        self.fetch(client, srv, r.port, ["64k.bin"])
        self.assertGreater(r.stats.retry_packets, 0, "the server sent no Retry")

    def case_resumption(self, client, zero_rtt=False):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        if client == "gtlsclient":
            session = os.path.join(tempfile.mkdtemp(dir=srv.dir), "s")
            self.fetch(client, srv, r.port, ["1k.bin"], session=session,
                       gtls_args=["--wait-for-ticket"])
            detail = self.fetch(client, srv, r.port, ["64k.bin"], session=session,
                                gtls_args=[] if zero_rtt else ["--disable-early-data"])
            self.assertNotIn("Early data was rejected", detail)
        else:
            self.fetch(client, srv, r.port, ["1k.bin", "64k.bin"],
                       mode="zerortt" if zero_rtt else "resumption")
        hs = self.handshakes(srv, mark)
        self.assertEqual(len(hs), 2, hs)
        self.assertIn("resumed yes", hs[1])
        if zero_rtt:
            self.assertIn("early data accepted", hs[1])
            self.assertGreater(r.stats.zero_rtt_packets, 0, "no 0-RTT packet went out")

    def case_zerortt(self, client):
        self.case_resumption(client, zero_rtt=True)

    def case_http3(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        self.fetch(client, srv, r.port, ["1k.bin", "64k.bin", "512k.bin"])
        hs = self.handshakes(srv, mark)
        self.assertTrue(hs and all("ALPN h3" in h for h in hs), hs)

    def case_multiconnect(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        self.fetch(client, srv, r.port, ["1k.bin", "64k.bin", "m00.bin"], mode="multiconnect")
        self.assertEqual(len(self.handshakes(srv, mark)), 3)

    def case_chacha20(self, client):
        srv = self.server("chacha20")  # the server allows only TLS_CHACHA20_POLY1305_SHA256
        r, mark = self.relay(srv), self.log_mark(srv)
        self.fetch(client, srv, r.port, ["512k.bin"],
                   gtls_args=["--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
                              "+CHACHA20-POLY1305"],
                   quicgo_args=["-chacha20"])
        hs = self.handshakes(srv, mark)
        self.assertTrue(hs and all("CHACHA20-POLY1305" in h for h in hs), hs)

    def case_keyupdate(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        r.set(up=Impairment(delay=0.002), down=Impairment(delay=0.002))  # a transfer that lasts
        # gtlsclient updates its keys 20 ms after the handshake; on a fast machine the 2 MB are
        # through by then. A 200 ms silence at 400 KB makes the transfer outlast the timer.
        r.blackhole_after(400_000, 0.2)
        args = dict(gtls_args=["--key-update=20ms"], quicgo_args=["-keyupdate"])
        self.fetch(client, srv, r.port, ["2m.bin"], **args)
        if not re.search(r"key update [1-9]", self.log_since(srv, mark)):
            # Seen once under ASan: the client's timer and the transfer missed each other and
            # no update was started. Tried once more, and said in the table.
            RETRIED.add(CURRENT[0])
            mark = self.log_mark(srv)
            self.fetch(client, srv, r.port, ["2m.bin"], **args)
        self.assertRegex(self.log_since(srv, mark), r"key update [1-9]")

    def case_v2(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        # gtlsclient starts in v1 and offers v2 (compatible negotiation, RFC 9368); Chromium
        # starts in v2.
        self.fetch(client, srv, r.port, ["512k.bin"], gtls_args=["--available-versions=v1,v2"],
                   chromium_args=["--quic-version=RFCv2"])
        hs = self.handshakes(srv, mark)
        self.assertTrue(hs and all(f"version 0x{V2:08x}" in h for h in hs), hs)
        self.assertIn(V2, r.stats.server_versions)

    def case_ecn(self, client):
        srv = self.server()
        r = self.relay(srv)
        detail = self.fetch(client, srv, r.port, ["512k.bin"])
        # RFC 9000 §13.4: the server marks ECT and keeps marking to the end, which it does only
        # while ECN validation succeeds (the client's ACKs count the marks).
        self.assertGreater(r.stats.ecn_to_client, 0, "no ECN-marked packet from the server")
        self.assertTrue(all(r.stats.last_ecn_to_client), "ECN validation failed on the way")
        if client == "gtlsclient":
            # And the server counts the client's marks in its ACKs.
            self.assertRegex(detail, r"ACK\(0x03\).* ect0=[1-9]")

    def case_amplificationlimit(self, client):
        srv = self.server("bigcert")
        r = self.relay(srv)
        # Not scaled by TS: the server answers a first flight in milliseconds even under the
        # sanitizers, and a longer silence makes Chromium give the handshake up.
        r.hold_after_first(1.0)
        self.fetch(client, srv, r.port, ["64k.bin"])
        sent, got = r.window_server_bytes, r.window_client_bytes
        # RFC 9000 §8.1: at most three times what came from an unvalidated address.
        self.assertLessEqual(sent, 3 * got, f"server sent {sent} for {got}")
        self.assertGreater(sent, 2 * got, "the certificate flight did not reach the limit")

    def rebind_case(self, client, address):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        r.set(up=Impairment(delay=0.002), down=Impairment(delay=0.002))
        r.rebind_after(400_000, address)
        self.fetch(client, srv, r.port, ["2m.bin"])
        self.assertTrue(r.rebound, "the transfer ended before the rebinding")
        self.assertIn("migrated to", self.log_since(srv, mark))

    def case_rebind_port(self, client):
        self.rebind_case(client, "127.0.0.1")

    def case_rebind_addr(self, client):
        self.rebind_case(client, "127.0.0.2")

    def case_connectionmigration(self, client):
        srv = self.server()
        r, mark = self.relay(srv), self.log_mark(srv)
        r.set(up=Impairment(delay=0.002), down=Impairment(delay=0.002))
        # The client moves on a timer; the transfer waits for it at 400 KB.
        r.stall_until_migration(400_000)
        self.fetch(client, srv, r.port, ["2m.bin"], gtls_args=["--change-local-addr=50ms"])
        self.assertIn("migrated to", self.log_since(srv, mark))
        self.assertGreaterEqual(len(r.clients), 2, "the client kept its address")

    def lossy(self, client, impairment, paths, mode):
        srv = self.server()
        r = self.relay(srv)
        r.set(up=impairment, down=impairment)
        self.fetch(client, srv, r.port, paths, mode=mode)
        return r

    def case_handshakeloss(self, client):
        r = self.lossy(client, Impairment(drop=0.3), ["1k.bin", "m01.bin", "m02.bin"],
                       "multiconnect")
        self.assertGreater(r.stats.dropped, 0)

    def case_transferloss(self, client):
        r = self.lossy(client, Impairment(drop=0.02, reorder=0.02, delay=0.002), ["512k.bin"],
                       "parallel")
        self.assertGreater(r.stats.dropped, 0)

    def case_handshakecorruption(self, client):
        r = self.lossy(client, Impairment(corrupt=0.3), ["1k.bin", "m01.bin", "m02.bin"],
                       "multiconnect")
        self.assertGreater(r.stats.corrupted, 0)

    def case_transfercorruption(self, client):
        r = self.lossy(client, Impairment(corrupt=0.02, reorder=0.02, delay=0.002),
                       ["512k.bin"], "parallel")
        self.assertGreater(r.stats.corrupted, 0)

    def case_blackhole(self, client):
        srv = self.server()
        r = self.relay(srv)
        r.set(up=Impairment(delay=0.002), down=Impairment(delay=0.002))
        r.blackhole_after(300_000, 1.5)
        self.fetch(client, srv, r.port, ["2m.bin"])
        self.assertGreater(r.stats.dropped, 0, "nothing fell into the blackhole")


def _make_test(client, case):
    def test(self):
        reason = NOT_EXPRESSIBLE.get((client, case))
        if reason:
            RESULTS[(client, case)] = "n/a: " + reason
            self.skipTest(reason)
        CURRENT[0] = (client, case)
        try:
            getattr(self, "case_" + case.replace("-", "_"))(client)
        except BaseException as e:
            RESULTS[(client, case)] = f"FAIL: {str(e).splitlines()[0] if str(e) else repr(e)}"
            raise
        RESULTS[(client, case)] = "PASS"
    test.__name__ = f"test_{client.replace('-', '')}_{case.replace('-', '_')}"
    return test


for _client in CLIENTS:
    for _case in CASES:
        _t = _make_test(_client, _case)
        setattr(Interop, _t.__name__, _t)


if __name__ == "__main__":
    harness.main()
