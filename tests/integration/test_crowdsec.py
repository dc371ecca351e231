"""The CrowdSec bouncer ([crowdsec], `crowdsec = true|false`) against a real CrowdSec.

Debian's crowdsec package (agent + Local API, SQLite, the offline hub) runs from a temp dir
(crowdsec_fixture.py) and reads Wraith's default (combined) access log as `type: nginx` with
the stock crowdsecurity/nginx-logs parser. What is pinned down: a scanner's 404 probes (from an
address real_ip took from X-Forwarded-For, sent by the trusted 127.0.0.1) make CrowdSec's
http-probing scenario ban it, and Wraith answers it 403 within a pull interval while another
address is served; `cscli decisions add --range` blocks an IPv4 and an IPv6 range and
`cscli decisions delete` unblocks within an interval; with the Local API down the decisions
stay in force, the error log says so once, and once it is back a new decision applies within
an interval; a refused API key is one clear log line and `fallback = "block"` applies; with
`ban_at_accept` a banned peer's connection is closed before any response; decisions survive a
reload (kill -HUP) even with the Local API down; killed workers are replaced and the new
slot 0 pulls again; the metrics count it all.
"""

import os
import re
import shutil
import signal
import socket
import tempfile
import time

import harness
from crowdsec_fixture import CrowdSec
from harness import Wraith, WraithTestCase, http_get, toml_str, wait_for, write_file

INTERVAL = 1.0  # interval = "1s" in every config below
# A decision reaches Wraith within one interval after CrowdSec has it; the slack covers the
# pull itself and a loaded test machine.
WITHIN = (INTERVAL + 4) * harness.TIME_SCALE

SITE = """
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "=/"
  respond = { status = 200, body = "ok" }
  [[site.route]]
  path = "/metrics"
  crowdsec = false
  metrics = {}
"""


def crowdsec_table(url, key_file, extra=""):
    return (f"[crowdsec]\nurl = {toml_str(url)}\napi_key_file = {toml_str(key_file)}\n"
            f'interval = "1s"\n{extra}\n')


def status_as(port, client, path="/", headers=None):
    """The status Wraith answers a request that real_ip attributes to `client`."""
    h = {"X-Forwarded-For": client}
    h.update(headers or {})
    status, _, _ = http_get(port, path, headers=h, timeout=10)
    return status


def wait_status(port, client, status, timeout=WITHIN):
    wait_for(lambda: status_as(port, client) == status, timeout=timeout, interval=0.1,
             what=f"{client} answered {status}")


class CrowdSecTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wraith-crowdsec-test-")
        os.chmod(cls.tmp, 0o755)
        cls.access_log = os.path.join(cls.tmp, "access.log")
        write_file(cls.access_log, "")
        cls.cs = CrowdSec(cls.access_log)
        try:
            cls.key_file = os.path.join(cls.tmp, "crowdsec.key")
            write_file(cls.key_file, cls.cs.add_bouncer("wraith") + "\n")
            cls.cs.start()
            cls.srv = cls.start_class_server(
                crowdsec_table(cls.cs.url, cls.key_file) + SITE,
                server={"real_ip": '{ header = "X-Forwarded-For", trusted = ["127.0.0.1"] }'},
                access_log={"path": toml_str(cls.access_log), "format": '"combined"'})
            # The first pull (startup=true) has happened once the metrics say so.
            wait_for(lambda: 'wraith_crowdsec_pulls_total{result="ok"}' in cls.metrics(),
                     timeout=WITHIN, what="the first pull")
        except BaseException:
            cls.cs.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.cs.cleanup()
            if not os.environ.get("WRAITH_KEEP_TMP"):
                shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        if self._test_failed():
            import sys
            sys.stderr.write(self.cs.diagnostics())
        if self.cs.proc is None:  # a test stopped the Local API: the next one needs it
            self.cs.start()
        super().tearDown()

    @classmethod
    def metrics(cls):
        status, _, body = http_get(cls.srv.port, "/metrics", timeout=10)
        return body.decode() if status == 200 else ""

    def metric(self, line_start):
        for line in self.metrics().splitlines():
            if line.startswith(line_start + " "):
                return int(line.split()[-1])
        return 0

    def test_a_scanner_is_banned_by_the_http_probing_scenario(self):
        scanner, other = "192.0.2.44", "192.0.2.45"
        self.assertEqual(status_as(self.srv.port, scanner), 200)
        # More than 10 distinct 404 paths quickly: crowdsecurity/http-probing overflows.
        for i in range(15):
            self.assertEqual(status_as(self.srv.port, scanner, f"/probe-{i}/admin"), 404)
        # The line CrowdSec reads is Wraith's default combined format, with real_ip's address.
        line = re.compile(r'(?m)^192\.0\.2\.44 - - \[[^]]+\] "GET /probe-3/admin HTTP/1\.1" 404 '
                          r'\d+ "-" "[^"]*"$')
        wait_for(lambda: line.search(self.srv.read(self.access_log)), timeout=10,
                 what="the probe in the access log")

        def decided():
            return [d for d in self.cs.decisions()
                    if d["value"] == scanner and d["type"] == "ban"]
        found = wait_for(decided, timeout=45, interval=0.5, what="CrowdSec's decision")
        self.assertEqual(found[0]["scenario"], "crowdsecurity/http-probing")
        self.assertEqual(found[0]["origin"], "crowdsec")
        decided_at = time.monotonic()
        wait_status(self.srv.port, scanner, 403)
        self.assertLess(time.monotonic() - decided_at, WITHIN)
        status, headers, body = http_get(self.srv.port, "/",
                                         headers={"X-Forwarded-For": scanner}, timeout=10)
        self.assertIn(b"Access denied", body)
        self.assertEqual(status_as(self.srv.port, other), 200)
        self.assertGreaterEqual(
            self.metric('wraith_crowdsec_decisions{type="ban",origin="crowdsec"}'), 1)
        self.assertGreaterEqual(self.metric('wraith_crowdsec_blocked_total{phase="request"}'), 1)

    def test_range_decisions_block_and_delete_unblocks(self):
        port = self.srv.port
        self.assertEqual(status_as(port, "198.51.100.7"), 200)
        self.cs.cscli("decisions", "add", "--range", "198.51.100.0/24", "--duration", "1h")
        wait_status(port, "198.51.100.7", 403)
        self.assertEqual(status_as(port, "198.51.100.250"), 403)
        self.assertEqual(status_as(port, "198.51.101.1"), 200)
        self.assertGreaterEqual(
            self.metric('wraith_crowdsec_decisions{type="ban",origin="cscli"}'), 1)
        self.cs.cscli("decisions", "delete", "--range", "198.51.100.0/24")
        wait_status(port, "198.51.100.7", 200)

    def test_ipv6_range(self):
        port = self.srv.port
        self.cs.cscli("decisions", "add", "--range", "2001:db8:beef::/48", "--duration", "1h")
        wait_status(port, "2001:db8:beef::1", 403)
        self.assertEqual(status_as(port, "2001:db8:beef:ffff::9"), 403)
        self.assertEqual(status_as(port, "2001:db8:cafe::1"), 200)
        self.cs.cscli("decisions", "delete", "--range", "2001:db8:beef::/48")
        wait_status(port, "2001:db8:beef::1", 200)

    def test_lapi_down_keeps_the_set_and_a_new_decision_applies_when_it_is_back(self):
        port = self.srv.port
        self.cs.cscli("decisions", "add", "--ip", "203.0.113.5", "--duration", "1h")
        wait_status(port, "203.0.113.5", 403)
        failed_before = self.metric('wraith_crowdsec_pulls_total{result="failed"}')
        log_before = len(self.srv.read(self.srv.error_log))
        self.cs.stop()
        # Several failed pulls (backoff 0.5 s, then the 1 s interval) ...
        wait_for(lambda: self.metric('wraith_crowdsec_pulls_total{result="failed"}')
                 >= failed_before + 3, timeout=15 * harness.TIME_SCALE, what="failed pulls")
        # ... one log line for the change of state, and the decisions still in force.
        log = self.srv.read(self.srv.error_log)[log_before:]
        self.assertEqual(log.count("crowdsec: cannot pull decisions from the Local API"), 1, log)
        self.assertIn("the last known decisions stay in force", log)
        self.assertEqual(status_as(port, "203.0.113.5"), 403)
        self.assertEqual(self.metric("wraith_crowdsec_lapi_up"), 0)
        # Back up: the next pull (at most one interval later, backoff being capped at it) brings
        # what changed meanwhile (cscli adds through the Local API, so after it is back).
        self.cs.start()
        self.cs.cscli("decisions", "add", "--ip", "203.0.113.6", "--duration", "1h")
        added = time.monotonic()
        wait_status(port, "203.0.113.6", 403)
        self.assertLess(time.monotonic() - added, WITHIN)
        self.assertEqual(status_as(port, "203.0.113.5"), 403)
        self.assertEqual(self.metric("wraith_crowdsec_lapi_up"), 1)
        log = self.srv.read(self.srv.error_log)[log_before:]
        self.assertEqual(log.count("crowdsec: pulled the decisions of the Local API"), 1, log)
        self.cs.cscli("decisions", "delete", "--ip", "203.0.113.5")
        self.cs.cscli("decisions", "delete", "--ip", "203.0.113.6")
        wait_status(port, "203.0.113.6", 200)

    def test_decisions_survive_reload_with_the_lapi_down(self):
        port = self.srv.port
        self.cs.cscli("decisions", "add", "--ip", "203.0.113.77", "--duration", "1h")
        wait_status(port, "203.0.113.77", 403)
        self.cs.stop()  # the new generation cannot pull: what it enforces came through the zone
        old = set(self.srv.worker_pids())
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_workers(2, timeout=20 * harness.TIME_SCALE, exclude=old)
        self.assertEqual(status_as(port, "203.0.113.77"), 403)
        self.assertEqual(status_as(port, "203.0.113.78"), 200)
        self.cs.start()
        self.cs.cscli("decisions", "delete", "--ip", "203.0.113.77")
        wait_status(port, "203.0.113.77", 200)

    def test_a_killed_puller_is_replaced_and_resumes(self):
        port = self.srv.port
        old = self.srv.worker_pids()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        self.srv.wait_workers(2, timeout=20 * harness.TIME_SCALE, exclude=old)
        self.cs.cscli("decisions", "add", "--ip", "203.0.113.90", "--duration", "1h")
        wait_status(port, "203.0.113.90", 403)
        self.assertEqual(status_as(port, "203.0.113.91"), 200)
        self.cs.cscli("decisions", "delete", "--ip", "203.0.113.90")
        wait_status(port, "203.0.113.90", 200)

    def test_a_refused_api_key_is_logged_once_and_the_fallback_applies(self):
        bad = os.path.join(self.tmp, "bad.key")
        write_file(bad, "not-a-key\n")
        srv = self.server(crowdsec_table(self.cs.url, bad, 'fallback = "block"') + SITE,
                          server={"real_ip":
                                  '{ header = "X-Forwarded-For", trusted = ["127.0.0.1"] }'},
                          start=False)
        srv.start(wait=False)
        # Every client is refused (fallback = "block" before any pull succeeded) ...
        wait_for(lambda: _status_or_none(srv.port, "192.0.2.1") == 403, timeout=10,
                 what="the fallback's 403")

        def refused_line():
            log = srv.read(srv.error_log)
            return log if "refused the bouncer's API key" in log else None
        log = wait_for(refused_line, timeout=WITHIN, what="the refused-key line")
        self.assertIn("(it answered 403): check api_key_file", log)
        self.assertIn('fallback = "block" refuses every client', log)
        wait_for(lambda: _metric(srv.port, 'wraith_crowdsec_pulls_total{result="failed"}') >= 3,
                 timeout=15 * harness.TIME_SCALE, what="more refused pulls")
        self.assertEqual(srv.read(srv.error_log).count("refused the bouncer's API key"), 1)
        self.assertEqual(status_as(srv.port, "192.0.2.1"), 403)

    def test_ban_at_accept_closes_the_connection_before_any_response(self):
        # A second server is a second bouncer: the Local API tracks each key's last pull, so two
        # servers sharing a key would take each other's changes (docs: one key per server).
        key = os.path.join(self.tmp, "accept.key")
        write_file(key, self.cs.add_bouncer("wraith-accept") + "\n")
        srv = self.server(crowdsec_table(self.cs.url, key, "ban_at_accept = true") + SITE)
        self.cs.cscli("decisions", "add", "--ip", "127.0.0.2", "--duration", "1h")
        try:
            def closed_at_once():
                with socket.socket() as s:
                    s.settimeout(5)
                    s.bind(("127.0.0.2", 0))
                    s.connect(("127.0.0.1", srv.port))
                    try:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        data = s.recv(4096)
                    except (ConnectionResetError, BrokenPipeError):
                        data = b""
                    return data == b""
            wait_for(closed_at_once, timeout=WITHIN, interval=0.2, what="a closed connection")
            self.assertEqual(http_get(srv.port, "/", timeout=10)[0], 200)  # from 127.0.0.1
            wait_for(lambda: _metric(srv.port, 'wraith_crowdsec_blocked_total{phase="accept"}')
                     >= 1, timeout=5, what="the accept counter")
        finally:
            self.cs.cscli("decisions", "delete", "--ip", "127.0.0.2")


def _status_or_none(port, client):
    try:
        return status_as(port, client)
    except OSError:
        return None


def _metric(port, name):
    try:
        status, _, body = http_get(port, "/metrics", timeout=10)
    except OSError:
        return 0
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[-1])
    return 0


if __name__ == "__main__":
    harness.main()
