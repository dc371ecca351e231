"""Worker hardening: the seccomp allow-list and Landlock (server.seccomp, server.landlock).

What is pinned down: workers run with a seccomp filter (Seccomp: 2 in /proc) unless
server.seccomp = false; a worker made to call a forbidden system call through the test-only
probe (WRAITH_TEST_SANDBOX_PROBE=syscall, then SIGUSR2) dies by SIGSYS and the master starts a
new one that serves; with server.landlock a worker cannot open files outside what the config
names, while it still serves its roots, writes and reopens its logs; `wraith check` warns when
the kernel lacks what the config asks for (WRAITH_TEST_SANDBOX_SUPPORT=none plays such a
kernel).
"""

import os
import signal

import harness
from harness import WraithTestCase, make_dir, proc_status, wait_for, write_file

SITE = '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  static = { root = "@DIR@/www" }
'''


class Sandbox(WraithTestCase):
    def start(self, probe=None, server=None, workers=1):
        old = os.environ.get("WRAITH_TEST_SANDBOX_PROBE")
        if probe:
            os.environ["WRAITH_TEST_SANDBOX_PROBE"] = probe
        try:
            srv = self.server(SITE, start=False, workers=workers, server=server or {})
            write_file(srv.path("www", "index.html"), b"index\n")
            srv.start()
        finally:
            if old is None:
                os.environ.pop("WRAITH_TEST_SANDBOX_PROBE", None)
            else:
                os.environ["WRAITH_TEST_SANDBOX_PROBE"] = old
        return srv

    def test_workers_run_under_a_seccomp_filter(self):
        srv = self.start()
        [worker] = srv.wait_workers(1)
        self.assertEqual(proc_status(worker)["Seccomp"], "2")  # SECCOMP_MODE_FILTER
        self.assertEqual(proc_status(worker)["NoNewPrivs"], "1")
        self.assertEqual(proc_status(srv.pid)["Seccomp"], "0")  # the master is not confined

    def test_forbidden_syscall_kills_the_worker_and_the_master_respawns_it(self):
        srv = self.start(probe="syscall")
        [worker] = srv.wait_workers(1)
        os.kill(worker, signal.SIGUSR2)
        [fresh] = srv.wait_workers(1, exclude=[worker])
        self.assertNotEqual(fresh, worker)
        log = wait_for(lambda: "Bad system call" in srv.error_log_text() and srv.error_log_text(),
                       what="the master's line about the dead worker")
        self.assertRegex(log, rf"worker 0/1 \(pid {worker}\) killed by signal 31 "
                              r"\(Bad system call\)")
        self.assertIn("sandbox probe: calling unshare(2)", log)
        self.assertNotIn("seccomp is not active", log)
        self.assertEqual(harness.http_get(srv.port, "/index.html")[2], b"index\n")

    def test_seccomp_false_leaves_workers_unfiltered(self):
        srv = self.start(probe="syscall", server={"seccomp": "false"})
        [worker] = srv.wait_workers(1)
        self.assertEqual(proc_status(worker)["Seccomp"], "0")
        os.kill(worker, signal.SIGUSR2)
        wait_for(lambda: "seccomp is not active" in srv.error_log_text(), what="the probe's line")
        self.assertEqual(srv.worker_pids(), [worker])

    def test_landlock_confines_files_and_the_worker_keeps_serving_and_logging(self):
        srv = self.start(probe="open:/etc/passwd", server={"landlock": "true"}, workers=1)
        [worker] = srv.wait_workers(1)
        os.kill(worker, signal.SIGUSR2)
        wait_for(lambda: "sandbox probe: cannot open /etc/passwd: Permission denied"
                 in srv.error_log_text(), what="the probe refused by Landlock")
        self.assertEqual(harness.http_get(srv.port, "/index.html")[2], b"index\n")
        # Logs rotate: the worker reopens (and here makes) its access log after USR1.
        os.rename(srv.access_log, srv.access_log + ".1")
        srv.signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(srv.access_log), what="a new access log")
        harness.http_get(srv.port, "/index.html")
        srv.wait_log_line(lambda l: "GET /index.html" in l, what="a line in the new log")
        self.assertEqual(srv.worker_pids(), [worker])

    def test_check_warns_when_the_kernel_lacks_what_the_config_asks(self):
        srv = self.server(SITE, start=False, server={"landlock": "true"})
        make_dir(srv.path("www"))
        os.environ["WRAITH_TEST_SANDBOX_SUPPORT"] = "none"
        try:
            r = srv.cli("check")
        finally:
            del os.environ["WRAITH_TEST_SANDBOX_SUPPORT"]
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"warning: {srv.conf}: server.seccomp: this kernel has no seccomp", r.stderr)
        self.assertIn(f"warning: {srv.conf}: server.landlock: this kernel has no Landlock",
                      r.stderr)
        r = srv.cli("check")
        self.assertNotIn("warning", r.stderr)


if __name__ == "__main__":
    harness.main()
