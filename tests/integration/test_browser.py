"""A real browser over HTTP/3: headless Chromium (Debian `chromium`), forced onto QUIC for the
test origin, loads a page whose stylesheet, script and image come from the same origin, runs
the script, and Wraith's access log shows every one of those requests as HTTP/3.

Skipped, with a message, only when Chromium is not installed (`make deps` installs it)."""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
import tlsutil
from harness import Wraith, WraithTestCase, make_dir, toml_str, wait_for, write_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = b"""<!doctype html>
<html><head><link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head>
<body><img src="/dot.svg" alt="dot"><p id="out">static text</p></body></html>
"""


def spki_hash(cert_path):
    """base64(SHA-256(SubjectPublicKeyInfo)), what --ignore-certificate-errors-spki-list takes."""
    pub = tlsutil.run_openssl("x509", "-in", cert_path, "-pubkey", "-noout")
    der = tlsutil.run_openssl("pkey", "-pubin", "-outform", "der", input=pub)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@unittest.skipUnless(CHROMIUM, "Chromium is not installed (Debian package `chromium`); "
                               "run `make deps`")
class ChromiumOverHttp3(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wraith-browser-")
        os.chmod(cls.pki_dir, 0o755)
        cls.ca = tlsutil.TestPki(cls.pki_dir).ca("browser-ca")
        cls.cert = cls.ca.issue("site", ["localhost", "127.0.0.1"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def start_server(self):
        sites = f'''
[[site]]
hosts = ["localhost"]
tls = {{ cert = {toml_str(self.cert.chain)}, key = {toml_str(self.cert.key)} }}
  [[site.route]]
  path = "/"
  static = {{ root = "@DIR@/www", index = ["index.html"] }}
'''
        srv = Wraith(sites, workers=2, tls_listen="")
        self.servers.append(srv)
        www = make_dir(srv.path("www"))
        write_file(os.path.join(www, "page.html"), PAGE)
        write_file(os.path.join(www, "style.css"), b"p { color: rgb(1, 2, 3); }\n")
        write_file(os.path.join(www, "app.js"),
                   b"document.addEventListener('DOMContentLoaded', function () {\n"
                   b"  var p = document.getElementById('out');\n"
                   b"  p.textContent = 'script ran: ' + getComputedStyle(p).color;\n"
                   b"});\n")
        write_file(os.path.join(www, "dot.svg"),
                   b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n')
        srv.start()
        return srv

    def chromium(self, srv, url):
        profile = tempfile.mkdtemp(prefix="wraith-chromium-")
        try:
            origin = f"localhost:{srv.tls_port}"
            args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}",
                    f"--origin-to-force-quic-on={origin}",
                    f"--ignore-certificate-errors-spki-list={spki_hash(self.cert.cert)}",
                    # localhost may resolve to ::1 first; the listener is 127.0.0.1.
                    "--host-resolver-rules=MAP localhost 127.0.0.1",
                    "--virtual-time-budget=5000", "--dump-dom", url]
            out = subprocess.run(args, capture_output=True, timeout=90)
            return out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def test_page_with_subresources_over_http3(self):
        srv = self.start_server()
        dom, err = self.chromium(srv, f"https://localhost:{srv.tls_port}/page.html")
        # The script ran after the stylesheet applied: both came over the wire intact.
        self.assertIn("script ran: rgb(1, 2, 3)", dom, f"DOM was:\n{dom}\nstderr:\n{err[-2000:]}")
        wanted = ["/page.html", "/style.css", "/app.js", "/dot.svg"]

        def lines():
            text = srv.read(srv.access_log) if os.path.exists(srv.access_log) else ""
            got = {}
            for line in text.splitlines():
                m = re.search(r'"GET (\S+) (HTTP/[0-9.]+)" (\d+)', line)
                if m and "HeadlessChrome" in line:
                    got[m.group(1)] = (m.group(2), m.group(3))
            return got if all(p in got for p in wanted) else None

        got = wait_for(lines, timeout=10, what="access log lines for the page and its resources")
        for path in wanted:
            self.assertEqual(got[path], ("HTTP/3.0", "200"), f"{path}: {got[path]}")


if __name__ == "__main__":
    harness.main()
