"""HTTP/2 conformance in the manner of h2spec (which Debian does not package): hostile frame
sequences over raw sockets (h2c with prior knowledge), each asserting the exact GOAWAY or
RST_STREAM error code RFC 9113 (and RFC 7541 for HPACK) requires, and that the worker stays up
so a fresh connection still gets 200. Then the real clients: curl (--http2 and
--http2-prior-knowledge), nghttp and h2load."""

import re
import socket
import struct
import subprocess
import sys
import time
import unittest

import harness
from harness import WraithTestCase
from test_http2 import (H2Server, SITES, PREFACE, build_docroot, frame, h2curl, hpack,
                        settings_frame, hpack_int, split_frames)

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, \
    STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = range(10)

GET = [(":method", "GET"), (":scheme", "http"), (":path", "/index.html"),
       (":authority", "h2.test")]


def literal_block(fields):
    """Literals without indexing or Huffman, names exactly as given (RFC 7541 §6.2.2)."""
    out = b""
    for name, value in fields:
        out += b"\x00" + hpack_int(len(name), 7, 0) + name.encode() + \
            hpack_int(len(value), 7, 0) + value.encode()
    return out


class Client:
    """One raw connection: sends bytes, reads frames, answers SETTINGS."""

    def __init__(self, port, preface=True):
        self.sock = harness.connect(port)
        self.buf = b""
        self.frames = []
        self.closed = False
        if preface:
            self.send(PREFACE + settings_frame())

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def pump(self, until, timeout=harness.IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return until()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                continue
            frames, self.buf = split_frames(self.buf + chunk)
            for ftype, flags, sid, payload in frames:
                self.frames.append((ftype, flags, sid, payload))
                if ftype == SETTINGS and not flags & ACK:
                    self.send(settings_frame(ack=True))
        return True

    def goaway(self):
        for ftype, _, _, payload in self.frames:
            if ftype == GOAWAY and len(payload) >= 8:
                last, code = struct.unpack(">II", payload[:8])
                if last != 0x7fffffff:
                    return code
        return None

    def rst(self, sid):
        for ftype, _, fsid, payload in self.frames:
            if ftype == RST_STREAM and fsid == sid:
                return struct.unpack(">I", payload)[0]
        return None

    def ended(self, sid):
        return any(f[0] in (HEADERS, DATA) and f[1] & END_STREAM and f[2] == sid
                   for f in self.frames)

    def close(self):
        self.sock.close()


class ConformanceTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = H2Server(SITES, workers=1, http2={"max_concurrent_streams": 4})
        build_docroot(cls.srv.dir)
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            sys.stderr.write(cls.srv.diagnostics())
            cls.srv.cleanup()
            raise
        cls.port = cls.srv.port
        cls.worker = cls.srv.worker_pids()

    def tearDown(self):
        # The worker survived whatever the test sent, and serves a fresh connection.
        self.assertEqual(self.srv.worker_pids(), self.worker, "the worker was replaced")
        r, status, version = h2curl(self.port, "/index.html")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        super().tearDown()

    def connection_error(self, data, code, preface=True):
        c = Client(self.port, preface)
        c.send(data)
        c.pump(lambda: c.goaway() is not None and c.closed, timeout=10)
        self.assertEqual(c.goaway(), code, c.frames)
        self.assertTrue(c.closed, "connection not closed after GOAWAY")
        c.close()

    def stream_error(self, data, sid, code):
        c = Client(self.port)
        c.send(data)
        c.pump(lambda: c.rst(sid) is not None or c.goaway() is not None, timeout=10)
        self.assertEqual(c.rst(sid), code, c.frames)
        self.assertIsNone(c.goaway())
        # The connection goes on.
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 101, literal_block(GET)))
        self.assertTrue(c.pump(lambda: c.ended(101)), c.frames)
        c.close()

    def get(self, sid, extra=(), flags=END_STREAM | END_HEADERS):
        return frame(HEADERS, flags, sid, literal_block(GET + list(extra)))

    # ---- §3.4, §4: preface and frame sizes

    def test_bad_preface_is_not_http2(self):
        # On an h2c listener the HTTP/1 side looks for the preface; anything else is an
        # HTTP/1 request, and a broken preface a bad one (505: version "HTTP/2.0"), never HTTP/2.
        s = harness.connect(self.port)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings_frame())
        data = harness.read_until_close(s)
        s.close()
        got = data.data if hasattr(data, "data") else data
        self.assertRegex(got[:12], rb"^HTTP/1\.1 (400|505)$|^$", got[:100])

    def test_frame_before_settings_is_protocol_error(self):
        self.connection_error(PREFACE + frame(PING, 0, 0, b"12345678"), PROTOCOL_ERROR,
                              preface=False)

    def test_frame_over_max_frame_size_is_frame_size_error(self):
        self.connection_error(self.get(1, flags=END_HEADERS) +
                              frame(DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR)

    def test_unknown_frame_type_and_setting_are_ignored(self):
        c = Client(self.port)
        c.send(frame(0xfa, 0xff, 0, b"whatever") + settings_frame([(0x99, 1)]) + self.get(1))
        self.assertTrue(c.pump(lambda: c.ended(1)))
        self.assertIsNone(c.goaway())
        c.close()

    # ---- §5.1: stream states and identifiers

    def test_data_on_idle_stream_is_protocol_error(self):
        self.connection_error(frame(DATA, 0, 1, b"x"), PROTOCOL_ERROR)

    def test_data_on_closed_stream_is_stream_closed(self):
        c = Client(self.port)
        c.send(self.get(1))
        self.assertTrue(c.pump(lambda: c.ended(1)))
        c.send(frame(DATA, 0, 1, b"late"))
        c.pump(lambda: c.rst(1) is not None or c.goaway() is not None)
        self.assertTrue(c.rst(1) == STREAM_CLOSED or c.goaway() == STREAM_CLOSED, c.frames)
        c.close()

    def test_headers_on_even_stream_is_protocol_error(self):
        self.connection_error(self.get(2), PROTOCOL_ERROR)

    def test_headers_with_decreasing_id_is_protocol_error(self):
        self.connection_error(self.get(5) + self.get(3), PROTOCOL_ERROR)

    def test_rst_stream_on_idle_stream_is_protocol_error(self):
        self.connection_error(frame(RST_STREAM, 0, 1, struct.pack(">I", CANCEL)), PROTOCOL_ERROR)

    def test_window_update_on_idle_stream_is_protocol_error(self):
        self.connection_error(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1)), PROTOCOL_ERROR)

    def test_push_promise_from_client_is_protocol_error(self):
        self.connection_error(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) +
                                    literal_block(GET)), PROTOCOL_ERROR)

    def test_refused_above_max_concurrent_streams(self):
        # A zero initial window keeps every response's body back: the streams stay open
        # (half-closed streams count, §5.1.2), and the fifth is one too many.
        c = Client(self.port, preface=False)
        c.send(PREFACE + settings_frame([(0x4, 0)]))
        for sid in (1, 3, 5, 7, 9):
            c.send(self.get(sid))
        c.pump(lambda: c.rst(9) is not None)
        self.assertEqual(c.rst(9), REFUSED_STREAM, c.frames)
        self.assertIsNone(c.rst(7))
        c.close()

    # ---- §6: frame rules

    def test_continuation_interleaved_is_protocol_error(self):
        block = literal_block(GET)
        self.connection_error(frame(HEADERS, END_STREAM, 1, block[:5]) +
                              frame(PING, 0, 0, b"12345678"), PROTOCOL_ERROR)

    def test_continuation_on_other_stream_is_protocol_error(self):
        block = literal_block(GET)
        self.connection_error(frame(HEADERS, END_STREAM, 1, block[:5]) +
                              frame(CONTINUATION, END_HEADERS, 3, block[5:]), PROTOCOL_ERROR)

    def test_continuation_without_headers_is_protocol_error(self):
        self.connection_error(frame(CONTINUATION, END_HEADERS, 1, literal_block(GET)),
                              PROTOCOL_ERROR)

    def test_continuation_assembles_a_request(self):
        block = literal_block(GET)
        c = Client(self.port)
        c.send(frame(HEADERS, END_STREAM, 1, block[:7]) + frame(CONTINUATION, 0, 1, block[7:20])
               + frame(CONTINUATION, END_HEADERS, 1, block[20:]))
        self.assertTrue(c.pump(lambda: c.ended(1)))
        c.close()

    def test_headers_bad_padding_is_protocol_error(self):
        block = literal_block(GET)
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                                    bytes([len(block) + 1]) + block), PROTOCOL_ERROR)

    def test_data_bad_padding_is_protocol_error(self):
        self.connection_error(self.get(1, flags=END_HEADERS) +
                              frame(DATA, PADDED, 1, bytes([4]) + b"abc"), PROTOCOL_ERROR)

    def test_padded_request_is_served(self):
        block = literal_block(GET)
        c = Client(self.port)
        c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([3]) + block +
                     b"\0\0\0"))
        self.assertTrue(c.pump(lambda: c.ended(1)))
        c.close()

    def test_connection_window_overflow_is_flow_control_error(self):
        self.connection_error(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)),
                              FLOW_CONTROL_ERROR)

    def test_stream_window_overflow_is_flow_control_stream_error(self):
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test")]
        self.stream_error(frame(HEADERS, END_HEADERS, 1, literal_block(post)) +
                          frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7fffffff)),
                          1, FLOW_CONTROL_ERROR)

    def test_window_update_of_zero_is_protocol_error(self):
        self.connection_error(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), PROTOCOL_ERROR)

    def test_window_update_wrong_length_is_frame_size_error(self):
        self.connection_error(frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"), FRAME_SIZE_ERROR)

    def test_data_past_the_stream_window_is_flow_control_error(self):
        # Our stream window is 1 MiB; 64 frames of 16 KiB plus one more byte overrun it.
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test")]
        data = frame(HEADERS, END_HEADERS, 1, literal_block(post))
        data += frame(DATA, 0, 1, b"x" * 16384) * 64 + frame(DATA, 0, 1, b"x")
        c = Client(self.port)
        c.send(data)
        c.pump(lambda: c.rst(1) is not None or c.goaway() is not None)
        # The body limit (64k) may answer 413 and reset first; past the window it must not
        # be anything but FLOW_CONTROL_ERROR or the earlier NO_ERROR/CANCEL of a finished
        # response.
        self.assertTrue(c.rst(1) in (FLOW_CONTROL_ERROR, NO_ERROR) or
                        c.goaway() == FLOW_CONTROL_ERROR, c.frames)
        c.close()

    def test_settings_enable_push_2_is_protocol_error(self):
        self.connection_error(settings_frame([(0x2, 2)]), PROTOCOL_ERROR)

    def test_settings_initial_window_too_large_is_flow_control_error(self):
        self.connection_error(settings_frame([(0x4, 0x80000000)]), FLOW_CONTROL_ERROR)

    def test_settings_max_frame_size_out_of_range_is_protocol_error(self):
        self.connection_error(settings_frame([(0x5, 16383)]), PROTOCOL_ERROR)
        self.connection_error(settings_frame([(0x5, 1 << 24)]), PROTOCOL_ERROR)

    def test_settings_bad_length_is_frame_size_error(self):
        self.connection_error(frame(SETTINGS, 0, 0, b"\0\1\0\0\0"), FRAME_SIZE_ERROR)
        self.connection_error(frame(SETTINGS, ACK, 0, b"\0\1\0\0\0\0"), FRAME_SIZE_ERROR)

    def test_settings_on_a_stream_is_protocol_error(self):
        self.connection_error(frame(SETTINGS, 0, 1, b""), PROTOCOL_ERROR)

    def test_initial_window_change_applies_to_open_streams(self):
        # A zero initial window holds the body back; raising it lets the body flow.
        c = Client(self.port, preface=False)
        c.send(PREFACE + settings_frame([(0x4, 0)]) + self.get(1))
        self.assertTrue(c.pump(lambda: any(f[0] == HEADERS and f[2] == 1 for f in c.frames)))
        time.sleep(0.2)
        c.pump(lambda: False, timeout=0.2)
        self.assertFalse(any(f[0] == DATA and f[2] == 1 and f[3] for f in c.frames))
        c.send(settings_frame([(0x4, 65535)]))
        self.assertTrue(c.pump(lambda: c.ended(1)), c.frames)
        body = b"".join(f[3] for f in c.frames if f[0] == DATA and f[2] == 1)
        self.assertEqual(body, b"<h1>h2 home</h1>\n")
        c.close()

    def test_ping_is_acknowledged_with_its_payload(self):
        c = Client(self.port)
        c.send(frame(PING, 0, 0, b"abcdefgh"))
        self.assertTrue(c.pump(lambda: any(f[0] == PING for f in c.frames)))
        ping = [f for f in c.frames if f[0] == PING][0]
        self.assertEqual((ping[1], ping[3]), (ACK, b"abcdefgh"))
        c.close()

    def test_ping_wrong_length_is_frame_size_error(self):
        self.connection_error(frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR)

    def test_ping_on_a_stream_is_protocol_error(self):
        self.connection_error(frame(PING, 0, 1, b"12345678"), PROTOCOL_ERROR)

    def test_priority_self_dependency_is_stream_protocol_error(self):
        self.stream_error(frame(PRIORITY, 0, 3, struct.pack(">IB", 3, 16)), 3, PROTOCOL_ERROR)

    def test_headers_self_dependency_is_stream_protocol_error(self):
        self.stream_error(frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1,
                                struct.pack(">IB", 1, 16) + literal_block(GET)),
                          1, PROTOCOL_ERROR)

    def test_priority_wrong_length_is_frame_size_stream_error(self):
        self.stream_error(frame(PRIORITY, 0, 3, b"\0\0\0\1"), 3, FRAME_SIZE_ERROR)

    def test_rst_stream_wrong_length_is_frame_size_error(self):
        self.connection_error(self.get(1, flags=END_HEADERS) + frame(RST_STREAM, 0, 1, b"\0\0\0"),
                              FRAME_SIZE_ERROR)

    def test_goaway_on_a_stream_is_protocol_error(self):
        self.connection_error(frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)), PROTOCOL_ERROR)

    # ---- RFC 7541 via §4.3: HPACK errors are COMPRESSION_ERROR

    def test_hpack_index_zero_is_compression_error(self):
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x80"),
                              COMPRESSION_ERROR)

    def test_hpack_index_out_of_range_is_compression_error(self):
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\xff\x10"),
                              COMPRESSION_ERROR)

    def test_hpack_bad_huffman_is_compression_error(self):
        # Name "x", value Huffman-coded as 32 ones: it holds EOS.
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS, 1, literal_block(GET) +
                                    b"\x00\x01x\x84\xff\xff\xff\xff"), COMPRESSION_ERROR)

    def test_hpack_table_size_update_above_limit_is_compression_error(self):
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                    b"\x3f\xe2\x1f" + literal_block(GET)), COMPRESSION_ERROR)

    def test_hpack_table_size_update_after_a_field_is_compression_error(self):
        self.connection_error(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                    literal_block(GET) + b"\x20"), COMPRESSION_ERROR)

    # ---- §8.2, §8.3: malformed requests are stream errors

    def test_uppercase_field_name_is_stream_protocol_error(self):
        self.stream_error(self.get(1, [("X-Upper", "1")]), 1, PROTOCOL_ERROR)

    def test_connection_specific_fields_are_stream_protocol_errors(self):
        for sid, field in ((1, ("connection", "keep-alive")), (3, ("keep-alive", "5")),
                           (5, ("transfer-encoding", "chunked")), (7, ("upgrade", "h2c")),
                           (9, ("proxy-connection", "x")), (11, ("te", "gzip"))):
            with self.subTest(field=field[0]):
                self.stream_error(self.get(sid, [field]), sid, PROTOCOL_ERROR)

    def test_te_trailers_is_allowed(self):
        c = Client(self.port)
        c.send(self.get(1, [("te", "trailers")]))
        self.assertTrue(c.pump(lambda: c.ended(1)))
        self.assertIsNone(c.rst(1))
        c.close()

    def test_missing_and_duplicate_pseudo_fields_are_stream_protocol_errors(self):
        cases = [
            [(":scheme", "http"), (":path", "/"), (":authority", "h2.test")],  # no :method
            [(":method", "GET"), (":path", "/"), (":authority", "h2.test")],  # no :scheme
            [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test")],  # no :path
            [(":method", "GET"), (":scheme", "http"), (":path", ""), (":authority", "h")],
            GET + [(":method", "GET")],  # duplicate
            GET + [(":path", "/x")],  # duplicate
            [(":method", "GET"), ("accept", "*/*"), (":scheme", "http"), (":path", "/")],
            GET + [(":status", "200")],  # a response pseudo-field
            GET + [(":foo", "bar")],  # unknown
            [(":method", "CONNECT"), (":authority", "h:1"), (":path", "/")],
            [(":method", "GET"), (":protocol", "websocket"), (":scheme", "http"),
             (":path", "/"), (":authority", "h2.test")],  # :protocol needs CONNECT
        ]
        for i, fields in enumerate(cases):
            with self.subTest(i=i):
                self.stream_error(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                        literal_block(fields)), 1, PROTOCOL_ERROR)

    def test_field_value_with_newline_is_stream_protocol_error(self):
        self.stream_error(self.get(1, [("x-a", "b\nc")]), 1, PROTOCOL_ERROR)

    def test_content_length_mismatch_is_stream_protocol_error(self):
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test"), ("content-length", "10")]
        self.stream_error(frame(HEADERS, END_HEADERS, 1, literal_block(post)) +
                          frame(DATA, END_STREAM, 1, b"short"), 1, PROTOCOL_ERROR)
        self.stream_error(frame(HEADERS, END_HEADERS, 3, literal_block(post)) +
                          frame(DATA, 0, 3, b"x" * 11), 3, PROTOCOL_ERROR)

    def test_trailers_with_pseudo_fields_are_stream_protocol_error(self):
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test")]
        self.stream_error(frame(HEADERS, END_HEADERS, 1, literal_block(post)) +
                          frame(DATA, 0, 1, b"body") +
                          frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                literal_block([(":path", "/x")])), 1, PROTOCOL_ERROR)

    def test_trailers_without_end_stream_are_stream_protocol_error(self):
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test")]
        self.stream_error(frame(HEADERS, END_HEADERS, 1, literal_block(post)) +
                          frame(DATA, 0, 1, b"body") +
                          frame(HEADERS, END_HEADERS, 1, literal_block([("x-t", "1")])),
                          1, PROTOCOL_ERROR)

    def test_request_trailers_are_accepted(self):
        post = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                (":authority", "h2.test")]
        c = Client(self.port)
        c.send(frame(HEADERS, END_HEADERS, 1, literal_block(post)) + frame(DATA, 0, 1, b"body") +
               frame(HEADERS, END_STREAM | END_HEADERS, 1, literal_block([("x-t", "1")])))
        self.assertTrue(c.pump(lambda: c.ended(1)), c.frames)
        self.assertIsNone(c.goaway())
        c.close()

    # ---- real clients

    def test_curl_prior_knowledge_and_upgrade_attempt(self):
        r, status, version = h2curl(self.port, "/index.html")
        self.assertEqual((status, version), (200, "2"), r.stderr)
        # --http2 over cleartext asks for Upgrade: h2c, which is not offered: HTTP/1.1 answers.
        r = harness.curl("--http2", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                         f"http://127.0.0.1:{self.port}/index.html")
        self.assertEqual(r.stdout.decode(), "200 1.1")

    def test_nghttp_and_h2load(self):
        r = subprocess.run(["nghttp", "-nv", f"http://127.0.0.1:{self.port}/index.html"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn(":status: 200", out)
        self.assertIn("SETTINGS_ENABLE_CONNECT_PROTOCOL", out.replace("(0x08)", ""))
        # -m 4: this server allows 4 concurrent streams (before our SETTINGS arrive h2load
        # would open more, and the extra ones are refused, as they should be).
        r = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "4",
                            f"http://127.0.0.1:{self.port}/index.html"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = r.stdout.decode()
        self.assertIn("2000 succeeded, 0 failed, 0 errored", out, out)


if __name__ == "__main__":
    harness.main()
