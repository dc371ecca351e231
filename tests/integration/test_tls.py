"""TLS listeners: certificates chosen by SNI (exact, wildcard, default site, no SNI), protocol
versions and cipher policy, ALPN, RSA and ECDSA certificates side by side, session resumption
across workers, `wraith check` on broken certificates, bad bytes on the TLS port, and
`wraith generate certs --self-signed`.

Certificates are made at test time (tlsutil.py); nothing secret is committed. Clients: curl and
`openssl s_client`. A test whose config the server refuses with "not supported by this version
yet" is skipped (it turns on when the feature lands); every other failure fails.
"""

import json
import os
import re
import shutil
import http.server
import signal
import threading
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import harness
import tlsutil
from test_metrics import parse
from harness import (Wraith, WraithTestCase, curl, raw_request, run_wraith, toml_str, wait_for,
                     write_file)

NOT_SUPPORTED = "not supported by this version yet"
OPENSSL = tlsutil.OPENSSL
HTTP11 = 'protocols = ["http/1.1"]'


def request(host, path="/"):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode()


class Handshake:
    """What one `openssl s_client` run printed, with the parts the tests look at."""

    def __init__(self, args, returncode, out):
        self.args = args
        self.returncode = returncode
        self.out = out

    @property
    def ok(self):
        """The handshake completed (a cipher was agreed)."""
        return re.search(r"^(New|Reused), \S+, Cipher is (?!\(NONE\))", self.out, re.M) \
            is not None

    @property
    def reused(self):
        return re.search(r"^Reused, TLSv1\.3, Cipher is", self.out, re.M) is not None

    @property
    def protocol(self):
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", self.out, re.M) or \
            re.search(r"^(?:New|Reused), (TLSv1\.[23]), Cipher is", self.out, re.M)
        return m.group(1) if m else None

    @property
    def cipher(self):
        m = re.search(r"^(?:New|Reused), \S+, Cipher is (\S+)", self.out, re.M)
        return m.group(1) if m else None

    @property
    def alpn(self):
        m = re.search(r"^ALPN protocol: (\S+)", self.out, re.M)
        return m.group(1) if m else None

    @property
    def certs(self):
        return tlsutil.pem_blocks(self.out)

    @property
    def leaf(self):
        certs = self.certs
        return certs[0] if certs else None

    def leaf_cn(self):
        return tlsutil.subject_cn(self.leaf) if self.leaf else None

    def leaf_key_type(self):
        """"rsa" or "ec" for the server's certificate."""
        text = tlsutil.cert_text(self.leaf)
        if "rsaEncryption" in text:
            return "rsa"
        if "id-ecPublicKey" in text:
            return "ec"
        return text

    def __repr__(self):
        return f"s_client {' '.join(self.args)} -> {self.returncode}\n{self.out[-3000:]}"


def s_client(port, *args, servername=None, send=None, timeout=20):
    """One `openssl s_client` connection to 127.0.0.1:port. servername=None sends no SNI.
    send: bytes written once connected; the client then reads until the server closes."""
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    cmd += [str(a) for a in args]
    if send is not None:
        cmd.append("-ign_eof")
    p = subprocess.run(cmd, input=send or b"", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return Handshake(cmd[3:], p.returncode, p.stdout.decode(errors="replace"))


def https_get(srv, host, ca, path="/", *extra):
    """curl --http1.1 over TLS to host (resolved to 127.0.0.1) on the server's TLS port."""
    return curl("--http1.1", "--cacert", ca, "--resolve", f"{host}:{srv.tls_port}:127.0.0.1",
                *extra, f"https://{host}:{srv.tls_port}{path}")


def check_or_skip(srv):
    """Runs `wraith check` on srv's config; skips the test when the server says a key in it is
    not supported yet. Returns the CompletedProcess."""
    r = srv.cli("check")
    if r.returncode != 0 and NOT_SUPPORTED in r.stderr:
        lines = [l for l in r.stderr.splitlines() if NOT_SUPPORTED in l]
        raise unittest.SkipTest("server: " + lines[0])
    return r


def site(host_list, www, tls=None, default=False):
    hosts = ", ".join(toml_str(h) for h in host_list)
    out = f"[[site]]\nhosts = [{hosts}]\n"
    if default:
        out += "default = true\n"
    if tls:
        out += f"tls = {tls}\n"
    out += (f'  [[site.route]]\n  path = "/"\n'
            f'  static = {{ root = "@DIR@/{www}", index = ["index.html"] }}\n')
    return out


def tls_pair(cert, key=None, extra=""):
    """tls = { cert = ..., key = ... } from a tlsutil.Cert (chain) or paths."""
    if isinstance(cert, tlsutil.Cert):
        cert, key = cert.chain, cert.key
    return f"{{ cert = {toml_str(cert)}, key = {toml_str(key)}{extra} }}"


class TlsTestCase(WraithTestCase):
    """Per-class PKI in a temp folder; helpers to start TLS servers."""

    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wraith-tls-")
        os.chmod(cls.pki_dir, 0o755)
        cls.pki = tlsutil.TestPki(cls.pki_dir)
        cls.ca = cls.pki.ca("server-ca")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if not os.environ.get("WRAITH_KEEP_TMP"):
            shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def tls_server(self, sites, docroots, tls_listen=HTTP11, start=True, **kw):
        """A server with a plain and a TLS listener; docroots: {folder: index.html text}."""
        srv = Wraith(sites, tls_listen=tls_listen, **kw)
        self.servers.append(srv)
        for folder, text in (docroots or {"www": "index\n"}).items():
            write_file(srv.path(folder, "index.html"), text)
        r = check_or_skip(srv)
        self.assertEqual(r.returncode, 0, f"wraith check refused the config:\n{r.stderr}\n"
                         + srv.read(srv.conf))
        if start:
            srv.start()
        return srv

    def assertHealthy(self, srv, workers, host, ca, body):
        """Same workers as before, and a TLS request still gets `body`."""
        self.assertTrue(srv.alive(), srv.diagnostics())
        self.assertEqual(srv.worker_pids(), workers, "a worker was replaced")
        r = https_get(srv, host, ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, body)


# --------------------------------------------------------------------------------------------


class TlsServerTest(TlsTestCase):
    """One server, two workers: b.test (RSA), a.test (ECDSA, the default site, second in the
    file), *.wild.test (ECDSA); HTTP/1.1 over TLS."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = cls.ca.issue("a", ["a.test"])
        cls.b = cls.ca.issue("b", ["b.test"], key_type="rsa")
        cls.w = cls.ca.issue("wild", ["*.wild.test"])
        sites = (site(["b.test"], "www-b", tls_pair(cls.b))
                 + site(["a.test"], "www-a", tls_pair(cls.a), default=True)
                 + site(["*.wild.test"], "www-w", tls_pair(cls.w)))
        srv = Wraith(sites, workers=2, tls_listen=HTTP11)
        cls.class_servers = [srv]
        for folder, text in (("www-a", "site a\n"), ("www-b", "site b\n"), ("www-w", "wild\n")):
            write_file(srv.path(folder, "index.html"), text)
        try:
            r = check_or_skip(srv)
            if r.returncode != 0:
                raise AssertionError("wraith check refused the config:\n" + r.stderr)
            srv.start()
            srv.wait_workers(2)
        except BaseException:
            srv.cleanup()
            cls.class_servers = []
            raise
        cls.srv = srv

    def test_curl_gets_static_index_over_tls(self):
        for host, body in (("a.test", b"site a\n"), ("b.test", b"site b\n"),
                           ("x.wild.test", b"wild\n")):
            r = https_get(self.srv, host, self.ca.cert, "/", "-D", "-")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, rb"^HTTP/1\.1 200 ")
            self.assertTrue(r.stdout.endswith(body), r.stdout)

    def test_plain_listener_still_serves_http(self):
        status, _, body = harness.http_get(self.srv.port, "/", headers={"Host": "a.test"})
        self.assertEqual((status, body), (200, b"site a\n"))

    def test_sni_picks_each_sites_certificate(self):
        for host, cert, key_type in (("a.test", self.a, "ec"), ("b.test", self.b, "rsa")):
            h = s_client(self.srv.tls_port, "-showcerts", servername=host)
            self.assertTrue(h.ok, h)
            self.assertEqual(h.leaf_cn(), host, h)
            self.assertEqual(tlsutil.alt_names(h.leaf), [f"DNS:{host}"])
            self.assertEqual(h.leaf_key_type(), key_type)
            with open(cert.cert) as f:
                self.assertEqual(h.leaf.strip(), f.read().strip())
            # The chain file's CA certificate is sent after the leaf.
            self.assertEqual(len(h.certs), 2, h)
            self.assertEqual(tlsutil.subject_cn(h.certs[1]), "Wraith server-ca")

    def test_client_without_sni_gets_default_sites_certificate(self):
        h = s_client(self.srv.tls_port)
        self.assertTrue(h.ok, h)
        self.assertEqual(h.leaf_cn(), "a.test", h)

    def test_unknown_sni_gets_default_sites_certificate(self):
        h = s_client(self.srv.tls_port, servername="nobody.test")
        self.assertTrue(h.ok, h)
        self.assertEqual(h.leaf_cn(), "a.test", h)

    def test_wildcard_sni_picks_wildcard_certificate(self):
        for name in ("x.wild.test", "other.wild.test"):
            h = s_client(self.srv.tls_port, servername=name)
            self.assertTrue(h.ok, h)
            self.assertEqual(h.leaf_cn(), "*.wild.test", h)

    def test_tls13_and_tls12_negotiate(self):
        for flag, version in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            for host in ("a.test", "b.test"):
                h = s_client(self.srv.tls_port, flag, servername=host)
                self.assertTrue(h.ok, h)
                self.assertEqual(h.protocol, version, h)

    def test_tls11_and_tls10_refused(self):
        # @SECLEVEL=0 lets this client offer them (Debian's default level refuses locally).
        for flag in ("-tls1_1", "-tls1"):
            h = s_client(self.srv.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                         servername="a.test")
            self.assertFalse(h.ok, h)
            self.assertNotIn("no protocols available", h.out, "the client refused, not the "
                             "server: the test proves nothing")
            self.assertRegex(h.out, r"(?i)alert|wrong version|unsupported protocol", h)

    def test_weak_ciphers_refused(self):
        # Static-RSA CBC with SHA-1 (RSA site, so the server could pick it) and anonymous DH.
        for host, cipher in (("b.test", "AES128-SHA"), ("b.test", "AES256-SHA"),
                             ("a.test", "ADH-AES128-GCM-SHA256")):
            h = s_client(self.srv.tls_port, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0",
                         servername=host)
            self.assertFalse(h.ok, f"{cipher} was accepted: {h!r}")
            self.assertNotIn("no cipher match", h.out)

    def test_ecdhe_gcm_ciphers_work(self):
        for host, cipher in (("a.test", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                             ("a.test", "ECDHE-ECDSA-AES256-GCM-SHA384"),
                             ("b.test", "ECDHE-RSA-AES128-GCM-SHA256"),
                             ("b.test", "ECDHE-RSA-AES256-GCM-SHA384")):
            h = s_client(self.srv.tls_port, "-tls1_2", "-cipher", cipher, servername=host)
            self.assertTrue(h.ok, h)
            self.assertEqual(h.cipher, cipher, h)

    def test_alpn_negotiates_http11(self):
        h = s_client(self.srv.tls_port, "-alpn", "http/1.1", servername="a.test",
                     send=request("a.test"))
        self.assertTrue(h.ok, h)
        self.assertEqual(h.alpn, "http/1.1", h)
        self.assertIn("HTTP/1.1 200", h.out)
        self.assertIn("site a", h.out)

    def test_alpn_never_offers_unlisted_h2(self):
        # protocols = ["http/1.1"]: a client offering h2 too must get http/1.1.
        h = s_client(self.srv.tls_port, "-alpn", "h2,http/1.1", servername="a.test")
        self.assertTrue(h.ok, h)
        self.assertEqual(h.alpn, "http/1.1", h)

    def requests_by_pid(self):
        r = self.srv.status()
        self.assertEqual(r.returncode, 0, r.stderr)
        return {int(pid): int(n) for pid, n in
                re.findall(r"\bpid (\d+)\b.*\brequests (\d+)", r.stdout)}

    def test_session_resumption_across_workers(self):
        """A session from one worker resumes on the other: the first connection is made while
        worker B is stopped (SIGSTOP), the resumption while worker A is; status counters show
        which worker served each. Then ten more resumptions in a row, all reused."""
        workers = self.srv.wait_workers(2)
        tmp = tempfile.mkdtemp(prefix="wraith-sess-")
        self.addCleanup(shutil.rmtree, tmp, True)
        sess = os.path.join(tmp, "s0.pem")

        def on_only(pid, *args):
            other = [w for w in workers if w != pid][0]
            before = self.requests_by_pid()
            os.kill(other, signal.SIGSTOP)
            try:
                h = s_client(self.srv.tls_port, "-tls1_3", *args, servername="a.test",
                             send=request("a.test"))
            finally:
                os.kill(other, signal.SIGCONT)
            wait_for(lambda: self.requests_by_pid().get(pid, 0) > before.get(pid, 0),
                     what=f"worker {pid} to count the request")
            self.assertEqual(self.requests_by_pid().get(other), before.get(other),
                             "the stopped worker served a request")
            self.assertIn("site a", h.out, h)
            return h

        first = on_only(workers[0], "-sess_out", sess)
        self.assertTrue(first.ok and not first.reused, first)
        self.assertTrue(os.path.getsize(sess) > 0, "no session ticket received")
        second = on_only(workers[1], "-sess_in", sess)
        self.assertTrue(second.reused, f"worker {workers[1]} did not resume a session of "
                        f"worker {workers[0]}: {second!r}")

        before = self.requests_by_pid()
        for i in range(10):
            nxt = os.path.join(tmp, f"s{i + 1}.pem")
            h = s_client(self.srv.tls_port, "-tls1_3", "-sess_in", sess, "-sess_out", nxt,
                         servername="a.test", send=request("a.test"))
            self.assertTrue(h.reused, f"resumption {i + 1} of 10 was not reused: {h!r}")
            if os.path.exists(nxt) and os.path.getsize(nxt) > 0:  # a fresh ticket, if sent
                sess = nxt
        after = self.requests_by_pid()
        served = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in workers}
        self.assertEqual(sum(served.values()), 10, served)
        sys.stderr.write(f"[test_tls] the 10 resumptions by worker pid: {served}\n")

    def test_plain_http_on_tls_port_gets_error_and_worker_stays_healthy(self):
        workers = self.srv.wait_workers(2)
        for _ in range(4):  # likely to reach both workers
            res = raw_request(self.srv.tls_port, request("a.test"), timeout=5)
            self.assertTrue(res.closed, res)
            self.assertIsNotNone(res.status, f"no HTTP error answer: {res!r}")
            self.assertTrue(400 <= res.status < 500, res)
        self.assertHealthy(self.srv, workers, "a.test", self.ca.cert, b"site a\n")

    def test_garbage_client_hello_closes_and_worker_stays_healthy(self):
        workers = self.srv.wait_workers(2)
        junk = [
            b"\x16\x03\x01\x00\x40" + bytes(range(64)),          # handshake record, bad body
            b"\x16\x03\x01\xff\xff" + b"\x01" * 32,              # oversized record header
            b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",  # truncated ClientHello
            b"\x17\x03\x03\x00\x05hello",                    # application data first
            os.urandom(2048),
        ]
        for data in junk:
            res = raw_request(self.srv.tls_port, data, timeout=8)
            self.assertTrue(res.closed, f"{data[:12]!r}: connection left open: {res!r}")
            # Nothing but (at most) a TLS alert record comes back.
            self.assertTrue(res.data == b"" or res.data[:1] == b"\x15", res)
        self.assertHealthy(self.srv, workers, "a.test", self.ca.cert, b"site a\n")


# --------------------------------------------------------------------------------------------


class MutualTlsTest(TlsTestCase):
    """Client certificates: required, optional, revoked, from the wrong CA."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_cert = cls.ca.issue("mtls-server", ["m.test"])
        cls.client_ca = cls.pki.ca("client-ca")
        cls.alice = cls.client_ca.issue("alice", [], cn="alice", client=True)
        cls.mallory = cls.client_ca.issue("mallory", [], cn="mallory", client=True)
        cls.crl = cls.client_ca.crl(revoke=[cls.mallory])
        cls.stranger_ca = cls.pki.ca("stranger-ca")
        cls.stranger = cls.stranger_ca.issue("stranger", [], cn="stranger", client=True)

    def server(self, auth, crl=True):
        extra = f', client_ca = {toml_str(self.client_ca.cert)}, client_auth = "{auth}"'
        if crl:
            extra += f", crl = {toml_str(self.crl)}"
        text = site(["m.test"], "www", tls_pair(self.server_cert, extra=extra), default=True)
        text = text.replace("default = true\n", "default = true\naccess_log = { path = "
                            "\"@DIR@/access.json\", format = \"json\" }\n")
        return self.tls_server(text, {"www": "mtls\n"})

    def get(self, srv, client=None):
        extra = ["--cert", client.cert, "--key", client.key] if client else []
        return https_get(srv, "m.test", self.ca.cert, "/", *extra)

    def test_require_accepts_a_valid_client_certificate_and_logs_it(self):
        srv = self.server("require")
        r = self.get(srv, self.alice)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"mtls\n")
        line = srv.wait_log_line(lambda l: '"client_subject"' in l,
                                 path=srv.path("access.json"), what="JSON line with the client")
        entry = json.loads(line)
        self.assertIn("CN=alice", entry["client_subject"])
        self.assertRegex(entry["client_fingerprint"], r"^[0-9a-f]{64}$")

    def test_require_refuses_no_certificate_wrong_ca_and_revoked(self):
        srv = self.server("require")
        workers = srv.wait_workers(2)
        for client in (None, self.stranger, self.mallory):
            r = self.get(srv, client)
            self.assertNotEqual(r.returncode, 0, f"{client and client.name}: {r.stdout!r}")
            self.assertEqual(r.stdout, b"")
        self.assertEqual(self.get(srv, self.alice).stdout, b"mtls\n")
        self.assertEqual(srv.worker_pids(), workers)

    def test_optional_serves_without_a_certificate_but_refuses_a_bad_one(self):
        srv = self.server("optional")
        r = self.get(srv)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"mtls\n")
        self.assertEqual(self.get(srv, self.alice).stdout, b"mtls\n")
        self.assertNotEqual(self.get(srv, self.stranger).returncode, 0)

    def test_check_requires_client_ca_with_client_auth(self):
        srv = Wraith(site(["m.test"], "www",
                          tls_pair(self.server_cert, extra=', client_auth = "require"'),
                          default=True), tls_listen=HTTP11)
        self.servers.append(srv)
        write_file(srv.path("www", "index.html"), "mtls\n")
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r":\d+:\d+: site\.tls\.client_auth: needs client_ca")


class OcspStaplingTest(TlsTestCase):
    """ocsp_staple: a current, matching response is stapled; a wrong one is refused."""

    def ocsp_response(self, cert, name):
        """A DER OCSP response for `cert` from the test CA (openssl ocsp as the responder)."""
        d = self.ca.dir
        req = os.path.join(d, f"{name}.req")
        der = os.path.join(d, f"{name}.der")
        subprocess.run([OPENSSL, "ocsp", "-issuer", self.ca.cert, "-cert", cert.cert,
                        "-reqout", req, "-no_nonce"], check=True, capture_output=True)
        subprocess.run([OPENSSL, "ocsp", "-index", os.path.join(d, "index.txt"), "-rsigner",
                        self.ca.cert, "-rkey", self.ca.key, "-CA", self.ca.cert, "-reqin", req,
                        "-respout", der, "-ndays", "2"], check=True, capture_output=True)
        os.chmod(der, 0o644)
        return der

    def admin(self):
        """An [admin] table on a free loopback port, and that port."""
        port = harness.free_port(ipv6_too=False)
        return f'[admin]\naddress = "127.0.0.1:{port}"\n\n', port

    def staple_metrics(self, port):
        """{site name: (age, next update)} of the staples the admin listener reports."""
        r = curl(f"http://127.0.0.1:{port}/metrics", check=True)
        samples = parse(r.stdout.decode())
        out = {}
        for (name, labels), v in samples.items():
            if name == "wraith_ocsp_staple_age_seconds":
                key = dict(labels)["name"]
                out[key] = (v, samples.get(
                    ("wraith_ocsp_staple_next_update_timestamp_seconds", labels)))
        return out

    def test_staples_a_matching_response(self):
        cert = self.ca.issue("ocsp-ok", ["o.test"])
        der = self.ocsp_response(cert, "ocsp-ok")
        admin, admin_port = self.admin()
        srv = self.tls_server(
            admin + site(["o.test"], "www",
                         tls_pair(cert, extra=f", ocsp_staple = {toml_str(der)}"),
                         default=True),
            {"www": "ocsp\n"})
        h = s_client(srv.tls_port, "-status", servername="o.test")
        self.assertIn("OCSP Response Status: successful", h.out, h)
        self.assertIn("Cert Status: good", h.out, h)
        # Its age (thisUpdate is when openssl made it, just now) and its nextUpdate (2 days).
        age, next_update = self.staple_metrics(admin_port)["o.test"]
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 600)
        self.assertAlmostEqual(next_update, time.time() + 2 * 86400, delta=600)

    def issue_with_responder(self, name, host, url):
        key = tlsutil.make_key(os.path.join(self.ca.dir, f"{name}.key"), "ec")
        cert = self.ca._sign(name, key, host, [
            "basicConstraints = critical, CA:FALSE", "keyUsage = critical, digitalSignature",
            "extendedKeyUsage = serverAuth", f"subjectAltName = DNS:{host}",
            f"authorityInfoAccess = OCSP;URI:{url}"])
        chain = tlsutil._cat(os.path.join(self.ca.dir, f"{name}.chain.pem"), cert, self.ca.cert)
        return tlsutil.Cert(name, cert, key, chain)

    def start_responder(self):
        """An OCSP responder on 127.0.0.1: a small HTTP server that answers each POSTed
        request with `openssl ocsp` in its request/response file mode for the test CA.
        (`openssl ocsp -port` would listen on every interface.)"""
        ca = self.ca
        seen = []

        class Responder(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen.append(body)
                req = os.path.join(ca.dir, f"req-{len(seen)}.der")
                resp = os.path.join(ca.dir, f"resp-{len(seen)}.der")
                with open(req, "wb") as f:
                    f.write(body)
                subprocess.run([OPENSSL, "ocsp", "-index", os.path.join(ca.dir, "index.txt"),
                                "-CA", ca.cert, "-rsigner", ca.cert, "-rkey", ca.key,
                                "-reqin", req, "-respout", resp, "-ndays", "1"],
                               capture_output=True, check=True)
                with open(resp, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Responder)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(lambda: (server.shutdown(), server.server_close()))
        self.responder_requests = seen
        return server.server_address[1]

    def test_fetches_from_the_responder_in_the_background(self):
        port = self.start_responder()
        cert = self.issue_with_responder("ocsp-fetch", "f.test", f"http://127.0.0.1:{port}/")
        admin, admin_port = self.admin()
        srv = self.tls_server(admin + site(["f.test"], "www", tls_pair(cert), default=True),
                              {"www": "fetched\n"})
        # The first handshakes may come before the fetch finished: they get no staple, and
        # are not delayed. Soon every handshake carries a good one.
        h = wait_for(lambda: (lambda h: h if "Cert Status: good" in h.out else None)(
            s_client(srv.tls_port, "-status", servername="f.test")),
            timeout=20, what="a stapled OCSP response")
        self.assertIn("OCSP Response Status: successful", h.out, h)
        wait_for(lambda: "fetched from" in srv.error_log_text(), what="the fetch log line")
        # The scrape reads the master's fetched staple from the shared zone.
        age, next_update = self.staple_metrics(admin_port)["f.test"]
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 600)
        self.assertAlmostEqual(next_update, time.time() + 86400, delta=600)

    def test_a_revoked_certificate_is_never_stapled(self):
        port = self.start_responder()
        cert = self.issue_with_responder("ocsp-revoked", "r.test", f"http://127.0.0.1:{port}/")
        self.ca.revoke(cert)
        srv = self.tls_server(site(["r.test"], "www", tls_pair(cert), default=True),
                              {"www": "revoked\n"})
        wait_for(lambda: "the response says the certificate is revoked" in srv.error_log_text(),
                 timeout=20, what="the revoked-certificate log line")
        h = s_client(srv.tls_port, "-status", servername="r.test")
        self.assertTrue(h.ok, h)
        self.assertIn("OCSP response: no response sent", h.out, h)

    def test_refuses_a_response_for_another_certificate(self):
        cert = self.ca.issue("ocsp-a", ["o.test"])
        other = self.ca.issue("ocsp-b", ["p.test"])
        der = self.ocsp_response(other, "ocsp-b")
        srv = Wraith(site(["o.test"], "www",
                          tls_pair(cert, extra=f", ocsp_staple = {toml_str(der)}"),
                          default=True), tls_listen=HTTP11)
        self.servers.append(srv)
        write_file(srv.path("www", "index.html"), "ocsp\n")
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("site.tls.ocsp_staple: the response is not about this certificate",
                      r.stderr)


class Http2OverTlsTest(TlsTestCase):
    """Default protocols on a TLS listener: ALPN h2 first, http/1.1 for clients without h2,
    no_application_protocol for clients with neither."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cert = cls.ca.issue("h2", ["h2.test"])
        srv = Wraith(site(["h2.test"], "www", tls_pair(cls.cert), default=True), workers=2,
                     tls_listen="")
        cls.class_servers = [srv]
        write_file(srv.path("www", "index.html"), "over h2\n")
        write_file(srv.path("www", "big.bin"), os.urandom(3 << 20))
        srv.start()
        cls.srv = srv

    def test_curl_gets_http2(self):
        r = curl("--http2", "--cacert", self.ca.cert, "--resolve",
                 f"h2.test:{self.srv.tls_port}:127.0.0.1", "-w", "%{http_version}",
                 f"https://h2.test:{self.srv.tls_port}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"over h2\n2")

    def test_large_file_over_h2_intact(self):
        out = os.path.join(self.srv.dir, "big.out")
        r = curl("--http2", "--cacert", self.ca.cert, "--resolve",
                 f"h2.test:{self.srv.tls_port}:127.0.0.1", "-o", out,
                 f"https://h2.test:{self.srv.tls_port}/big.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as a, open(self.srv.path("www", "big.bin"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_large_file_over_http11_tls_intact(self):
        # Head corked into the first record, then 16 KiB records read from the file.
        out = os.path.join(self.srv.dir, "big11.out")
        r = curl("--http1.1", "--cacert", self.ca.cert, "--resolve",
                 f"h2.test:{self.srv.tls_port}:127.0.0.1", "-o", out, "-w", "%{http_version}",
                 f"https://h2.test:{self.srv.tls_port}/big.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"1.1")
        with open(out, "rb") as a, open(self.srv.path("www", "big.bin"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_alpn_prefers_h2_and_falls_back(self):
        self.assertEqual(s_client(self.srv.tls_port, "-alpn", "http/1.1,h2",
                                  servername="h2.test").alpn, "h2")
        self.assertEqual(s_client(self.srv.tls_port, "-alpn", "http/1.1",
                                  servername="h2.test").alpn, "http/1.1")
        h = s_client(self.srv.tls_port, "-alpn", "spdy/3", servername="h2.test")
        self.assertFalse(h.ok, h)
        self.assertIn("no application protocol", h.out.lower(), h)


class TlsFixturesTest(TlsTestCase):
    """tlsutil makes what its names promise (mTLS tests rely on the client CA and the CRL)."""

    def verify(self, ca, cert, *extra):
        return subprocess.run([OPENSSL, "verify", "-CAfile", ca.cert, *extra, cert.cert],
                              capture_output=True, text=True)

    def test_fixtures(self):
        leaf = self.ca.issue("fx-rsa", ["fx.test", "127.0.0.1"], key_type="rsa")
        self.assertEqual(self.verify(self.ca, leaf, "-purpose", "sslserver").returncode, 0)
        self.assertIn("rsaEncryption", tlsutil.cert_text(leaf.cert))
        self.assertEqual(tlsutil.alt_names(leaf.cert), ["DNS:fx.test", "IP Address:127.0.0.1"])
        old = self.ca.issue("fx-old", ["old.test"], expired=True)
        self.assertIn("expired", self.verify(self.ca, old).stderr)

        def public(path):
            return tlsutil.run_openssl("pkey", "-pubout", "-in", path)
        bad = self.ca.issue_mismatched("fx-bad", ["bad.test"])
        self.assertNotEqual(public(bad.key), tlsutil.run_openssl(
            "x509", "-noout", "-pubkey", "-in", bad.cert))

        cca = self.pki.ca("fx-client-ca")
        alice = cca.issue("alice", [], client=True)
        bob = cca.issue("bob", [], client=True)
        self.assertEqual(self.verify(cca, alice, "-purpose", "sslclient").returncode, 0)
        self.assertNotEqual(self.verify(self.ca, alice).returncode, 0)
        crl = cca.crl(revoke=[alice])
        self.assertIn("revoked", self.verify(cca, alice, "-crl_check", "-CRLfile", crl).stderr)
        self.assertEqual(self.verify(cca, bob, "-crl_check", "-CRLfile", crl).returncode, 0)


# --------------------------------------------------------------------------------------------


class TlsSiteOptionsTest(TlsTestCase):
    """Per-site TLS options: min_version, several certificates, relative paths."""

    def test_min_version_13_refuses_tls12(self):
        m = self.ca.issue("m13", ["m.test"])
        srv = self.tls_server(
            site(["m.test"], "www", tls_pair(m, extra=', min_version = "1.3"'), default=True),
            {"www": "min 1.3\n"})
        h = s_client(srv.tls_port, "-tls1_2", servername="m.test")
        self.assertFalse(h.ok, h)
        h = s_client(srv.tls_port, "-tls1_3", servername="m.test", send=request("m.test"))
        self.assertTrue(h.ok, h)
        self.assertEqual(h.protocol, "TLSv1.3")
        self.assertIn("min 1.3", h.out)

    def test_min_version_is_per_site(self):
        m = self.ca.issue("m13b", ["m.test"])
        o = self.ca.issue("o12", ["o.test"])
        srv = self.tls_server(
            site(["o.test"], "www-o", tls_pair(o), default=True)
            + site(["m.test"], "www-m", tls_pair(m, extra=', min_version = "1.3"')),
            {"www-o": "o\n", "www-m": "m\n"})
        h = s_client(srv.tls_port, "-tls1_2", servername="o.test")
        self.assertTrue(h.ok, h)
        self.assertEqual(h.protocol, "TLSv1.2")
        h = s_client(srv.tls_port, "-tls1_2", servername="m.test")
        self.assertFalse(h.ok, f"m.test (min_version 1.3) accepted TLS 1.2: {h!r}")

    def test_rsa_and_ecdsa_side_by_side(self):
        rsa = self.ca.issue("dual-rsa", ["dual.test"], key_type="rsa", cn="dual rsa")
        ec = self.ca.issue("dual-ec", ["dual.test"], cn="dual ec")
        # Relative paths resolve against server.cert_dir.
        rel = lambda p: os.path.relpath(p, self.pki_dir)  # noqa: E731
        tls = ("{ certificates = ["
               f"{{ cert = {toml_str(rel(rsa.chain))}, key = {toml_str(rel(rsa.key))} }}, "
               f"{{ cert = {toml_str(rel(ec.chain))}, key = {toml_str(rel(ec.key))} }} ] }}")
        srv = self.tls_server(site(["dual.test"], "www", tls, default=True), {"www": "dual\n"},
                              server={"cert_dir": toml_str(self.pki_dir)})
        for flag in ("-tls1_3", "-tls1_2"):
            h = s_client(srv.tls_port, flag, "-sigalgs", "rsa_pss_rsae_sha256",
                         servername="dual.test")
            self.assertTrue(h.ok, h)
            self.assertEqual((h.leaf_key_type(), h.leaf_cn()), ("rsa", "dual rsa"), h)
            h = s_client(srv.tls_port, flag, "-sigalgs", "ECDSA+SHA256", servername="dual.test")
            self.assertTrue(h.ok, h)
            self.assertEqual((h.leaf_key_type(), h.leaf_cn()), ("ec", "dual ec"), h)
        # TLS 1.2 chooses by cipher suite too.
        h = s_client(srv.tls_port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                     servername="dual.test")
        self.assertEqual(h.leaf_key_type(), "rsa", h)
        h = s_client(srv.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                     servername="dual.test")
        self.assertEqual(h.leaf_key_type(), "ec", h)
        r = https_get(srv, "dual.test", self.ca.cert)
        self.assertEqual((r.returncode, r.stdout), (0, b"dual\n"), r.stderr)


# --------------------------------------------------------------------------------------------


class TlsCheckTest(TlsTestCase):
    """`wraith check` refuses broken certificates with FILE:LINE:COL inside the site."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.good = cls.ca.issue("good", ["good.test"])
        cls.expired = cls.ca.issue("expired", ["broken.test"], expired=True)
        cls.mismatched = cls.ca.issue_mismatched("mismatched", ["broken.test"])

    def unstarted(self, sites, tls_listen=HTTP11):
        """A server that is only checked; its docroot is @DIR@/www."""
        srv = Wraith(sites, tls_listen=tls_listen)
        self.servers.append(srv)
        write_file(srv.path("www", "index.html"), "index\n")
        return srv

    def check(self, broken_tls, tls_listen=HTTP11, good_site=True):
        """Config: a good TLS site, then broken.test with `broken_tls`. Returns (result,
        server, (first, last) line of the broken site)."""
        sites = (site(["good.test"], "www", tls_pair(self.good)) if good_site else "") + \
            site(["broken.test"], "www", broken_tls)
        srv = self.unstarted(sites, tls_listen)
        check_or_skip(self.unstarted(site(["good.test"], "www", tls_pair(self.good))))
        text = srv.read(srv.conf).splitlines()
        first = next(i for i, l in enumerate(text, 1) if '"broken.test"' in l) - 1
        last = next((i for i, l in enumerate(text, 1) if i > first and l.startswith("[[site]]")),
                    len(text) + 1) - 1
        return srv.cli("check"), srv, (first, last)

    def assertSiteError(self, res, srv, lines, path, also=None):
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        errors = [l for l in res.stderr.splitlines()
                  if re.match(re.escape(srv.conf) + r":\d+:\d+: ", l)]
        hits = [l for l in errors if path in l
                and lines[0] <= int(l[len(srv.conf) + 1:].split(":")[0]) <= lines[1]]
        self.assertTrue(hits, f"no FILE:LINE:COL error naming {path} within lines {lines} of "
                        f"the broken site:\n{res.stderr}")
        if also:
            self.assertRegex("\n".join(hits), also)
        return hits

    def test_valid_tls_config_passes(self):
        srv = self.tls_server(site(["good.test"], "www", tls_pair(self.good)), {}, start=False)
        r = srv.cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok:", r.stdout)

    def test_missing_cert(self):
        missing = os.path.join(self.pki_dir, "no-such.pem")
        res, srv, lines = self.check(tls_pair(missing, self.good.key))
        self.assertSiteError(res, srv, lines, missing)

    def test_unreadable_key(self):
        key = os.path.join(self.pki_dir, "unreadable.key")
        if os.geteuid() == 0:
            os.makedirs(key, exist_ok=True)   # root reads any file: a folder it cannot read
        else:
            shutil.copy(self.good.key, key)
            os.chmod(key, 0)
        res, srv, lines = self.check(tls_pair(self.good.chain, key))
        self.assertSiteError(res, srv, lines, key)

    def test_key_that_is_not_a_key(self):
        key = write_file(os.path.join(self.pki_dir, "garbage.key"), "not a key\n")
        res, srv, lines = self.check(tls_pair(self.good.chain, key))
        self.assertSiteError(res, srv, lines, key)

    def test_key_not_matching_cert(self):
        res, srv, lines = self.check(tls_pair(self.mismatched))
        hits = [l for l in res.stderr.splitlines()
                if self.mismatched.key in l or self.mismatched.chain in l]
        self.assertTrue(hits, res.stderr)
        self.assertSiteError(res, srv, lines,
                             self.mismatched.key if self.mismatched.key in hits[0]
                             else self.mismatched.chain)

    def test_expired_cert(self):
        res, srv, lines = self.check(tls_pair(self.expired))
        self.assertSiteError(res, srv, lines, self.expired.chain, also=r"(?i)expire")

    def test_tls_listener_without_any_tls_site(self):
        srv = self.unstarted(site(["plain.test"], "www"))
        check_or_skip(self.unstarted(site(["good.test"], "www", tls_pair(self.good))))
        r = srv.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        text = srv.read(srv.conf).splitlines()
        tls_line = next(i for i, l in enumerate(text, 1) if l.strip() == "tls = true")
        listen_line = tls_line - 2  # [[listen]], address, tls
        self.assertRegex(r.stderr, re.escape(srv.conf) + rf":({listen_line}|{listen_line + 1}|"
                         rf"{tls_line}):\d+: .*", r.stderr)


# --------------------------------------------------------------------------------------------


class GenerateCertsTest(TlsTestCase):
    """`wraith generate certs --self-signed`."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="wraith-gen-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def generate(self, *args):
        return run_wraith("generate", "certs", *args)

    def files(self, d):
        return {n: os.path.join(d, n) for n in
                ("wraith-dev-ca.pem", "wraith-dev-ca.key", "localhost.pem", "localhost.key")}

    def read(self, p):
        with open(p, "rb") as f:
            return f.read()

    def test_files_verify_with_requested_names(self):
        d = os.path.join(self.tmp, "certs", "nested")
        r = self.generate("--self-signed", "--hosts", "localhost,127.0.0.1,::1,app.test,"
                          "*.app.test", "--dir", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        f = self.files(d)
        for p in f.values():
            self.assertTrue(os.path.isfile(p), r.stdout)
        self.assertIn(f["localhost.pem"], r.stdout)
        self.assertIn("update-ca-certificates", r.stdout)
        self.assertIn("--cacert", r.stdout)
        self.assertIn("certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n wraith-dev -i", r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(f["localhost.key"]).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(f["wraith-dev-ca.key"]).st_mode), 0o600)

        v = subprocess.run([OPENSSL, "verify", "-CAfile", f["wraith-dev-ca.pem"],
                            "-purpose", "sslserver", f["localhost.pem"]],
                           capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(": OK", v.stdout)
        for host in ("localhost", "127.0.0.1", "::1", "app.test", "x.app.test"):
            flag = "-verify_ip" if ":" in host or host[0].isdigit() else "-verify_hostname"
            v = subprocess.run([OPENSSL, "verify", "-CAfile", f["wraith-dev-ca.pem"], flag,
                                host, f["localhost.pem"]], capture_output=True, text=True)
            self.assertEqual(v.returncode, 0, f"{host}: {v.stdout}{v.stderr}")
        v = subprocess.run([OPENSSL, "verify", "-CAfile", f["wraith-dev-ca.pem"],
                            "-verify_hostname", "other.test", f["localhost.pem"]],
                           capture_output=True, text=True)
        self.assertNotEqual(v.returncode, 0, "a name not asked for verified")

        blocks = tlsutil.pem_blocks(self.read(f["localhost.pem"]))
        self.assertEqual(len(blocks), 2, "localhost.pem must hold the leaf then the CA")
        self.assertEqual(blocks[1].strip(), self.read(f["wraith-dev-ca.pem"]).decode().strip())
        leaf = tlsutil.cert_text(blocks[0])
        self.assertEqual(tlsutil.alt_names(blocks[0]),
                         ["DNS:localhost", "IP Address:127.0.0.1",
                          "IP Address:0:0:0:0:0:0:0:1", "DNS:app.test", "DNS:*.app.test"])
        self.assertIn("TLS Web Server Authentication", leaf)
        self.assertIn("id-ecPublicKey", leaf)
        self.assertIn("prime256v1", leaf)
        self.assertRegex(leaf, r"CA:FALSE")
        ca = tlsutil.cert_text(f["wraith-dev-ca.pem"])
        self.assertRegex(ca, r"CA:TRUE")
        self.assertIn("Certificate Sign, CRL Sign", ca)
        self.assertIn("prime256v1", ca)

        # 397 days for the leaf, ten years for the CA.
        def days_left(pem):
            out = subprocess.run([OPENSSL, "x509", "-noout", "-checkend", str(int(days * 86400))],
                                 input=pem.encode(), capture_output=True)
            return out.returncode == 0
        days = 396
        self.assertTrue(days_left(blocks[0]))
        days = 398
        self.assertFalse(days_left(blocks[0]))
        days = 3649
        self.assertTrue(days_left(blocks[1]))
        days = 3651
        self.assertFalse(days_left(blocks[1]))

    def test_ca_reused_and_leaf_kept_unless_forced(self):
        d = os.path.join(self.tmp, "c")
        self.assertEqual(self.generate("--self-signed", "--dir", d).returncode, 0)
        f = self.files(d)
        ca1, leaf1, key1 = (self.read(f[n]) for n in
                            ("wraith-dev-ca.pem", "localhost.pem", "localhost.key"))
        r = self.generate("--self-signed", "--dir", d, "--hosts", "other.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"kept .*localhost\.pem")
        self.assertEqual((self.read(f["wraith-dev-ca.pem"]), self.read(f["localhost.pem"]),
                          self.read(f["localhost.key"])), (ca1, leaf1, key1))
        r = self.generate("--self-signed", "--dir", d, "--hosts", "other.test", "--force",
                          "--days", "30")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read(f["wraith-dev-ca.pem"]), ca1, "the CA must be reused")
        self.assertNotEqual(self.read(f["localhost.pem"]), leaf1)
        self.assertNotEqual(self.read(f["localhost.key"]), key1)
        self.assertEqual(tlsutil.alt_names(f["localhost.pem"]), ["DNS:other.test"])
        v = subprocess.run([OPENSSL, "verify", "-CAfile", f["wraith-dev-ca.pem"],
                            f["localhost.pem"]], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_cert_dir_from_config(self):
        conf = write_file(os.path.join(self.tmp, "w.toml"),
                          '[server]\ncert_dir = "from-config"\n')
        r = run_wraith("generate", "certs", "--self-signed", "-c", conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, "from-config", "localhost.pem")))

    def test_usage_and_runtime_errors(self):
        d = os.path.join(self.tmp, "e")
        cases = [
            ((), 2, r"--self-signed"),
            (("--dns",), 2, NOT_SUPPORTED),
            (("--self-signed", "--bogus"), 2, r"--bogus"),
            (("--self-signed", "--days", "zero"), 2, r"--days"),
            (("--self-signed", "--hosts", "bad host"), 1, r'"bad host"'),
            (("--self-signed", "--hosts", "a.test,,b.test"), 1, r"empty"),
            (("--self-signed", "--hosts", "fe80::1%eth0"), 1, r"fe80::1%eth0"),
        ]
        for args, code, pattern in cases:
            r = self.generate(*args, "--dir", d)
            self.assertEqual(r.returncode, code, f"{args}: {r.stdout}{r.stderr}")
            self.assertRegex(r.stderr.splitlines()[0], r"^wraith: .*" + pattern)
            if code == 1:
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(d), "nothing may be written on errors")
        # A folder that cannot be created.
        r = self.generate("--self-signed", "--dir", "/dev/null/certs")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("/dev/null/certs", r.stderr)
        r = run_wraith("help", "generate")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--self-signed", r.stdout)

    def test_server_with_generated_certificate_answers_curl(self):
        d = os.path.join(self.tmp, "served")
        r = self.generate("--self-signed", "--hosts", "localhost,127.0.0.1,::1", "--dir", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        f = self.files(d)
        srv = self.tls_server(site(["localhost", "127.0.0.1"], "www",
                                   tls_pair(f["localhost.pem"], f["localhost.key"]),
                                   default=True),
                              {"www": "generated ok\n"})
        r = https_get(srv, "localhost", f["wraith-dev-ca.pem"])
        self.assertEqual((r.returncode, r.stdout), (0, b"generated ok\n"), r.stderr)
        r = curl("--http1.1", "--cacert", f["wraith-dev-ca.pem"],
                 f"https://127.0.0.1:{srv.tls_port}/")
        self.assertEqual((r.returncode, r.stdout), (0, b"generated ok\n"), r.stderr)
        # Without the CA, curl refuses: the CA is what makes it trusted.
        r = curl("--http1.1", "--resolve", f"localhost:{srv.tls_port}:127.0.0.1",
                 f"https://localhost:{srv.tls_port}/")
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    harness.main()
