"""Client certificates over HTTP/3: a site with client_auth = "require" serves a QUIC client
that presents a certificate from its client_ca, and nothing to one with no certificate or a
certificate from another issuer (the handshake fails; the worker stays up); "optional" serves
with or without one. The access log names the client certificate, which the connection keeps
after it frees its TLS session. Client: Debian's gtlsclient (--key/--cert)."""

import json
import os
import unittest

import test_http3 as h3
import tlsutil
import harness
from harness import WraithTestCase, make_dir, toml_str, write_file


def setUpModule():
    h3.setUpModule()


def tearDownModule():
    h3.tearDownModule()


class Http3ClientCertificateTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        pki = tlsutil.TestPki(os.path.join(h3.PKI.dir, "mtls"))
        cls.client_ca = pki.ca("h3-client-ca")
        cls.alice = cls.client_ca.issue("alice", [], client=True)
        cls.mallory = pki.ca("other-ca").issue("mallory", [], client=True)

    def start(self, mode):
        site = h3.static_site(tls_extra=f', client_auth = "{mode}", '
                                        f'client_ca = {toml_str(self.client_ca.cert)}')
        site = site.replace("default = true\n", "default = true\naccess_log = { path = "
                            "\"@DIR@/access.json\", format = \"json\" }\n")
        srv = h3.H3Server(site, workers=1)
        self.servers.append(srv)
        write_file(os.path.join(make_dir(srv.path("www")), "s.txt"), b"members only\n")
        srv.start()
        return srv

    def fetch(self, srv, cert=None):
        args = ["--key", cert.key, "--cert", cert.cert] if cert else []
        return h3.gtlsclient(self, srv, ["/s.txt"], *args).body("s.txt")

    def test_require(self):
        srv = self.start("require")
        (worker,) = srv.wait_workers(1)
        self.assertEqual(self.fetch(srv, self.alice), b"members only\n")
        line = srv.wait_log_line(lambda l: '"client_subject"' in l,
                                 path=srv.path("access.json"), what="JSON line with the client")
        entry = json.loads(line)
        self.assertEqual(entry["protocol"], "HTTP/3.0")
        self.assertIn("CN=alice", entry["client_subject"])
        self.assertRegex(entry["client_fingerprint"], r"^[0-9a-f]{64}$")
        self.assertIn(self.fetch(srv), (None, b""))            # no certificate: no response
        self.assertIn(self.fetch(srv, self.mallory), (None, b""))  # another issuer: none
        self.assertEqual(srv.wait_workers(1), [worker])        # the worker stayed up
        self.assertEqual(self.fetch(srv, self.alice), b"members only\n")

    def test_optional(self):
        srv = self.start("optional")
        self.assertEqual(self.fetch(srv), b"members only\n")
        self.assertEqual(self.fetch(srv, self.alice), b"members only\n")
        # The server names its client CAs; a GnuTLS client whose certificate comes from
        # another issuer sends none, and "optional" serves it as anonymous.
        self.assertEqual(self.fetch(srv, self.mallory), b"members only\n")


if __name__ == "__main__":
    harness.main()
