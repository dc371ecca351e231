"""Access logs: NGINX combined format, per-site JSON format, reopen on USR1."""

import datetime
import json
import os
import re
import signal
import time
import unittest

import harness
from harness import WraithTestCase, http_get, wait_for

SITES = r'''
[[site]]
hosts = ["combined.test"]
default = true
  [[site.route]]
  path = "=/missing"
  respond = { status = 404, body = "nope\n", content_type = "text/plain" }
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "hello log\n", content_type = "text/plain" }

[[site]]
hosts = ["quiet.test"]
access_log = { path = "off" }
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "hello quiet\n", content_type = "text/plain" }

[[site]]
hosts = ["custom.test"]
access_log = { path = "@DIR@/logs/custom.log", format = '$remote_addr "$request" $status $body_bytes_sent $request_length rt=$request_time us=$request_time_us ua="$http_user_agent" conn=$connection ssl=$ssl_protocol up=$upstream_addr t=$msec' }
  [[site.route]]
  path = "/"
  respond = { status = 201, body = "hello custom\n", content_type = "text/plain" }

[[site]]
hosts = ["jsont.test"]
access_log = { path = "@DIR@/logs/jsont.log", escape = "json", format = '{"uri":"$uri","ua":"$http_user_agent","status":$status,"sent":$body_bytes_sent,"time":"$time_iso8601","missing":"$http_x_nothing"}' }
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "hello json template\n", content_type = "text/plain" }

[[site]]
hosts = ["json.test"]
access_log = { path = "@DIR@/logs/json.log", format = "json" }
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "hello json\n", content_type = "text/plain" }
'''

UA = "wraith-itest/1.0 (logs)"

# 127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.1" 200 2326 "ref" "ua"
COMBINED = re.compile(
    r'^(?P<ip>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} '
    r'[+-]\d{4})\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<ua>[^"]*)"$')


class LogsTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(SITES, workers=2)
        cls.json_log = cls.srv.path("logs", "json.log")

    def get(self, path, host="combined.test", headers=None):
        h = {"Host": host, "User-Agent": UA}
        h.update(headers or {})
        return http_get(self.srv.port, path, headers=h)

    def combined_line(self, marker):
        return self.srv.wait_log_line(lambda l: marker in l, what=f"access log line for {marker}")

    def test_combined_format(self):
        status, _, body = self.get("/combined-1?q=1")
        self.assertEqual(status, 200)
        line = self.combined_line("/combined-1")
        m = COMBINED.match(line)
        self.assertTrue(m, f"not NGINX combined format: {line!r}")
        self.assertEqual(m.group("ip"), "127.0.0.1")
        self.assertEqual(m.group("user"), "-")
        self.assertEqual(m.group("request"), "GET /combined-1?q=1 HTTP/1.1")
        self.assertEqual(m.group("status"), "200")
        self.assertEqual(int(m.group("bytes")), len(body))
        self.assertEqual(m.group("referer"), "-")
        self.assertEqual(m.group("ua"), UA)
        t = datetime.datetime.strptime(m.group("time"), "%d/%b/%Y:%H:%M:%S %z")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - t).total_seconds()), 3600, f"log time {t} vs now {now}")

    def test_rejected_request_logs_its_raw_line(self):
        res = harness.raw_request(self.srv.port,
                                  b"GET /bad-version-marker HTTP/2.0\r\nHost: x\r\n\r\n")
        self.assertEqual(res.status, 505, res)
        line = self.combined_line("/bad-version-marker")
        m = COMBINED.match(line)
        self.assertTrue(m, line)
        self.assertEqual(m.group("request"), "GET /bad-version-marker HTTP/2.0")
        self.assertEqual(m.group("status"), "505")

    def test_site_can_turn_its_log_off(self):
        status, _, _ = self.get("/quiet-marker", host="quiet.test")
        self.assertEqual(status, 200)
        # A request logged after it proves the buffer was flushed past the quiet one.
        self.get("/after-quiet-marker")
        self.combined_line("/after-quiet-marker")
        # Workers flush their buffers every second: by then a wrongly logged line would show.
        import time
        time.sleep(1.5)
        self.assertFalse([l for l in self.srv.access_log_lines() if "/quiet-marker" in l])

    def test_combined_referer_and_status(self):
        status, _, _ = self.get("/missing", headers={"Referer": "http://ref.test/page"})
        self.assertEqual(status, 404)
        line = self.combined_line('"GET /missing HTTP/1.1"')
        m = COMBINED.match(line)
        self.assertTrue(m, line)
        self.assertEqual(m.group("status"), "404")
        self.assertEqual(m.group("referer"), "http://ref.test/page")

    def test_combined_escapes_quotes(self):
        status, _, _ = self.get("/quote-test", headers={"User-Agent": 'evil" "agent'})
        self.assertEqual(status, 200)
        line = self.combined_line("/quote-test")
        m = COMBINED.match(line)
        self.assertTrue(m, f"a quote in the User-Agent broke the line format: {line!r}")
        self.assertNotEqual(m.group("ua"), "evil")

    def test_json_format(self):
        status, _, body = self.get("/json-path", host="json.test")
        self.assertEqual(status, 200)

        def find():
            for l in self.srv.access_log_lines(self.json_log):
                if "json-path" in l:
                    return l
        line = wait_for(find, 10, what="json access log line")
        obj = json.loads(line)
        self.assertIsInstance(obj, dict)
        self.assertEqual(int(obj["status"]), 200, obj)
        self.assertEqual(obj["path"], "/json-path", obj)
        # Every line of the file is a JSON object.
        for l in self.srv.access_log_lines(self.json_log):
            self.assertIsInstance(json.loads(l), dict)
        # The site's own log replaces the global one.
        self.assertFalse(any("json-path" in l for l in self.srv.access_log_lines()))

    def test_json_escapes(self):
        status, _, _ = self.get("/json-esc", host="json.test",
                                headers={"User-Agent": 'quote" back\\slash'})
        self.assertEqual(status, 200)

        def find():
            for l in self.srv.access_log_lines(self.json_log):
                if "json-esc" in l:
                    return l
        line = wait_for(find, 10, what="json access log line")
        obj = json.loads(line)
        self.assertEqual(obj["path"], "/json-esc")
        if "user_agent" in obj:
            self.assertEqual(obj["user_agent"], 'quote" back\\slash')


    def find_in(self, path, marker):
        def find():
            for l in self.srv.access_log_lines(path):
                if marker in l:
                    return l
        return wait_for(find, 10, what=f"{marker} in {path}")

    def test_format_with_variables(self):
        status, _, body = self.get("/custom-1?q=1", host="custom.test",
                                   headers={"User-Agent": 'say "hi"'})
        self.assertEqual(status, 201)
        line = self.find_in(self.srv.path("logs", "custom.log"), "/custom-1")
        m = re.fullmatch(r'127\.0\.0\.1 "GET /custom-1\?q=1 HTTP/1\.1" 201 (\d+) 0 '
                         r'rt=(\d+\.\d{3}) us=(\d+) ua="say \\x22hi\\x22" conn=(\d+) ssl=- up=- '
                         r't=(\d+\.\d{3})', line)
        self.assertTrue(m, line)
        self.assertEqual(int(m.group(1)), len(body))
        self.assertAlmostEqual(float(m.group(2)), int(m.group(3)) / 1e6, delta=0.0011)
        self.assertLess(abs(float(m.group(5)) - time.time()), 120)

    def test_format_with_json_escaping(self):
        status, _, body = self.get("/tmpl", host="jsont.test",
                                   headers={"User-Agent": 'quote" back\\slash\tTab'})
        self.assertEqual(status, 200)
        obj = json.loads(self.find_in(self.srv.path("logs", "jsont.log"), "/tmpl"))
        self.assertEqual(obj["uri"], "/tmpl")
        self.assertEqual(obj["ua"], 'quote" back\\slash\tTab')
        self.assertEqual((obj["status"], obj["sent"], obj["missing"]), (200, len(body), ""))
        datetime.datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S%z")

    def test_bad_formats_say_where(self):
        for fmt, message in [("fancy", 'expected "combined", "json" or a format with variables'),
                             ("$remote_addr $nosuch", "unknown variable $nosuch")]:
            srv = harness.Wraith(SITES.replace('format = "json"', f"format = {harness.toml_str(fmt)}"),
                                 workers=1)
            self.servers.append(srv)
            r = harness.run_wraith("check", "-c", srv.conf)
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"wraith\.toml:\d+:\d+: site\.access_log\.format: .*" +
                             re.escape(message), r.stderr)


class LogIpv6Test(WraithTestCase):
    @unittest.skipUnless(harness.have_ipv6(), "no IPv6 loopback on this machine")
    def test_ipv6_client_address(self):
        srv = self.server(SITES, workers=1, listen6=True)
        status, _, _ = http_get(srv.port6, "/v6-client", host="::1",
                                headers={"Host": "combined.test", "User-Agent": UA})
        self.assertEqual(status, 200)
        line = srv.wait_log_line(lambda l: "/v6-client" in l)
        m = COMBINED.match(line)
        self.assertTrue(m, line)
        self.assertEqual(m.group("ip"), "::1")


class LogReopenTest(WraithTestCase):
    def test_usr1_reopen(self):
        srv = self.server(SITES, workers=2)
        json_log = srv.path("logs", "json.log")
        self.assertEqual(http_get(srv.port, "/pre", headers={"Host": "combined.test"})[0], 200)
        self.assertEqual(http_get(srv.port, "/pre-json", headers={"Host": "json.test"})[0], 200)
        srv.wait_log_line(lambda l: "/pre" in l)
        srv.wait_log_line(lambda l: "/pre-json" in l, path=json_log)
        os.rename(srv.access_log, srv.access_log + ".old")
        os.rename(json_log, json_log + ".old")
        srv.signal(signal.SIGUSR1)

        def reopened():
            http_get(srv.port, "/post", headers={"Host": "combined.test"})
            http_get(srv.port, "/post-json", headers={"Host": "json.test"})
            return (any("/post" in l for l in srv.access_log_lines()) and
                    any("/post-json" in l for l in srv.access_log_lines(json_log)))
        wait_for(reopened, 15, interval=0.2, what="both access logs reopened after USR1")
        self.assertTrue(any("/pre" in l for l in srv.access_log_lines(srv.access_log + ".old")))
        for l in srv.access_log_lines():
            self.assertTrue(COMBINED.match(l), l)
        for l in srv.access_log_lines(json_log):
            json.loads(l)


if __name__ == "__main__":
    harness.main()
