"""Binary upgrade (`wraith upgrade`, kill -USR2): the running master starts the binary again with
its listening TCP and UDP sockets; both masters serve side by side; downloads over TCP and
HTTP/3 that started before the upgrade finish intact; QUIT to the old master drains it and
leaves the new one serving, with nothing of the old left behind. A new binary that cannot start
leaves the old master serving, with its pid file back in place and a log line that says why."""

import hashlib
import os
import signal
import subprocess
import tempfile
import shutil
import unittest

import harness
import tlsutil
from harness import Wraith, WraithTestCase, curl, make_dir, pid_alive, toml_str, wait_for, \
    write_file

H3GET = os.path.join(os.path.dirname(harness.WRAITH_BIN), "h3get")


def read_pid(path):
    with open(path) as f:
        return int(f.read())


class Upgrade(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wraith-upgrade-")
        os.chmod(cls.pki_dir, 0o755)
        cls.cert = tlsutil.TestPki(cls.pki_dir).ca("upgrade-ca").issue("site", ["localhost"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def start(self):
        sites = f'''
[[site]]
hosts = ["localhost"]
default = true
tls = {{ cert = {toml_str(self.cert.chain)}, key = {toml_str(self.cert.key)} }}
  [[site.route]]
  path = "/"
  static = {{ root = "@DIR@/www" }}
'''
        # The old generation drains until its downloads end; 400 MiB over HTTP/3 took over the
        # default 10 s on a loaded 2-core machine running the whole suite (the drain timeout
        # then cut it), so the bound is generous: the test is about draining, not speed.
        srv = Wraith(sites, workers=2, tls_listen="",
                     server={"drain_timeout": f'"{int(120 * harness.TIME_SCALE)}s"'})
        self.servers.append(srv)
        www = make_dir(srv.path("www"))
        write_file(os.path.join(www, "small.txt"), b"small\n")
        # Big enough that the downloads are still running when the upgrade happens.
        self.big = os.path.join(www, "big.bin")
        with open(self.big, "wb") as f:
            f.truncate(400 * 1024 * 1024)
        srv.start()
        return srv

    @staticmethod
    def kill_master(pid):
        """The new master is not our child: stop it (and so its workers) by pid."""
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not pid_alive(pid), timeout=20, what=f"master {pid} to exit")

    def h3get(self, srv, *args, **kw):
        return subprocess.run([H3GET, "-k", "--resolve", f"localhost:{srv.tls_port}:127.0.0.1",
                               *args], capture_output=True, timeout=kw.get("timeout", 60))

    def url(self, srv, path):
        return f"https://localhost:{srv.tls_port}{path}"

    def test_upgrade_keeps_serving_and_old_master_drains(self):
        srv = self.start()
        old_pid = srv.pid
        old_workers = set(srv.worker_pids())
        self.assertTrue(old_workers)
        out_h3 = srv.path("big-h3.bin")
        out_tcp = srv.path("big-tcp.bin")
        # Slow readers: curl's rate limit keeps the TCP download going; the HTTP/3 one is a
        # plain fast download started just before.
        h3 = subprocess.Popen([H3GET, "-k", "--resolve", f"localhost:{srv.tls_port}:127.0.0.1",
                               "-o", out_h3, self.url(srv, "/big.bin")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        tcp = subprocess.Popen(["curl", "-sk", "--http2", "--limit-rate", "100M", "-o", out_tcp,
                                "--resolve", f"localhost:{srv.tls_port}:127.0.0.1",
                                self.url(srv, "/big.bin")])
        wait_for(lambda: os.path.exists(out_tcp) and os.path.getsize(out_tcp) > 0,
                 what="the TCP download to start")

        up = srv.cli("upgrade")
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
        self.assertIn("upgraded: new master pid", up.stdout)
        new_pid = wait_for(lambda: (p := read_pid(srv.pid_file)) != old_pid and p,
                           what="the new pid file")
        self.addCleanup(self.kill_master, new_pid)
        self.assertEqual(read_pid(srv.pid_file + ".oldbin"), old_pid)
        self.assertTrue(pid_alive(old_pid) and pid_alive(new_pid))

        # Both generations serve; requests on every protocol work during the overlap.
        for _ in range(5):
            r = curl("-sk", "--http1.1", "--resolve", f"localhost:{srv.tls_port}:127.0.0.1",
                     self.url(srv, "/small.txt"))
            self.assertEqual(r.stdout, b"small\n")
            r = self.h3get(srv, self.url(srv, "/small.txt"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"small\n")

        os.kill(old_pid, signal.SIGQUIT)
        self.assertEqual(h3.wait(timeout=120), 0, h3.stderr.read())
        self.assertEqual(tcp.wait(timeout=120), 0)
        for path in (out_h3, out_tcp):
            self.assertEqual(os.path.getsize(path), os.path.getsize(self.big), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(1 << 20).count(0), 1 << 20)  # sparse zeros, intact
        wait_for(lambda: not pid_alive(old_pid), timeout=30, what="the old master to exit")
        wait_for(lambda: not any(pid_alive(p) for p in old_workers), timeout=30,
                 what="the old workers to exit")
        self.assertFalse(os.path.exists(srv.pid_file + ".oldbin"))
        # The new master owns the control socket and serves alone.
        st = srv.cli("status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn(f"master pid {new_pid}", st.stdout)
        r = self.h3get(srv, self.url(srv, "/small.txt"))
        self.assertEqual(r.stdout, b"small\n")
        os.kill(new_pid, signal.SIGQUIT)
        wait_for(lambda: not pid_alive(new_pid), timeout=30, what="the new master to exit")

    def test_new_binary_that_cannot_start_leaves_the_old_serving(self):
        srv = self.start()
        old_pid = srv.pid
        srv.write_config(text="this is = not [ toml")
        os.kill(old_pid, signal.SIGUSR2)
        wait_for(lambda: "binary upgrade: new master" in srv.read(srv.error_log) and
                 "keeps serving" in srv.read(srv.error_log), what="the failed-upgrade log line")
        self.assertEqual(read_pid(srv.pid_file), old_pid)
        self.assertFalse(os.path.exists(srv.pid_file + ".oldbin"))
        srv.write_config()
        r = self.h3get(srv, self.url(srv, "/small.txt"))
        self.assertEqual(r.stdout, b"small\n")
        self.assertEqual(srv.status().returncode, 0)


if __name__ == "__main__":
    harness.main()
