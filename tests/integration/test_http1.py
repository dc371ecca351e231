"""HTTP/1.1 on raw sockets: keep-alive, pipelining, request bodies (chunked, limits,
100-continue), HEAD, OPTIONS *, absolute-form, HTTP/1.0, version errors, the request
smuggling / garbage list (400 and close), size limits (414, 431), and timeouts (slowloris,
idle keep-alive)."""

import re
import select
import socket
import time
import unittest

import harness
from harness import WraithTestCase, connect, read_until_close, raw_request, has_complete_response

SITES = r'''
[[site]]
hosts = ["main.test"]
default = true
  [[site.route]]
  path = "=/a"
  respond = { status = 200, body = "body-a\n", content_type = "text/plain" }
  [[site.route]]
  path = "=/b"
  respond = { status = 200, body = "body-b\n", content_type = "text/plain" }
  [[site.route]]
  path = "=/c"
  respond = { status = 200, body = "body-c\n", content_type = "text/plain" }
  [[site.route]]
  path = "/echo"
  respond = { status = 200, body = "accepted\n", content_type = "text/plain" }
  [[site.route]]
  path = "=/trailers"
  respond = { status = 200, body = "with trailers\n", trailers = { "x-checksum" = "abc123" } }
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "root\n", content_type = "text/plain" }

[[site]]
hosts = ["abs.test"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "site:abs\n", content_type = "text/plain" }
'''

HTTP = {
    "client_max_body_size": '"1k"',
    "max_request_target": '"8k"',
    "max_header_size": '"32k"',
    "max_headers": "100",
}

ONE = {"stop": has_complete_response}


def req(method="GET", target="/", host="main.test", headers=(), body=b"", version="HTTP/1.1",
        close=False):
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += list(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Http1Test(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(SITES, http=HTTP)

    @property
    def port(self):
        return self.srv.port

    def assertServerHealthy(self, after=""):
        res = raw_request(self.port, req(close=True), timeout=10)
        self.assertEqual(res.status, 200, f"server unhealthy after {after!r}: {res!r}")
        self.assertTrue(res.data.endswith(b"root\n"), res)

    def assertRejected(self, data, status=400, label=None):
        res = raw_request(self.port, data, timeout=5)
        label = label or data[:120]
        self.assertEqual(res.status, status, f"{label!r}: expected {status}, got {res!r}")
        self.assertTrue(res.closed, f"{label!r}: connection not closed after {status}: {res!r}")
        rs = res.responses()
        self.assertEqual(len(rs), 1, f"{label!r}: expected exactly one response: {res!r}")
        self.assertServerHealthy(label)
        return res

    # ---- connection management

    def test_trailers_follow_a_chunked_body(self):
        res = raw_request(self.port, req("GET", "/trailers", close=True))
        self.assertEqual(res.status, 200, res)
        data = res.data
        self.assertIn(b"\r\nTrailer: x-checksum\r\n", data)
        self.assertIn(b"\r\nTransfer-Encoding: chunked\r\n", data)
        body = data[data.index(b"\r\n\r\n") + 4:]
        self.assertEqual(body, b"e\r\nwith trailers\n\r\n0\r\nX-Checksum: abc123\r\n\r\n")
        # HTTP/1.0 has no chunked framing: the trailers are dropped, the body arrives whole.
        res = raw_request(self.port, b"GET /trailers HTTP/1.0\r\n\r\n")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"\r\n\r\nwith trailers\n"), res)

    def test_keep_alive_two_requests(self):
        s = connect(self.port)
        try:
            s.sendall(req(target="/a"))
            r1 = read_until_close(s, **ONE)
            self.assertFalse(r1.closed, r1)
            s.sendall(req(target="/b"))
            r2 = read_until_close(s, **ONE)
        finally:
            s.close()
        (a,) = r1.responses()
        (b,) = r2.responses()
        self.assertEqual((a.status, a.body), (200, b"body-a\n"))
        self.assertEqual((b.status, b.body), (200, b"body-b\n"))
        self.assertNotEqual((a.header("connection") or "").lower(), "close")

    def test_pipelining_in_order(self):
        data = req(target="/a") + req(target="/b") + req(target="/c", close=True)
        res = raw_request(self.port, data)
        self.assertTrue(res.closed, res)
        rs = res.responses()
        self.assertEqual([(r.status, r.body) for r in rs],
                         [(200, b"body-a\n"), (200, b"body-b\n"), (200, b"body-c\n")], res)

    def test_connection_close_honoured(self):
        res = raw_request(self.port, req(target="/a", close=True))
        self.assertTrue(res.closed)
        self.assertEqual(res.status, 200)

    # ---- bodies

    def test_chunked_body_accepted(self):
        body = b"5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        data = req("POST", "/echo", headers=["Transfer-Encoding: chunked"], body=body)
        data += req(target="/b", close=True)
        res = raw_request(self.port, data)
        rs = res.responses()
        self.assertEqual([(r.status, r.body) for r in rs],
                         [(200, b"accepted\n"), (200, b"body-b\n")], res)

    def test_content_length_body_accepted(self):
        data = req("POST", "/echo", headers=["Content-Length: 11"], body=b"hello world")
        data += req(target="/c", close=True)
        res = raw_request(self.port, data)
        self.assertEqual([(r.status, r.body) for r in res.responses()],
                         [(200, b"accepted\n"), (200, b"body-c\n")], res)

    def test_body_over_limit_413(self):
        body = b"x" * 2000
        res = raw_request(self.port, req("POST", "/echo", headers=["Content-Length: 2000"],
                                         body=body), timeout=5)
        self.assertEqual(res.status, 413, res)
        self.assertServerHealthy("CL 2000")

    def test_chunked_body_over_limit_413(self):
        body = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
        res = raw_request(self.port, req("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                                         body=body), timeout=5)
        self.assertEqual(res.status, 413, res)
        self.assertServerHealthy("chunked 2048")

    def test_expect_100_continue(self):
        """Contract: when the body is allowed, the client sees 100 Continue before the final
        response (the route accepts request bodies)."""
        s = connect(self.port)
        try:
            s.sendall(req("POST", "/echo", headers=["Content-Length: 5", "Expect: 100-continue"],
                          close=True))
            interim = read_until_close(s, timeout=5, stop=lambda d: b"\r\n\r\n" in d)
            self.assertTrue(interim.data.startswith(b"HTTP/1.1 100 Continue\r\n"), interim)
            s.sendall(b"hello")
            rest = read_until_close(s)
        finally:
            s.close()
        rs = harness.parse_responses(interim.data + rest.data)
        self.assertEqual([r.status for r in rs], [100, 200], rest)
        self.assertEqual(rs[-1].body, b"accepted\n")

    def test_expect_100_continue_too_big_413(self):
        s = connect(self.port)
        try:
            s.sendall(req("POST", "/echo",
                          headers=["Content-Length: 5000", "Expect: 100-continue"]))
            res = read_until_close(s, timeout=5, **ONE)
        finally:
            s.close()
        self.assertEqual(res.status, 413, res)
        self.assertNotIn(b"100 Continue", res.data)

    # ---- methods, target forms, versions

    def test_head_same_length_no_body(self):
        data = req("HEAD", "/a") + req("GET", "/a", close=True)
        res = raw_request(self.port, data)
        rs = res.responses(head_methods=["HEAD", "GET"])
        self.assertEqual(len(rs), 2, res)
        head, get = rs
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header("content-length"), get.header("content-length"))
        self.assertEqual(get.body, b"body-a\n")
        # The HEAD response carried no body: the GET response starts right after its head.
        self.assertEqual(res.data.count(b"body-a"), 1, res)

    def test_options_star(self):
        res = raw_request(self.port, req("OPTIONS", "*", close=True))
        self.assertIn(res.status, (200, 204), res)
        (r,) = res.responses()
        self.assertTrue(r.header("allow"), f"no Allow header: {res!r}")
        self.assertIn("GET", r.header("allow").upper())

    def test_absolute_form_selects_site_by_authority(self):
        res = raw_request(self.port, req("GET", "http://abs.test/anything", host="abs.test",
                                         close=True))
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"site:abs\n"), res)
        # The target's authority wins over a different Host (RFC 9112 §3.2.2).
        res = raw_request(self.port, req("GET", "http://abs.test/x", host="main.test",
                                         close=True))
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"site:abs\n"), res)

    def test_http10_without_host(self):
        res = raw_request(self.port, b"GET /a HTTP/1.0\r\n\r\n")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.closed, res)
        (r,) = res.responses()
        self.assertEqual(r.body, b"body-a\n")

    def test_http10_keep_alive_opt_in(self):
        s = connect(self.port)
        try:
            s.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r1 = read_until_close(s, **ONE)
            self.assertFalse(r1.closed, r1)
            s.sendall(b"GET /b HTTP/1.0\r\n\r\n")
            r2 = read_until_close(s)
        finally:
            s.close()
        self.assertEqual(r1.responses()[0].body, b"body-a\n")
        self.assertEqual(r2.responses()[0].body, b"body-b\n")
        self.assertTrue(r2.closed)

    def test_http2_request_line_505(self):
        res = raw_request(self.port, b"GET / HTTP/2.0\r\nHost: main.test\r\n\r\n", timeout=5)
        self.assertEqual(res.status, 505, res)
        self.assertServerHealthy("HTTP/2.0")

    def test_unknown_version_garbage(self):
        self.assertRejected(b"GET / HTTQ/1.1\r\nHost: main.test\r\n\r\n")

    # ---- smuggling and garbage: 400 and close

    def test_cl_and_te(self):
        self.assertRejected(req("POST", "/echo", headers=["Content-Length: 5",
                                                          "Transfer-Encoding: chunked"],
                                body=b"0\r\n\r\n"))

    def test_two_different_content_lengths(self):
        self.assertRejected(req("POST", "/echo", headers=["Content-Length: 5",
                                                          "Content-Length: 6"],
                                body=b"hello!"))

    def test_content_length_list(self):
        self.assertRejected(req("POST", "/echo", headers=["Content-Length: 1,1"], body=b"x"))

    def test_content_length_plus_sign(self):
        self.assertRejected(req("POST", "/echo", headers=["Content-Length: +5"], body=b"hello"))

    def test_te_gzip_chunked(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: gzip, chunked"],
                                body=b"0\r\n\r\n"))

    def test_te_chunked_chunked(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: chunked, chunked"],
                                body=b"0\r\n\r\n"))

    def test_te_xchunked(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: xchunked"],
                                body=b"0\r\n\r\n"))

    def test_te_in_http10(self):
        self.assertRejected(req("POST", "/echo", version="HTTP/1.0",
                                headers=["Transfer-Encoding: chunked"], body=b"0\r\n\r\n"))

    def test_bad_chunk_size(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                                body=b"zz\r\nhello\r\n0\r\n\r\n"))

    def test_chunk_size_overflow(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                                body=b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"))

    def test_bad_chunk_extension(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                                body=b"5;=x\r\nhello\r\n0\r\n\r\n"))

    def test_missing_crlf_after_chunk_data(self):
        self.assertRejected(req("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                                body=b"5\r\nhelloXX0\r\n\r\n"))

    def test_space_before_colon(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost : main.test\r\n\r\n")

    def test_obs_fold(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: main.test\r\nX-Folded: a\r\n  b\r\n\r\n")

    def test_nul_in_header_value(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: main.test\r\nX-Nul: a\x00b\r\n\r\n")

    def test_control_char_in_target(self):
        self.assertRejected(b"GET /a\x01b HTTP/1.1\r\nHost: main.test\r\n\r\n")

    def test_invalid_header_name(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHo(st: main.test\r\n\r\n")

    def test_missing_host_http11(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n")

    def test_two_host_headers(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: main.test\r\nHost: abs.test\r\n\r\n")

    def test_bare_lf_garbage_request_line(self):
        self.assertRejected(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")

    def test_error_log_mentions_reason(self):
        """Rejections are logged with their reason (rate-limited, so at least one line)."""
        self.assertRejected(req("POST", "/echo", headers=["Content-Length: 5",
                                                          "Transfer-Encoding: chunked"],
                                body=b"0\r\n\r\n"))
        reason = re.compile(r"(?im)^.*\b40[0-9]\b.*(content-length|transfer-encoding|chunk"
                            r"|header|request target|host|method|version).*$")
        line = harness.wait_for(lambda: reason.search(self.srv.error_log_text()), 10,
                                what="error log line naming a rejection reason")
        self.assertTrue(line)

    # ---- limits

    def test_414_long_target(self):
        res = raw_request(self.port, req(target="/" + "a" * 10240), timeout=5)
        self.assertEqual(res.status, 414, res)
        self.assertServerHealthy("10k target")

    def test_431_big_headers(self):
        res = raw_request(self.port, req(headers=["X-Big: " + "a" * 40960]), timeout=5)
        self.assertEqual(res.status, 431, res)
        self.assertServerHealthy("40k header")

    def test_431_too_many_headers(self):
        res = raw_request(self.port, req(headers=[f"X-H{i}: v" for i in range(200)]),
                          timeout=5)
        self.assertEqual(res.status, 431, res)
        self.assertServerHealthy("200 fields")

    def test_within_limits_ok(self):
        res = raw_request(self.port, req(target="/" + "a" * 4000,
                                         headers=[f"X-H{i}: v" for i in range(50)], close=True))
        self.assertEqual(res.status, 200, res)


@unittest.skipUnless(harness.have_ipv6(), "no IPv6 loopback on this machine")
class Http1Ipv6Test(WraithTestCase):
    def test_ipv6_listener(self):
        srv = self.server(SITES, http=HTTP, listen6=True)
        res = raw_request(srv.port6, req(target="/a", close=True), host="::1")
        self.assertEqual(res.status, 200, res)
        self.assertTrue(res.data.endswith(b"body-a\n"), res)
        # The IPv4 listener of the same config still works.
        res = raw_request(srv.port, req(target="/b", close=True))
        self.assertTrue(res.data.endswith(b"body-b\n"), res)


class Http1TimeoutTest(WraithTestCase):
    """Timeouts with a server of its own (2s header and keep-alive timeouts)."""

    def start(self):
        return self.server(SITES, http=dict(HTTP, header_timeout='"2s"',
                                            keepalive_timeout='"2s"'))

    def test_slowloris_closed_while_others_served(self):
        srv = self.start()
        slow = connect(srv.port)
        closed = False
        served = 0
        try:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: main.test\r\nX-Slow: ")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    slow.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                # A normal client is served meanwhile.
                res = raw_request(srv.port, req(target="/a", close=True), timeout=5)
                self.assertEqual(res.status, 200, res)
                served += 1
                r, _, _ = select.select([slow], [], [], 1.0)
                if r:
                    try:
                        chunk = slow.recv(65536)
                    except ConnectionResetError:
                        chunk = b""
                    if not chunk or read_until_close(slow, timeout=5).closed:
                        closed = True
                        break
        finally:
            slow.close()
        self.assertTrue(closed, "slowloris connection still open after 20s "
                                "(header_timeout = 2s)")
        self.assertGreater(served, 0)
        res = raw_request(srv.port, req(close=True))
        self.assertEqual(res.status, 200, res)

    def test_idle_keepalive_closed(self):
        srv = self.start()
        s = connect(srv.port)
        try:
            s.sendall(req(target="/a"))
            r1 = read_until_close(s, **ONE)
            self.assertEqual(r1.status, 200, r1)
            self.assertFalse(r1.closed)
            rest = read_until_close(s, timeout=20)
        finally:
            s.close()
        self.assertTrue(rest.closed, "idle keep-alive connection open after 20s "
                                     "(keepalive_timeout = 2s)")
        self.assertEqual(rest.data, b"", rest)


if __name__ == "__main__":
    harness.main()
