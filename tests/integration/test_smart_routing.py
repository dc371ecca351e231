"""Smart routing (issue 14) against a real server: match conditions on headers, query, cookies,
client address and geo (real .mmdb files built with libmaxmind-db-writer-perl, re-opened when
replaced), real_ip behind a trusted proxy, rewrites with captures and the rewrite-loop 500,
header rules, allow/deny, basic_auth with every hash kind htpasswd writes (re-read on change),
forward_auth against a real auth service, weighted splits (ratio and stickiness), mirroring to a
shadow upstream that may be down, `wraith route`, and the configuration errors of the issue's
bad-input list."""

import json
import os
import shutil
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import WraithTestCase, Wraith, http_get, http_request, run_wraith, write_file

HERE = os.path.dirname(os.path.abspath(__file__))

GEO = {
    "203.0.113.0/24": {"country": "DE", "continent": "EU", "subdivision": "BY",
                       "city": "Munich", "asn": 64500, "org": "Example AS"},
    "198.51.100.0/24": {"country": "US", "continent": "NA", "asn": 64501},
    "192.0.2.0/24": {"country": "FR", "continent": "EU"},
}


def build_mmdb(path, networks=GEO, kind="GeoLite2-City"):
    subprocess.run(["perl", os.path.join(HERE, "geo_fixture.pl"), path, kind],
                   input=json.dumps(networks).encode(), check=True)
    os.chmod(path, 0o644)


def htpasswd(path, user, password, flag):
    args = ["htpasswd", "-b", flag]
    if not os.path.exists(path):
        args.append("-c")
    subprocess.run(args + [path, user, password], check=True, capture_output=True)
    os.chmod(path, 0o644)


class Backend(ThreadingHTTPServer):
    """Answers with JSON naming itself, the path and the request fields; records requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, decide=None):
        self.name = name
        self.decide = decide  # auth services: fields -> (status, extra headers)
        self.seen = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        fields = {k.lower(): v for k, v in self.headers.items()}
        with self.server.lock:
            self.server.seen.append((self.command, self.path, fields))
        status, extra = 200, {}
        if self.server.decide:
            status, extra = self.server.decide(fields)
        body = json.dumps({"name": self.server.name, "path": self.path,
                           "fields": fields}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET
    do_HEAD = do_GET


def auth_decision(fields):
    token = fields.get("authorization", "")
    if token == "Bearer good":
        return 200, {"X-User": "alice", "X-Other": "not copied"}
    if token == "Bearer redirect":
        return 302, {"Location": "https://login.test/?next=" + fields.get("x-forwarded-uri", "")}
    if token == "Bearer broken":
        return 500, {}
    return 401, {"WWW-Authenticate": 'Bearer realm="test"'}


SITES = r'''
[geo]
database = "@DIR@/geo.mmdb"
watch = "200ms"

[upstream.v1]
servers = ["127.0.0.1:@V1@"]
[upstream.v2]
servers = ["127.0.0.1:@V2@"]
[upstream.shadow]
servers = ["127.0.0.1:@SHADOW@"]
[upstream.dead]
servers = ["127.0.0.1:@DEAD@"]

[[site]]
hosts = ["example.test"]
headers = { response = { set = { "X-Country" = "$geo_country" } }, preset = "security" }

  [[site.route]]
  path = "/"
  match = { country = ["DE", "AT"], headers = { "X-Beta" = "1" } }
  respond = { body = "eu-beta\n" }

  [[site.route]]
  path = "/"
  match = { not = { continent = ["EU"] }, any = [{ cookies = { vip = "yes" } }, { asn = [64501] }] }
  respond = { body = "not-eu vip-or-asn\n" }

  [[site.route]]
  path = "/"
  respond = { body = "main $geo_country $geo_continent $geo_subdivision $geo_city $geo_asn $client_ip\n" }

  [[site.route]]
  path = "/old/"
  rewrite = { pattern = '^/old/(.*)$', replace = '/new/$1' }

  [[site.route]]
  path = '~^/new/(.*)$'
  respond = { body = "new:$1 args:$args\n" }

  [[site.route]]
  path = "/loop/"
  rewrite = { pattern = '^/loop/(.*)$', replace = '/loop/$1' }

  [[site.route]]
  path = "/admin/"
  allow = ["country:DE", "10.0.0.0/8"]
  respond = { body = "admin\n" }

  [[site.route]]
  path = "/blocked/"
  deny = ["country:US", "192.0.2.7"]
  respond = { body = "not blocked\n" }

  [[site.route]]
  path = "/private/"
  basic_auth = { file = "@DIR@/users.htpasswd", realm = "Staff only" }
  respond = { body = "private\n" }

  [[site.route]]
  path = "/auth/"
  forward_auth = { pass = "http://127.0.0.1:@AUTH@", uri = "/verify", copy_headers = ["X-User"] }
  proxy = { upstream = "v1" }

  [[site.route]]
  path = "/auth-down/"
  forward_auth = { upstream = "dead", uri = "/verify" }
  proxy = { upstream = "v1" }

  [[site.route]]
  path = "/split/"
  proxy = { split = [{ upstream = "v1", weight = 90 }, { upstream = "v2", weight = 10 }], split_key = "cookie:uid" }

  [[site.route]]
  path = "/mirror/"
  proxy = { upstream = "v1", mirror = { upstream = "shadow" } }

  [[site.route]]
  path = "/mirror-dead/"
  proxy = { upstream = "v1", mirror = { upstream = "dead" } }

  [[site.route]]
  path = "/echo/"
  proxy = { upstream = "v1", request_headers = { set = { "X-Geo" = "$geo_country", "X-Path" = "$1" } } }

  [[site.route]]
  path = "/sub/"
  match = { subdivision = ["DE-BY"], asn = ["AS64500"] }
  respond = { body = "by-64500\n" }

  [[site.route]]
  path = "/sub/"
  respond = { body = "elsewhere\n" }

  [[site.route]]
  path = "/go/"
  redirect = { to = "https://$geo_country.example.test$uri", status = 302 }
'''


class SmartRoutingTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.v1 = Backend("v1")
        cls.v2 = Backend("v2")
        cls.shadow = Backend("shadow")
        cls.auth = Backend("auth", auth_decision)
        cls.dead_port = harness.free_port()
        sites = (SITES.replace("@V1@", str(cls.v1.port)).replace("@V2@", str(cls.v2.port))
                 .replace("@SHADOW@", str(cls.shadow.port)).replace("@AUTH@", str(cls.auth.port))
                 .replace("@DEAD@", str(cls.dead_port)))
        s = Wraith(sites, workers=1, server={
            "real_ip": '{ header = "X-Forwarded-For", trusted = ["127.0.0.1/32"] }'})
        cls.class_servers = [s]
        try:
            build_mmdb(s.path("geo.mmdb"))
            users = s.path("users.htpasswd")
            htpasswd(users, "bcrypt", "pw-b", "-B")
            htpasswd(users, "apr1", "pw-m", "-m")
            htpasswd(users, "sha", "pw-s", "-s")
            htpasswd(users, "sha512", "pw-5", "-5")
            htpasswd(users, "sha256", "pw-2", "-2")
            s.start()
        except BaseException:
            import sys
            sys.stderr.write(s.diagnostics())
            s.cleanup()
            raise
        cls.srv = s

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for b in (cls.v1, cls.v2, cls.shadow, cls.auth):
            b.stop()

    def get(self, path, client="203.0.113.9", headers=None, method="GET", auth=None):
        h = {"Host": "example.test", "X-Forwarded-For": client}
        if auth:
            import base64
            h["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        h.update(headers or {})
        return http_request(self.srv.port, method, path, headers=h)

    def body(self, path, **kw):
        status, headers, body = self.get(path, **kw)
        return status, body.decode()

    # ---- conditions, geo and variables

    def test_match_on_country_and_header(self):
        self.assertEqual(self.body("/x", headers={"X-Beta": "1"}), (200, "eu-beta\n"))
        # Header missing, or a client outside DE/AT: the next candidates.
        self.assertEqual(self.body("/x")[1].split()[0], "main")
        self.assertEqual(self.body("/x", client="192.0.2.1", headers={"X-Beta": "1"})[1].split()[:2],
                         ["main", "FR"])

    def test_not_and_any_combinators(self):
        self.assertEqual(self.body("/x", client="198.51.100.3"), (200, "not-eu vip-or-asn\n"))
        # Not in the EU list but no vip cookie and another ASN: unknown address.
        self.assertEqual(self.body("/x", client="100.64.0.1")[1].split()[0], "main")
        self.assertEqual(self.body("/x", client="100.64.0.1", headers={"Cookie": "vip=yes"}),
                         (200, "not-eu vip-or-asn\n"))
        # In the EU: `not` fails whatever `any` says.
        self.assertEqual(self.body("/x", client="203.0.113.1", headers={"Cookie": "vip=yes"})[1]
                         .split()[0], "main")

    def test_geo_variables_and_real_ip(self):
        self.assertEqual(self.body("/x"), (200, "main DE EU BY Munich 64500 203.0.113.9\n"))
        status, headers, _ = self.get("/x")
        self.assertEqual(headers.get("x-country"), "DE")
        # An untrusted address in front of the trusted proxy is the client.
        self.assertEqual(self.body("/x", client="203.0.113.5, 127.0.0.1")[1].split()[-1],
                         "203.0.113.5")

    def test_subdivision_and_asn(self):
        self.assertEqual(self.body("/sub/", client="203.0.113.2"), (200, "by-64500\n"))
        self.assertEqual(self.body("/sub/", client="192.0.2.2"), (200, "elsewhere\n"))

    def test_geo_in_the_json_access_log(self):
        srv = self.server(SIMPLE_GEO_SITE, start=False, workers=1,
                          server={"real_ip": '{ trusted = ["127.0.0.1/32"] }'})
        srv.access_log_conf = {"path": harness.toml_str(srv.path("logs", "access.json")),
                               "format": '"json"'}
        srv.write_config()
        build_mmdb(srv.path("geo.mmdb"))
        srv.start()
        http_get(srv.port, "/", headers={"X-Forwarded-For": "203.0.113.4"})
        line = srv.wait_log_line(lambda l: "203.0.113.4" in l,
                                 path=srv.path("logs", "access.json"))
        entry = json.loads(line)
        self.assertEqual((entry["geo_country"], entry["geo_asn"]), ("DE", 64500))

    def test_geo_in_redirect_and_upstream_headers(self):
        status, headers, _ = self.get("/go/a%20b")
        self.assertEqual(status, 302)
        self.assertEqual(headers.get("location"),
                         "https://DE.example.test/go/a%20b")
        status, _, body = self.get("/echo/z", client="198.51.100.9")
        fields = json.loads(body)["fields"]
        self.assertEqual(fields["x-geo"], "US")
        # The upstream's X-Forwarded-For starts with the address real_ip found.
        self.assertEqual(fields["x-forwarded-for"], "198.51.100.9, 127.0.0.1")

    def test_geo_database_reopened_and_corrupt_replacement_kept(self):
        db = self.srv.path("geo.mmdb")
        changed = dict(GEO)
        changed["203.0.113.0/24"] = {"country": "AT", "continent": "EU"}
        tmp = self.srv.path("geo-new.mmdb")
        build_mmdb(tmp, changed)
        os.rename(tmp, db)
        try:
            harness.wait_for(lambda: self.body("/x", client="203.0.113.9")[1].split()[1] == "AT",
                             timeout=10, what="the replaced geo database")
            write_file(self.srv.path("geo-bad.mmdb"), b"not a maxmind database")
            os.rename(self.srv.path("geo-bad.mmdb"), db)
            harness.wait_for(lambda: "keeping the data loaded before" in
                             self.srv.error_log_text(), timeout=10, what="the corrupt-file log line")
            self.assertEqual(self.body("/x", client="203.0.113.9")[1].split()[1], "AT")
        finally:
            build_mmdb(tmp)
            os.rename(tmp, db)
            harness.wait_for(lambda: self.body("/x", client="203.0.113.9")[1].split()[1] == "DE",
                             timeout=10, what="the original geo database")

    # ---- rewrites

    def test_rewrite_with_captures(self):
        self.assertEqual(self.body("/old/a/b?q=1"), (200, "new:a/b args:q=1\n"))

    def test_rewrite_loop_is_a_500_with_a_log_line(self):
        self.assertEqual(self.get("/loop/x")[0], 500)
        harness.wait_for(lambda: "rewrite loop: 10 internal rewrites" in self.srv.error_log_text(),
                         what="the rewrite-loop log line")

    # ---- access control

    def test_allow_and_deny(self):
        self.assertEqual(self.body("/admin/", client="203.0.113.1"), (200, "admin\n"))
        self.assertEqual(self.get("/admin/", client="198.51.100.1")[0], 403)
        self.assertEqual(self.body("/blocked/", client="203.0.113.1"), (200, "not blocked\n"))
        self.assertEqual(self.get("/blocked/", client="198.51.100.1")[0], 403)
        self.assertEqual(self.get("/blocked/", client="192.0.2.7")[0], 403)

    def test_basic_auth_every_hash_kind(self):
        for user, pw in (("bcrypt", "pw-b"), ("apr1", "pw-m"), ("sha", "pw-s"),
                         ("sha512", "pw-5"), ("sha256", "pw-2")):
            self.assertEqual(self.body("/private/", auth=f"{user}:{pw}"), (200, "private\n"), user)
            self.assertEqual(self.get("/private/", auth=f"{user}:{pw}x")[0], 401, user)
        status, headers, _ = self.get("/private/")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("www-authenticate"),
                         'Basic realm="Staff only", charset="UTF-8"')
        self.assertEqual(self.get("/private/", auth="nobody:pw-b")[0], 401)
        self.assertEqual(self.get("/private/", headers={"Authorization": "Basic %%%"})[0], 401)

    def test_basic_auth_file_reread(self):
        users = self.srv.path("users.htpasswd")
        self.assertEqual(self.get("/private/", auth="newbie:pw-n")[0], 401)
        shutil.copy(users, users + ".orig")
        try:
            htpasswd(users, "newbie", "pw-n", "-B")
            harness.wait_for(lambda: self.get("/private/", auth="newbie:pw-n")[0] == 200,
                             timeout=10, what="the re-read htpasswd file")
        finally:
            os.rename(users + ".orig", users)

    def test_wrong_password_costs_as_much_as_a_right_one(self):
        def cost(auth):
            t = time.monotonic()
            for _ in range(3):
                self.get("/private/", auth=auth)
            return time.monotonic() - t
        # bcrypt's cost is paid for a wrong password and for an unknown user alike.
        wrong, unknown = cost("bcrypt:nope"), cost("zed:nope")
        self.assertGreater(unknown, wrong / 5)

    def test_forward_auth(self):
        status, _, body = self.get("/auth/x", headers={"Authorization": "Bearer good",
                                                      "X-User": "mallory"})
        self.assertEqual(status, 200)
        fields = json.loads(body)["fields"]
        self.assertEqual(fields["x-user"], "alice")  # the auth service's, not the client's
        self.assertNotIn("x-other", fields)
        verify = [s for s in self.auth.seen if s[1] == "/verify"][-1]
        self.assertEqual(verify[2]["x-forwarded-uri"], "/auth/x")
        self.assertEqual(verify[2]["x-forwarded-method"], "GET")
        status, headers, _ = self.get("/auth/x")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("www-authenticate"),
                         'Bearer realm="test"')
        status, headers, _ = self.get("/auth/y", headers={"Authorization": "Bearer redirect"})
        self.assertEqual(status, 302)
        self.assertEqual(headers.get("location"),
                         "https://login.test/?next=/auth/y")
        self.assertEqual(self.get("/auth/x", headers={"Authorization": "Bearer broken"})[0], 500)
        self.assertEqual(self.get("/auth-down/x")[0], 500)

    # ---- splits and mirrors

    def test_split_ratio_and_stickiness(self):
        counts = {"v1": 0, "v2": 0}
        for i in range(400):
            _, _, body = self.get("/split/", headers={"Cookie": f"uid=user{i}"})
            counts[json.loads(body)["name"]] += 1
        # 10% of 400 = 40; a binomial's 4.5 standard deviations either side.
        self.assertTrue(12 <= counts["v2"] <= 68, counts)
        for uid in ("user1", "user2", "user3"):
            names = {json.loads(self.get("/split/", headers={"Cookie": f"uid={uid}"})[2])["name"]
                     for _ in range(10)}
            self.assertEqual(len(names), 1, uid)

    def test_mirror_gets_a_copy_and_failures_stay_away(self):
        before = len(self.shadow.seen)
        status, _, body = self.get("/mirror/m1?x=1")
        self.assertEqual((status, json.loads(body)["name"]), (200, "v1"))
        harness.wait_for(lambda: any(s[1] == "/mirror/m1?x=1" for s in self.shadow.seen[before:]),
                         what="the mirrored request")
        for _ in range(5):
            status, _, body = self.get("/mirror-dead/m2")
            self.assertEqual((status, json.loads(body)["name"]), (200, "v1"))

    # ---- hostile input

    def test_thousands_of_cookies(self):
        jar = "; ".join(f"c{i}={i}" for i in range(2000))
        self.assertEqual(self.body("/x", client="100.64.0.1", headers={"Cookie": jar + "; vip=yes"}),
                         (200, "not-eu vip-or-asn\n"))
        # Past http.max_header_size: a clean 431, and the worker serves on.
        jar = "; ".join(f"c{i}={i}" for i in range(5000))
        self.assertEqual(self.get("/x", headers={"Cookie": jar})[0], 431)
        self.assertEqual(self.get("/x")[0], 200)

    def test_route_cli_explains(self):
        r = run_wraith("route", "-c", self.srv.conf, "GET https://example.test/old/x",
                       "-H", "X-Beta: 1", "-H", "X-Forwarded-For: 203.0.113.9",
                       "--client-ip", "127.0.0.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("client address: 203.0.113.9 (real_ip, behind 127.0.0.1)", r.stdout)
        self.assertIn('rewrite 1: "/old/x" -> "/new/x", routing again', r.stdout)
        r = run_wraith("route", "-c", self.srv.conf, "https://example.test/x", "-H", "X-Beta: 1",
                       "--client-ip", "198.51.100.4")
        self.assertIn("route 1 (path \"/\"", r.stdout)
        self.assertIn("skipped, match: country \"US\" is not in [DE, AT]", r.stdout)
        self.assertIn("result: route 2", r.stdout)


SIMPLE_GEO_SITE = r'''
[geo]
database = "@DIR@/geo.mmdb"

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { body = "ok" }
'''


PROXY_CONFIG = r'''
[server]
workers = 1
pid_file = "@DIR@/wraith.pid"
control_socket = "@DIR@/wraith.sock"
error_log = "@DIR@/logs/error.log"
@USER@

[[listen]]
address = "127.0.0.1:@PORT@"

[[listen]]
address = "127.0.0.1:@PP@"
proxy_protocol = true

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { body = "$client_ip $remote_port $server_port\n" }
'''


class ProxyProtocolTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pp = harness.free_port()
        text = PROXY_CONFIG.replace("@PP@", str(cls.pp)).replace(
            "@USER@", 'user = "www-data"' if harness.IS_ROOT else "")
        s = Wraith("", raw_config=text)
        cls.class_servers = [s]
        s.start()
        cls.srv = s

    def send(self, data):
        res = harness.raw_request(self.pp, data)
        return res

    def test_v1_header_names_the_client(self):
        res = self.send(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8443\r\n"
                        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"203.0.113.7 40000 8443\n"), res)

    def test_v2_header_names_the_client(self):
        import socket
        import struct
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        addr = (socket.inet_pton(socket.AF_INET6, "2001:db8::9") +
                socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 5555, 443))
        tlv = b"\x04\x00\x02hi"
        header = sig + bytes([0x21, 0x21]) + struct.pack("!H", len(addr) + len(tlv)) + addr + tlv
        res = self.send(header + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"2001:db8::9 5555 443\n"), res)
        # LOCAL (the balancer's health check): the connection's own address stays.
        local = sig + bytes([0x20, 0x00, 0x00, 0x00])
        res = self.send(local + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(res.data.split(b"\r\n\r\n", 1)[1].startswith(b"127.0.0.1 "), res)

    def test_missing_or_bad_header_closes(self):
        for data in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                     b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nGET / HTTP/1.1\r\n\r\n",
                     b"PROXY " + b"A" * 300):
            res = self.send(data)
            self.assertEqual(res.data, b"", res)
            self.assertTrue(res.closed, res)
        # The worker is still up and the plain listener unaffected.
        self.assertEqual(http_get(self.srv.port, "/")[0], 200)


class BadInputTest(unittest.TestCase):
    """The issue's bad-input list: each problem points at FILE:LINE:COL."""

    def check(self, text, files=None):
        d = harness.make_dir(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                          f"wraith-routing-{os.getpid()}"))
        for name, data in (files or {}).items():
            write_file(os.path.join(d, name), data)
        conf = os.path.join(d, "w.toml")
        write_file(conf, '[[listen]]\naddress = "127.0.0.1:8080"\n' + text)
        r = run_wraith("check", "-c", conf)
        shutil.rmtree(d, ignore_errors=True)
        return r

    def test_errors_point_at_their_place(self):
        site = '[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
        cases = [
            (site + '  match = { headers = { "X" = "~(" } }\n  respond = {}\n', None,
             ':7:31: match.headers.X: bad regex "("'),
            ('[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = \'~^/(a)\'\n'
             '  respond = { body = "$3" }\n', None, ":7:22: respond.body: $3 names a capture group"),
            (site + '  match = { country = ["ZZ"] }\n  respond = {}\n'
             '[geo]\ndatabase = "geo.mmdb"\n', {"geo.mmdb": None},
             'match.country: unknown country code "ZZ"'),
            (site + '  match = { asn = ["big"] }\n  respond = {}\n', None,
             'match.asn: "big" is not an AS number'),
            (site + '  basic_auth = { file = "missing.htpasswd" }\n  respond = {}\n', None,
             ':7:25: basic_auth.file: cannot read'),
            ('[geo]\ndatabase = "missing.mmdb"\n' + site + '  respond = {}\n', None,
             ':4:12: geo.database: cannot open'),
            ('[geo]\ndatabase = "bad.mmdb"\n' + site + '  respond = {}\n',
             {"bad.mmdb": b"garbage"}, 'geo.database: "'),
        ]
        for text, files, expected in cases:
            if files and "geo.mmdb" in files:
                d = harness.make_dir(os.path.join("/tmp", f"wraith-routing-geo-{os.getpid()}"))
                build_mmdb(os.path.join(d, "geo.mmdb"))
                files = {"geo.mmdb": open(os.path.join(d, "geo.mmdb"), "rb").read()}
                shutil.rmtree(d, ignore_errors=True)
            r = self.check(text, files)
            self.assertEqual(r.returncode, 1, (text, r.stdout, r.stderr))
            self.assertIn(expected, r.stderr, text)
        r = self.check(site + '  allow = ["10.1.2.3/8"]\n  respond = {}\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(":7:12: warning: allow: \"10.1.2.3/8\" has host bits set; it means the "
                      "network 10.0.0.0/8", r.stderr)


if __name__ == "__main__":
    unittest.main()
