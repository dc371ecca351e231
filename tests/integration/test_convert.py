"""`wraith convert` tested by running both servers (issue 20): Debian's own nginx.conf with
sites-available/default, and realistic configurations written for this test. For each one,
nginx (Debian's nginx-light) runs the NGINX configuration and answers a corpus of requests;
then `wraith convert` translates the same file, wraith runs the result on the same ports, files
and backends and answers the same corpus; status, body and the significant header fields are
compared request by request.

Every difference must be listed in the case's `intended` table, with the reason, which
docs/decisions.md ("wraith convert", "Differences the comparison accepts") explains; the
directives a case expects to be reported as not converted must be reported with FILE:LINE.
A table of every case is printed to stderr ([convert] lines).

What is normalised before comparing, for every request (also in docs/decisions.md):
  - Location: NGINX makes redirects absolute (http://HOST:PORT/x), Wraith sends the path
    (/x); an absolute Location naming the request's own origin is compared as its path.
  - Bodies of 3xx/4xx/5xx answers without a configured error page: each server's built-in
    page; only the status is compared.
  - Content-Type: case and blanks around ';' ignored.
"""

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
from http.client import HTTPConnection, HTTPSConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import tlsutil
from harness import Wraith, free_port, make_dir, run_wraith, wait_for, write_file

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HEADERS = ("content-type", "location", "content-encoding", "cache-control", "x-frame-options",
           "x-backend", "x-secret", "x-echo-host", "x-added", "upgrade")
TABLE = []


def say(text):
    sys.stderr.write(f"[convert] {text}\n")


# ----------------------------------------------------------------------------------------------
# Backends: an HTTP echo server that names itself, and a raw WebSocket-style echo after 101.


class BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        name = self.server.name
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            while True:
                data = self.connection.recv(4096)
                if not data:
                    return
                self.connection.sendall(data.upper())
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"{name} {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", name)
        self.send_header("X-Secret", "hidden")
        self.send_header("X-Echo-Host", self.headers.get("Host", ""))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = answer


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name):
        super().__init__(("127.0.0.1", 0), BackendHandler)
        self.name = name
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_port

    def stop(self):
        self.shutdown()
        self.server_close()


# ----------------------------------------------------------------------------------------------
# Clients


class Resp:
    def __init__(self, status, headers, body, error=None):
        self.status, self.headers, self.body, self.error = status, headers, body, error


def fetch(port, path, host="localhost", method="GET", headers=None, tls=None, body=None):
    """One request on a new connection; tls is the CA file to trust (SNI = host)."""
    hdrs = {"Host": host, "Connection": "close"}
    hdrs.update(headers or {})
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=tls)
            ctx.check_hostname = False

            class Conn(HTTPSConnection):
                def connect(self):
                    sock = socket.create_connection(("127.0.0.1", port), 10)
                    self.sock = ctx.wrap_socket(sock, server_hostname=host.split(":")[0])

            conn = Conn("127.0.0.1", port, timeout=10, context=ctx)
        else:
            conn = HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    except (OSError, ssl.SSLError) as e:
        return Resp(None, {}, b"", error=type(e).__name__)


def websocket(port, path, host="localhost"):
    """A WebSocket handshake, then 'hello' sent raw: the status line and what comes back."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None
        if status != 101:
            return Resp(status, {}, b"")
        s.sendall(b"hello")
        while len(rest) < 5:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        return Resp(status, {}, rest)
    finally:
        s.close()


# ----------------------------------------------------------------------------------------------
# Cases. Placeholders: @DIR@ (the case's directory), @PORT@ (plain), @TLS_PORT@, @B1@ @B2@
# (backend ports), @CERT@ @KEY@ (a certificate for localhost and *.example.test).

COMMON = """
user www-data;
worker_processes 2;
pid @DIR@/nginx.pid;
error_log @DIR@/nginx-error.log;
events { worker_connections 256; }
"""

HTTP_COMMON = """
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log @DIR@/access.log;
    sendfile on;
"""

SITE_FILES = {
    "www/index.html": "<h1>home</h1>\n" * 40,
    "www/about/index.html": "<h1>about</h1>\n",
    "www/style.css": "body { color: black; }\n" * 80,
    "www/app.js": "console.log('x');\n" * 80,
    "www/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
    "www/404.html": "<h1>not here</h1>\n",
    "www/50x.html": "<h1>oops</h1>\n",
    "www/data.json": '{"a": 1}\n',
    "www/files/a.txt": "a\n",
    "www/files/b.txt": "b\n",
    "www/docs/guide.txt": "guide\n",
}


def req(path, **kw):
    return dict(path=path, **kw)


CASES = [
    dict(name="static_site", conf=COMMON + """
http {""" + HTTP_COMMON + """
    gzip on;
    gzip_types text/css application/javascript;
    server {
        listen 127.0.0.1:@PORT@ default_server;
        server_name localhost;
        root @DIR@/www;
        index index.html;
        error_page 404 /404.html;
        error_page 500 502 503 504 /50x.html;
        location / { try_files $uri $uri/ =404; }
        location ~* \\.(css|js|png)$ { expires 7d; }
    }
}
""", requests=[req("/"), req("/index.html"), req("/about/"), req("/about"), req("/style.css"),
               req("/app.js"), req("/logo.png"), req("/LOGO.PNG"), req("/missing"),
               req("/style.css", headers={"Accept-Encoding": "gzip"}),
               req("/", headers={"Accept-Encoding": "gzip"}), req("/data.json"),
               req("/", method="HEAD")],
         intended={"/about": "redirect to the directory: NGINX's Location is absolute, with "
                             "the port (normalised); bodies are each server's page"}),
    dict(name="spa", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        server_name app.example.test;
        root @DIR@/www;
        location / { try_files $uri $uri/ /index.html; }
        location /assets/ { expires 1h; }
    }
}
""", requests=[req("/", host="app.example.test"), req("/deep/link", host="app.example.test"),
               req("/style.css", host="app.example.test"),
               req("/about/", host="app.example.test")]),
    dict(name="reverse_proxy", backends=["app"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        server_name localhost;
        root @DIR@/www;
        location /api/ {
            proxy_pass http://127.0.0.1:@B1@/;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 30s;
        }
        location /raw { proxy_pass http://127.0.0.1:@B1@; }
        location / { }
    }
}
""", requests=[req("/api/users"), req("/api/"), req("/api/x?q=1"), req("/raw/y"),
               req("/api/post", method="POST", body=b"data"), req("/")],
         not_converted=[]),
    dict(name="tls_redirect", tls=True, conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        server_name localhost;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:@TLS_PORT@ ssl http2;
        server_name localhost;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        ssl_protocols TLSv1.2 TLSv1.3;
        root @DIR@/www;
        location / { }
    }
}
""", requests=[req("/", tls=True), req("/style.css", tls=True), req("/"), req("/x?y=1")],
         intended={"/": "plain HTTP: the redirect server shares its name with the TLS one; "
                        "Wraith picks sites by name only (reported as not converted)",
                   "/x?y=1": "same as /"},
         not_converted=["also served by the server"]),
    dict(name="load_balancer", backends=["b1", "b2"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    upstream pool {
        server 127.0.0.1:@B1@ weight=1 max_fails=3 fail_timeout=20s;
        server 127.0.0.1:@B2@ weight=1 max_fails=3 fail_timeout=20s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
""", requests=[req("/lb", balance=8)]),
    dict(name="least_conn_backup", backends=["b1", "b2"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    upstream pool {
        least_conn;
        server 127.0.0.1:@B1@;
        server 127.0.0.1:@B2@ backup;
    }
    server {
        listen 127.0.0.1:@PORT@;
        location / { proxy_pass http://pool; proxy_set_header Host $host; }
    }
}
""", requests=[req("/a"), req("/b"), req("/c")]),
    dict(name="hash_balancer", backends=["b1", "b2"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    upstream pool {
        hash $request_uri consistent;
        server 127.0.0.1:@B1@;
        server 127.0.0.1:@B2@;
    }
    server {
        listen 127.0.0.1:@PORT@;
        location / { proxy_pass http://pool; proxy_set_header Host $host; }
    }
}
""", requests=[req("/same", sticky=6), req("/other", sticky=6)]),
    dict(name="websocket_app", backends=["ws"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location /ws {
            proxy_pass http://127.0.0.1:@B1@;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
        }
        location / { }
    }
}
""", requests=[req("/ws", websocket=True), req("/ws/plain"), req("/")],
         ignored=["map: Wraith's proxy passes WebSocket upgrades itself"]),
    # One request a minute, so no allowance comes back while the case runs: /api/ passes
    # 1 + burst (two single requests, then four of the burst) and refuses the rest.
    dict(name="rate_limited_api", backends=["api"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    limit_req_zone $binary_remote_addr zone=api:10m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=old:1m rate=1r/m;
    limit_conn_zone $binary_remote_addr zone=conns:10m;
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location /api/ {
            limit_req zone=api burst=5 nodelay;
            limit_req_status 429;
            limit_conn conns 10;
            proxy_pass http://127.0.0.1:@B1@;
        }
        location /old/ { limit_req zone=old; proxy_pass http://127.0.0.1:@B1@; }
        location /files/ { limit_rate 100k; limit_rate_after 1m; }
        location / { }
    }
}
""", requests=[req("/api/one"), req("/api/two"), req("/api/burst", burst=8),
               req("/old/x", burst=3), req("/files/a.txt"), req("/")],
         intended={"/old/x": "over the rate NGINX answers 503 by default (limit_req_status), "
                             "Wraith 429 with Retry-After (commented in the output)"},
         not_converted=[]),
    dict(name="basic_auth", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location /files/ {
            auth_basic "Members";
            auth_basic_user_file @DIR@/htpasswd;
        }
        location ~ /\\.ht { deny all; }
        location / { }
    }
}
""", files={"htpasswd": "user:$apr1$abc$xyz\n", "www/.htaccess": "secret\n"},
         requests=[req("/files/a.txt"), req("/"), req("/.htaccess")]),
    dict(name="exact_regex_prefix", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location = /healthz { default_type text/plain; return 200 "ok\\n"; }
        location ^~ /docs/ { }
        location ~ \\.txt$ { default_type text/markdown; return 200 "a text file\\n"; }
        location / { }
    }
}
""", requests=[req("/healthz"), req("/docs/guide.txt"), req("/files/a.txt"), req("/")],
         intended={"/docs/guide.txt": "^~ is a plain prefix in Wraith: the regex route takes "
                                      "it (noted in the output)",
                   "/files/a.txt": "NGINX's return picks the Content-Type from the URI's "
                                   "extension before default_type (noted in the output)"}),
    dict(name="redirects", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        server_name localhost;
        root @DIR@/www;
        rewrite ^/old$ /new permanent;
        rewrite ^/blog/(.*)$ /posts/$1 permanent;
        location = /moved { return 301 /about/; }
        location = /temp { return 302 http://example.test/; }
        location = /gone { return 410; }
        location / { }
    }
}
""", requests=[req("/old"), req("/moved"), req("/temp"), req("/gone"), req("/blog/x")]),
    dict(name="alias", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        location /static/ { alias @DIR@/www/static/; }
        location /pics/ { alias @DIR@/www/; }
        location / { root @DIR@/www; }
    }
}
""", files={"www/static/s.css": "s {}\n"},
         requests=[req("/static/s.css"), req("/pics/logo.png"), req("/")],
         intended={"/pics/logo.png": "alias to a directory not ending in the location's "
                                     "path is not converted (reported)"},
         not_converted=["alias @DIR@/www/ --"]),
    dict(name="virtual_hosts", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@ default_server;
        server_name _;
        return 404;
    }
    server {
        listen 127.0.0.1:@PORT@;
        server_name example.test www.example.test;
        location / { default_type text/plain; return 200 "main\\n"; }
    }
    server {
        listen 127.0.0.1:@PORT@;
        server_name *.example.test;
        location / { default_type text/plain; return 200 "wild\\n"; }
    }
    server {
        listen 127.0.0.1:@PORT@;
        server_name ~^api\\d+\\.example\\.org$;
        location / { default_type text/plain; return 200 "regex\\n"; }
    }
}
""", requests=[req("/", host="example.test"), req("/", host="www.example.test"),
               req("/", host="shop.example.test"), req("/", host="api7.example.org"),
               req("/", host="other.test")]),
    dict(name="proxy_headers", backends=["app"], conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass http://127.0.0.1:@B1@;
            proxy_hide_header X-Secret;
            add_header X-Frame-Options DENY;
            proxy_redirect default;
        }
    }
}
""", requests=[req("/page"), req("/redirect")]),
    dict(name="autoindex", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location /files/ { autoindex on; }
        location / { }
    }
}
""", requests=[req("/files/"), req("/files/a.txt")],
         intended={"/files/": "directory listings are each server's own HTML"}),
    dict(name="gzip_static", conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        gzip_static on;
        location / { }
    }
}
""", files={"www/big.txt": "x" * 4000},
         gz={"www/big.txt.gz": "x" * 4000},
         requests=[req("/big.txt", headers={"Accept-Encoding": "gzip"}), req("/big.txt")]),
    dict(name="respond_and_types", conf=COMMON + """
http {""" + HTTP_COMMON + """
    charset utf-8;
    server {
        listen 127.0.0.1:@PORT@;
        root @DIR@/www;
        location = /robots.txt { default_type text/plain; return 200 "User-agent: *\\nDisallow:\\n"; }
        location /json { default_type application/json; return 200 '{"ok":true}'; }
        location / { }
    }
}
""", requests=[req("/robots.txt"), req("/json"), req("/"), req("/data.json"),
               req("/style.css")],
         intended={"/style.css": "charset: NGINX adds it to its charset_types only (not "
                                 "text/css), Wraith to every textual type",
                   "/data.json": "same as /style.css (application/json)"}),
    dict(name="client_cert", tls=True, conf=COMMON + """
http {""" + HTTP_COMMON + """
    server {
        listen 127.0.0.1:@PORT@;
        location / { default_type text/plain; return 200 "plain\\n"; }
    }
    server {
        listen 127.0.0.1:@TLS_PORT@ ssl;
        server_name localhost;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        ssl_client_certificate @CA@;
        ssl_verify_client optional;
        location / { default_type text/plain; return 200 "secure\\n"; }
    }
}
""", requests=[req("/", tls=True), req("/")],
         intended={"/": "plain HTTP with Host: localhost: NGINX's TLS server claims the name "
                        "on its port only, a Wraith site on every listener (noted in the "
                        "output)"}),
]


def debian_default_case():
    """Debian's /etc/nginx/nginx.conf and sites-available/default, copied and moved onto a
    loopback port, the case's directory for pid and logs."""
    return dict(name="debian_default", debian=True, conf=None,
                requests=[req("/"), req("/index.nginx-debian.html"), req("/missing"),
                          req("/", headers={"Accept-Encoding": "gzip"})],
                not_converted=["load_module"])


def prepare_debian(case_dir, port):
    etc = os.path.join(case_dir, "nginx")
    shutil.copytree("/etc/nginx", etc, symlinks=True)
    enabled = os.path.join(etc, "sites-enabled")
    shutil.rmtree(enabled)
    os.mkdir(enabled)
    os.symlink(os.path.join(etc, "sites-available/default"), os.path.join(enabled, "default"))
    main = os.path.join(etc, "nginx.conf")
    with open(main) as f:
        text = f.read().replace("/etc/nginx/", etc + "/")
    text = text.replace("pid /run/nginx.pid;", f"pid {case_dir}/nginx.pid;")
    text = text.replace("/var/log/nginx/", case_dir + "/")
    write_file(main, text)
    site = os.path.join(etc, "sites-available/default")
    with open(site) as f:
        text = f.read()
    text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    text = text.replace("listen [::]:80 default_server;", f"listen [::1]:{port} default_server;")
    write_file(site, text)
    return main


class ConvertCompare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile_dir("wraith-convert-pki-")
        cls.ca = tlsutil.TestPki(cls.pki_dir).ca("convert-ca")
        cls.leaf = cls.ca.issue("convert", ["localhost", "*.example.test", "127.0.0.1"])
        for p in (cls.leaf.chain, cls.leaf.key, cls.ca.cert):
            os.chmod(p, 0o644)

    @classmethod
    def tearDownClass(cls):
        if TABLE:
            say(f"{'case':22} {'requests':>8} {'same':>5} {'intended':>8} {'unexpected':>10} "
                f"{'not converted':>13} {'approx':>6}")
            for row in TABLE:
                say(f"{row[0]:22} {row[1]:8} {row[2]:5} {row[3]:8} {row[4]:10} {row[5]:13} "
                    f"{row[6]:6}")
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def run_case(self, case):
        backends = [Backend(n) for n in case.get("backends", [])]
        self.addCleanup(lambda: [b.stop() for b in backends])
        w = Wraith("", raw_config="", workers=2)
        self.addCleanup(w.cleanup)
        d = w.dir
        tls_port = free_port() if case.get("tls") else None
        for rel, content in {**SITE_FILES, **case.get("files", {})}.items():
            write_file(os.path.join(d, rel.replace("/", os.sep)), content)
        for rel, content in case.get("gz", {}).items():
            write_file(os.path.join(d, rel), gzip.compress(content.encode()))
        if case.get("debian"):
            conf_path = prepare_debian(d, w.port)
        else:
            text = case["conf"].replace("@DIR@", d).replace("@PORT@", str(w.port))
            text = text.replace("@TLS_PORT@", str(tls_port or 0))
            text = text.replace("@CERT@", self.leaf.chain).replace("@KEY@", self.leaf.key)
            text = text.replace("@CA@", self.ca.cert)
            for i, b in enumerate(backends, 1):
                text = text.replace(f"@B{i}@", str(b.port))
            conf_path = write_file(os.path.join(d, "nginx.conf"), text)

        # 1. nginx
        t = run_wraith("convert", "-o", os.path.join(d, "wraith.toml"), conf_path)
        self.assertEqual(t.returncode, 0, t.stderr)
        nginx_answers = self.with_nginx(case, conf_path, d, w.port, tls_port)

        # 2. wraith on the converted file (same ports, files and backends)
        with open(os.path.join(d, "wraith.toml")) as f:
            converted = f.read()
        patched = self.patch(converted, w)
        w.raw_config = patched
        w.write_config()
        check = run_wraith("check", "-c", w.conf)
        self.assertEqual(check.returncode, 0, check.stderr + "\n" + patched)
        w.start(wait=False)
        wait_for(lambda: fetch(w.port, "/").status, timeout=15, what="wraith serving")
        wraith_answers = self.answers(case, w.port, tls_port)

        # 3. compare
        report = t.stderr
        for needle in case.get("not_converted", []):
            needle = needle.replace("@DIR@", d)
            self.assertIn(needle, report, f"{case['name']}: not reported as not converted")
        for needle in case.get("ignored", []):
            self.assertIn(needle, converted, f"{case['name']}: not listed as ignored")
        self.assertTrue(all(re.match(r"  \S+:\d+: ", l) for l in report.splitlines()[1:]),
                        report)
        same = intended = 0
        unexpected = []
        for (key, n), (_, wr) in zip(nginx_answers, wraith_answers):
            diffs = self.differences(n, wr, key, case)
            if not diffs:
                same += 1
            elif key[0] in case.get("intended", {}):
                intended += 1
            else:
                unexpected.append(f"{key}: " + "; ".join(diffs))
        approx = len(re.findall(r"^#   ", converted.split("# Approximations")[1].split(
            "# Ignored")[0], re.M)) if "# Approximations" in converted else 0
        not_conv = len([l for l in report.splitlines()[1:] if l.strip()])
        TABLE.append((case["name"], len(nginx_answers), same, intended, len(unexpected),
                      not_conv, approx))
        self.assertFalse(unexpected, f"{case['name']}: differences not marked intended:\n"
                         + "\n".join(unexpected) + "\n--- converted:\n" + converted)

    def with_nginx(self, case, conf_path, d, port, tls_port):
        proc = subprocess.Popen([NGINX, "-c", conf_path, "-g", "daemon off;"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def up():
                if proc.poll() is not None:
                    raise AssertionError("nginx exited: " + proc.stdout.read().decode())
                return fetch(port, "/").status
            wait_for(up, timeout=15, what="nginx serving")
            return self.answers(case, port, tls_port)
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            proc.stdout.close()
            # nginx's master exits after its workers: the ports are free for wraith
            # (TIME_WAIT left by the clients does not stop wraith's SO_REUSEADDR bind).

    def answers(self, case, port, tls_port):
        out = []
        for r in case["requests"]:
            host = r.get("host", "localhost")
            key = (r["path"], r.get("method", "GET"), host, bool(r.get("tls")),
                   r.get("headers", {}).get("Accept-Encoding", ""))
            if r.get("websocket"):
                out.append((key, websocket(port, r["path"], host)))
            elif r.get("burst"):
                # Requests one after another, faster than the rate: the statuses in order.
                statuses = [fetch(port, r["path"], host).status for _ in range(r["burst"])]
                out.append((key, Resp(200, {}, json.dumps(statuses).encode())))
            elif r.get("balance") or r.get("sticky"):
                n = r.get("balance") or r.get("sticky")
                names = [fetch(port, r["path"], host).headers.get("x-backend") for _ in range(n)]
                summary = (sorted(set(names)) if r.get("balance") else [len(set(names))])
                out.append((key, Resp(200, {}, json.dumps(summary).encode())))
            else:
                p = tls_port if r.get("tls") else port
                out.append((key, fetch(p, r["path"], host, r.get("method", "GET"),
                                       r.get("headers"), self.ca.cert if r.get("tls") else None,
                                       r.get("body"))))
        return out

    @staticmethod
    def normal_location(value, resp_port):
        if not value:
            return value
        m = re.match(r"^https?://(localhost|127\.0\.0\.1)(:\d+)?(/.*)$", value)
        return m.group(3) if m else value

    def differences(self, n, w, key, case):
        diffs = []
        if n.status != w.status:
            return [f"status {n.status}{'/' + n.error if n.error else ''} vs "
                    f"{w.status}{'/' + w.error if w.error else ''}"]
        if n.status is None:
            return []
        compare_body = n.status < 300 or n.status == 101 or (
            n.status in (404, 500, 502, 503, 504) and "error_page" in (case.get("conf") or ""))
        nb, wb = n.body, w.body
        if n.headers.get("content-encoding") == "gzip" == w.headers.get("content-encoding"):
            nb, wb = gzip.decompress(nb), gzip.decompress(wb)  # same bytes, other compressor
        if compare_body and nb != wb:
            diffs.append(f"body {n.body[:60]!r} vs {w.body[:60]!r}")
        for h in HEADERS:
            a, b = n.headers.get(h), w.headers.get(h)
            if h == "location":
                a, b = self.normal_location(a, 0), self.normal_location(b, 0)
            if h == "content-type" and a and b:
                a = re.sub(r"\s*;\s*", ";", a.lower())
                b = re.sub(r"\s*;\s*", ";", b.lower())
            if h == "content-type" and n.status >= 300:
                continue  # built-in pages
            if a != b:
                diffs.append(f"{h}: {a!r} vs {b!r}")
        return diffs

    @staticmethod
    def patch(text, w):
        """The converted file with this test's control socket (and the server section's
        paths kept): nothing else is changed."""
        extra = f'control_socket = "{w.control_socket}"\n'
        if "\n[server]\n" in text:
            return text.replace("\n[server]\n", "\n[server]\n" + extra, 1)
        return "[server]\n" + extra + text


def tempfile_dir(prefix):
    import tempfile
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def make_test(case):
    def test(self):
        if not os.access(NGINX, os.X_OK):
            self.skipTest("nginx is not installed (nginx-light)")
        self.run_case(case)
    return test


for _case in CASES + [debian_default_case()]:
    setattr(ConvertCompare, "test_" + _case["name"], make_test(_case))


if __name__ == "__main__":
    harness.main()
