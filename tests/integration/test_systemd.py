"""systemd Type=notify: with $NOTIFY_SOCKET set (as systemd does), `wraith serve` reports
READY=1 once its workers serve, RELOADING=1 with MONOTONIC_USEC and then READY=1 around a
reload (also a refused one), and STOPPING=1 when told to stop; the messages carry STATUS=
text. Without $NOTIFY_SOCKET nothing is sent (every other test runs that way)."""

import os
import signal
import socket
import tempfile
import time
import unittest

import harness
from harness import Wraith, WraithTestCase, http_get, wait_for

SITES = '''
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "ok\\n" }
'''


class NotifySocket:
    """The datagram socket systemd would listen on."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wraith-notify-")
        os.chmod(self.dir, 0o777)  # workers never write, but the master may run as root
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.messages = []

    def poll(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait_for_field(self, field, after=0, timeout=15):
        def seen():
            self.poll()
            for i, m in enumerate(self.messages[after:], after):
                if field in m.split("\n"):
                    return i + 1
            return None
        return wait_for(seen, timeout=timeout,
                        what=f"{field} on NOTIFY_SOCKET (got {self.messages!r})")

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class Notify(WraithTestCase):
    def test_ready_reloading_stopping(self):
        ns = NotifySocket()
        self.addCleanup(ns.close)
        srv = Wraith(SITES, workers=2)
        self.servers.append(srv)
        os.environ["NOTIFY_SOCKET"] = ns.path
        try:
            srv.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        n = ns.wait_for_field("READY=1")
        ready = ns.messages[n - 1]
        self.assertRegex(ready, r"STATUS=serving generation 1")
        # READY came after the workers could answer: a request works now.
        self.assertEqual(http_get(srv.port)[0], 200)

        out = srv.reload()
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        r = ns.wait_for_field("RELOADING=1", after=n)
        self.assertRegex(ns.messages[r - 1], r"MONOTONIC_USEC=\d+")
        n = ns.wait_for_field("READY=1", after=r)
        self.assertIn("STATUS=serving generation 2", ns.messages[n - 1])

        # A refused reload still ends with READY=1 (systemd would otherwise wait for it).
        # `wraith reload` refuses a broken file before asking the master; SIGHUP (what
        # `systemctl reload` may send) reaches the master itself.
        srv.write_config(text="this is not toml [")
        out = srv.reload()
        self.assertNotEqual(out.returncode, 0)
        srv.signal(signal.SIGHUP)
        r = ns.wait_for_field("RELOADING=1", after=n)
        n = ns.wait_for_field("READY=1", after=r)
        self.assertIn("STATUS=reload failed; serving generation 2", ns.messages[n - 1])

        srv.write_config()
        out = srv.cli_stop()
        ns.wait_for_field("STOPPING=1", after=n)
        srv.wait_exit()


    def test_binary_upgrade_hands_the_service_to_the_new_master(self):
        ns = NotifySocket()
        self.addCleanup(ns.close)
        srv = Wraith(SITES, workers=1)
        self.servers.append(srv)
        os.environ["NOTIFY_SOCKET"] = ns.path
        try:
            srv.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        n = ns.wait_for_field("READY=1")
        old = srv.pid
        up = srv.cli("upgrade")
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
        with open(srv.pid_file) as f:
            new = int(f.read())
        self.addCleanup(lambda: os.kill(new, signal.SIGTERM) if harness.pid_alive(new) else None)
        # The old master (the service's main process) names the new one.
        self.assertNotEqual(new, old)
        ns.wait_for_field(f"MAINPID={new}", after=n)
        os.kill(old, signal.SIGQUIT)
        srv.wait_exit()
        self.assertEqual(http_get(srv.port)[0], 200)  # the new master serves on


if __name__ == "__main__":
    harness.main()
