"""QUIC versions: v1 (RFC 9000) and v2 (RFC 9369) by default, v2 preferred, with compatible
version negotiation (RFC 9368), and `[http3] versions` restricting what is accepted (the rest
gets Version Negotiation, RFC 9000 §6). The client is gtlsclient (ngtcp2), whose QUIC log says
which version each packet carried and which one the connection settled on."""

import re
import subprocess
import tempfile

import harness
import test_http3 as h3
from harness import WraithTestCase, write_file

V1, V2 = 0x00000001, 0x6b3343cf
BODY = b"versions over h3\n"


def setUpModule():
    h3.setUpModule()


def tearDownModule():
    h3.tearDownModule()


class Outcome:
    def __init__(self, log, body):
        self.log = log
        self.body = body

    def negotiated(self):
        m = re.findall(r"the negotiated version is (0x[0-9a-f]+)", self.log)
        return int(m[-1], 16) if m else None

    def server_versions(self):
        """Versions of the long-header packets the server sent."""
        return {int(v, 16) for v in re.findall(r"pkt rx pkn=\d+ dcid=\S+ scid=\S+ "
                                               r"version=(0x[0-9a-f]+)", self.log)}

    def got_version_negotiation(self):
        return re.search(r"pkt rx .* type=VN ", self.log) is not None


class VersionCase(WraithTestCase):
    VERSIONS = None  # [http3] versions, or the default

    @classmethod
    def setUpClass(cls):
        http3 = {"versions": cls.VERSIONS} if cls.VERSIONS else None
        srv = h3.H3Server(h3.static_site(), workers=1, http3=http3)
        write_file(srv.path("www", "v.txt"), BODY)
        h3.start_class_server(cls, srv)

    def fetch(self, *args):
        h3.require_gtlsclient(self)
        d = tempfile.mkdtemp(prefix="gtls-", dir=self.srv.dir)
        cmd = [h3.GTLSCLIENT, "--exit-on-all-streams-close", "--sni=localhost",
               f"--download={d}", "--no-http-dump", "--handshake-timeout=10s", "--timeout=15s",
               *args, "127.0.0.1", str(self.srv.tls_port), self.srv.url("/v.txt")]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60 * harness.TIME_SCALE)
        try:
            with open(f"{d}/v.txt", "rb") as f:
                body = f.read()
        except OSError:
            body = None
        return Outcome(p.stdout.decode(errors="replace"), body)


class DefaultVersions(VersionCase):
    def test_client_offering_v2_in_version_information_is_moved_to_v2(self):
        # RFC 9368 §2.3: compatible negotiation, no extra round trip.
        r = self.fetch("--available-versions=v1,v2")
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertEqual(r.negotiated(), V2, r.log[-3000:])
        self.assertFalse(r.got_version_negotiation())

    def test_client_starting_in_v2_stays_in_v2(self):
        r = self.fetch("-v", "v2")
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertEqual(r.server_versions(), {V2}, r.log[-3000:])

    def test_client_offering_only_v1_stays_in_v1(self):
        r = self.fetch()
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertEqual(r.server_versions(), {V1}, r.log[-3000:])


class OnlyVersion1(VersionCase):
    VERSIONS = '["v1"]'

    def test_v2_initial_gets_version_negotiation_then_v1(self):
        r = self.fetch("-v", "v2", "--preferred-versions=v2,v1")
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertTrue(r.got_version_negotiation(), r.log[-3000:])
        self.assertEqual(r.negotiated(), V1, r.log[-3000:])
        self.assertNotIn(V2, r.server_versions() - {0}, r.log[-3000:])

    def test_v2_in_version_information_is_not_taken(self):
        r = self.fetch("--available-versions=v1,v2")
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertEqual(r.server_versions(), {V1}, r.log[-3000:])

    def test_version_negotiation_lists_only_v1(self):
        probe = h3.UdpProbe(self, self.srv.tls_port)
        dcid, scid = bytes(range(8)), bytes(range(8, 14))
        probe.send(h3.long_header_probe(V2, dcid, scid))
        got = probe.until(lambda d: h3.is_version_negotiation(d))
        self.assertEqual(len(got), 1)
        h = h3.parse_long_header(got[0])
        listed = got[0][h.pn_offset:]
        self.assertEqual([int.from_bytes(listed[i:i + 4], "big")
                          for i in range(0, len(listed), 4)], [V1])


class OnlyVersion2(VersionCase):
    VERSIONS = '["v2"]'

    def test_v1_initial_gets_version_negotiation_then_v2(self):
        r = self.fetch("--preferred-versions=v1,v2")
        self.assertEqual(r.body, BODY, r.log[-3000:])
        self.assertTrue(r.got_version_negotiation(), r.log[-3000:])
        self.assertEqual(r.negotiated(), V2, r.log[-3000:])


if __name__ == "__main__":
    harness.main()
