"""Leak soak under the sanitizers (`make check-system`, build-sanitize/): mixed HTTP/1.1,
HTTP/2 and HTTP/3 load (static and proxied routes, WebSockets over all of them) for
SOAK_SECONDS (default 300) with a reload every SOAK_RELOAD_EVERY seconds (default 20). Every
worker of every generation leaves through a path where LeakSanitizer checks it (they drain
and exit after each reload; the last ones at the final stop), and so does the master. The
soak passes when the clients saw no failure and no process wrote a sanitizer report.

Run: WRAITH_BIN=build-sanitize/wraith WRAITH_SANITIZE=1 python3 tests/system/soak_sanitize.py
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
import test_zero_downtime as zd  # noqa: E402
from harness import wait_for  # noqa: E402

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
RELOAD_EVERY = float(os.environ.get("SOAK_RELOAD_EVERY", "20"))

# The zero-downtime suite's certificate authority and leaf, made once for this module too.
setUpModule = zd.setUpModule
tearDownModule = zd.tearDownModule


class LeakSoak(zd.ZeroDowntimeBase):
    TUNNEL_SECONDS = int(SOAK_SECONDS) + 120  # the WebSockets stay open for the whole soak

    def test_mixed_load_with_reloads_leaks_nothing(self):
        if not harness.SANITIZE:
            self.fail("run against the sanitizer build: WRAITH_SANITIZE=1 "
                      "WRAITH_BIN=build-sanitize/wraith")
        # The first generation keeps the WebSockets for the whole soak: it must not be drained
        # away under them.
        srv = self.start_server(drain_timeout=f"{int(SOAK_SECONDS) + 120}s")
        load = self.start_load(srv)
        sockets = self.open_websockets(srv)
        t0 = time.monotonic()
        reloads = echoes = 0
        while time.monotonic() - t0 < SOAK_SECONDS:
            time.sleep(min(RELOAD_EVERY, max(0.0, SOAK_SECONDS - (time.monotonic() - t0))))
            srv.use(swapped=not srv.swapped)
            r = srv.reload()
            self.assertEqual(r.returncode, 0, f"reload {reloads + 1}: {r.stdout}{r.stderr}")
            reloads += 1
            gen = int(re.search(r"generation (\d+) serving", r.stdout).group(1))
            wait_for(lambda: zd.generation_requests(srv, gen) >= 50, timeout=60,
                     what=f"generation {gen} to serve requests")
            echoes += self.echo_all(sockets, f"after reload {reloads}")
            zd.say(f"{time.monotonic() - t0:.0f} s: reload {reloads}, HTTP/1.1 "
                   f"{load['h1'].total('ok')} ok")
        self.close_websockets(sockets)
        load["h1"].stop()
        for proto in ("h2", "h3"):
            load[proto].stop()
        zd.say(f"soak: {SOAK_SECONDS:.0f} s, {reloads} reloads, {echoes} WebSocket echoes; "
               f"HTTP/1.1 {load['h1'].summary()}; HTTP/2 {load['h2'].summary()}; "
               f"HTTP/3 {load['h3'].summary()}")
        self.assertGreater(reloads, 0)
        self.assertEqual(load["h1"].total("failed"), 0, load["h1"].errors())
        for proto in ("h2", "h3"):
            c = load[proto].counts
            self.assertGreater(c["succeeded"], 0, f"{proto}: nothing succeeded")
            self.assertEqual((c["failed"], c["errored"], c["timeout"]), (0, 0, 0),
                             f"{proto}: {load[proto].summary()} {load[proto].problems}")
        # The final stop: the master drains the last generation; every worker and the master
        # run their leak check on the way out. Reports from any of them fail tearDown.
        r = srv.cli_stop()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNotNone(srv.wait_exit(), "the master did not exit")


if __name__ == "__main__":
    harness.main()
