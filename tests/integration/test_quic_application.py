"""The QUIC application seam (worker/quic/application.h): the ALPN a client offers picks what
runs on the connection's streams. The server here is wraith_echo_test, wraith plus a test-only
application registered for ALPN "wraith-echo-test" (tests/support/quic_echo_application.cc)
that echoes every bidirectional stream. The client is h3get with --alpn and --raw-request: the
bytes it sends are an HTTP/3 response (HEADERS with :status 200, then DATA), so the echo comes
back as a response h3get can print, which no HTTP/3 session would ever send (a request stream
carrying :status is malformed, RFC 9114 §4.1.2). An ALPN nobody registered fails the handshake
with no_application_protocol (RFC 9001 §8.1)."""

import os
import subprocess

import harness
import test_http3 as h3
from harness import WraithTestCase

ECHO_BIN = os.path.join(os.environ.get("WRAITH_BUILD_DIR") or
                        os.path.dirname(os.path.abspath(harness.WRAITH_BIN)), "wraith_echo_test")


def setUpModule():
    h3.setUpModule()


def tearDownModule():
    h3.tearDownModule()


def h3_frame(ftype, payload):
    return h3.encode_varint(ftype) + h3.encode_varint(len(payload)) + payload


class QuicApplicationSeam(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(ECHO_BIN, os.X_OK):
            raise AssertionError(f"{ECHO_BIN} is missing: cmake --build BUILD "
                                 "--target wraith_echo_test")
        srv = h3.H3Server(h3.static_site(), workers=1, binary=ECHO_BIN)
        harness.write_file(srv.path("www", "index.html"), b"h3 still served\n")
        h3.start_class_server(cls, srv)

    def run_h3get(self, *args):
        h3.require_h3get(self)
        cmd = h3.h3get_cmd(self.srv, ["/"], "-m", str(int(20 * harness.TIME_SCALE)), *args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        return h3.H3Result(cmd[1:], p.returncode, p.stdout, p.stderr.decode(errors="replace"))

    def test_registered_alpn_gets_its_application_not_http3(self):
        token = os.urandom(12).hex().encode()
        # QPACK: Required Insert Count 0, Base 0, then static entry 25 (":status 200").
        stream = h3_frame(0x01, b"\x00\x00\xd9") + h3_frame(0x00, token)
        r = self.run_h3get("--alpn", "wraith-echo-test", "-i", "--raw-request", stream.hex(),
                           "--raw-fin")
        self.assertEqual(r.returncode, 0, r)
        status, _, body = r.response()
        self.assertEqual((status, body), (200, token), r)
        # The echo is no HTTP exchange: nothing reached the access log.
        self.assertEqual([l for l in self.srv.access_log_lines() if token.decode() in l], [])

    def test_h3_on_the_same_listener_still_gets_http3(self):
        r = self.run_h3get("-i")
        self.assertEqual(r.returncode, 0, r)
        status, _, body = r.response()
        self.assertEqual((status, body), (200, b"h3 still served\n"), r)

    def test_alpn_nobody_registered_is_refused_with_no_application_protocol(self):
        r = self.run_h3get("--alpn", "nobody-registered-this")
        self.assertEqual(r.returncode, 2, r)
        # CRYPTO_ERROR 0x178: TLS alert 120, no_application_protocol (RFC 9001 §4.8, §8.1).
        self.assertRegex(r.stderr, r"(?i)CRYPTO_ERROR\(.*(application protocol|0x78)", r)
        # The worker is fine: the next client is served.
        self.assertEqual(self.run_h3get("-i").returncode, 0)


if __name__ == "__main__":
    harness.main()
