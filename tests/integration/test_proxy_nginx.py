"""Reverse proxy in front of a real nginx: Debian's nginx (package nginx-light, which `make deps`
installs) started here as the upstream, in its own temp prefix on 127.0.0.1, one worker.
Static files, `return` locations, chunked responses (gzip and sub_filter on the fly), a large
download checked by sha256, upstream keep-alive reuse read from nginx's access log
($connection), HEAD, conditional GET (304), Range (206, multipart, 416), 404, 500 and 503
passed through, request bodies (WebDAV PUT, and POST passed on by nginx as a PUT, written to
disk and compared byte for byte; chunked, Expect: 100-continue and h2c uploads; a POST that
nginx answers before reading it), and an upstream that closes keep-alive connections early.
Over HTTP/1.1 and h2c. A missing nginx fails the test."""

import gzip
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
from harness import (WraithTestCase, children_of, curl, free_port, make_dir, pid_alive,
                     proc_starttime, raw_request, wait_for, write_file)
from test_proxy import ProxyServer, h2curl

NGINX_BIN = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"

BIG = random.Random(31).randbytes(8 << 20)  # 8 MiB, static download
BIG_SHA = hashlib.sha256(BIG).hexdigest()
# Text that compresses and that sub_filter rewrites: several MiB, so the chunked response
# spans many chunks and many reads.
TEXT_LINE = "wraith proxies nginx; line {:07d} of a text that nginx rewrites on the fly\n"
TEXT = "".join(TEXT_LINE.format(i) for i in range(60000)).encode()
SMALL = b"small static file served by nginx\n" * 30
MISSING_NGINX = (f"nginx not found at {NGINX_BIN}: this test needs Debian's nginx as the "
                 "upstream (apt-get install nginx-light, or `make deps`)")

# One JSON object per request in nginx's access log, to see what reached the upstream.
LOG_FORMAT = (
    "log_format upstream escape=json '{"
    '"conn":$connection,"conn_reqs":$connection_requests,"port":$server_port,'
    '"method":"$request_method","uri":"$request_uri","proto":"$server_protocol",'
    '"status":$status,"request_length":$request_length,"content_length":"$content_length",'
    '"te":"$http_transfer_encoding","connection":"$http_connection",'
    '"sent_te":"$sent_http_transfer_encoding","sent_ce":"$sent_http_content_encoding",'
    '"bytes":$body_bytes_sent,"range":"$http_range","inm":"$http_if_none_match",'
    '"ims":"$http_if_modified_since","xff":"$http_x_forwarded_for","via":"$http_via",'
    '"rid":"$http_x_request_id"'
    "}';"
)


class Nginx:
    """An nginx master (`daemon off; master_process on; worker_processes 1`) with its own prefix,
    config, pid file, logs and temp paths under `dir`, on two loopback ports: `port` (the main
    server) and `short_port` (a server that keeps connections alive for 1 s and 3 requests)."""

    def __init__(self, dir):
        self.dir = dir
        self.port = free_port(ipv6_too=False)
        self.short_port = free_port(ipv6_too=False)
        self.conf = os.path.join(dir, "nginx.conf")
        self.pid_file = os.path.join(dir, "nginx.pid")
        self.error_log = os.path.join(dir, "error.log")
        self.access_log = os.path.join(dir, "access.log")
        self.www = make_dir(os.path.join(dir, "www"))
        self.dav = make_dir(os.path.join(dir, "dav"))
        self.proc = None
        self.workers = {}  # pid -> start time

    def write_config(self):
        d = self.dir
        temps = "\n".join(f"    {t}_temp_path {d}/tmp/{t};"
                          for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user www-data www-data;" if harness.IS_ROOT else ""
        write_file(self.conf, f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {self.pid_file};
lock_file {d}/nginx.lock;
error_log {self.error_log} info;
events {{ worker_connections 512; }}
http {{
    types {{ text/plain txt; text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    {LOG_FORMAT}
    access_log {self.access_log} upstream;
{temps}
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 10000;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.www};
        location /static/ {{ }}
        location /gzip/ {{
            alias {self.www}/static/;
            gzip on;
            gzip_types text/plain;
            gzip_min_length 1;
            gzip_proxied any;
            gzip_vary on;
        }}
        location /sub/ {{
            alias {self.www}/static/;
            sub_filter 'wraith' 'WRAITH';
            sub_filter_once off;
            sub_filter_types text/plain;
        }}
        location = /hello {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
        location = /unavailable {{
            default_type text/plain;
            add_header Retry-After 120 always;
            return 503 "down for maintenance\\n";
        }}
        location = /broken {{ return 500; }}
        location = /nocontent {{ return 204; }}
        location = /moved {{ return 301 /static/small.txt; }}
        location = /upload {{ default_type text/plain; return 200 "received\\n"; }}
        location /dav/ {{
            root {self.dav};
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        location = /store {{
            proxy_pass http://127.0.0.1:{self.port}/dav/stored/$arg_name;
            proxy_method PUT;
            proxy_http_version 1.1;
        }}
    }}
    server {{
        listen 127.0.0.1:{self.short_port};
        keepalive_timeout 1s;
        keepalive_requests 3;
        location = /hello {{ default_type text/plain; return 200 "short\\n"; }}
        location = /upload {{ default_type text/plain; return 200 "received\\n"; }}
    }}
}}
""")

    def start(self):
        if not os.access(NGINX_BIN, os.X_OK):
            raise AssertionError(MISSING_NGINX)
        write_file(os.path.join(self.www, "static", "big.bin"), BIG)
        write_file(os.path.join(self.www, "static", "text.txt"), TEXT)
        write_file(os.path.join(self.www, "static", "small.txt"), SMALL)
        make_dir(os.path.join(self.dir, "tmp"))
        if harness.IS_ROOT and harness.www_data_uid() is not None:
            os.chown(self.dav, harness.www_data_uid(), -1)  # the worker writes PUT bodies here
        self.write_config()
        check = subprocess.run([NGINX_BIN, "-t", "-q", "-p", self.dir + "/", "-c", self.conf,
                                "-e", self.error_log], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30)
        if check.returncode != 0:
            raise AssertionError(f"nginx -t rejected the test config:\n{check.stdout}")
        self._out = open(os.path.join(self.dir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen([NGINX_BIN, "-p", self.dir + "/", "-c", self.conf,
                                      "-e", self.error_log], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._out,
                                     start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n"
                                     + self.diagnostics())
            kids = children_of(self.proc.pid)
            if len(kids) != 1:
                return False
            status, _, body = harness.http_get(self.port, "/hello", timeout=2)
            return status == 200 and body == b"hello from nginx\n" and kids
        try:
            kids = wait_for(ready, 15, what=f"nginx answering on 127.0.0.1:{self.port}")
        except AssertionError:
            self.stop()
            raise
        self.workers = {pid: proc_starttime(pid) for pid in kids}
        # Warm-up requests must not count in the access-log tests.
        wait_for(lambda: self.entries(), 5, what="nginx's first access log line")
        return self

    def stop(self):
        """SIGQUIT (graceful), then SIGTERM, then SIGKILL, by PID; then any worker that outlived
        its master (by recorded PID and start time)."""
        if self.proc is None:
            return
        for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"[nginx] master {self.proc.pid} still running after {sig!r}\n")
        for pid, started in self.workers.items():
            if pid_alive(pid) and proc_starttime(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._out.close()

    def entries(self):
        """Every access log line so far, parsed."""
        try:
            with open(self.access_log, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_entries(self, predicate, count=1, what="nginx access log lines"):
        """Waits until `count` lines satisfy predicate (nginx writes each after its response);
        returns them."""
        def found():
            hits = [e for e in self.entries() if predicate(e)]
            return hits if len(hits) >= count else None
        return wait_for(found, 10, what=what)

    def problems(self):
        """Lines of nginx's error log at level crit or worse."""
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as f:
                return [l for l in f if any(f"[{lvl}]" in l for lvl in ("crit", "alert", "emerg"))]
        except FileNotFoundError:
            return []

    def diagnostics(self):
        out = ""
        for path in (self.conf, self.error_log, os.path.join(self.dir, "nginx.stderr")):
            try:
                with open(path, errors="replace") as f:
                    out += f"----- {path} -----\n{f.read()[-4000:]}\n"
            except FileNotFoundError:
                pass
        return out


class ProxyToNginxTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        top = tempfile.mkdtemp(prefix="wraith-itest-nginx-")
        os.chmod(top, 0o755)  # nginx's www-data worker reads the files below
        cls.nginx = Nginx(top)
        try:
            cls.nginx.start()
        except BaseException:
            shutil.rmtree(top, ignore_errors=True)
            raise
        sites = f'''
[upstream.nginx]
servers = ["127.0.0.1:{cls.nginx.port}"]
keepalive = 16

[upstream.short]
servers = ["127.0.0.1:{cls.nginx.short_port}"]
keepalive = 16

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/short/"
  proxy = {{ upstream = "short", strip_prefix = "/short" }}
  [[site.route]]
  path = "/"
  proxy = {{ upstream = "nginx" }}
'''
        cls.srv = ProxyServer(sites, workers=1, http={"client_max_body_size": '"64m"'})
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            cls.nginx.stop()
            shutil.rmtree(cls.nginx.dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            problems = cls.nginx.problems()
            cls.nginx.stop()
            if problems or os.environ.get("WRAITH_KEEP_TMP"):
                sys.stderr.write(cls.nginx.diagnostics())
            if not os.environ.get("WRAITH_KEEP_TMP"):
                shutil.rmtree(cls.nginx.dir, ignore_errors=True)
        if problems:
            raise AssertionError("nginx logged errors:\n" + "".join(problems))

    def tearDown(self):
        if self._test_failed():
            sys.stderr.write(self.nginx.diagnostics())
        super().tearDown()

    def request(self, method, path, body=None, headers=None, encode_chunked=False):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {},
                      encode_chunked=encode_chunked)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def uri_entry(self, uri, **kw):
        return self.nginx.wait_entries(lambda e: e["uri"] == uri, what=f"nginx log for {uri}",
                                       **kw)[-1]

    def assertHealthy(self):
        status, _, body = self.request("GET", "/hello")
        self.assertEqual((status, body), (200, b"hello from nginx\n"))

    # -- static files and `return`

    def test_return_location(self):
        status, headers, body = self.request("GET", "/hello?x=1")
        self.assertEqual((status, body), (200, b"hello from nginx\n"))
        self.assertEqual(headers["Content-Type"], "text/plain")
        self.assertNotIn("nginx", headers.get("Server", ""))  # the proxy sends its own
        e = self.uri_entry("/hello?x=1")
        self.assertEqual((e["method"], e["proto"], e["status"]), ("GET", "HTTP/1.1", 200))
        self.assertEqual(e["xff"], "127.0.0.1")
        self.assertEqual(e["via"], "1.1 wraith")
        self.assertRegex(e["rid"], r"^[0-9a-f]{32}$")

    def test_static_file_headers_pass_through(self):
        status, headers, body = self.request("GET", "/static/small.txt")
        self.assertEqual((status, body), (200, SMALL))
        self.assertEqual(headers["Content-Length"], str(len(SMALL)))
        self.assertEqual(headers["Content-Type"], "text/plain")
        self.assertEqual(headers["Accept-Ranges"], "bytes")
        self.assertRegex(headers["ETag"], r'^"[0-9a-f]+-[0-9a-f]+"$')
        self.assertIsNotNone(headers["Last-Modified"])

    def test_large_download_sha256(self):
        status, headers, body = self.request("GET", "/static/big.bin")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Length"], str(len(BIG)))
        self.assertEqual(len(body), len(BIG))
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)
        self.assertEqual(self.uri_entry("/static/big.bin")["bytes"], len(BIG))

    def test_large_download_with_curl_and_h2c(self):
        url = f"http://127.0.0.1:{self.srv.port}/static/big.bin"
        r = curl("-f", "--http1.1", "-o", "-", url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), BIG_SHA)
        r, status, version = h2curl(self.srv.port, "/static/big.bin")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), BIG_SHA)

    # -- chunked responses

    def test_gzip_chunked_response(self):
        status, headers, body = self.request("GET", "/gzip/text.txt?gz=1",
                                             headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertIn("Accept-Encoding", headers.get("Vary", ""))
        self.assertEqual(gzip.decompress(body), TEXT)
        e = self.uri_entry("/gzip/text.txt?gz=1")
        self.assertEqual((e["sent_te"], e["sent_ce"]), ("chunked", "gzip"),
                         "nginx did not send a chunked gzip response: the test tests nothing")

    def test_gzip_location_without_accept_encoding(self):
        status, headers, body = self.request("GET", "/gzip/text.txt?gz=0")
        self.assertEqual(status, 200)
        self.assertIsNone(headers["Content-Encoding"])
        self.assertEqual(body, TEXT)
        self.assertEqual(self.uri_entry("/gzip/text.txt?gz=0")["sent_ce"], "")

    def test_sub_filter_chunked_response(self):
        want = TEXT.replace(b"wraith", b"WRAITH")
        status, headers, body = self.request("GET", "/sub/text.txt?sub=1")
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(want))
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(want).hexdigest())
        self.assertEqual(self.uri_entry("/sub/text.txt?sub=1")["sent_te"], "chunked")
        r, status, _ = h2curl(self.srv.port, "/sub/text.txt?sub=2")
        self.assertEqual(status, 200, r.stderr)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(want).hexdigest())

    def test_chunked_responses_on_one_client_connection(self):
        # Several chunked responses in a row on one keep-alive connection: the framing of
        # each must end exactly where the next begins.
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        try:
            for i in range(3):
                c.request("GET", f"/sub/small.txt?seq={i}")
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (200, SMALL))
                c.request("GET", "/hello")
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (200, b"hello from nginx\n"))
        finally:
            c.close()

    # -- keep-alive to the upstream

    def test_upstream_keepalive_reuse(self):
        tag = f"ka{random.randrange(1 << 30)}"
        for i in range(30):
            status, _, body = self.request("GET", f"/hello?{tag}={i}")
            self.assertEqual((status, body), (200, b"hello from nginx\n"))
        hits = self.nginx.wait_entries(lambda e: f"?{tag}=" in e["uri"], count=30)
        # $connection_requests is 1 on a connection's first request: at most one new
        # connection (none when the pool had one from an earlier test), and no more
        # connections than the pool keeps (keepalive = 16).
        opened = [e["conn"] for e in hits if e["conn_reqs"] == 1]
        conns = {e["conn"] for e in hits}
        self.assertLessEqual(len(opened), 1, f"30 sequential requests opened {len(opened)} "
                                             f"upstream connections: {hits}")
        self.assertLessEqual(len(conns), 16, sorted(conns))
        self.assertTrue(all(e["connection"] != "close" for e in hits), hits[:3])

    def test_upstream_closes_after_keepalive_requests(self):
        # The short server closes each connection after its 3rd response (Connection: close).
        tag = f"kr{random.randrange(1 << 30)}"
        for i in range(10):
            status, _, body = self.request("GET", f"/short/hello?{tag}={i}")
            self.assertEqual((status, body), (200, b"short\n"), f"request {i}")
        hits = self.nginx.wait_entries(lambda e: f"?{tag}=" in e["uri"], count=10)
        self.assertGreaterEqual(len({e["conn"] for e in hits}), 4)
        self.assertTrue(all(e["conn_reqs"] <= 3 for e in hits))

    def test_upstream_closed_idle_connection_get(self):
        # nginx closes an idle connection after 1 s (keepalive_timeout 1s); the pooled
        # connection must not be used for the next request.
        self.assertEqual(self.request("GET", "/short/hello")[0], 200)
        time.sleep(1.5)
        status, _, body = self.request("GET", "/short/hello")
        self.assertEqual((status, body), (200, b"short\n"))

    def test_upstream_closed_idle_connection_post(self):
        # The same for a POST, which may not be retried on another connection once sent.
        self.assertEqual(self.request("GET", "/short/hello")[0], 200)
        time.sleep(1.5)
        status, _, body = self.request("POST", "/short/upload", body=b"x" * 1000)
        self.assertEqual((status, body), (200, b"received\n"))

    # -- HEAD, conditional requests, ranges

    def test_head(self):
        status, headers, body = self.request("HEAD", "/static/big.bin?head=1")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Length"], str(len(BIG)))
        e = self.uri_entry("/static/big.bin?head=1")
        self.assertEqual((e["method"], e["bytes"]), ("HEAD", 0))
        # No body bytes after the HEAD response: the next response on the connection parses.
        res = raw_request(self.srv.port,
                          b"HEAD /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        responses = res.responses(["HEAD", "GET"])
        self.assertEqual([r.status for r in responses], [200, 200], res)
        self.assertEqual(responses[0].header("content-length"), str(len(SMALL)))
        self.assertEqual(responses[1].body, b"hello from nginx\n")

    def test_head_of_a_chunked_response(self):
        # nginx answers HEAD on a gzip location without a length (the GET would be chunked):
        # the proxy must not wait for a body.
        start = time.monotonic()
        status, headers, body = self.request("HEAD", "/gzip/text.txt?head=gz",
                                             headers={"Accept-Encoding": "gzip"})
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertLess(time.monotonic() - start, 5)
        res = raw_request(self.srv.port,
                          b"HEAD /sub/small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        responses = res.responses(["HEAD", "GET"])
        self.assertEqual([r.status for r in responses], [200, 200], res)
        self.assertEqual(responses[1].body, b"hello from nginx\n")

    def test_204_and_301_pass_through(self):
        res = raw_request(self.srv.port,
                          b"GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /moved HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        responses = res.responses()
        self.assertEqual([r.status for r in responses], [204, 301, 200], res)
        self.assertEqual(responses[0].body, b"")
        self.assertTrue(responses[1].header("location", "").endswith("/static/small.txt"),
                        responses[1])
        self.assertEqual(responses[2].body, b"hello from nginx\n")
        self.assertEqual(self.uri_entry("/nocontent")["status"], 204)

    def test_head_over_h2c(self):
        r = curl("--http2-prior-knowledge", "-I",
                 f"http://127.0.0.1:{self.srv.port}/static/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        head = r.stdout.decode().lower()
        self.assertTrue(head.startswith("http/2 200"), head)
        self.assertIn(f"content-length: {len(SMALL)}", head)

    def test_conditional_get_304(self):
        status, headers, _ = self.request("GET", "/static/small.txt")
        self.assertEqual(status, 200)
        etag, modified = headers["ETag"], headers["Last-Modified"]
        status, headers, body = self.request("GET", "/static/small.txt?c=etag",
                                             headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(headers["ETag"], etag)
        e = self.uri_entry("/static/small.txt?c=etag")
        self.assertEqual((e["status"], e["inm"]), (304, etag), "304 not from nginx")
        status, _, body = self.request("GET", "/static/small.txt?c=ims",
                                       headers={"If-Modified-Since": modified})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(self.uri_entry("/static/small.txt?c=ims")["status"], 304)
        status, _, body = self.request("GET", "/static/small.txt?c=other",
                                       headers={"If-None-Match": '"other"'})
        self.assertEqual((status, body), (200, SMALL))
        r, status, _ = h2curl(self.srv.port, "/static/small.txt?c=h2", "-H",
                              f"If-None-Match: {etag}")
        self.assertEqual((status, r.body), (304, b""), r.stderr)
        # The connection is still usable after a 304 (no body expected, none read).
        res = raw_request(self.srv.port,
                          b"GET /static/small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: "
                          + etag.encode() + b"\r\n\r\n"
                          b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual([r.status for r in res.responses()], [304, 200], res)

    def test_range_206(self):
        status, headers, body = self.request("GET", "/static/big.bin?r=1",
                                             headers={"Range": "bytes=100-199"})
        self.assertEqual((status, body), (206, BIG[100:200]))
        self.assertEqual(headers["Content-Range"], f"bytes 100-199/{len(BIG)}")
        self.assertEqual(self.uri_entry("/static/big.bin?r=1")["range"], "bytes=100-199")
        status, headers, body = self.request("GET", "/static/big.bin",
                                             headers={"Range": "bytes=3000000-5999999"})
        self.assertEqual((status, len(body)), (206, 3000000))
        self.assertEqual(body, BIG[3000000:6000000])
        status, _, body = self.request("GET", "/static/small.txt", headers={"Range": "bytes=-10"})
        self.assertEqual((status, body), (206, SMALL[-10:]))
        r, status, _ = h2curl(self.srv.port, "/static/big.bin", "-r", "5-14")
        self.assertEqual((status, r.body), (206, BIG[5:15]), r.stderr)

    def test_multipart_range_and_416(self):
        status, headers, body = self.request("GET", "/static/small.txt",
                                             headers={"Range": "bytes=0-9,20-29"})
        self.assertEqual(status, 206)
        self.assertTrue(headers["Content-Type"].startswith("multipart/byteranges; boundary="),
                        headers["Content-Type"])
        self.assertIn(SMALL[0:10], body)
        self.assertIn(SMALL[20:30], body)
        self.assertIn(f"Content-Range: bytes 20-29/{len(SMALL)}".encode(), body)
        status, headers, _ = self.request("GET", "/static/small.txt",
                                          headers={"Range": "bytes=999999-"})
        self.assertEqual(status, 416)
        self.assertEqual(headers["Content-Range"], f"bytes */{len(SMALL)}")
        self.assertHealthy()

    def test_if_range_mismatch_sends_whole_file(self):
        status, _, body = self.request("GET", "/static/small.txt",
                                       headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        self.assertEqual((status, body), (200, SMALL))

    # -- error statuses

    def test_404_passes_through(self):
        status, _, body = self.request("GET", "/static/missing.txt")
        self.assertEqual(status, 404)
        self.assertIn(b"404 Not Found", body)
        self.assertIn(b"nginx", body)  # nginx's own page, not one made by the proxy
        self.assertEqual(self.uri_entry("/static/missing.txt")["status"], 404)
        self.assertEqual(h2curl(self.srv.port, "/static/missing.txt")[1], 404)

    def test_503_and_500_pass_through(self):
        status, headers, body = self.request("GET", "/unavailable")
        self.assertEqual((status, body), (503, b"down for maintenance\n"))
        self.assertEqual(headers["Retry-After"], "120")
        status, _, body = self.request("GET", "/broken")
        self.assertEqual(status, 500)
        self.assertIn(b"500 Internal Server Error", body)
        self.assertIn(b"nginx", body)
        r, status, _ = h2curl(self.srv.port, "/unavailable")
        self.assertEqual((status, r.body), (503, b"down for maintenance\n"))
        self.assertHealthy()

    # -- request bodies

    def dav_file(self, name):
        with open(os.path.join(self.nginx.dav, "dav", name), "rb") as f:
            return f.read()

    def test_post_body_stored_by_nginx(self):
        # /store reads the whole POST body and PUTs it to nginx's own WebDAV location, which
        # writes it to disk: what reached nginx is compared byte for byte.
        data = random.Random(41).randbytes(1 << 20)
        status, _, _ = self.request("POST", "/store?name=post.bin", body=data,
                                    headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 201)
        self.assertEqual(self.dav_file("stored/post.bin"), data)
        e = self.uri_entry("/store?name=post.bin")
        self.assertEqual((e["method"], e["content_length"], e["te"]),
                         ("POST", str(len(data)), ""))
        self.assertHealthy()

    def test_chunked_post_stored_by_nginx(self):
        data = random.Random(47).randbytes(1500000)

        def pieces():
            for i in range(0, len(data), 65536):
                yield data[i:i + 65536]
        status, _, _ = self.request("POST", "/store?name=chunked-post.bin", body=pieces(),
                                    encode_chunked=True)
        self.assertEqual(status, 201)
        self.assertEqual(self.dav_file("stored/chunked-post.bin"), data)
        self.assertEqual(self.uri_entry("/store?name=chunked-post.bin")["te"], "chunked")

    def test_post_to_return_location(self):
        data = random.Random(48).randbytes(100000)
        status, _, body = self.request("POST", "/upload?post=1", body=data)
        self.assertEqual((status, body), (200, b"received\n"))
        e = self.uri_entry("/upload?post=1")
        self.assertEqual((e["method"], e["content_length"]), ("POST", str(len(data))))
        self.assertHealthy()

    def test_large_post_answered_before_body_is_read(self):
        # nginx answers `return 200` at once and discards the body as it comes: the proxy
        # must still deliver the whole body (or close), and the client must get the 200.
        data = random.Random(42).randbytes(8 << 20)
        for i in range(2):
            status, _, body = self.request("POST", f"/upload?bigpost={i}", body=data)
            self.assertEqual((status, body), (200, b"received\n"))
            e = self.uri_entry(f"/upload?bigpost={i}")
            self.assertEqual(e["content_length"], str(len(data)))
        self.assertHealthy()

    def test_put_to_dav_byte_for_byte(self):
        data = random.Random(43).randbytes(5 << 20)
        status, _, _ = self.request("PUT", "/dav/upload-cl.bin", body=data)
        self.assertIn(status, (201, 204))
        self.assertEqual(hashlib.sha256(self.dav_file("upload-cl.bin")).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        e = self.uri_entry("/dav/upload-cl.bin")
        self.assertEqual((e["method"], e["te"]), ("PUT", ""))

    def test_chunked_put_to_dav(self):
        data = random.Random(44).randbytes(3 << 20)

        def pieces():
            for i in range(0, len(data), 100000):
                yield data[i:i + 100000]
        status, _, _ = self.request("PUT", "/dav/upload-chunked.bin", body=pieces(),
                                    encode_chunked=True)
        self.assertIn(status, (201, 204))
        self.assertEqual(hashlib.sha256(self.dav_file("upload-chunked.bin")).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        # nginx fills in $content_length itself once it has read a chunked body.
        self.assertEqual(self.uri_entry("/dav/upload-chunked.bin")["te"], "chunked")

    def test_curl_put_with_expect_continue(self):
        data = random.Random(45).randbytes(2 << 20)
        path = write_file(os.path.join(self.srv.dir, "expect.bin"), data)
        r = curl("-f", "--http1.1", "-H", "Expect: 100-continue", "-T", path,
                 f"http://127.0.0.1:{self.srv.port}/dav/upload-expect.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.dav_file("upload-expect.bin"), data)

    def test_h2c_upload_without_length_to_dav(self):
        # curl reading stdin over HTTP/2 sends no content-length: the proxy forwards it chunked.
        data = random.Random(46).randbytes(2 << 20)
        r = subprocess.run(["curl", "-sS", "-f", "--max-time", "60", "--http2-prior-knowledge",
                            "-T", "-", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                            f"http://127.0.0.1:{self.srv.port}/dav/upload-h2.bin"],
                           input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        code, version = r.stdout.decode().split()
        self.assertIn(code, ("201", "204"))
        self.assertEqual(version, "2")
        self.assertEqual(hashlib.sha256(self.dav_file("upload-h2.bin")).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        self.assertEqual(self.uri_entry("/dav/upload-h2.bin")["te"], "chunked")

    # -- the whole session: nothing broke along the way

    def test_worker_and_pool_survive_everything(self):
        for path in ("/static/missing.txt", "/unavailable", "/broken", "/hello"):
            self.request("GET", path)
        self.request("HEAD", "/static/small.txt")
        self.assertHealthy()
        self.assertEqual(len(self.srv.worker_pids()), 1)
        self.assertEqual(self.srv.crashes(), [])


if __name__ == "__main__":
    harness.main()
