"""Upstream balancing and health through a real proxy: weights, `down` and `backup` servers,
least_conn, consistent hashing on a header or cookie, max_conns, passive health (a failing
server is taken out for every worker, requests retried elsewhere when they are idempotent,
never POSTs), the retry budget, and a fast 503 when no server is left."""

import http.client
import os
import socket
import threading
import time
import unittest
from collections import Counter

import harness
from harness import WraithTestCase, Wraith, wait_for
from test_proxy import Backend


_held = []


def dead_port():
    """A loopback port nothing listens on, never the same twice in one run (the socket stays
    bound, not listening, so connections to it are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def get(port, path, method="GET", headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


class BalanceTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [Backend(name) for name in ("a", "b", "c")]

    @classmethod
    def tearDownClass(cls):
        for b in cls.backends:
            b.stop()

    def server(self, upstream, workers=1):
        sites = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                 '  proxy = { upstream = "app" }\n')
        srv = Wraith(upstream + "\n" + sites, workers=workers)
        self.servers.append(srv)
        srv.start()
        return srv

    def addr(self, i):
        return f"127.0.0.1:{self.backends[i].port}"

    def names(self, srv, n, **kw):
        return Counter(get(srv.port, "/name", **kw)[1] for _ in range(n))

    def test_weights_down_and_backup(self):
        srv = self.server(f'[upstream.app]\nservers = [{{ address = "{self.addr(0)}", weight = 3 }},'
                          f' "{self.addr(1)}", {{ address = "{self.addr(2)}", down = true }}]\n')
        self.assertEqual(self.names(srv, 40), Counter({"a": 30, "b": 10}))
        srv = self.server(f'[upstream.app]\nservers = ["127.0.0.1:{dead_port()}", '
                          f'{{ address = "{self.addr(2)}", backup = true }}]\n')
        # The only primary refuses: requests are retried on the backup, then the primary is out
        # of service and the backup takes everything.
        self.assertEqual(self.names(srv, 10), Counter({"c": 10}))

    def test_least_conn_prefers_the_idle_server(self):
        srv = self.server(f'[upstream.app]\nbalance = "least_conn"\n'
                          f'servers = ["{self.addr(0)}", "{self.addr(1)}"]\n')
        # Hold a slow response (0.5 s) on one server; meanwhile every request goes to the
        # other, the one with no request in flight.
        total = lambda: sum(b.connections for b in self.backends)
        before = total()
        first = {}
        t = threading.Thread(target=lambda: first.update(r=get(srv.port, "/slow")))
        t.start()
        wait_for(lambda: total() > before, what="the slow request to reach a backend")
        got = self.names(srv, 6)
        t.join()
        self.assertEqual(first["r"][0], 200)
        self.assertEqual(len(got), 1, got)  # all on the server without the slow request

    def test_hash_on_header_and_cookie_is_sticky(self):
        for key, header in (("header:X-User", lambda v: {"X-User": v}),
                            ("cookie:session", lambda v: {"Cookie": f"a=1; session={v}"})):
            for method in ("ring", "maglev"):
                srv = self.server(f'[upstream.app]\nbalance = "hash"\nhash_key = "{key}"\n'
                                  f'hash_method = "{method}"\n'
                                  f'servers = ["{self.addr(0)}", "{self.addr(1)}", '
                                  f'"{self.addr(2)}"]\n')
                seen = {}
                for user in range(30):
                    names = self.names(srv, 3, headers=header(f"user{user}"))
                    self.assertEqual(len(names), 1, (key, method, user, names))
                    seen[user] = next(iter(names))
                self.assertGreater(len(set(seen.values())), 1, (key, method))
                srv.stop()

    def test_max_conns_sends_the_next_request_elsewhere(self):
        srv = self.server(f'[upstream.app]\nservers = [{{ address = "{self.addr(0)}", '
                          f'max_conns = 1 }}, {{ address = "{self.addr(1)}", weight = 1 }}]\n'
                          'keepalive = 0\n')
        results = []
        threads = [threading.Thread(target=lambda: results.append(get(srv.port, "/slow")))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([s for s, _ in results], [200, 200])

    def test_passive_health_retries_idempotent_requests_and_ejects(self):
        dead = dead_port()
        srv = self.server(f'[upstream.app]\nmax_fails = 1\nfail_timeout = "30s"\n'
                          f'servers = ["127.0.0.1:{dead}", "{self.addr(0)}"]\n', workers=2)
        # A POST is not replayed: if it meets the dead server it gets 502.
        statuses = Counter(get(srv.port, "/post", method="POST", body=b"x")[0] for _ in range(4))
        self.assertTrue(set(statuses) <= {200, 502}, statuses)
        # GETs are retried on the live server; once the dead one is out (for every worker),
        # nothing reaches it.
        self.assertEqual(self.names(srv, 20), Counter({"a": 20}))
        log = srv.read(srv.error_log)
        self.assertIn(f"server 127.0.0.1:{dead} taken out of service", log)

    def test_no_server_left_is_a_fast_503(self):
        ports = [dead_port(), dead_port()]
        srv = self.server(f'[upstream.app]\nmax_fails = 1\nfail_timeout = "30s"\nretries = 0\n'
                          f'servers = ["127.0.0.1:{ports[0]}", "127.0.0.1:{ports[1]}"]\n')
        # (The harness's readiness probe is already one request through the proxy.) Each
        # server fails once with 502 and is taken out; then none is left.
        statuses = [get(srv.port, "/name")[0] for _ in range(3)]
        self.assertEqual(statuses[-1], 503, statuses)
        self.assertTrue(set(statuses) <= {502, 503}, statuses)
        log = srv.read(srv.error_log)
        for port in ports:
            self.assertIn(f"server 127.0.0.1:{port} taken out of service", log)
        start = time.monotonic()
        status, body = get(srv.port, "/name")
        self.assertEqual(status, 503)
        self.assertLess(time.monotonic() - start, 1.0)  # answered at once, nothing waited for
        self.assertIn('no server of upstream "app" is available', srv.read(srv.error_log))

if __name__ == "__main__":
    harness.main()
