"""Rate, connection and bandwidth limits ([limit.NAME], `limit = [...]`) on a real server.

What is pinned down: a request rate is exact across workers (a burst of parallel requests over
four workers passes exactly burst + 1); refusals are 429 with Retry-After and the RateLimit
fields; delay mode holds requests on a timer while the worker serves others at once; a zone
keeps its state across reload and binary upgrade while its key stays, and starts afresh when
the key changes; a full zone says so once; every decision is in the access log. Connection
limits refuse at accept, before TLS (a plain-HTTP 429/503 status line, a TLS alert) and before
QUIC's handshake (CONNECTION_CLOSE with CONNECTION_REFUSED); a worker killed with connections
open gives them back. Bandwidth paces downloads, after `bandwidth_after` bytes.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness
import tlsutil
from harness import Wraith, WraithTestCase, connect, http_get, make_dir, pid_alive, toml_str, \
    wait_for, write_file

H3GET = os.path.join(os.path.dirname(os.path.abspath(harness.WRAITH_BIN)), "h3get")


def site(routes, hosts='["*"]', tls=""):
    return (f"[[site]]\nhosts = {hosts}\n{tls}" + routes
            + '  [[site.route]]\n  path = "/"\n  static = { root = "@DIR@/www" }\n')


def route(path, limit, extra='static = { root = "@DIR@/www" }'):
    return f'  [[site.route]]\n  path = "{path}"\n  limit = {limit}\n  {extra}\n'


def status_of(port, path="/", headers=None):
    try:
        return http_get(port, path, headers=headers)[0]
    except OSError:
        return None


def parallel(n, fn):
    """Runs fn(i) in n threads at once; returns the results in order."""
    out = [None] * n
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        out[i] = fn(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def read_pid(path):
    with open(path) as f:
        return int(f.read())


class LimitTestCase(WraithTestCase):
    def start(self, zones, sites, server_limit=None, workers=2, **kw):
        server = dict(kw.pop("server", {}))
        if server_limit:
            server["limit"] = server_limit
        srv = Wraith(sites + "\n" + zones, workers=workers, server=server, **kw)
        self.servers.append(srv)
        www = make_dir(srv.path("www"))
        write_file(os.path.join(www, "index.html"), b"index\n")
        for d in ("api", "slow", "dl", "free"):
            write_file(os.path.join(www, d, "index.html"), (d + "\n").encode())
        return srv


class RequestRates(LimitTestCase):
    def test_burst_over_four_workers_passes_exactly_burst_plus_one(self):
        srv = self.start('[limit.api]\nrate = "1/m"\nburst = 9\n',
                         site(route("/api/", '["api"]')), workers=4)
        srv.start()
        results = parallel(40, lambda i: http_get(srv.port, "/api/"))
        statuses = [r[0] for r in results]
        self.assertEqual(statuses.count(200), 10, statuses)
        self.assertEqual(statuses.count(429), 30, statuses)
        refused = next(h for s, h, _ in results if s == 429)
        # Ten requests took ten minutes' worth; the next one is a minute away.
        self.assertEqual(refused.get("Retry-After"), "60")
        self.assertEqual(refused.get("RateLimit-Policy"), '"api";q=1;w=60')
        self.assertEqual(refused.get("RateLimit"), '"api";r=0;t=60')
        # Other routes are not limited.
        self.assertEqual(status_of(srv.port, "/free/"), 200)

    def test_custom_status_and_body(self):
        srv = self.start('[limit.api]\nrate = "1/m"\nstatus = 503\n'
                         'body = "{\\"error\\": \\"busy\\"}"\ncontent_type = "application/json"\n',
                         site(route("/api/", '["api"]')))
        srv.start()
        self.assertEqual(status_of(srv.port, "/api/"), 200)
        status, headers, body = http_get(srv.port, "/api/")
        self.assertEqual((status, body), (503, b'{"error": "busy"}'))
        self.assertEqual(headers.get("Content-Type"), "application/json")
        self.assertEqual(headers.get("Retry-After"), "60")

    def test_delay_mode_holds_requests_and_the_worker_serves_others_meanwhile(self):
        srv = self.start('[limit.slow]\nrate = "4/s"\nburst = 4\nmode = "delay"\n',
                         site(route("/slow/", '["slow"]')), workers=1)
        srv.start()

        def timed(path):
            t = time.monotonic()
            s = status_of(srv.port, path)
            return s, time.monotonic() - t
        slow = []
        threads = [threading.Thread(target=lambda: slow.append(timed("/slow/"))) for _ in range(5)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        # One worker, four requests waiting in it: another route answers at once.
        fast = timed("/free/")
        for t in threads:
            t.join()
        self.assertEqual(fast[0], 200)
        self.assertLess(fast[1], 0.5 * harness.TIME_SCALE, "the delay held the loop")
        self.assertEqual([s for s, _ in slow], [200] * 5, slow)
        waits = sorted(d for _, d in slow)
        # Four of five go over the rate; the last waits about a second (four 250 ms slots).
        self.assertGreater(waits[-1], 0.8, waits)
        line = srv.wait_log_line(lambda l: "limit=slow:delay=" in l, what="a delay note")
        self.assertRegex(line, r" limit=slow:delay=\d+ms$")

    def test_dry_run_serves_and_notes(self):
        srv = self.start('[limit.api]\nrate = "1/m"\nmode = "dry_run"\n',
                         site(route("/api/", '["api"]')))
        srv.access_log_conf = {"path": toml_str(srv.access_log), "format": '"json"'}
        srv.write_config()
        srv.start()
        self.assertEqual([status_of(srv.port, "/api/") for _ in range(3)], [200] * 3)
        line = srv.wait_log_line(lambda l: '"limit"' in l, what="a dry_run note")
        self.assertEqual(json.loads(line)["limit"], "api:dry_run")

    def test_rejections_are_in_the_access_log_and_the_error_log(self):
        srv = self.start('[limit.api]\nrate = "1/m"\n', site(route("/api/", '["api"]')))
        srv.start()
        status_of(srv.port, "/api/")
        self.assertEqual(status_of(srv.port, "/api/"), 429)
        line = srv.wait_log_line(lambda l: '" 429 ' in l, what="the 429 line")
        self.assertTrue(line.endswith(" limit=api:reject"), line)
        self.assertIn('limit "api": rejected a request', srv.error_log_text())

    def test_full_zone_logs_once_and_keeps_serving(self):
        srv = self.start('[limit.keys]\nrate = "1/m"\nkey = "$http_x_key"\nsize = "32k"\n',
                         site(route("/api/", '["keys"]')), workers=1)
        srv.start()
        conn = None
        for i in range(2000):  # twice what a 32k zone holds, each key over its rate
            if i % 500 == 0:  # under keepalive_requests
                if conn:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("GET", "/api/", headers={"X-Key": f"k{i}"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        conn.close()
        wait_for(lambda: "zone is full" in srv.read(srv.error_log), what="the full-zone line")
        self.assertEqual(srv.read(srv.error_log).count("zone is full"), 1)
        self.assertIn("raise limit.keys.size", srv.read(srv.error_log))
        self.assertEqual(status_of(srv.port, "/api/", {"X-Key": "new"}), 200)


class ZoneLifetime(LimitTestCase):
    ZONE = '[limit.api]\nrate = "1/m"\nkey = "{key}"\n{extra}'

    def config(self, srv, key="$client_ip", extra=""):
        srv.write_config(sites=site(route("/api/", '["api"]')) + "\n"
                         + self.ZONE.format(key=key, extra=extra))

    def reload(self, srv):
        """Reloads and waits until only the new generation's workers are left, so the next
        request cannot reach an old worker that still accepts."""
        old = set(srv.worker_pids())
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        wait_for(lambda: not set(srv.record_children()) & old, what="the old workers to exit")

    def test_reload_keeps_the_state_while_the_key_stays(self):
        srv = self.start(self.ZONE.format(key="$client_ip", extra=""),
                         site(route("/api/", '["api"]')))
        srv.start()
        self.assertEqual(status_of(srv.port, "/api/"), 200)
        self.assertEqual(status_of(srv.port, "/api/"), 429)
        self.config(srv)  # unchanged
        self.reload(srv)
        self.assertEqual(status_of(srv.port, "/api/"), 429)
        self.config(srv, extra="burst = 0\nmode = \"reject\"\n")  # same key, other keys
        self.reload(srv)
        self.assertEqual(status_of(srv.port, "/api/"), 429)
        self.config(srv, key="$client_ip:$host")  # another key: a fresh zone
        self.reload(srv)
        self.assertEqual(status_of(srv.port, "/api/"), 200)

    def test_binary_upgrade_keeps_the_state(self):
        srv = self.start(self.ZONE.format(key="$client_ip", extra=""),
                         site(route("/api/", '["api"]')))
        srv.start()
        self.assertEqual(status_of(srv.port, "/api/"), 200)
        old_pid = srv.pid
        up = srv.cli("upgrade")
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
        new_pid = wait_for(lambda: (p := read_pid(srv.pid_file)) != old_pid and p,
                           what="the new pid file")
        self.addCleanup(lambda: pid_alive(new_pid) and os.kill(new_pid, signal.SIGTERM))
        os.kill(old_pid, signal.SIGQUIT)
        wait_for(lambda: not pid_alive(old_pid), timeout=30, what="the old master to exit")
        # Only the new master's workers answer now, from the zone the old one made.
        self.assertEqual([status_of(srv.port, "/api/") for _ in range(3)], [429] * 3)
        os.kill(new_pid, signal.SIGQUIT)
        wait_for(lambda: not pid_alive(new_pid), timeout=30, what="the new master to exit")


class ConnectionLimits(LimitTestCase):
    def hold(self, port, n):
        """n idle keep-alive connections that got one answer each (so they are accepted).

        A connection the client just closed (the harness's readiness probe, an earlier
        client) counts until the worker reads that close: a 429 is retried until then."""
        out = []
        for _ in range(n):
            def admitted():
                s = connect(port)
                s.sendall(b"GET /free/ HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = s.recv(4096)
                if answer.startswith(b"HTTP/1.1 429 "):
                    s.close()
                    return None
                self.assertIn(b"200 OK", answer)
                return s
            out.append(wait_for(admitted, what="a connection within the cap"))
        return out

    def refused(self, port):
        s = connect(port)
        try:
            # Connection: close: an answered request ends at once too, not at the read timeout
            # (which the sanitizer build's time scale stretches past connection_rate's period).
            s.sendall(b"GET /free/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return harness.read_until_close(s).data
        finally:
            s.close()

    def test_per_address_cap_refuses_with_429_and_frees_on_close(self):
        srv = self.start('[limit.per_ip]\nconnections = 2\n', site(""),
                         server_limit='["per_ip"]')
        srv.start()
        held = self.hold(srv.port, 2)
        answer = self.refused(srv.port)
        self.assertTrue(answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), answer)
        self.assertIn(b"Retry-After: 1\r\n", answer)
        self.assertIn("refused a connection from 127.0.0.1 (too many connections)",
                      srv.error_log_text())
        held.pop().close()
        wait_for(lambda: status_of(srv.port, "/free/") == 200, what="room after a close")
        for s in held:
            s.close()

    def test_global_cap_answers_503(self):
        srv = self.start('[limit.all]\nkey = "all"\nconnections = 3\n', site(""),
                         server_limit='["all"]', workers=1)
        srv.start()
        held = self.hold(srv.port, 3)
        self.assertTrue(self.refused(srv.port).startswith(b"HTTP/1.1 503 Service Unavailable"))
        for s in held:
            s.close()

    def test_connection_rate_per_address(self):
        srv = self.start('[limit.new]\nconnection_rate = "1/m"\nburst = 3\n', site(""),
                         server_limit='["new"]')
        srv.start(wait=False)
        # wait_ready's own GETs would use up the burst: wait for the port instead.
        wait_for(lambda: socket.create_connection(("127.0.0.1", srv.port)).close() is None,
                 what="the listener")
        answers = [self.refused(srv.port) for _ in range(4)]
        self.assertTrue(answers[-1].startswith(b"HTTP/1.1 429 "), answers)
        m = re.search(rb"Retry-After: (\d+)\r\n", answers[-1])
        self.assertTrue(m and 1 <= int(m.group(1)) <= 60, answers[-1])

    def test_killed_worker_gives_its_connections_back(self):
        srv = self.start('[limit.per_ip]\nconnections = 2\n', site(""),
                         server_limit='["per_ip"]', workers=1)
        srv.start()
        [worker] = srv.wait_workers(1)
        held = self.hold(srv.port, 2)
        self.assertIn(b" 429 ", self.refused(srv.port))
        os.kill(worker, signal.SIGKILL)
        srv.wait_workers(1, exclude=[worker])
        for s in held:
            s.close()
        # Without the reset, both dead connections would count for ever.
        wait_for(lambda: status_of(srv.port, "/free/") == 200, what="a served request")
        again = self.hold(srv.port, 2)
        self.assertIn(b" 429 ", self.refused(srv.port))
        for s in again:
            s.close()

    def test_tls_refusal_is_an_alert_before_any_handshake(self):
        pki = tlsutil.TestPki(make_dir(os.path.join(self.id_dir(), "pki")))
        leaf = pki.ca("limit-ca").issue("leaf", ["localhost"])
        tls = f"tls = {{ cert = {toml_str(leaf.chain)}, key = {toml_str(leaf.key)} }}\n"
        srv = self.start('[limit.per_ip]\nconnections = 1\n', site("", tls=tls),
                         server_limit='["per_ip"]', tls_listen='protocols = ["http/1.1"]')
        srv.start()
        held = self.hold(srv.port, 1)  # the plain listener's connection counts too
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.tls_port}",
                            "-servername", "localhost"], input=b"", capture_output=True,
                           timeout=30)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertIn("alert internal error", out)
        self.assertNotIn("BEGIN CERTIFICATE", out)  # no handshake happened
        for s in held:
            s.close()

    def id_dir(self):
        d = make_dir(os.path.join("/tmp", "wraith-limits-" + str(os.getpid())))
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d


class QuicAccept(LimitTestCase):
    def test_quic_connection_over_the_cap_is_refused_before_the_handshake(self):
        if not os.access(H3GET, os.X_OK):
            self.fail(f"{H3GET} is missing: build the tools (cmake --build build)")
        pki_dir = make_dir(os.path.join("/tmp", f"wraith-limits-h3-{os.getpid()}"))
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", pki_dir]))
        leaf = tlsutil.TestPki(pki_dir).ca("h3-ca").issue("h3", ["localhost"])
        tls = f"tls = {{ cert = {toml_str(leaf.chain)}, key = {toml_str(leaf.key)} }}\n"
        srv = self.start('[limit.per_ip]\nconnections = 1\n', site("", tls=tls),
                         server_limit='["per_ip"]', tls_listen="")
        srv.start()
        cmd = [H3GET, "-k", "--resolve", f"localhost:{srv.tls_port}:127.0.0.1", "--max-time",
               "5", f"https://localhost:{srv.tls_port}/index.html"]
        # The readiness probe's TCP connection counts until the worker reads its close: a
        # refusal is retried until then; any other failure ends the wait.
        def first_get():
            p = subprocess.run(cmd, capture_output=True, timeout=30)
            return None if b"CONNECTION_REFUSED" in p.stderr else p
        ok = wait_for(first_get, what="an HTTP/3 connection within the cap")
        self.assertEqual((ok.returncode, ok.stdout), (0, b"index\n"), ok.stderr)
        # h3get closed its connection: it no longer counts, and a TCP one takes its place.
        held = self.hold(srv.port, 1)
        t = time.monotonic()
        refused = subprocess.run(cmd, capture_output=True, timeout=30)
        self.assertNotEqual(refused.returncode, 0)
        self.assertNotIn(b"timed out", refused.stderr, "the refusal never reached the client")
        self.assertLess(time.monotonic() - t, 3 * harness.TIME_SCALE)
        self.assertIn("refused a connection from 127.0.0.1", srv.error_log_text())
        for s in held:
            s.close()
        wait_for(lambda: subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0,
                 what="HTTP/3 again after the TCP connection closed")

    hold = ConnectionLimits.hold


class Bandwidth(LimitTestCase):
    def test_download_is_paced_after_bandwidth_after(self):
        srv = self.start('[limit.dl]\nbandwidth = "256k"\nbandwidth_after = "256k"\n',
                         site(route("/dl/", '["dl"]')))
        write_file(srv.path("www", "dl", "big.bin"), os.urandom(1024 * 1024))
        srv.start()
        t = time.monotonic()
        status, _, body = http_get(srv.port, "/dl/big.bin", timeout=60)
        took = time.monotonic() - t
        self.assertEqual((status, len(body)), (200, 1024 * 1024))
        # 256 KiB at once, then 768 KiB at 256 KiB/s: about three seconds.
        self.assertGreater(took, 2.4, took)
        self.assertLess(took, 6 * harness.TIME_SCALE, took)
        t = time.monotonic()
        self.assertEqual(status_of(srv.port, "/free/"), 200)
        self.assertLess(time.monotonic() - t, 1)


if __name__ == "__main__":
    harness.main()
