"""Upstream servers by host name: resolved by each worker with c-ares from the upstream's
`resolver` (a small DNS server run here on loopback), never blocking the loop; a change of
the DNS answer reaches the proxy after its TTL without a reload; IPv6 is tried first and a
refused IPv6 address falls back to IPv4 at once (Happy Eyeballs); a name that does not
resolve is a 502 with a log line."""

import socket
import struct
import threading
import time
import unittest

import harness
from harness import WraithTestCase, Wraith, wait_for
from test_proxy import Backend
from test_proxy_balance import get
from test_proxy_metrics import scrape
from test_metrics import parse, value


class DnsServer:
    """Answers A/AAAA from `self.records` {name: [(type, ip)]} with TTL 1; NXDOMAIN else."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.records = {}
        self.queries = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            self.queries += 1
            off, labels = 12, []
            while q[off]:
                labels.append(q[off + 1:off + 1 + q[off]].decode())
                off += q[off] + 1
            qtype = struct.unpack(">H", q[off + 1:off + 3])[0]
            name = ".".join(labels).lower()
            answers = [ip for t, ip in self.records.get(name, []) if t == qtype]
            flags = 0x8180 if name in self.records else 0x8183
            r = q[:2] + struct.pack(">HHHHH", flags, 1, len(answers), 0, 0) + q[12:off + 5]
            for ip in answers:
                data = socket.inet_pton(socket.AF_INET6 if qtype == 28 else socket.AF_INET, ip)
                r += struct.pack(">HHHIH", 0xc00c, qtype, 1, 1, len(data)) + data
            self.sock.sendto(r, peer)

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


class HostNameTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer()
        cls.a = Backend("a")
        cls.b = Backend("b")

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        cls.a.stop()
        cls.b.stop()

    def server(self, servers):
        sites = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                 '  proxy = { upstream = "app" }\n')
        srv = Wraith(f'[upstream.app]\nresolver = "127.0.0.1:{self.dns.port}"\n'
                     f'servers = [{servers}]\n\n' + sites, workers=1)
        self.servers.append(srv)
        srv.start()
        return srv

    def test_a_name_resolves_and_follows_dns_changes_without_reload(self):
        self.dns.records["app.test"] = [(1, "127.0.0.1")]
        # Two names, each pointing at one backend's port: switch what app.test's port holds by
        # moving the name between the backends' ports is not possible (the port is in the
        # config), so the name moves between loopback addresses of one port instead: the
        # backend `a` listens on 127.0.0.1 only; "gone" has no address that answers.
        srv = self.server(f'"app.test:{self.a.port}"')
        self.assertEqual(get(srv.port, "/name"), (200, "a"))
        queries = self.dns.queries
        # The answer changes to an address where nothing listens (::1 on a's port, v4 only).
        self.dns.records["app.test"] = [(28, "::1")]
        # Within about a TTL (1 s) the new answer is used: connections are refused now.
        wait_for(lambda: get(srv.port, "/name")[0] == 502, timeout=10,
                 what="the DNS change to reach the proxy")
        self.assertGreater(self.dns.queries, queries)
        self.dns.records["app.test"] = [(1, "127.0.0.1")]
        wait_for(lambda: get(srv.port, "/name") == (200, "a"), timeout=10,
                 what="the DNS change back")

    def test_ipv6_first_then_ipv4_at_once(self):
        # ::1 on b's port refuses (b listens on IPv4 only): Happy Eyeballs goes on to
        # 127.0.0.1 right away, no timeout waited for.
        self.dns.records["both.test"] = [(28, "::1"), (1, "127.0.0.1")]
        srv = self.server(f'"both.test:{self.b.port}"')
        start = time.monotonic()
        self.assertEqual(get(srv.port, "/name"), (200, "b"))
        self.assertLess(time.monotonic() - start, 2.0)
        for _ in range(5):
            self.assertEqual(get(srv.port, "/name"), (200, "b"))

    def test_unknown_name_is_a_502_with_a_reason(self):
        srv = self.server('"nowhere.test:80"')
        status, _ = get(srv.port, "/name")
        self.assertEqual(status, 502)
        wait_for(lambda: "cannot resolve nowhere.test:80" in srv.read(srv.error_log),
                 what="the resolution failure in the error log")

    def test_lookups_and_cache_uses_are_counted(self):
        self.dns.records["count.test"] = [(1, "127.0.0.1")]
        sites = ('[[site]]\nhosts = ["*"]\n'
                 '  [[site.route]]\n  path = "=/metrics"\n  metrics = {}\n'
                 '  [[site.route]]\n  path = "/gone"\n  proxy = { upstream = "gone" }\n'
                 '  [[site.route]]\n  path = "/"\n  proxy = { upstream = "app" }\n')
        resolver = f'resolver = "127.0.0.1:{self.dns.port}"\n'
        srv = Wraith(f'[upstream.app]\n{resolver}servers = ["count.test:{self.a.port}"]\n\n'
                     f'[upstream.gone]\n{resolver}servers = ["nowhere.test:80"]\n\n' + sites,
                     workers=1)
        self.servers.append(srv)
        srv.start()
        for _ in range(3):
            self.assertEqual(get(srv.port, "/name"), (200, "a"))
        self.assertEqual(get(srv.port, "/gone")[0], 502)
        m = parse(scrape(srv))

        def uses(upstream, result):
            return value(m, "wraith_upstream_dns_cache_lookups_total", upstream=upstream,
                         result=result)

        def queries(upstream, result):
            return value(m, "wraith_upstream_dns_queries_total", upstream=upstream,
                         result=result)

        # The first request waited for the answer; later ones that needed a new connection
        # used it (the backend may keep the first connection alive: then nothing is looked up).
        self.assertEqual(uses("app", "miss"), 1)
        self.assertGreaterEqual(queries("app", "ok"), 1)
        self.assertEqual(queries("app", "not_found"), 0)
        self.assertGreaterEqual(uses("gone", "miss"), 1)
        self.assertGreaterEqual(queries("gone", "not_found"), 1)
        self.assertEqual(queries("gone", "ok"), 0)
        # Every result has a series from the start (rates need the zeros).
        for result in ("ok", "not_found", "timeout", "error"):
            self.assertIn(("wraith_upstream_dns_queries_total",
                           frozenset({"upstream": "app", "result": result}.items())), m)


if __name__ == "__main__":
    harness.main()
