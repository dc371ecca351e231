"""Static files: index, directory redirect, error pages, try_files, autoindex, MIME types,
conditionals, ranges, precompressed sidecars, on-the-fly compression, traversal and symlink
safety, dotfiles, large files, HEAD and 405, and the open-file cache noticing a replaced file."""

import email.utils
import gzip
import hashlib
import os
import random
import re
import subprocess
import time
import unittest

import harness
from harness import WraithTestCase, http_request, raw_request, write_file, make_dir, curl

TEXT_10K = "".join(f"line {i:05d}: the quick brown fox jumps over the lazy dog\n"
                   for i in range(200)).encode()[:10240]
RANGE_BODY = bytes(range(48, 48 + 75)) + b"abcdefghijklmnopqrstuvwxy"  # 100 bytes
PASSWD_MARK = b"root:x:0:0"
CUSTOM_404 = b"<html><body>custom not found page</body></html>\n"


def build_docroot(base):
    www = make_dir(os.path.join(base, "www"))
    files = {
        "index.html": b"<h1>home</h1>\n",
        "style.css": b"body { color: red }\n",
        "app.js": b"console.log('hi');\n",
        "img.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"></svg>\n',
        "mod.wasm": b"\x00asm\x01\x00\x00\x00",
        "data.json": b'{"a": 1}\n',
        "text10k.txt": TEXT_10K,
        "range.txt": RANGE_BODY,
        "dir/index.html": b"<p>dir index</p>\n",
        "noindex/a.txt": b"a\n",
        "noindex/b.txt": b"b\n",
        "errors/404.html": CUSTOM_404,
        ".git/config": b"[core]\n\tsecret = yes\n",
        ".env": b"SECRET=1\n",
        ".well-known/x": b"well known\n",
        "pre.txt": b"precompressed identity body\n" * 50,
        "sub dir/space file.txt": b"spaces ok\n",
    }
    for name, data in files.items():
        write_file(os.path.join(www, name), data)
    write_file(os.path.join(www, "pre.txt.gz"), gzip.compress(files["pre.txt"], mtime=0))
    # Not real brotli (no encoder in the stdlib): the server must serve the sidecar verbatim.
    write_file(os.path.join(www, "pre.txt.br"), b"BROTLI-SIDECAR-BYTES" + bytes(range(64)))
    # Files referenced outside the root and symlinks.
    os.symlink("/etc", os.path.join(www, "link_out"))
    os.symlink("/etc/passwd", os.path.join(www, "passwd_link"))
    os.symlink(os.path.join(www, "dir", "index.html"), os.path.join(www, "link_in"))
    os.symlink("dir", os.path.join(www, "link_dir_in"))
    # 20 MiB pseudo-random file (deterministic seed).
    rnd = random.Random(1234)
    big = rnd.randbytes(20 * 1024 * 1024)
    write_file(os.path.join(www, "big.bin"), big)

    spa = make_dir(os.path.join(base, "spa"))
    write_file(os.path.join(spa, "index.html"), b"<div id=app>spa shell</div>\n")
    write_file(os.path.join(spa, "assets/app.js"), b"// real asset\n")

    cached = make_dir(os.path.join(base, "cached"))
    write_file(os.path.join(cached, "swap.txt"), b"old contents\n")
    return www, spa, cached, hashlib.sha256(big).hexdigest()


SITES = r'''
[[site]]
hosts = ["static.test"]
default = true
error_pages = { "404" = "/errors/404.html" }
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www", index = ["index.html"], autoindex = false, charset = "utf-8", follow_symlinks = "within_root", dotfiles = "hide", precompressed = true, etag = true, cache_control = "public, max-age=60" }
  compress = { min_size = "1k", encodings = ["zstd", "br", "gzip"] }

[[site]]
hosts = ["spa.test"]
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/spa", index = ["index.html"], try_files = ["$uri", "$uri/", "/index.html"] }

[[site]]
hosts = ["auto.test"]
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www", autoindex = true }

[[site]]
hosts = ["plain.test"]
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www", charset = "" }

[[site]]
hosts = ["cached.test"]
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/cached", open_file_cache = { max = 100, valid = "200ms", inactive = "20s" } }
'''


class StaticTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        srv = harness.Wraith(SITES)
        cls.www, cls.spa, cls.cached, cls.big_sha = build_docroot(srv.dir)
        cls.class_servers = [srv]
        try:
            srv.start()
        except BaseException:
            srv.cleanup()
            raise
        cls.srv = srv

    def req(self, path, headers=None, method="GET", host="static.test", body=None):
        h = {"Host": host}
        h.update(headers or {})
        return http_request(self.srv.port, method, path, headers=h, body=body)

    def raw(self, target, host="static.test"):
        return raw_request(self.srv.port,
                           f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                           .encode("latin-1"), stop=harness.has_complete_response)

    # ---- index, directories, error pages

    def test_index(self):
        status, headers, body = self.req("/")
        self.assertEqual((status, body), (200, b"<h1>home</h1>\n"))
        self.assertEqual(headers.get("Cache-Control"), "public, max-age=60")

    def test_directory_index(self):
        status, _, body = self.req("/dir/")
        self.assertEqual((status, body), (200, b"<p>dir index</p>\n"))

    def test_directory_without_slash_redirects(self):
        status, headers, _ = self.req("/dir")
        self.assertEqual(status, 301)
        loc = headers.get("Location", "")
        self.assertTrue(loc.endswith("/dir/"), f"Location {loc!r}")

    def test_directory_redirect_keeps_query(self):
        status, headers, _ = self.req("/dir?x=1")
        self.assertEqual(status, 301)
        self.assertTrue(headers.get("Location", "").endswith("/dir/?x=1"),
                        headers.get("Location"))

    def test_404_custom_error_page(self):
        status, headers, body = self.req("/no/such/file.html")
        self.assertEqual(status, 404)
        self.assertEqual(body, CUSTOM_404)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/html"))

    def test_percent_encoded_space(self):
        status, _, body = self.req("/sub%20dir/space%20file.txt")
        self.assertEqual((status, body), (200, b"spaces ok\n"))

    def test_try_files_spa_fallback(self):
        status, _, body = self.req("/some/client/route", host="spa.test")
        self.assertEqual((status, body), (200, b"<div id=app>spa shell</div>\n"))
        status, _, body = self.req("/assets/app.js", host="spa.test")
        self.assertEqual((status, body), (200, b"// real asset\n"))

    def test_autoindex_off_is_403(self):
        status, _, body = self.req("/noindex/")
        self.assertEqual(status, 403)
        self.assertNotIn(b"a.txt", body)

    def test_autoindex_on_lists(self):
        status, headers, body = self.req("/noindex/", host="auto.test")
        self.assertEqual(status, 200)
        self.assertIn(b"a.txt", body)
        self.assertIn(b"b.txt", body)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/html"))

    # ---- MIME

    def test_mime_types(self):
        cases = {
            "/index.html": r"^text/html; ?charset=utf-8$",
            "/style.css": r"^text/css; ?charset=utf-8$",
            "/app.js": r"^(text|application)/javascript; ?charset=utf-8$",
            "/img.png": r"^image/png$",
            "/logo.svg": r"^image/svg\+xml(; ?charset=utf-8)?$",
            "/mod.wasm": r"^application/wasm$",
            "/data.json": r"^application/json(; ?charset=utf-8)?$",
        }
        for path, pattern in cases.items():
            with self.subTest(path=path):
                status, headers, _ = self.req(path)
                self.assertEqual(status, 200)
                self.assertRegex(headers.get("Content-Type", ""), re.compile(pattern, re.I))

    def test_each_route_serves_its_own_type_for_the_same_file(self):
        # Two routes over one directory, with and without a charset: each answers with its
        # own Content-Type however the requests interleave (a file's served type is
        # remembered per route, and the open-file cache keeps one entry per route's root).
        for _ in range(3):
            for host, want in (("static.test", "text/css; charset=utf-8"),
                               ("plain.test", "text/css")):
                status, headers, body = self.req("/style.css", host=host)
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("Content-Type", "").lower().replace("; ", ";"),
                                 want.replace("; ", ";"), host)
                self.assertTrue(body)

    # ---- validators and conditionals

    def validators(self, path="/range.txt"):
        status, headers, _ = self.req(path)
        self.assertEqual(status, 200)
        etag, lm = headers.get("ETag"), headers.get("Last-Modified")
        self.assertTrue(etag, "no ETag")
        self.assertTrue(lm, "no Last-Modified")
        self.assertRegex(etag, r'^(W/)?"[^"]*"$')
        self.assertIsNotNone(email.utils.parsedate_to_datetime(lm))
        return etag, lm

    def test_if_none_match_304(self):
        etag, _ = self.validators()
        status, headers, body = self.req("/range.txt", {"If-None-Match": etag})
        self.assertEqual(status, 304)
        self.assertEqual(body, b"")
        self.assertEqual(headers.get("ETag"), etag)
        status, _, _ = self.req("/range.txt", {"If-None-Match": '"nope", ' + etag})
        self.assertEqual(status, 304)
        status, _, _ = self.req("/range.txt", {"If-None-Match": "*"})
        self.assertEqual(status, 304)
        status, _, _ = self.req("/range.txt", {"If-None-Match": '"nope"'})
        self.assertEqual(status, 200)

    def test_if_match_mismatch_412(self):
        etag, _ = self.validators()
        status, _, _ = self.req("/range.txt", {"If-Match": '"definitely-not-it"'})
        self.assertEqual(status, 412)

    def test_if_modified_since(self):
        _, lm = self.validators()
        status, _, body = self.req("/range.txt", {"If-Modified-Since": lm})
        self.assertEqual((status, body), (304, b""))
        future = email.utils.formatdate(time.time() + 86400 * 365, usegmt=True)
        status, _, _ = self.req("/range.txt", {"If-Modified-Since": future})
        self.assertEqual(status, 304)
        past = "Mon, 01 Jan 2001 00:00:00 GMT"
        status, _, body = self.req("/range.txt", {"If-Modified-Since": past})
        self.assertEqual((status, body), (200, RANGE_BODY))

    def test_if_unmodified_since_past_412(self):
        status, _, _ = self.req("/range.txt",
                                {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        self.assertEqual(status, 412)

    # ---- ranges

    def test_range_single(self):
        status, headers, body = self.req("/range.txt", {"Range": "bytes=10-19"})
        self.assertEqual(status, 206)
        self.assertEqual(headers.get("Content-Range"), "bytes 10-19/100")
        self.assertEqual(body, RANGE_BODY[10:20])
        self.assertEqual(headers.get("Content-Length"), "10")

    def test_range_open_ended(self):
        status, headers, body = self.req("/range.txt", {"Range": "bytes=95-"})
        self.assertEqual(status, 206)
        self.assertEqual(headers.get("Content-Range"), "bytes 95-99/100")
        self.assertEqual(body, RANGE_BODY[95:])

    def test_range_suffix(self):
        status, headers, body = self.req("/range.txt", {"Range": "bytes=-7"})
        self.assertEqual(status, 206)
        self.assertEqual(headers.get("Content-Range"), "bytes 93-99/100")
        self.assertEqual(body, RANGE_BODY[-7:])

    def test_range_multi(self):
        status, headers, body = self.req("/range.txt", {"Range": "bytes=0-4,50-54"})
        self.assertEqual(status, 206)
        ctype = headers.get("Content-Type", "")
        m = re.match(r'multipart/byteranges; ?boundary="?([^";]+)"?', ctype)
        self.assertTrue(m, f"Content-Type {ctype!r}")
        boundary = m.group(1).encode()
        parts = body.split(b"--" + boundary)
        self.assertTrue(parts[-1].startswith(b"--"), f"no closing delimiter: {body!r}")
        found = []
        for part in parts[1:-1]:
            head, _, data = part.partition(b"\r\n\r\n")
            self.assertTrue(data.endswith(b"\r\n"), part)
            data = data[:-2]
            cr = re.search(rb"(?i)content-range: *bytes (\d+)-(\d+)/100", head)
            self.assertTrue(cr, head)
            start, end = int(cr.group(1)), int(cr.group(2))
            self.assertEqual(data, RANGE_BODY[start:end + 1])
            found.append((start, end))
        self.assertEqual(found, [(0, 4), (50, 54)])
        if headers.get("Content-Length") is not None:
            self.assertEqual(int(headers.get("Content-Length")), len(body))

    def test_range_unsatisfiable_416(self):
        status, headers, _ = self.req("/range.txt", {"Range": "bytes=1000-2000"})
        self.assertEqual(status, 416)
        self.assertEqual(headers.get("Content-Range"), "bytes */100")

    def test_if_range(self):
        etag, _ = self.validators()
        status, _, body = self.req("/range.txt", {"Range": "bytes=0-9", "If-Range": '"old"'})
        self.assertEqual((status, body), (200, RANGE_BODY))
        status, _, body = self.req("/range.txt", {"Range": "bytes=0-9", "If-Range": etag})
        self.assertEqual((status, body), (206, RANGE_BODY[:10]))

    # ---- compression

    def test_precompressed_gzip_sidecar(self):
        _, id_headers, _ = self.req("/pre.txt")
        status, headers, body = self.req("/pre.txt", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "gzip")
        with open(os.path.join(self.www, "pre.txt.gz"), "rb") as f:
            self.assertEqual(body, f.read())
        self.assertIn("accept-encoding", (headers.get("Vary") or "").lower())
        self.assertTrue(headers.get("ETag"))
        self.assertNotEqual(headers.get("ETag"), id_headers.get("ETag"))
        self.assertTrue(headers.get("Content-Type", "").startswith("text/plain"))

    def test_precompressed_br_sidecar(self):
        _, id_headers, _ = self.req("/pre.txt")
        status, headers, body = self.req("/pre.txt", {"Accept-Encoding": "br"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "br")
        with open(os.path.join(self.www, "pre.txt.br"), "rb") as f:
            self.assertEqual(body, f.read())
        self.assertIn("accept-encoding", (headers.get("Vary") or "").lower())
        self.assertNotEqual(headers.get("ETag"), id_headers.get("ETag"))

    def test_identity_has_vary_for_compressible(self):
        status, headers, body = self.req("/pre.txt")
        self.assertEqual(status, 200)
        self.assertIsNone(headers.get("Content-Encoding"))
        self.assertEqual(body, b"precompressed identity body\n" * 50)

    def test_gzip_on_the_fly(self):
        status, headers, body = self.req("/text10k.txt", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "gzip")
        self.assertIn("accept-encoding", (headers.get("Vary") or "").lower())
        self.assertLess(len(body), len(TEXT_10K))
        self.assertEqual(gzip.decompress(body), TEXT_10K)

    def test_br_on_the_fly(self):
        out = os.path.join(self.srv.dir, "br.out")
        r = curl("--compressed", "-H", "Accept-Encoding: br", "-H", "Host: static.test",
                 "-D", "-", "-o", out, f"http://127.0.0.1:{self.srv.port}/text10k.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        head = r.stdout.decode("latin-1")
        self.assertRegex(head, r"(?im)^content-encoding: *br\r?$")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), TEXT_10K)

    def test_compressed_copy_revalidates_to_304(self):
        status, headers, _ = self.req("/text10k.txt", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        tag = headers.get("ETag")
        self.assertRegex(tag, r'-gzip"$')
        identity = self.req("/text10k.txt")[1].get("ETag")
        self.assertNotEqual(tag, identity)
        status, headers, body = self.req("/text10k.txt", {"Accept-Encoding": "gzip",
                                                          "If-None-Match": tag})
        self.assertEqual(status, 304)
        self.assertEqual(headers.get("ETag"), tag)
        self.assertEqual(body, b"")

    def test_zstd_on_the_fly(self):
        status, headers, body = self.req("/text10k.txt", {"Accept-Encoding": "zstd"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "zstd")
        self.assertLess(len(body), len(TEXT_10K))
        d = subprocess.run(["zstd", "-d", "-c", "-q"], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(d.stdout, TEXT_10K)

    def test_encoding_preference_and_q_values(self):
        # gzip;q=0 refuses gzip; only identity remains acceptable.
        status, headers, body = self.req("/text10k.txt", {"Accept-Encoding": "gzip;q=0"})
        self.assertEqual(status, 200)
        self.assertIsNone(headers.get("Content-Encoding"))
        self.assertEqual(body, TEXT_10K)

    def test_small_file_not_compressed(self):
        status, headers, body = self.req("/index.html", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertIsNone(headers.get("Content-Encoding"))
        self.assertEqual(body, b"<h1>home</h1>\n")

    def test_range_with_accept_encoding_is_identity(self):
        status, headers, body = self.req("/text10k.txt",
                                         {"Range": "bytes=100-199", "Accept-Encoding": "gzip"})
        self.assertEqual(status, 206)
        self.assertIsNone(headers.get("Content-Encoding"))
        self.assertEqual(headers.get("Content-Range"), f"bytes 100-199/{len(TEXT_10K)}")
        self.assertEqual(body, TEXT_10K[100:200])

    # ---- traversal and symlinks

    def assertNoLeak(self, target, res):
        self.assertIn(res.status, (400, 403, 404), f"{target}: {res!r}")
        self.assertNotIn(PASSWD_MARK, res.data, f"{target} leaked /etc/passwd")

    def test_traversal_attempts(self):
        targets = [
            "/../etc/passwd",
            "/../../../../etc/passwd",
            "/dir/../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
            "/..%2f..%2fetc/passwd",
            "/..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/index.html%00.txt",
            "/..%00/etc/passwd",
            "/..\\..\\etc\\passwd",
            "/%5c..%5c..%5cetc%5cpasswd",
            "/.%2e/.%2e/etc/passwd",
            "/link_out/passwd",
            "/passwd_link",
            "//etc/passwd",
        ]
        for t in targets:
            with self.subTest(target=t):
                self.assertNoLeak(t, self.raw(t))
        # The server is still fine afterwards.
        status, _, _ = self.req("/")
        self.assertEqual(status, 200)

    def test_traversal_via_curl_path_as_is(self):
        r = curl("--path-as-is", "-H", "Host: static.test", "-o", "-", "-w", "\n%{http_code}",
                 f"http://127.0.0.1:{self.srv.port}/../../etc/passwd")
        self.assertNotIn(PASSWD_MARK, r.stdout)
        self.assertIn(r.stdout.rsplit(b"\n", 1)[-1], (b"400", b"403", b"404"))

    def test_symlink_within_root(self):
        status, _, body = self.req("/link_in")
        self.assertEqual((status, body), (200, b"<p>dir index</p>\n"))
        status, _, body = self.req("/link_dir_in/index.html")
        self.assertEqual((status, body), (200, b"<p>dir index</p>\n"))

    # ---- dotfiles

    def test_dotfiles_hidden(self):
        for path in ("/.git/config", "/.env", "/.git/", "/.git"):
            with self.subTest(path=path):
                status, _, body = self.req(path)
                self.assertEqual(status, 404)
                self.assertNotIn(b"secret", body.lower())

    def test_well_known_served(self):
        status, _, body = self.req("/.well-known/x")
        self.assertEqual((status, body), (200, b"well known\n"))

    # ---- big files, HEAD, methods

    def test_large_file_curl(self):
        out = os.path.join(self.srv.dir, "big.out")
        r = curl("-H", "Host: static.test", "-o", out, "-w", "%{http_code} %{size_download}",
                 f"http://127.0.0.1:{self.srv.port}/big.bin", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), f"200 {20 * 1024 * 1024}")
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.assertEqual(h.hexdigest(), self.big_sha)
        os.unlink(out)

    def test_large_file_range_tail(self):
        n = 20 * 1024 * 1024
        status, headers, body = self.req("/big.bin", {"Range": f"bytes={n - 1000}-"})
        self.assertEqual(status, 206)
        self.assertEqual(headers.get("Content-Range"), f"bytes {n - 1000}-{n - 1}/{n}")
        with open(os.path.join(self.www, "big.bin"), "rb") as f:
            f.seek(n - 1000)
            self.assertEqual(body, f.read())

    def test_head(self):
        _, get_headers, get_body = self.req("/style.css")
        status, headers, body = self.req("/style.css", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(headers.get("Content-Length"), str(len(get_body)))
        self.assertEqual(headers.get("ETag"), get_headers.get("ETag"))
        self.assertEqual(headers.get("Content-Type"), get_headers.get("Content-Type"))

    def test_head_raw_has_no_body(self):
        s = harness.connect(self.srv.port)
        try:
            s.sendall(b"HEAD /style.css HTTP/1.1\r\nHost: static.test\r\n\r\n"
                      b"GET /index.html HTTP/1.1\r\nHost: static.test\r\nConnection: close\r\n\r\n")
            res = harness.read_until_close(s)
        finally:
            s.close()
        rs = res.responses(head_methods=["HEAD", "GET"])
        self.assertEqual([r.status for r in rs], [200, 200], res)
        self.assertEqual(rs[0].header("content-length"), str(len(b"body { color: red }\n")))
        self.assertEqual(rs[1].body, b"<h1>home</h1>\n")

    # ---- open-file cache

    def test_open_file_cache_serves_a_renamed_file_after_valid(self):
        old = b"old contents\n"
        new = b"new contents, a different size\n"
        path = os.path.join(self.cached, "swap.txt")
        # Several requests, so each worker's cache most likely holds the old file.
        for _ in range(6):
            status, headers, body = self.req("/swap.txt", host="cached.test")
            self.assertEqual((status, body), (200, old))
        old_etag = headers.get("ETag")
        write_file(path + ".new", new)
        os.rename(path + ".new", path)  # a new inode under the old name, as deploy tools do

        def every_worker_serves_new():
            for _ in range(6):
                status, headers, body = self.req("/swap.txt", host="cached.test")
                if (status, body) != (200, new) or headers.get("ETag") == old_etag:
                    return False
            return True
        # valid = 200ms: well within the poll's deadline.
        harness.wait_for(every_worker_serves_new, timeout=5, what="the renamed file to be served")
        status, _, _ = self.req("/swap.txt", {"If-None-Match": old_etag}, host="cached.test")
        self.assertEqual(status, 200)

    def test_post_is_405_with_allow(self):
        status, headers, _ = self.req("/index.html", method="POST", body=b"x=1",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 405)
        allow = [m.strip().upper() for m in (headers.get("Allow") or "").split(",")]
        self.assertIn("GET", allow)
        self.assertIn("HEAD", allow)
        self.assertNotIn("POST", allow)


if __name__ == "__main__":
    harness.main()
