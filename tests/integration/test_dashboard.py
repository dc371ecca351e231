"""The live dashboard: the `[admin]` listener serves the page (modules/metrics/dashboard.html,
embedded verbatim), /status.json and /metrics, and nothing else; `allow` guards it; the
`dashboard = {}` and `metrics = {}` handlers serve the same on a site route.

Headless Chromium (Debian `chromium`, driven over the DevTools protocol by cdp.py) loads the
page while a thread drives requests: it polls without console errors, its graphs move, an
upstream server's box turns red when its backend is killed, it fits a phone's screen, and it
says "disconnected" while the server is gone and recovers when it is back. Backends are small
Python HTTP servers in subprocesses of their own, killed by pid.

With WRAITH_SAVE_SCREENSHOT set, the load test also saves the page after a minute of load as
docs/dashboard.png (for the README), or as the file it names when it ends in .png. The browser tests are skipped, with a message, only when Chromium is missing."""

import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import cdp
import harness
import tlsutil
from harness import WraithTestCase, free_port, http_request, toml_str, wait_for

PAGE_SOURCE = os.path.join(harness.SOURCE_DIR, "modules", "metrics", "dashboard.html")
SAVE_SCREENSHOT = os.environ.get("WRAITH_SAVE_SCREENSHOT", "")
SCREENSHOT = SAVE_SCREENSHOT if SAVE_SCREENSHOT.endswith(".png") else \
    os.path.join(harness.SOURCE_DIR, "docs", "dashboard.png")
NO_BROWSER = "Chromium is not installed (Debian package `chromium`); run `make deps`"

# A backend: 200 with a short body for every GET; prints its port, then serves until killed.
BACKEND = r'''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in two writes: with Nagle the body waits ~40 ms for the proxy's
    # delayed ACK, and every proxied request would look slow on the latency graph.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"ok\n" if self.path == "/healthz" else b"backend " + self.path.encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
'''


class Backend:
    """A backend process of our own (its own session), ended by pid."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", BACKEND], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.kill()
            raise AssertionError(f"the test backend did not start (printed {line!r})")
        self.port = int(line)
        self.address = f"127.0.0.1:{self.port}"

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


class Load:
    """A thread sending GETs over one kept-alive HTTP/1.1 connection (a new one after any
    failure) to `paths` in turn, at a rate that swells and ebbs so the graphs have a shape."""

    def __init__(self, port, paths):
        self.port = port
        self.paths = paths
        self.sent = 0
        self.statuses = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self):
        conn = None
        i = 0
        while not self._stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.sent += 1
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(0.05)
            self._stop.wait(0.003 * (1.2 + math.sin(time.monotonic() / 3)))
        if conn is not None:
            conn.close()


def get_json(port, path="/status.json"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                timeout=harness.IO_TIMEOUT) as resp:
        return resp.headers, json.loads(resp.read())


def rgb(css):
    """(r, g, b) of a computed CSS color such as "rgb(218, 54, 51)"."""
    m = re.match(r"rgba?\((\d+), (\d+), (\d+)", css or "")
    return tuple(int(x) for x in m.groups()) if m else None


def admin_table(port, extra=""):
    return f'''
[admin]
address = "127.0.0.1:{port}"
metrics = true
dashboard = true
{extra}
'''


# JavaScript run in the page. Upstream boxes for one address: [[state, background], ...].
BOXES_JS = """Array.from(document.querySelectorAll('#upstreams .server'))
  .filter(function (e) { return e.title.indexOf(%s) >= 0; })
  .map(function (e) { return [e.getAttribute('data-state'), getComputedStyle(e).backgroundColor]; })"""
# Pixels of a canvas close to a color: does a series' line show?
PIXELS_JS = """(function () {
  var c = document.getElementById(%s), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  var n = 0;
  for (var i = 0; i < d.length; i += 4)
    if (d[i + 3] > 60 && Math.abs(d[i] - %d) < 24 && Math.abs(d[i + 1] - %d) < 24 &&
        Math.abs(d[i + 2] - %d) < 24) n++;
  return n;
})()"""
HTTP1_BLUE = (0x58, 0xa6, 0xff)   # the HTTP/1 series in "Requests/s by protocol"


class AdminListener(WraithTestCase):
    """One server for the class: the admin listener, a proxy to two backends (`app`, always
    up, and `victim`, killed by one test), a TLS site whose certificate has 10 days left, and
    the dashboard and metrics handlers on site routes. One browser, when there is one."""

    @classmethod
    def setUpClass(cls):
        cls.browser = None
        cls.backends = []
        cls.pki_dir = tempfile.mkdtemp(prefix="wraith-dashboard-")
        os.chmod(cls.pki_dir, 0o755)
        try:
            cls.cert = tlsutil.TestPki(cls.pki_dir).ca("dash-ca").issue(
                "site", ["localhost"], days=10)
            cls.app = Backend()
            cls.backends.append(cls.app)
            cls.victim = Backend()
            cls.backends.append(cls.victim)
            cls.admin_port = free_port()
            sites = admin_table(cls.admin_port) + f'''
[upstream.app]
servers = ["{cls.app.address}"]
[upstream.app.health_check]
path = "/healthz"
interval = "1s"
timeout = "1s"
fall = 1
rise = 1

[upstream.victim]
servers = ["{cls.victim.address}"]
retries = 0
[upstream.victim.health_check]
path = "/healthz"
interval = "1s"
timeout = "1s"
fall = 1
rise = 1

[[site]]
hosts = ["localhost"]
tls = {{ cert = {toml_str(cls.cert.chain)}, key = {toml_str(cls.cert.key)} }}
  [[site.route]]
  path = "/"
  respond = {{ status = 200, body = "tls\\n" }}

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "=/"
  respond = {{ status = 200, body = "hello\\n" }}
  [[site.route]]
  path = "=/fail"
  respond = {{ status = 500, body = "failing on purpose\\n" }}
  [[site.route]]
  path = "/app/"
  proxy = {{ upstream = "app" }}
  [[site.route]]
  path = "/victim/"
  proxy = {{ upstream = "victim" }}
  [[site.route]]
  path = "/dash/"
  dashboard = {{}}
  [[site.route]]
  path = "/board"
  dashboard = {{}}
  [[site.route]]
  path = "=/site-metrics"
  metrics = {{}}
'''
            cls.srv = cls.start_class_server(sites, workers=2, tls_listen="")
            wait_for(lambda: get_json(cls.admin_port), timeout=10,
                     what="the admin listener to answer /status.json")
            if cdp.CHROMIUM:
                cls.browser = cdp.start()
                cls.browser.set_viewport(1280, 1000)
        except BaseException:
            cls._cleanup()
            for s in cls.class_servers:
                s.cleanup()
            cls.class_servers = []
            raise

    @classmethod
    def _cleanup(cls):
        if cls.browser is not None:
            cls.browser.close()
            cls.browser = None
        for b in cls.backends:
            b.kill()
        cls.backends = []
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls._cleanup()
        finally:
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.mark = self.browser.mark() if self.browser else 0

    def tearDown(self):
        if self.browser is not None and self._test_failed():
            sys.stderr.write("\n[dashboard] console errors: %r\n[dashboard] page state: %r\n" % (
                self.browser.console_errors(self.mark), self.page_state()))
        super().tearDown()

    # -- helpers

    def need_browser(self):
        if self.browser is None:
            self.skipTest(NO_BROWSER)
        return self.browser

    def page_state(self):
        try:
            return self.browser.evaluate("JSON.stringify(window.wraithDashboard || null)")
        except cdp.CdpError as e:
            return repr(e)

    def dashboard(self):
        return self.browser.evaluate("window.wraithDashboard || {}")

    def open_dashboard(self, url, polls=2):
        """Loads the page fresh and waits until it has polled `polls` times."""
        browser = self.need_browser()
        browser.navigate(url)
        wait_for(lambda: self.dashboard().get("polls", 0) >= polls, timeout=15,
                 what=f"{polls} successful polls of {url}")
        return browser

    def admin_url(self, path="/"):
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def wait_box(self, address, states, timeout):
        """(state, background color) of the one upstream box for `address`, once its state
        is one of `states`."""
        js = BOXES_JS % json.dumps(address)

        def box():
            boxes = self.browser.evaluate(js)
            self.assertLessEqual(len(boxes), 1, f"more than one box for {address}: {boxes}")
            return tuple(boxes[0]) if boxes and boxes[0][0] in states else None
        return wait_for(box, timeout=timeout, what=f"the box of {address} to be {states}")

    def text(self, element_id):
        return self.browser.evaluate(
            f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent")

    def assertNoConsoleErrors(self):
        errors = self.browser.console_errors(self.mark)
        self.assertEqual(errors, [], "the page logged errors")

    # -- the page in a browser

    def test_page_loads_and_polls_without_errors(self):
        self.open_dashboard(self.admin_url("/"), polls=2)
        _, status = get_json(self.admin_port)
        state = self.dashboard()
        self.assertIsNone(state.get("lastError"), state)
        self.assertEqual(self.text("badge"), "live")
        self.assertEqual(self.text("h-version"), status["server"]["version"])
        self.assertEqual(self.text("h-generation"), str(status["server"]["generation"]))
        # The workers table lists the server's workers by pid.
        pids = self.browser.evaluate(
            "Array.from(document.querySelectorAll('#workers tr')).map(function (r) {"
            " return r.cells[0].textContent; })")
        self.assertEqual(sorted(int(p) for p in pids), sorted(self.srv.worker_pids()))
        # The certificate with 10 days left is listed, in red.
        wait_for(lambda: "localhost" in self.text("certs"), what="the certificate row")
        row = self.browser.evaluate(
            "(function () { var r = document.querySelector('#certs tr');"
            " return [r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent,"
            " getComputedStyle(r.cells[2]).color]; })()")
        self.assertEqual(row[:2], ["localhost", "localhost"], row)
        self.assertIn(int(row[2]), (9, 10), row)
        r, g, b = rgb(row[3])
        self.assertTrue(r > 200 and g < 150 and b < 150, f"days left not red: {row}")
        self.assertNoConsoleErrors()

    def test_graphs_move_under_load(self):
        browser = self.open_dashboard(self.admin_url("/"), polls=1)
        with Load(self.srv.port, ["/app/a", "/", "/app/b", "/missing", "/app/c", "/",
                                  "/app/d", "/fail"]) as load:
            polls = self.dashboard()["polls"]
            wait_for(lambda: self.dashboard().get("lastRate", 0) > 0, timeout=10,
                     what="a request rate above zero in the page")
            wait_for(lambda: self.dashboard()["polls"] >= polls + 3, timeout=10,
                     what="three more polls")
            first = browser.screenshot()
            polls = self.dashboard()["polls"]
            wait_for(lambda: self.dashboard()["polls"] >= polls + 3, timeout=10,
                     what="three more polls")
            second = browser.screenshot()
            self.assertTrue(first.startswith(b"\x89PNG"), first[:16])
            self.assertNotEqual(first, second, "the page did not change in three seconds")
            # The header's rate is a number above zero, and the HTTP/1 line is drawn.
            rate = self.text("h-rate")
            self.assertRegex(rate, r"^\d+(\.\d+)?k?$")
            self.assertGreater(float(rate.rstrip("k")), 0)
            pixels = browser.evaluate(PIXELS_JS % ((json.dumps("c-proto"),) + HTTP1_BLUE))
            self.assertGreater(pixels, 10, "no HTTP/1 line in the protocol graph")
            # /fail answers 500: the errors number shows a rate above zero.
            wait_for(lambda: re.match(r"^[0-9.]+k?/s$", self.text("err-rate")) and
                     float(self.text("err-rate").rstrip("/sk")) > 0, timeout=10,
                     what="a 5xx rate above zero")
            # The top routes table ranks the busy routes.
            routes = browser.evaluate(
                "Array.from(document.querySelectorAll('#routes tr')).map(function (r) {"
                " return [r.cells[0].textContent, r.cells[1].textContent,"
                " r.cells.length > 2 ? r.cells[2].textContent : '']; })")
            self.assertIn("/app/", [r[1] for r in routes], routes)
            if SAVE_SCREENSHOT:
                self.save_screenshot(browser)
        self.assertGreater(load.statuses.get(200, 0), 0, load.statuses)
        self.assertNoConsoleErrors()

    def save_screenshot(self, browser):
        """docs/dashboard.png: the page after a minute of load, all of it in the picture."""
        polls = self.dashboard()["polls"]
        wait_for(lambda: self.dashboard()["polls"] >= polls + 50, timeout=90,
                 what="a minute of history")
        browser.set_viewport(1280, 1000)
        height = browser.evaluate("document.documentElement.scrollHeight")
        browser.set_viewport(1280, min(int(height), 2400))
        wait_for(lambda: self.dashboard()["polls"] >= polls + 52, timeout=10, what="a redraw")
        with open(SCREENSHOT, "wb") as f:
            f.write(browser.screenshot())
        browser.set_viewport(1280, 1000)
        sys.stderr.write(f"\n[dashboard] saved {SCREENSHOT}\n")

    def test_upstream_box_turns_red_when_its_backend_dies(self):
        browser = self.open_dashboard(self.admin_url("/"), polls=1)
        state, color = self.wait_box(self.victim.address, ("up",), 10)
        r, g, b = rgb(color)
        self.assertTrue(g > r and g > b, f"an up server's box is not green: {color}")
        self.assertEqual(self.wait_box(self.app.address, ("up",), 1)[0], "up")

        self.victim.kill()
        state, color = self.wait_box(self.victim.address, ("down", "ejected"), 10)
        r, g, b = rgb(color)
        self.assertTrue(r > 150 and g < 100 and b < 100, f"a {state} server's box is not red: "
                                                         f"{color}")
        _, status = get_json(self.admin_port)
        pool = [u for u in status["upstreams"] if u["name"] == "victim"][0]
        self.assertIn(pool["servers"][0]["state"], ("down", "ejected"), pool)
        self.assertEqual(self.wait_box(self.app.address, ("up",), 1)[0], "up")

        # A request that finds no server is a 5xx; it lands in the recent errors table.
        st, _, _ = http_request(self.srv.port, "GET", "/victim/gone")
        self.assertGreaterEqual(st, 500)
        wait_for(lambda: "/victim/gone" in self.text("errors"), timeout=10,
                 what="/victim/gone in the recent errors table")
        row = browser.evaluate(
            "Array.from(document.querySelectorAll('#errors tr')).map(function (r) {"
            " return Array.from(r.cells).map(function (c) { return c.textContent; }); })"
            ".filter(function (r) { return r[4] === '/victim/gone'; })[0]")
        self.assertEqual([row[1], row[2], row[5]], [str(st), "GET", "h1"], row)
        self.assertTrue(row[3].startswith("127.0.0.1"), row)
        self.assertNoConsoleErrors()

    def test_fits_a_phone_screen(self):
        browser = self.need_browser()
        browser.set_viewport(390, 844, scale=3, mobile=True)
        try:
            self.open_dashboard(self.admin_url("/"), polls=2)
            sizes = browser.evaluate("[document.documentElement.scrollWidth, window.innerWidth,"
                                     " document.body.scrollWidth]")
            self.assertEqual(sizes[1], 390, sizes)
            self.assertLessEqual(sizes[0], sizes[1] + 1, f"horizontal overflow: {sizes}")
            self.assertLessEqual(sizes[2], sizes[1] + 1, f"horizontal overflow: {sizes}")
            # The graphs stack in one column, each as wide as the screen allows.
            lefts = browser.evaluate(
                "Array.from(document.querySelectorAll('canvas')).map(function (c) {"
                " var r = c.getBoundingClientRect(); return [Math.round(r.left),"
                " Math.round(r.width), c.width]; })")
            self.assertEqual(len({l for l, _, _ in lefts}), 1, f"more than one column: {lefts}")
            for left, width, pixels in lefts:
                self.assertGreater(width, 300, lefts)
                # devicePixelRatio 3: the canvas has three pixels per CSS pixel.
                self.assertEqual(pixels, round(width * 3), lefts)
            self.assertNoConsoleErrors()
        finally:
            browser.set_viewport(1280, 1000)

    def test_dashboard_handler_on_a_site_route(self):
        st, headers, body = http_request(self.srv.port, "GET", "/dash/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", headers.get("Content-Type", ""))
        with open(PAGE_SOURCE, "rb") as f:
            self.assertEqual(body, f.read(), "the page is not served verbatim")
        _, status = get_json(self.srv.port, "/dash/status.json")
        self.assertIn("requests", status)
        for path in ("/dash/other", "/dash/status.json/x", "/dash/index.html"):
            self.assertEqual(http_request(self.srv.port, "GET", path)[0], 404, path)
        # A route without the final slash sends the page to it, where status.json resolves
        # beside the page.
        st, headers, _ = http_request(self.srv.port, "GET", "/board")
        self.assertEqual((st, headers.get("Location")), (301, "/board/"))
        self.assertEqual(http_request(self.srv.port, "GET", "/board/")[2], body)
        self.assertIn("requests", get_json(self.srv.port, "/board/status.json")[1])
        st, headers, body = http_request(self.srv.port, "GET", "/site-metrics")
        self.assertEqual(st, 200)
        self.assertIn(b"wraith_requests_total", body)
        if self.browser is not None:
            self.open_dashboard(f"http://127.0.0.1:{self.srv.port}/board", polls=2)
            self.assertNoConsoleErrors()

    # -- HTTP only

    def test_status_json_has_every_key_and_counts(self):
        headers, before = get_json(self.admin_port)
        self.assertIn("json", headers.get("Content-Type", ""))
        shape = {
            "server": ["version", "generation", "now", "started"],
            "requests": ["h1", "h2", "h3"],
            "status": ["none", "1xx", "2xx", "3xx", "4xx", "5xx"],
            "bytes": ["in", "out"],
            "latency": ["bounds_us", "counts"],
            "connections": ["h1", "h2", "h3", "other"],
            "streams": ["h1", "h2", "h3"],
            "tls": ["handshakes", "resumed", "failures"],
            "quic": ["handshakes", "retry", "migrations", "congested"],
        }
        # Every key the page reads is there (more may come: the page ignores them).
        for table, keys in shape.items():
            self.assertIsInstance(before.get(table), dict, table)
            self.assertLessEqual(set(keys), set(before[table]), table)
        for table in ("routes", "upstreams", "workers", "certificates", "errors"):
            self.assertIsInstance(before.get(table), list, table)
        server = before["server"]
        self.assertIsInstance(server["version"], str)
        self.assertGreaterEqual(server["generation"], 1)
        self.assertLess(abs(server["now"] - time.time()), 5, server)
        self.assertLessEqual(server["started"], server["now"])
        bounds, counts = before["latency"]["bounds_us"], before["latency"]["counts"]
        self.assertEqual(len(counts), len(bounds) + 1)
        self.assertEqual(bounds, sorted(set(bounds)), "bounds not increasing")
        workers = before["workers"]
        self.assertEqual(sorted(w["pid"] for w in workers), sorted(self.srv.worker_pids()))
        for w in workers:
            self.assertLessEqual({"pid", "slot", "generation", "state", "connections",
                                  "requests", "started"}, set(w), w)
            self.assertEqual(w["state"], "serving", w)
        pools = {u["name"]: u["servers"] for u in before["upstreams"]}
        self.assertEqual([(s["address"], s["state"]) for s in pools["app"]],
                         [(self.app.address, "up")])
        certs = [c for c in before["certificates"] if c["site"] == "localhost"]
        self.assertEqual(len(certs), 1, before["certificates"])
        self.assertEqual(certs[0]["names"], ["localhost"])
        self.assertIn(certs[0]["days_left"], (9, 10), certs)
        self.assertAlmostEqual(certs[0]["not_after"], time.time() + 10 * 86400, delta=86400 + 60)

        n = 5
        for i in range(n):
            st, _, body = http_request(self.srv.port, "GET", f"/app/{i}")
            self.assertEqual((st, body), (200, f"backend /app/{i}\n".encode()))

        def counted():
            _, after = get_json(self.admin_port)
            return after if after["requests"]["h1"] >= before["requests"]["h1"] + n else None
        after = wait_for(counted, timeout=10, what=f"{n} more h1 requests in status.json")
        self.assertGreaterEqual(after["status"]["2xx"], before["status"]["2xx"] + n)
        self.assertGreater(after["bytes"]["out"], before["bytes"]["out"])
        self.assertGreaterEqual(sum(after["latency"]["counts"]),
                                sum(before["latency"]["counts"]) + n)
        self.assertGreater(after["server"]["now"], before["server"]["now"])

        def route(status):
            for r in status["routes"]:
                if r["route"] == "/app/":
                    self.assertLessEqual({"site", "route", "requests", "errors", "bytes"}, set(r))
                    return r
            return {"requests": 0, "bytes": 0}
        self.assertGreaterEqual(route(after)["requests"], route(before)["requests"] + n)
        self.assertGreater(route(after)["bytes"], route(before)["bytes"])

    def test_admin_listener_serves_nothing_else(self):
        st, headers, body = http_request(self.admin_port, "GET", "/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", headers.get("Content-Type", ""))
        with open(PAGE_SOURCE, "rb") as f:
            self.assertEqual(body, f.read(), "the page is not served verbatim")
        st, _, body = http_request(self.admin_port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertIn(b"wraith_requests_total", body)
        for path in ("/etc/passwd", "/index.html", "/dashboard.html", "/status.json.bak",
                     "/status.json/x", "/metrics/x", "/favicon.ico"):
            st, _, _ = http_request(self.admin_port, "GET", path)
            self.assertEqual(st, 404, path)
        for path in ("/../etc/passwd", "/%2e%2e/etc/passwd"):  # the parser may refuse these
            st, _, _ = http_request(self.admin_port, "GET", path)
            self.assertIn(st, (400, 404), path)
        for path in ("/", "/status.json", "/metrics"):
            st, _, _ = http_request(self.admin_port, "POST", path, body=b"x=1",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
            self.assertIn(st, (404, 405), f"POST {path}")
        # The admin paths are the admin listener's alone: the site listener does not have them.
        st, _, _ = http_request(self.srv.port, "GET", "/status.json")
        self.assertEqual(st, 404)


class AdminAccess(WraithTestCase):
    def test_allow_refuses_other_addresses(self):
        admin = free_port()
        srv = self.server(admin_table(admin, 'allow = ["10.0.0.0/8"]') + '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site\\n" }
''', workers=1)
        for path in ("/", "/status.json", "/metrics"):
            st, _, body = wait_for(lambda: http_request(admin, "GET", path), timeout=10,
                                   what=f"an answer on the admin listener for {path}")
            self.assertEqual(st, 403, f"{path}: {body[:200]!r}")
            self.assertNotIn(b"wraith_requests_total", body)
            self.assertNotIn(b"<canvas", body)
        st, _, body = http_request(srv.port, "GET", "/")
        self.assertEqual((st, body), (200, b"site\n"))


@unittest.skipUnless(cdp.CHROMIUM, NO_BROWSER)
class PageWithoutServer(WraithTestCase):
    def test_says_disconnected_and_recovers(self):
        admin = free_port()
        srv = self.server(admin_table(admin) + '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site\\n" }
''', workers=1)
        browser = cdp.start()
        try:
            def state():
                return browser.evaluate("[window.wraithDashboard || {},"
                                        " document.getElementById('badge').textContent]")
            browser.navigate(f"http://127.0.0.1:{admin}/")
            wait_for(lambda: state()[0].get("polls", 0) >= 2, timeout=15, what="two polls")
            self.assertEqual(browser.console_errors(), [])
            self.assertEqual(state()[1], "live")

            srv.stop()
            page, badge = wait_for(lambda: (lambda s: s if s[1] == "disconnected" else None)(
                state()), timeout=10, what="the badge to say disconnected")
            self.assertFalse(page["connected"])
            self.assertTrue(page["lastError"], page)
            polls = page["polls"]
            # Counters start from zero in the new server: the page takes that in its stride.
            srv.start()
            page, badge = wait_for(lambda: (lambda s: s if s[1] == "live" else None)(state()),
                                   timeout=15, what="the badge to say live again")
            self.assertIsNone(page["lastError"], page)
            wait_for(lambda: state()[0]["polls"] >= polls + 2, timeout=10,
                     what="polls after the restart")
            # Only the refused fetches were errors; the page itself threw nothing.
            errors = browser.console_errors()
            self.assertTrue(all("status.json" in e and e.startswith("log: ") for e in errors),
                            errors)
        finally:
            browser.close()


if __name__ == "__main__":
    harness.main()
