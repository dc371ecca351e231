"""NGINX's command line (issue 20): `wraith -t`, `-T`, `-q`, `-v`, `-V`, `-c`, `-p`, `-g` and
`-s reload|reopen|quit|stop` with NGINX's messages and exit codes, against a real running
wraith; the native subcommands stay as they are (test_cli.py)."""

import os
import re
import signal
import subprocess
import time
import unittest

import harness
from harness import (Wraith, WraithTestCase, http_get, pid_alive, run_wraith, wait_for,
                     write_file)

SITES = '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "ok\\n" }
'''


def generation(srv):
    out = srv.status().stdout
    m = re.search(r"generation (\d+)", out)
    return int(m.group(1)) if m else None


class NginxFlagsOffline(WraithTestCase):
    """What needs no running server."""

    def setUp(self):
        super().setUp()
        self.srv = Wraith(SITES, workers=1)
        self.servers.append(self.srv)

    def test_t_ok(self):
        r = run_wraith("-t", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr.splitlines(), [
            f"wraith: the configuration file {self.srv.conf} syntax is ok",
            f"wraith: configuration file {self.srv.conf} test is successful"])

    def test_tq_is_quiet_and_flags_group(self):
        r = run_wraith("-tq", "-c", self.srv.conf)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        r = run_wraith("-qt", "-c" + self.srv.conf)  # value glued to its flag, as nginx takes
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_t_failed(self):
        text = self.srv.render().replace("workers = 1", 'workers = "two"')
        write_file(self.srv.conf, text)
        r = run_wraith("-t", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.splitlines()
        self.assertRegex(lines[0], r"^wraith: \[emerg\] .*wraith\.toml:\d+:\d+: server\.workers")
        self.assertEqual(lines[-1], f"wraith: configuration file {self.srv.conf} test failed")

    def test_T_dumps_the_files(self):
        r = run_wraith("-T", "-c", self.srv.conf, "-g", "worker_processes 3;")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test is successful", r.stderr)
        self.assertTrue(r.stdout.startswith(f"# configuration file {self.srv.conf}:\n[server]"))
        self.assertIn("# command line (-g):\n[server]\nworkers = 3", r.stdout)

    def test_v_and_V(self):
        r = run_wraith("-v")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"^wraith version: wraith/\d+\.\d+\.\d+")
        r = run_wraith("-V")
        self.assertEqual(r.returncode, 0)
        self.assertIn("built with OpenSSL", r.stderr)
        self.assertIn("TLS SNI support enabled", r.stderr)
        self.assertIn("configure arguments:", r.stderr)
        # -v with -t: both, as nginx does
        r = run_wraith("-v", "-t", "-c", self.srv.conf)
        self.assertIn("wraith version", r.stderr)
        self.assertIn("syntax is ok", r.stderr)

    def test_usage_errors_exit_1_with_nginx_messages(self):
        for args, msg in ((["-x"], 'wraith: invalid option: "x"'),
                          (["-s", "bogus"], 'wraith: invalid option: "-s bogus"'),
                          (["-c"], 'wraith: option "-c" requires file name'),
                          (["-t", "-g", "frobnicate on;"],
                           'wraith: [emerg] unknown directive "frobnicate" in command line'),
                          (["-t", "-g", "master_process off;"], "is not supported"),
                          (["-t", "-g", "worker_processes"], "expecting \";\"")):
            r = run_wraith(*args)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertIn(msg, r.stderr, args)

    def test_g_overrides_are_checked_like_the_file(self):
        r = run_wraith("-t", "-c", self.srv.conf, "-g", "worker_processes 999;")
        self.assertEqual(r.returncode, 1)
        self.assertIn("[emerg] command line (-g):", r.stderr)
        self.assertIn("server.workers", r.stderr)
        # the native check takes -g too
        r = run_wraith("check", "-c", self.srv.conf, "-g", "worker_processes 2;")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_p_prefix_for_a_relative_c(self):
        r = run_wraith("-t", "-p", self.srv.dir, "-c", "wraith.toml")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"configuration file {self.srv.conf} test", r.stderr)

    def test_s_without_a_master(self):
        r = run_wraith("-s", "reload", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), f'wraith: [error] open() "{self.srv.pid_file}" '
                                           "failed (2: No such file or directory)")
        write_file(self.srv.pid_file, "garbage\n")
        r = run_wraith("-s", "reload", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f'invalid PID number "garbage" in "{self.srv.pid_file}"', r.stderr)

    def test_native_commands_unchanged(self):
        r = run_wraith("--version")
        self.assertRegex(r.stdout, r"^wraith \d+\.\d+\.\d+")
        r = run_wraith()
        self.assertEqual(r.returncode, 2)
        r = run_wraith("check", "-c", self.srv.conf)
        self.assertEqual(r.returncode, 0)
        self.assertIn("ok:", r.stdout)


class NginxSignals(WraithTestCase):
    """-s against a running master, and starting one the nginx way."""

    def test_reload_reopen_quit(self):
        srv = self.server(SITES, workers=1)
        self.assertEqual(generation(srv), 1)
        r = run_wraith("-s", "reload", "-c", srv.conf)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(generation(srv), 2)
        r = run_wraith("-s", "reopen", "-c", srv.conf)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # A broken file: the reload fails with the problems, the old generation serves.
        good = open(srv.conf).read()
        write_file(srv.conf, good.replace("workers = 1", "workers = -1"))
        r = run_wraith("-s", "reload", "-c", srv.conf)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^wraith: \[error\] .*server\.workers")
        self.assertEqual(http_get(srv.port)[0], 200)
        write_file(srv.conf, good)
        # quit returns at once; the master drains and exits.
        r = run_wraith("-s", "quit", "-c", srv.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNotNone(srv.wait_exit(), "the master did not exit after -s quit")

    def test_stop_through_the_pid_file_when_the_socket_is_gone(self):
        srv = self.server(SITES, workers=1)
        os.unlink(srv.control_socket)  # nginx's way: the pid file and a signal
        r = run_wraith("-s", "stop", "-c", srv.conf)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIsNotNone(srv.wait_exit(), "the master did not exit after SIGTERM")

    def test_reload_through_the_pid_file(self):
        srv = self.server(SITES, workers=1)
        before = srv.worker_pids()
        os.unlink(srv.control_socket)
        r = run_wraith("-s", "reload", "-c", srv.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.wait_workers(1, exclude=before)
        self.assertEqual(http_get(srv.port)[0], 200)

    def test_start_nginx_style_with_g(self):
        srv = Wraith(SITES, workers=2)
        self.servers.append(srv)
        # `wraith -c FILE -g 'daemon off; worker_processes 1;'`: the server in the foreground
        srv.proc = subprocess.Popen([harness.WRAITH_BIN, "-c", srv.conf, "-g",
                                     "daemon off; worker_processes 1;"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        srv.wait_ready()
        srv.wait_workers(1)
        # The -g setting survives a reload.
        self.assertEqual(run_wraith("-s", "reload", "-c", srv.conf).returncode, 0)
        self.assertEqual(len(re.findall(r"(?m)^worker .*state serving", srv.status().stdout)), 1)

    def test_start_detached_by_default(self):
        srv = Wraith(SITES, workers=1)
        self.servers.append(srv)
        r = run_wraith("-c", srv.conf, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(wait_for(lambda: open(srv.pid_file).read().strip(), what="pid file"))
        try:
            self.assertEqual(http_get(srv.port)[0], 200)
            self.assertEqual(run_wraith("-s", "quit", "-c", srv.conf).returncode, 0)
            wait_for(lambda: not pid_alive(pid), timeout=15, what="the daemon's exit")
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    harness.main()
