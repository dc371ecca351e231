"""Process model: master + workers, privilege drop, pid file, `wraith status`, worker respawn,
graceful (QUIT) and fast (TERM) stop, reload by HUP and `wraith reload` (good and broken
configs), log reopen on USR1, `wraith stop`."""

import json
import os
import re
import signal
import socket
import time
import unittest

import harness
from harness import (WraithTestCase, http_get, wait_for, pid_alive, proc_uid, children_of,
                     write_file, connect, read_until_close, IS_ROOT)

BIG = 20 * 1024 * 1024

SITES = r'''
[[site]]
hosts = ["proc.test"]
default = true
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www1", index = ["index.html"] }
'''


class ProcessTest(WraithTestCase):
    def start(self, workers=2, big=False, wait_count=True, **kw):
        srv = self.server(SITES, start=False, workers=workers, **kw)
        write_file(srv.path("www1", "index.html"), "generation one\n")
        write_file(srv.path("www2", "index.html"), "generation two\n")
        if big:
            with open(srv.path("www1", "big.bin"), "wb") as f:
                chunk = bytes(range(256)) * 4096  # 1 MiB
                for _ in range(BIG // len(chunk)):
                    f.write(chunk)
            os.chmod(srv.path("www1", "big.bin"), 0o644)
        srv.start()
        if wait_count:
            srv.wait_workers(workers)
        return srv

    def body(self, srv, path="/"):
        status, _, body = http_get(srv.port, path, headers={"Host": "proc.test"})
        return status, body

    def wait_serving(self, srv, pids):
        """Waits until `wraith status` shows every worker of `pids` serving (set up, its
        privileges dropped)."""
        wait_for(lambda: all(f"pid {pid}  state serving" in srv.cli("status").stdout
                             for pid in pids), what=f"workers {pids} serving")

    def broken_config(self, srv):
        """srv's config with a bad duration; returns (text, line of the bad key)."""
        text = srv.render()
        self.assertIn('drain_timeout = "10s"', text)
        text = text.replace('drain_timeout = "10s"', 'drain_timeout = "10 parsecs"')
        line = next(i for i, l in enumerate(text.splitlines(), 1) if "parsecs" in l)
        return text, line

    # ---- tree, privileges, pid file, status

    def test_master_and_workers(self):
        srv = self.start(workers=3)
        kids = srv.wait_workers(3)
        self.assertEqual(len(kids), 3)
        self.assertTrue(pid_alive(srv.pid))
        if IS_ROOT:
            uid = harness.www_data_uid()
            self.assertIsNotNone(uid, "no www-data user on this machine")
            self.assertEqual(proc_uid(srv.pid)[0], 0, "master should stay root")
            # A worker serves once set up, privileges dropped included: wait for all three
            # (the first GET proves only one).
            self.wait_serving(srv, kids)
            for pid in kids:
                self.assertEqual(proc_uid(pid), [uid] * 4,
                                 f"worker {pid} uids {proc_uid(pid)} (www-data is {uid})")
        else:
            print("NOTE: not running as root; skipping the worker privilege-drop assertion")
        self.assertEqual(self.body(srv), (200, b"generation one\n"))

    def test_workers_auto(self):
        srv = self.start(workers="auto", wait_count=None)
        expected = {os.cpu_count(), len(os.sched_getaffinity(0))}
        kids = wait_for(lambda: srv.record_children() if len(srv.record_children()) in expected
                        else None, 10, what=f"one worker per CPU ({sorted(expected)})")
        self.assertIn(len(kids), expected)

    def test_pid_file(self):
        srv = self.start()
        with open(srv.pid_file) as f:
            content = f.read()
        self.assertEqual(content.strip(), str(srv.pid))
        self.assertRegex(content, r"^\d+\n?$")

    def test_status_output(self):
        srv = self.start(workers=2)
        kids = srv.wait_workers(2)
        r = srv.status()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn(str(srv.pid), out)
        self.assertIn(srv.conf, out)
        self.assertRegex(out, r"(?i)generation")
        reported = {int(p) for p in re.findall(r"\bpid (\d+)", out)}
        for pid in kids:
            self.assertIn(pid, reported, f"worker {pid} missing from status:\n{out}")
        worker_lines = [l for l in out.splitlines()
                        if any(re.search(rf"\bpid {k}\b", l) for k in kids)]
        self.assertEqual(len(worker_lines), 2, out)

    def test_status_json(self):
        srv = self.start(workers=2)
        kids = srv.wait_workers(2)
        self.wait_serving(srv, kids)

        def status():
            r = srv.cli("status", "--json")
            self.assertEqual(r.returncode, 0, r)
            return json.loads(r.stdout)

        def requests(doc):
            return sum(w["requests"] for w in doc["workers"])

        # The readiness probe's request may be counted a moment after its answer: wait until
        # the count settles, then one more request must show.
        wait_for(lambda: requests(status()) >= 1, what="the readiness probe counted")
        before = requests(status())
        harness.http_get(srv.port, "/")
        wait_for(lambda: requests(status()) >= before + 1, what="the request counted")
        doc = status()
        self.assertEqual((doc["master"]["pid"], doc["master"]["config"]), (srv.pid, srv.conf))
        self.assertEqual(doc["master"]["generation"], 1)
        self.assertEqual(sorted(w["pid"] for w in doc["workers"]), sorted(kids))
        self.assertEqual({w["state"] for w in doc["workers"]}, {"serving"})
        self.assertEqual(sorted(w["slot"] for w in doc["workers"]), [0, 1])
        r = srv.cli("reload", "--json")
        self.assertEqual(r.returncode, 2, r)  # --json is for status only
        self.assertIn("not valid", r.stderr)

    def test_status_without_server_fails(self):
        srv = self.server(SITES, start=False)
        r = srv.status()
        self.assertEqual(r.returncode, 1, r)
        self.assertTrue(r.stderr.strip())

    def test_killed_worker_is_respawned(self):
        srv = self.start(workers=2)
        kids = srv.wait_workers(2)
        victim = kids[0]
        os.kill(victim, signal.SIGKILL)
        new = srv.wait_workers(2, timeout=15, exclude=[victim])
        self.assertNotIn(victim, new)
        self.assertIn(kids[1], new)
        if IS_ROOT:
            uid = harness.www_data_uid()
            self.wait_serving(srv, new)  # the respawned one drops privileges while starting
            for pid in new:
                self.assertEqual(proc_uid(pid)[0], uid)
        for _ in range(6):
            self.assertEqual(self.body(srv), (200, b"generation one\n"))

    # ---- stopping

    def test_quit_finishes_in_flight_request(self):
        srv = self.start(workers=1, big=True)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(30)
        s.connect(("127.0.0.1", srv.port))
        try:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: proc.test\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk, f"closed before headers: {got!r}")
                got += chunk
            head, _, body_start = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            self.assertTrue(m, head)
            self.assertEqual(int(m.group(1)), BIG)

            srv.signal(signal.SIGQUIT)
            # Let the stop get under way: the listener closes. Our response is unfinished, so
            # the worker (and the master) must still be there.
            wait_for(lambda: _refused(srv.port), 10, what="listener closed after QUIT")
            self.assertTrue(pid_alive(srv.pid), "master exited with a response in flight")
            received = len(body_start)
            while received < BIG:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
            self.assertEqual(received, BIG, "response cut short by graceful stop")
        finally:
            s.close()
        code = srv.wait_exit(timeout=20)
        self.assertIsNotNone(code, "master still running 20s after QUIT with nothing in flight")
        wait_for(lambda: not any(pid_alive(p) for p in srv.known_children), 10,
                 what="workers to exit after QUIT")

    def test_quit_refuses_new_connections_after_exit(self):
        srv = self.start(workers=1)
        srv.signal(signal.SIGQUIT)
        self.assertIsNotNone(srv.wait_exit(timeout=20), "master did not exit after idle QUIT")
        with self.assertRaises(OSError):
            http_get(srv.port, "/", timeout=2)

    def test_term_stops_quickly(self):
        srv = self.start(workers=2)
        kids = srv.wait_workers(2)
        # An idle keep-alive connection must not hold up a fast stop.
        s = connect(srv.port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: proc.test\r\n\r\n")
        read_until_close(s, stop=harness.has_complete_response)
        try:
            srv.signal(signal.SIGTERM)
            code = srv.wait_exit(timeout=10)
            self.assertIsNotNone(code, "master still running 10s after SIGTERM")
            wait_for(lambda: not any(pid_alive(p) for p in kids), 10,
                     what="workers to exit after TERM")
        finally:
            s.close()
        self.assertFalse(os.path.exists(srv.control_socket) and _socket_answers(
            srv.control_socket), "control socket still answering after stop")

    def test_int_stops(self):
        srv = self.start(workers=1)
        srv.signal(signal.SIGINT)
        self.assertIsNotNone(srv.wait_exit(timeout=10), "master still running after SIGINT")

    def test_wraith_stop(self):
        srv = self.start(workers=2)
        kids = srv.wait_workers(2)
        r = srv.cli_stop()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # `wraith stop` returns after the master exited (a zombie until we reap it).
        self.assertFalse(pid_alive(srv.pid), "master still running when `wraith stop` returned")
        self.assertIsNotNone(srv.wait_exit(timeout=5))
        wait_for(lambda: not any(pid_alive(p) for p in kids), 10, what="workers to exit")

    # ---- reload

    def test_hup_reload_changes_root(self):
        srv = self.start(workers=2)
        old = srv.wait_workers(2)
        self.assertEqual(self.body(srv), (200, b"generation one\n"))
        srv.write_config(sites=SITES.replace("www1", "www2"))
        srv.signal(signal.SIGHUP)
        wait_for(lambda: self.body(srv) == (200, b"generation two\n"), 15,
                 what="new generation serving www2")
        wait_for(lambda: not any(pid_alive(p) for p in old), 20,
                 what="old-generation workers to exit")
        new = srv.wait_workers(2, exclude=old)
        self.assertTrue(set(new).isdisjoint(old))
        self.assertTrue(pid_alive(srv.pid), "master changed or died on reload")
        for _ in range(5):
            self.assertEqual(self.body(srv), (200, b"generation two\n"))

    def test_hup_broken_config_keeps_old_generation(self):
        srv = self.start(workers=2)
        old = srv.wait_workers(2)
        text, line = self.broken_config(srv)
        write_file(srv.conf, text)
        srv.signal(signal.SIGHUP)
        pat = re.compile(re.escape(srv.conf) + rf":{line}:\d+: ")
        wait_for(lambda: pat.search(srv.error_log_text()), 15,
                 what=f"error log line {srv.conf}:{line}:COL")
        self.assertTrue(pid_alive(srv.pid))
        self.assertEqual(self.body(srv), (200, b"generation one\n"))
        self.assertEqual(srv.record_children(), old, "workers changed after a failed reload")

    def test_wraith_reload_good(self):
        srv = self.start(workers=2)
        old = srv.wait_workers(2)
        srv.write_config(sites=SITES.replace("www1", "www2"))
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Exit 0 means the new generation serves now.
        self.assertEqual(self.body(srv), (200, b"generation two\n"))
        wait_for(lambda: not any(pid_alive(p) for p in old), 20,
                 what="old-generation workers to exit")

    def test_wraith_reload_broken(self):
        srv = self.start(workers=2)
        old = srv.wait_workers(2)
        text, line = self.broken_config(srv)
        write_file(srv.conf, text)
        r = srv.reload()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(r.stderr, re.compile(rf"(?m)^{re.escape(srv.conf)}:{line}:\d+: "),
                         out)
        self.assertEqual(self.body(srv), (200, b"generation one\n"))
        self.assertEqual(srv.record_children(), old)
        # Fixing the file and reloading again works.
        srv.write_config(sites=SITES.replace("www1", "www2"))
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.body(srv), (200, b"generation two\n"))

    def test_reload_changes_worker_count_user_and_listeners(self):
        srv = self.start(workers=2)
        old = srv.wait_workers(2)
        # More workers.
        srv.workers = 3
        srv.write_config()
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        three = srv.wait_workers(3, exclude=old)
        self.assertEqual(len(three), 3)
        wait_for(lambda: not any(pid_alive(p) for p in old), 20, what="the old workers to exit")
        # A listener added on reload serves at once; one removed stops taking connections.
        extra = harness.free_port(ipv6_too=False)
        text = srv.render()
        srv.write_config(text=text + f'\n[[listen]]\naddress = "127.0.0.1:{extra}"\n')
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        status, _, body = http_get(extra, "/", headers={"Host": "proc.test"})
        self.assertEqual((status, body), (200, b"generation one\n"))
        srv.write_config(text=text)
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", extra), timeout=2).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_for(refused, 20, what="the removed listener to refuse connections")
        self.assertEqual(self.body(srv), (200, b"generation one\n"))
        # Fewer workers, and (as root) another user.
        srv.workers = 1
        if IS_ROOT:
            srv.server["user"] = '"nobody"'
        srv.write_config()
        before = srv.record_children()
        r = srv.reload()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        (one,) = srv.wait_workers(1, exclude=before)
        if IS_ROOT:
            import pwd
            nobody = pwd.getpwnam("nobody").pw_uid
            self.assertEqual(proc_uid(one), [nobody] * 4)  # real, effective, saved, fs
        self.assertEqual(self.body(srv), (200, b"generation one\n"))

    def test_reload_refuses_a_change_that_needs_a_restart(self):
        srv = self.start(workers=1)
        old = srv.wait_workers(1)
        text = srv.render().replace(srv.pid_file, srv.pid_file + ".other")
        write_file(srv.conf, text)
        r = srv.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("cannot change on reload; restart wraith", r.stderr)
        self.assertEqual(srv.record_children(), old)
        self.assertEqual(self.body(srv), (200, b"generation one\n"))

    def test_reload_keeps_connections(self):
        """A keep-alive connection to the old generation gets its in-flight answer."""
        srv = self.start(workers=1)
        s = connect(srv.port)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: proc.test\r\n\r\n")
            r1 = read_until_close(s, stop=harness.has_complete_response)
            self.assertEqual(r1.status, 200, r1)
            srv.write_config(sites=SITES.replace("www1", "www2"))
            r = srv.reload()
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # The old worker drains: a request on the old connection is answered (with
            # Connection: close), or the idle connection was closed cleanly without a reset.
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: proc.test\r\n\r\n")
                r2 = read_until_close(s, timeout=10)
            except (BrokenPipeError, ConnectionResetError) as e:
                self.fail(f"old connection reset on reload: {e!r}")
            self.assertFalse(r2.reset, f"old connection reset on reload: {r2!r}")
            if r2.data:
                self.assertEqual(r2.status, 200, r2)
        finally:
            s.close()

    # ---- logs

    def test_usr1_reopens_logs(self):
        srv = self.start(workers=2)
        self.assertEqual(self.body(srv, "/?before-rotate")[0], 200)
        srv.wait_log_line(lambda l: "before-rotate" in l)
        rotated = srv.access_log + ".1"
        os.rename(srv.access_log, rotated)
        srv.signal(signal.SIGUSR1)

        def new_file_has_line():
            self.body(srv, "/?after-rotate")
            return any("after-rotate" in l for l in srv.access_log_lines())
        wait_for(new_file_has_line, 15, interval=0.2,
                 what="request logged to the reopened access.log")
        self.assertTrue(os.path.exists(srv.access_log))
        old_lines = srv.access_log_lines(rotated)
        self.assertTrue(any("before-rotate" in l for l in old_lines), old_lines)
        # Logging continues in the new file only.
        self.assertEqual(self.body(srv, "/?final-line")[0], 200)
        srv.wait_log_line(lambda l: "final-line" in l)
        self.assertFalse(any("final-line" in l for l in srv.access_log_lines(rotated)))
        self.assertTrue(pid_alive(srv.pid))


def _refused(port):
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return True
    # Accepted by the kernel backlog of a closing listener: count it as refused only if the
    # server never answers.
    try:
        c.sendall(b"GET / HTTP/1.1\r\nHost: proc.test\r\nConnection: close\r\n\r\n")
        res = read_until_close(c, timeout=2)
        return not res.data
    except OSError:
        return True
    finally:
        c.close()


def _socket_answers(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    harness.main()
