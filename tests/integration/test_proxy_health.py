"""Active health checks ([upstream.NAME.health_check]: HTTP status and body, TCP), shared by
every worker and run by one of them; sticky sessions by cookie; Unix-socket upstreams; the
first-byte and total timeouts. Backends are real Python HTTP servers on 127.0.0.1 or on a
Unix socket in the test's temp dir."""

import http.client
import os
import socket
import socketserver
import tempfile
import threading
import time
import unittest
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import WraithTestCase, Wraith, wait_for


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.seen.append((self.path, self.headers.get("User-Agent", ""),
                             self.headers.get("Host", ""), time.monotonic()))
        if self.path == "/healthz":
            return self.reply(srv.health_status, srv.health_body)
        if self.path == "/slowhead":
            time.sleep(2)
            return self.reply(200, b"late")
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
            return
        if self.path == "/host":
            return self.reply(200, self.headers.get("Host", "").encode())
        return self.reply(200, srv.name.encode())

    do_HEAD = do_GET


class Tracking:
    """Remembers accepted connections, so stop() also ends kept-alive ones (a backend that
    stopped must not go on answering on connections the proxy pooled)."""

    def process_request(self, request, client_address):
        with self.lock:
            self.open.append(request)
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client (the proxy) that went away mid-answer is part of these tests

    def stop(self):
        self.shutdown()
        self.server_close()
        with self.lock:
            for conn in self.open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Backend(Tracking, ThreadingHTTPServer):
    """A test backend whose /healthz answer can be changed, and that records every request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, port=0):
        self.name = name
        self.lock = threading.Lock()
        self.open = []
        self.seen = []
        self.health_status = 200
        self.health_body = b"ok"
        super().__init__(("127.0.0.1", port), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def health_checks(self, since=0.0):
        with self.lock:
            return [s for s in self.seen if s[1] == "wraith-health-check" and s[3] >= since]


class UnixBackend(Tracking, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, name, path):
        self.name = name
        self.lock = threading.Lock()
        self.open = []
        self.seen = []
        self.health_status = 200
        self.health_body = b"ok"
        super().__init__(path, Handler)
        os.chmod(path, 0o666)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) pair


def get(port, path="/", headers=None, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace"), r
    finally:
        c.close()


SITE = ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
        '  proxy = { upstream = "app" }\n')


class HealthTest(WraithTestCase):
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

    def server(self, upstream, workers=1, sites=SITE):
        srv = Wraith(upstream + "\n" + sites, workers=workers,
                     server={"log_level": '"info"'})
        self.servers.append(srv)
        srv.start()
        return srv

    def names(self, srv, n, headers=None):
        return Counter(get(srv.port, "/name", headers)[1] for _ in range(n))

    def test_http_check_takes_a_server_out_and_brings_it_back(self):
        a, b = self.backend("a"), self.backend("b")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n'
                          '[upstream.app.health_check]\npath = "/healthz"\n'
                          'interval = "200ms"\ntimeout = "1s"\nfall = 2\nrise = 3\n')
        wait_for(lambda: len(b.health_checks()) >= 1, what="a first health check")
        self.assertEqual(self.names(srv, 10), Counter({"a": 5, "b": 5}))
        check = b.health_checks()[0]
        self.assertEqual(check[0], "/healthz")
        self.assertEqual(check[2], b.addr())  # Host: the server's address by default

        b.health_status = 503
        wait_for(lambda: "failed its health check 2 time(s)" in srv.error_log_text(),
                 what="the out-of-service log line")
        log = srv.error_log_text()
        self.assertIn(f'upstream "app" server {b.addr()} failed its health check', log)
        self.assertIn("status 503", log)
        self.assertEqual(self.names(srv, 10), Counter({"a": 10}))

        b.health_status = 200
        since = time.monotonic()
        wait_for(lambda: "back in service" in srv.error_log_text(), what="back in service")
        # rise = 3: three passing checks in a row before it came back.
        self.assertGreaterEqual(len(b.health_checks(since)), 3)
        self.assertEqual(self.names(srv, 10), Counter({"a": 5, "b": 5}))
        self.assertTrue(srv.alive())

    def test_status_ranges_body_match_and_host(self):
        a, b = self.backend("a"), self.backend("b")
        b.health_body = b"starting"
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n'
                          '[upstream.app.health_check]\npath = "/healthz"\n'
                          'host = "health.internal"\nstatus = [204, "200-201"]\n'
                          'body = "ok"\ninterval = "200ms"\nfall = 1\nrise = 1\n')
        wait_for(lambda: "failed its health check" in srv.error_log_text(),
                 what="b out of service")
        self.assertIn('body does not contain "ok"', srv.error_log_text())
        self.assertEqual(self.names(srv, 6), Counter({"a": 6}))
        self.assertEqual(b.health_checks()[-1][2], "health.internal")
        b.health_body = b"all ok now"
        wait_for(lambda: "back in service" in srv.error_log_text(), what="b back")
        self.assertEqual(self.names(srv, 6), Counter({"a": 3, "b": 3}))
        # 202 is not in [204, 200-201].
        a.health_status = 202
        wait_for(lambda: f"server {a.addr()} failed its health check" in srv.error_log_text(),
                 what="a out for status 202")
        self.assertEqual(self.names(srv, 6), Counter({"b": 6}))

    def test_tcp_check_and_all_servers_down(self):
        a = self.backend("a")
        b = self.backend("b")
        b_port = b.port
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "127.0.0.1:{b_port}"]\n'
                          '[upstream.app.health_check]\ntype = "tcp"\n'
                          'interval = "200ms"\nfall = 1\nrise = 1\n')
        self.assertEqual(self.names(srv, 4), Counter({"a": 2, "b": 2}))
        self.assertEqual(b.health_checks(), [])  # a TCP check sends no request
        b.stop()
        self.backends.remove(b)
        wait_for(lambda: "failed its health check" in srv.error_log_text(), what="b out")
        self.assertRegex(srv.error_log_text(), r"connect to .*(refused|reset)")
        self.assertEqual(self.names(srv, 6), Counter({"a": 6}))
        # Every server down: a fast 503 that names the upstream, not a hang.
        a.stop()
        self.backends.remove(a)
        wait_for(lambda: srv.error_log_text().count("failed its health check") >= 2,
                 what="a out")
        t0 = time.monotonic()
        status, body, _ = get(srv.port, "/name")
        self.assertEqual(status, 503)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertIn('no server of upstream "app" is available', srv.error_log_text())
        # The same port serves again: back without a reload.
        self.backend("b2", b_port)
        wait_for(lambda: "back in service" in srv.error_log_text(), what="b back")
        self.assertEqual(get(srv.port, "/name")[1], "b2")
        self.assertTrue(srv.alive())

    def test_one_worker_checks_and_all_workers_obey(self):
        a, b = self.backend("a"), self.backend("b")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n'
                          '[upstream.app.health_check]\npath = "/healthz"\n'
                          'interval = "250ms"\nfall = 1\nrise = 1\n', workers=4)
        wait_for(lambda: len(b.health_checks()) >= 1, what="a first health check")
        since = time.monotonic()
        time.sleep(2.5)
        n = len(b.health_checks(since))
        # One checker: about 10 checks in 2.5 s; four would make about 40.
        self.assertGreaterEqual(n, 4)
        self.assertLessEqual(n, 14)
        b.health_status = 500
        wait_for(lambda: "failed its health check" in srv.error_log_text(), what="b out")
        # Every worker sees the verdict: many connections, spread over the workers.
        got = Counter()
        for _ in range(40):
            got[get(srv.port, "/name")[1]] += 1
        self.assertEqual(got, Counter({"a": 40}))

    def test_verdict_survives_a_reload_and_a_removed_check_stops_counting(self):
        a, b = self.backend("a"), self.backend("b")
        up = (f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}"]\n'
              '[upstream.app.health_check]\npath = "/healthz"\ninterval = "300ms"\n'
              'fall = 1\nrise = 2\n')
        srv = self.server(up)
        b.health_status = 500
        wait_for(lambda: "failed its health check" in srv.error_log_text(), what="b out")
        srv.reload()
        # The new generation continues from the shared verdict: no request reaches b.
        self.assertEqual(self.names(srv, 10), Counter({"a": 10}))
        self.assertNotIn("back in service", srv.error_log_text())
        # Without the check, the stale "down" stops counting (a few missed rounds later).
        srv.write_config(up.split("[upstream.app.health_check]")[0] + "\n" + SITE)
        srv.reload()
        wait_for(lambda: "b" in self.names(srv, 4), timeout=10, what="b used again")

    def test_sticky_cookie(self):
        a, b, c = self.backend("a"), self.backend("b"), self.backend("c")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}", "{b.addr()}", '
                          f'"{c.addr()}"]\n'
                          'sticky = { cookie = "srv", max_age = "1h" }\n')
        status, first, r = get(srv.port, "/name")
        cookie = r.getheader("Set-Cookie")
        self.assertRegex(cookie, r"^srv=[0-9a-f]{16}; Path=/; Max-Age=3600; HttpOnly; "
                                 r"SameSite=Lax$")
        value = cookie.split(";")[0]
        self.assertNotIn(str(a.port), value)  # the cookie does not reveal the address
        for _ in range(10):
            status, name, r = get(srv.port, "/name", {"Cookie": f"x=1; {value}; y=2"})
            self.assertEqual((status, name), (200, first))
            self.assertIsNone(r.getheader("Set-Cookie"))  # already right: not set again
        # A cookie naming no server: balanced, and told the server it got.
        status, name, r = get(srv.port, "/name", {"Cookie": "srv=0123456789abcdef"})
        self.assertEqual(status, 200)
        self.assertIsNotNone(r.getheader("Set-Cookie"))
        # Its server gone: the next server, and a new cookie.
        owner = {"a": a, "b": b, "c": c}[first]
        owner.stop()
        self.backends.remove(owner)
        status, name, r = get(srv.port, "/name", {"Cookie": value})
        self.assertEqual(status, 200)
        self.assertNotEqual(name, first)
        self.assertNotEqual(r.getheader("Set-Cookie").split(";")[0], value)

    def test_unix_socket_upstreams(self):
        d = tempfile.mkdtemp(prefix="wraith-unix-")
        os.chmod(d, 0o755)
        path = os.path.join(d, "app.sock")
        u = UnixBackend("unix", path)
        try:
            srv = self.server(f'[upstream.app]\nservers = ["unix:{path}"]\n'
                              '[upstream.app.health_check]\npath = "/healthz"\n'
                              'interval = "200ms"\n',
                              sites=SITE + '  [[site.route]]\n  path = "/pass/"\n'
                              f'  proxy = {{ pass = "http://unix:{path}:/", '
                              'strip_prefix = "/pass" }\n')
            self.assertEqual(get(srv.port, "/name")[:2], (200, "unix"))
            self.assertEqual(get(srv.port, "/pass/name")[:2], (200, "unix"))
            self.assertEqual(get(srv.port, "/host")[1], "localhost")
            wait_for(lambda: any(s[0] == "/healthz" for s in u.seen), what="a check over unix")
            # Keep-alive works over Unix sockets too.
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            for _ in range(3):
                c.request("GET", "/name")
                self.assertEqual(c.getresponse().read(), b"unix")
            c.close()
        finally:
            u.stop()
            os.unlink(path)
            os.rmdir(d)
        # The socket is gone: 502, and the log names it.
        self.assertEqual(get(srv.port, "/name")[0], 502)
        self.assertIn(f"unix:{path}", srv.error_log_text())

    def test_first_byte_and_total_timeouts(self):
        a = self.backend("a")
        srv = self.server(f'[upstream.app]\nservers = ["{a.addr()}"]\nretries = 0\n'
                          'read_timeout = "10s"\nfirst_byte_timeout = "300ms"\n'
                          '[upstream.total]\nservers = ["' + a.addr() + '"]\n'
                          'read_timeout = "10s"\ntotal_timeout = "1s"\n',
                          sites=SITE + '  [[site.route]]\n  path = "/t/"\n'
                          '  proxy = { upstream = "total", strip_prefix = "/t" }\n')
        t0 = time.monotonic()
        self.assertEqual(get(srv.port, "/slowhead")[0], 504)
        self.assertLess(time.monotonic() - t0, 1.5)
        # The drip sends a byte every 100 ms (read_timeout never fires); total_timeout cuts it.
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        c.request("GET", "/t/drip")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        self.assertLess(time.monotonic() - t0, 3.0)
        c.close()
        wait_for(lambda: "did not finish within total_timeout (1000 ms)" in srv.error_log_text(),
                 what="the total_timeout log line")
        self.assertTrue(srv.alive())

    def test_config_errors(self):
        cases = [
            ('[upstream.app.health_check]\nstatus = "600"\n', "health_check.status"),
            ('[upstream.app.health_check]\npath = "healthz"\n', "health_check.path"),
            ('[upstream.app.health_check]\ntype = "tcp"\nbody = "ok"\n',
             'applies to type = "http"'),
            ('[upstream.app.health_check]\ntype = "udp"\n', "health_check.type"),
            ('[upstream.app.health_check]\nrise = 0\n', "health_check.rise"),
            ('sticky = { path = "/" }\n', "sticky.cookie: required"),
            ('sticky = { cookie = "a b" }\n', "sticky.cookie"),
            ('sticky = { cookie = "s", same_site = "None" }\n', "needs secure = true"),
            ('balance = "hash"\nsticky = { cookie = "s" }\n', "cannot be combined"),
            ('first_byte_timeout = "0s"\n', "first_byte_timeout"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                text = '[upstream.app]\nservers = ["127.0.0.1:9"]\n' + extra + "\n" + SITE
                srv = Wraith(text, workers=1)
                self.servers.append(srv)
                r = harness.run_wraith("check", "-c", srv.conf)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                out = r.stdout + r.stderr
                self.assertIn(message, out)
                self.assertRegex(out, r"wraith\.toml:\d+:\d+")
        for bad in ['"unix:relative.sock"', '"unix:/' + "x" * 120 + '"']:
            srv = Wraith(f'[upstream.app]\nservers = [{bad}]\n' + SITE, workers=1)
            self.servers.append(srv)
            r = harness.run_wraith("check", "-c", srv.conf)
            self.assertEqual(r.returncode, 1)
            self.assertIn("upstream.app.servers", r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
