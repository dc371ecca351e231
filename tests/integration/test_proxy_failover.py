"""Failover and the rest of the bad-upstream cases, with real backends: a backend killed in the
middle of a load of GETs (none fails) and its recovery when it comes back, the retry budget,
distribution of every balancing method over many requests, weights and `down` changed by a
reload, an over-long response head, and a response that stops in the middle."""

import http.client
import socket
import threading
import time
import unittest
from collections import Counter

import harness
from harness import WraithTestCase, Wraith, wait_for
from test_proxy_balance import dead_port, get
from test_proxy_health import Backend


SITE = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
        '  proxy = { upstream = "app" }\n')
# For backends that never answer whole: the harness's readiness probe (GET /) stays local.
SITE_X = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "=/"\n'
          '  respond = { status = 200 }\n  [[site.route]]\n  path = "/"\n'
          '  proxy = { upstream = "app" }\n')


class RawBackend:
    """Answers every connection with fixed bytes, then holds it open until stopped."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                conn.recv(65536)
                conn.sendall(self.answer)
            except OSError:
                pass

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class FailoverTest(WraithTestCase):
    def setUp(self):
        super().setUp()
        self.backends = []

    def tearDown(self):
        for b in self.backends:
            b.stop()
        super().tearDown()

    def backend(self, name, port=0):
        b = Backend(name, port)
        self.backends.append(b)
        return b

    def server(self, upstream, workers=2, sites=SITE):
        srv = Wraith(upstream + "\n" + sites, workers=workers)
        self.servers.append(srv)
        srv.start()
        return srv

    def test_a_backend_killed_under_load_fails_no_get_and_recovers(self):
        a, b, c = self.backend("a"), self.backend("b"), self.backend("c")
        b_port = b.port
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}", '
                          f'"{c.addr()}"]\nmax_fails = 1\nfail_timeout = "1s"\nretries = 2\n'
                          'retry_budget = 100\n')
        results = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def load():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
            while not stop.is_set():
                try:
                    conn.request("GET", "/name")
                    r = conn.getresponse()
                    body = r.read().decode()
                    with lock:
                        results[body if r.status == 200 else r.status] += 1
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        results[type(e).__name__] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
            conn.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        b.stop()  # its listener and every kept-alive connection
        self.backends.remove(b)
        killed_at = sum(results.values())
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        print(f"\nrequests during the kill: {dict(results)}", flush=True)
        self.assertEqual(set(results) - {"a", "b", "c"}, set(), results)
        self.assertGreater(sum(results.values()), killed_at + 20)  # load went on after it
        log = srv.error_log_text()
        self.assertIn(f"server {b.addr()} taken out of service", log)

        # It comes back on the same port: after its ejection it gets requests again.
        self.backend("b", b_port)
        wait_for(lambda: "b" in Counter(get(srv.port, "/name")[1] for _ in range(6)),
                 timeout=15, what="b serving again")

    def test_the_retry_budget_caps_retries(self):
        live = self.backend("live")
        dead = dead_port()
        up = (f'[upstream.app]\nservers = ["127.0.0.1:{dead}", "{live.addr()}"]\n'
              'max_fails = 0\nretries = 1\n')
        # Budget 0%: only the 3 retries every window allows; the dead server's other turns
        # fail with 502 instead of doubling the load on the live one.
        srv = self.server(up + "retry_budget = 0\n", workers=1)
        statuses = Counter(get(srv.port, "/name")[0] for _ in range(20))
        retried = srv.error_log_text().count("retrying on")
        self.assertEqual(retried, 3, srv.error_log_text())
        self.assertGreaterEqual(statuses[502], 6, statuses)
        self.assertEqual(statuses[200] + statuses[502], 20)
        # Budget 100%: every failure is retried.
        srv = self.server(up + "retry_budget = 100\n", workers=1)
        statuses = Counter(get(srv.port, "/name")[0] for _ in range(20))
        self.assertEqual(statuses, Counter({200: 20}))

    def test_every_balancing_method_spreads_requests(self):
        a, b, c = self.backend("a"), self.backend("b"), self.backend("c")
        servers = (f'servers = [{{ address = "{a.addr()}", weight = 2 }}, "{b.addr()}", '
                   f'"{c.addr()}"]\n')
        for method, extra in [("round_robin", ""), ("least_conn", ""), ("random_two", ""),
                              ("hash", 'hash_key = "header:x-user"\n'),
                              ("hash", 'hash_key = "header:x-user"\nhash_method = "maglev"\n')]:
            with self.subTest(method=method, extra=extra):
                srv = self.server(f'[upstream.app]\n{servers}balance = "{method}"\n{extra}',
                                  workers=1)
                got = Counter(get(srv.port, "/name", headers={"x-user": f"user{i}"})[1]
                              for i in range(400))
                self.assertEqual(sum(got.values()), 400)
                self.assertEqual(set(got), {"a", "b", "c"}, got)
                if method == "round_robin":
                    self.assertEqual(got, Counter({"a": 200, "b": 100, "c": 100}))
                else:
                    # Weight 2 gets the most; nobody starves (sequential requests: least_conn
                    # and random_two see idle servers and follow the weights).
                    self.assertGreater(got["a"], got["b"], got)
                    self.assertGreater(got["a"], got["c"], got)
                    self.assertGreater(min(got.values()), 50, got)
                srv.stop()

    def test_weights_and_down_change_on_reload(self):
        a, b = self.backend("a"), self.backend("b")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n',
                          workers=1)
        self.assertEqual(Counter(get(srv.port, "/name")[1] for _ in range(20)),
                         Counter({"a": 10, "b": 10}))
        for servers, want in [
                (f'[{{ address = "{a.addr()}", weight = 3 }}, "{b.addr()}"]', {"a": 15, "b": 5}),
                (f'["{a.addr()}", {{ address = "{b.addr()}", down = true }}]', {"a": 20}),
                (f'[{{ address = "{a.addr()}", backup = true }}, "{b.addr()}"]', {"b": 20})]:
            srv.write_config(f"[upstream.app]\nservers = {servers}\n" + SITE)
            srv.reload()
            self.assertEqual(Counter(get(srv.port, "/name")[1] for _ in range(20)),
                             Counter(want), servers)

    def test_fail_statuses_are_retried_elsewhere_and_counted(self):
        a, b = self.backend("a"), self.backend("b")
        a.health_body, b.health_body = b"a-ok", b"b-broken"
        b.health_status = 503
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n'
                          'fail_statuses = [503]\nmax_fails = 0\nretry_budget = 100\n'
                          f'[upstream.lone]\nservers = ["{b.addr()}"]\nfail_statuses = [503]\n',
                          workers=1, sites=SITE + '  [[site.route]]\n  path = "/lone/"\n'
                          '  proxy = { upstream = "lone", strip_prefix = "/lone" }\n')
        got = Counter(get(srv.port, "/healthz") for _ in range(10))
        self.assertEqual(got, Counter({(200, "a-ok"): 10}))
        self.assertIn(f"upstream {b.addr()} answered 503; retrying on {a.addr()}",
                      srv.error_log_text())
        # Nowhere else to go: the upstream's own answer is passed on, not an error page.
        self.assertEqual(get(srv.port, "/lone/healthz"), (503, "b-broken"))

    def test_keepalive_requests_bounds_a_connections_requests(self):
        a = self.backend("a")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}"]\nkeepalive_requests = 5\n',
                          workers=1)
        before = len(a.open)
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        for _ in range(20):
            c.request("GET", "/name")
            self.assertEqual(c.getresponse().read(), b"a")
        c.close()
        self.assertEqual(len(a.open) - before, 4)  # 20 requests, 5 per upstream connection

    def test_over_long_response_head_is_502(self):
        raw = RawBackend(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"v" * 40000 + b"\r\n\r\nok")
        self.backends.append(raw)
        srv = self.server(f'[upstream.app]\nservers = ["127.0.0.1:{raw.port}"]\n', workers=1,
                          sites=SITE_X)
        self.assertEqual(get(srv.port, "/x")[0], 502)
        self.assertIn("sent a response head over 32 KiB", srv.error_log_text())
        self.assertTrue(srv.alive())

    def test_a_response_that_stops_mid_body_is_cut_at_read_timeout(self):
        raw = RawBackend(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        self.backends.append(raw)
        srv = self.server(f'[upstream.app]\nservers = ["127.0.0.1:{raw.port}"]\n'
                          'read_timeout = "1s"\n', workers=1, sites=SITE_X)
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        c.request("GET", "/x")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        self.assertLess(time.monotonic() - t0, 5)
        c.close()
        wait_for(lambda: "timed out in the middle of the body" in srv.error_log_text(),
                 what="the log line")
        # No connection left behind towards the backend once the client is gone.
        self.assertTrue(srv.alive())


if __name__ == "__main__":
    harness.main()
