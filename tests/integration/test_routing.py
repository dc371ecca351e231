"""Routing: host selection (exact > wildcard > regex in file order > default site) and path
selection (exact, then longest prefix, then first regex in file order); redirect and respond
routes."""

import unittest

import harness
from harness import http_get, WraithTestCase

SITES = r'''
[[site]]
hosts = ["fallback.test"]
default = true
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:default\n", content_type = "text/plain" }

# A regex that also matches *.wild.test hosts, before the wildcard in file order: the wildcard
# must still win.
[[site]]
hosts = ["~wild"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:regex-wild\n", content_type = "text/plain" }

[[site]]
hosts = ["*.wild.test"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:wildcard\n", content_type = "text/plain" }

[[site]]
hosts = ["~^re[0-9]+\\.test$"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:regex1\n", content_type = "text/plain" }

[[site]]
hosts = ["~^re"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:regex2\n", content_type = "text/plain" }

# Exact beats the wildcard above even though it comes later in the file.
[[site]]
hosts = ["exact.wild.test"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:exact-in-wild\n", content_type = "text/plain" }

[[site]]
hosts = ["example.test", "alias.test"]
  [[site.route]]
  path = "=/p/exact"
  respond = { status = 200, body = "route:exact\n", content_type = "text/plain" }
  [[site.route]]
  path = "/p/"
  respond = { status = 200, body = "route:prefix-p\n", content_type = "text/plain" }
  [[site.route]]
  path = "/p/longer/"
  respond = { status = 200, body = "route:prefix-longer\n", content_type = "text/plain" }
  [[site.route]]
  path = "~^/q/.*\\.php$"
  respond = { status = 200, body = "route:regex-q\n", content_type = "text/plain" }
  [[site.route]]
  path = "~\\.php$"
  respond = { status = 200, body = "route:regex-php\n", content_type = "text/plain" }
  [[site.route]]
  path = "/old/"
  redirect = { to = "https://example.test$request_uri", status = 301 }
  [[site.route]]
  path = "/temp/"
  redirect = { to = "https://other.test$request_uri", status = 302 }
  [[site.route]]
  path = "=/teapot"
  respond = { status = 418, body = "short and stout\n", content_type = "text/x-teapot" }
  [[site.route]]
  path = "=/created"
  respond = { status = 201, body = "made\n", content_type = "application/json" }
'''


class RoutingTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(SITES)

    def get(self, host, path="/"):
        return http_get(self.srv.port, path, headers={"Host": host})

    def body_for(self, host, path="/"):
        status, _, body = self.get(host, path)
        return status, body.decode()

    # ---- hosts

    def test_exact_host(self):
        self.assertEqual(self.body_for("example.test", "/p/x"), (200, "route:prefix-p\n"))
        self.assertEqual(self.body_for("alias.test", "/p/x"), (200, "route:prefix-p\n"))

    def test_exact_host_with_port_and_case(self):
        self.assertEqual(self.body_for(f"EXAMPLE.Test:{self.srv.port}", "/p/x"),
                         (200, "route:prefix-p\n"))

    def test_wildcard_host(self):
        self.assertEqual(self.body_for("a.wild.test"), (200, "site:wildcard\n"))
        self.assertEqual(self.body_for("a.b.wild.test"), (200, "site:wildcard\n"))

    def test_exact_beats_wildcard(self):
        self.assertEqual(self.body_for("exact.wild.test"), (200, "site:exact-in-wild\n"))

    def test_wildcard_beats_earlier_regex(self):
        self.assertEqual(self.body_for("zz.wild.test"), (200, "site:wildcard\n"))
        # A host only the regex matches goes to the regex site.
        self.assertEqual(self.body_for("wildness.example"), (200, "site:regex-wild\n"))

    def test_regex_host_first_in_file_order(self):
        self.assertEqual(self.body_for("re42.test"), (200, "site:regex1\n"))
        self.assertEqual(self.body_for("reX.test"), (200, "site:regex2\n"))

    def test_unknown_host_goes_to_default_site(self):
        self.assertEqual(self.body_for("unknown.example"), (200, "site:default\n"))
        self.assertEqual(self.body_for("127.0.0.1"), (200, "site:default\n"))

    def test_http10_without_host_goes_to_default_site(self):
        res = harness.raw_request(self.srv.port, b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"site:default\n"), res)

    # ---- paths

    def test_exact_path_beats_prefix(self):
        self.assertEqual(self.body_for("example.test", "/p/exact"), (200, "route:exact\n"))
        self.assertEqual(self.body_for("example.test", "/p/exactly"), (200, "route:prefix-p\n"))
        self.assertEqual(self.body_for("example.test", "/p/exact?x=1"), (200, "route:exact\n"))

    def test_longest_prefix_wins(self):
        self.assertEqual(self.body_for("example.test", "/p/longer/x"),
                         (200, "route:prefix-longer\n"))
        self.assertEqual(self.body_for("example.test", "/p/longer"), (200, "route:prefix-p\n"))

    def test_regex_beats_prefix(self):
        """NGINX location order (wraith.toml(5), ROUTING): the longest prefix is remembered,
        then regexes are tried in file order and the first match wins over the prefix."""
        self.assertEqual(self.body_for("example.test", "/p/index.php"),
                         (200, "route:regex-php\n"))

    def test_prefix_used_when_no_regex_matches(self):
        self.assertEqual(self.body_for("example.test", "/p/index.html"),
                         (200, "route:prefix-p\n"))

    def test_first_regex_in_file_order(self):
        self.assertEqual(self.body_for("example.test", "/q/index.php"),
                         (200, "route:regex-q\n"))
        self.assertEqual(self.body_for("example.test", "/z/index.php"),
                         (200, "route:regex-php\n"))

    def test_no_route_is_404(self):
        status, _ = self.body_for("example.test", "/nothing/here")
        self.assertEqual(status, 404)

    # ---- redirect / respond

    def test_redirect_expands_request_uri(self):
        status, headers, _ = self.get("example.test", "/old/page.html?a=1&b=2")
        self.assertEqual(status, 301)
        self.assertEqual(headers.get("Location"), "https://example.test/old/page.html?a=1&b=2")

    def test_redirect_status_302(self):
        status, headers, _ = self.get("example.test", "/temp/x")
        self.assertEqual(status, 302)
        self.assertEqual(headers.get("Location"), "https://other.test/temp/x")

    def test_respond_route(self):
        status, headers, body = self.get("example.test", "/teapot")
        self.assertEqual(status, 418)
        self.assertEqual(body, b"short and stout\n")
        self.assertTrue(headers.get("Content-Type", "").startswith("text/x-teapot"), headers)
        self.assertEqual(headers.get("Content-Length"), str(len(body)))
        status, headers, body = self.get("example.test", "/created")
        self.assertEqual(status, 201)
        self.assertEqual(body, b"made\n")
        self.assertTrue(headers.get("Content-Type", "").startswith("application/json"))

    def test_respond_head(self):
        status, headers, body = harness.http_request(self.srv.port, "HEAD", "/teapot",
                                                     headers={"Host": "example.test"})
        self.assertEqual(status, 418)
        self.assertEqual(body, b"")
        self.assertEqual(headers.get("Content-Length"), str(len(b"short and stout\n")))


if __name__ == "__main__":
    harness.main()
