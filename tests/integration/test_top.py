"""`wraith top`: the live view of a running server, in batch mode (plain screens separated by a
blank line). Its numbers are checked against the traffic the test sends and against
`wraith status --json`: request totals, per-worker and per-route counts, rates that are
positive while a load thread runs and consistent with the totals of two screens, and the
latency line. Also: a master that cannot be reached (exit 1, the same message as
`wraith status`), one that goes away while shown (exit 1), and bad flags (exit 2). A fake
master on the control socket pins exact arithmetic (rates by the master's clock, percentiles
of the histogram's difference, counters that went down, workers and routes new since the last
screen) and answers a real master does not give."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import harness
from harness import WraithTestCase, http_get, run_wraith, wait_for

SITES = '''[[site]]
hosts = ["*"]

  [[site.route]]
  path = "/api/"
  respond = { status = 200, body = "api\\n" }

  [[site.route]]
  path = "/load/"
  respond = { status = 200, body = "load\\n" }

  [[site.route]]
  path = "/"
  respond = { status = 200, body = "hi\\n" }
'''

NO_RATE = "\u2013"  # what top shows for a rate on its first screen

REQUESTS = re.compile(r"^requests\s+(\S+)\s+total (\d+)\s+h1 (\S+)\s+h2 (\S+)\s+h3 (\S+)$")
STATUS = re.compile(r"^status\s+1xx (\S+)\s+2xx (\S+)\s+3xx (\S+)\s+4xx (\S+)\s+5xx (\S+)\s+"
                    r"none (\S+)$")
WORKER = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\S+)$")
ROUTE = re.compile(r"^\s*(\S+)\s+(\S+)\s+(" + NO_RATE + r"|\S+ \S+/s)\s+(\d+)\s+(\S+)\s+(.*)$")


def rate(text):
    """'12.5/s' or '12.5' -> 12.5; the first screen's dash -> None."""
    if text == NO_RATE:
        return None
    return float(text.removesuffix("/s"))


def parse_screens(out):
    """The screens of a batch run: each starts with its 'wraith VERSION gen N' header line and
    is followed by a blank line unless it is the last."""
    screens, current = [], None
    for line in out.split("\n"):
        if line.startswith("wraith "):
            if current is not None:
                if current["lines"] and current["lines"][-1] == "":
                    current["lines"].pop()
                screens.append(current)
            current = {"lines": []}
        if current is not None:
            current["lines"].append(line)
    if current is not None:
        while current["lines"] and current["lines"][-1] == "":
            current["lines"].pop()
        screens.append(current)
    for s in screens:
        parse_screen(s)
    return screens


def parse_screen(s):
    lines = s["lines"]
    s["header"] = lines[0]
    s["generation"] = int(re.search(r" gen (\d+) ", lines[0]).group(1))
    s["workers"], s["routes"] = {}, []
    table = None
    for line in lines[1:]:
        m = REQUESTS.match(line)
        if m:
            s["rate"], s["total"] = rate(m.group(1)), int(m.group(2))
            s["h1"], s["h2"], s["h3"] = (rate(m.group(i)) for i in (3, 4, 5))
            continue
        m = STATUS.match(line)
        if m:
            s["status"] = dict(zip(("1xx", "2xx", "3xx", "4xx", "5xx", "none"),
                                   (rate(g) for g in m.groups())))
            continue
        if line.startswith("latency"):
            s["latency"] = line
            continue
        if line.startswith("    PID"):
            table = "workers"
            continue
        if line.startswith("  REQ/S"):
            table = "routes"
            continue
        if not line.strip():
            table = None
            continue
        if table == "workers":
            m = WORKER.match(line)
            assert m, f"worker row {line!r}"
            pid, slot, gen, state, conns, requests, rps = m.groups()
            s["workers"][int(pid)] = {"slot": int(slot), "generation": int(gen),
                                      "state": state, "connections": int(conns),
                                      "requests": int(requests), "rate": rate(rps)}
        elif table == "routes":
            m = ROUTE.match(line)
            assert m, f"route row {line!r}"
            rps, eps, _out, requests, site, route = m.groups()
            s["routes"].append({"rate": rate(rps), "errors": rate(eps),
                                "requests": int(requests), "site": site, "route": route})
    for key in ("total", "status", "latency"):
        assert key in s, f"no {key} line in screen:\n" + "\n".join(lines)
    return s


class TopTest(WraithTestCase):
    def top(self, srv, *args, timeout=30):
        return srv.cli("top", "--batch", *args, timeout=timeout)

    def one_screen(self, srv):
        r = self.top(srv, "-n", "1")
        self.assertEqual(r.returncode, 0, r)
        screens = parse_screens(r.stdout)
        self.assertEqual(len(screens), 1, r.stdout)
        return screens[0]

    def test_totals_match_the_requests_sent_and_wraith_status(self):
        srv = self.server(SITES, workers=2)
        before = self.one_screen(srv)
        self.assertIsNone(before["rate"], "a first screen has no rates")
        self.assertEqual(before["status"]["2xx"], None)
        for i in range(20):
            status, _, body = http_get(srv.port, f"/api/{i}")
            self.assertEqual((status, body), (200, b"api\n"))

        def counted():
            s = self.one_screen(srv)
            return s if s["total"] == before["total"] + 20 else None
        screen = wait_for(counted, 10, what="top's request total to grow by 20")

        api = [r for r in screen["routes"] if r["route"] == "/api/"]
        self.assertEqual(len(api), 1, screen["lines"])
        self.assertEqual(api[0]["requests"], 20, screen["lines"])
        self.assertEqual(api[0]["site"], "*")
        self.assertEqual(sum(r["requests"] for r in screen["routes"]), screen["total"],
                         screen["lines"])

        # Per worker: what `wraith status --json` says, and together the total.
        status = json.loads(srv.cli("status", "--json").stdout)
        by_pid = {w["pid"]: w for w in status["workers"]}
        self.assertEqual(set(screen["workers"]), set(by_pid), screen["lines"])
        for pid, w in screen["workers"].items():
            self.assertEqual(w["requests"], by_pid[pid]["requests"], screen["lines"])
            self.assertEqual(w["slot"], by_pid[pid]["slot"])
            self.assertEqual(w["state"], "serving")
            self.assertEqual(w["generation"], status["master"]["generation"])
        self.assertEqual(sum(w["requests"] for w in screen["workers"].values()),
                         screen["total"], screen["lines"])
        self.assertEqual(screen["generation"], status["master"]["generation"])
        self.assertIn("workers 2 serving 0 draining", screen["header"])

    def test_rates_while_load_runs(self):
        srv = self.server(SITES, workers=2)
        stop = threading.Event()
        sent = [0]

        def load():
            while not stop.is_set():
                http_get(srv.port, "/load/x")
                sent[0] += 1
        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        try:
            wait_for(lambda: sent[0] >= 5, 10, what="the load thread's first requests")
            r = self.top(srv, "-n", "2", "-d", "0.5")
        finally:
            stop.set()
            thread.join(10)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("\n\nwraith ", r.stdout, "screens are separated by a blank line")
        first, second = parse_screens(r.stdout)

        self.assertIsNone(first["rate"])
        self.assertIn("all", first["latency"])  # the first latency line covers every request
        self.assertTrue(all(w["rate"] is None for w in first["workers"].values()))

        self.assertGreater(second["rate"], 0, second["lines"])
        self.assertGreater(second["h1"], 0)
        self.assertEqual(second["h2"], 0)
        self.assertGreater(second["status"]["2xx"], 0)
        self.assertEqual(second["status"]["5xx"], 0)
        # Consistent with the totals: the two screens are 0.5 s apart by the master's clock
        # (give or take scheduling), and the rate shows one decimal.
        grown = second["total"] - first["total"]
        self.assertGreater(grown, 0)
        self.assertGreaterEqual(second["rate"], grown / (1.0 * harness.TIME_SCALE) - 0.5,
                                (grown, second["lines"]))
        self.assertLessEqual(second["rate"], grown / 0.45 + 0.5, (grown, second["lines"]))
        # Each rate is rounded to one decimal, or to a whole number from 100 up; and under load
        # the master's snapshot may catch a worker between counting a request as its own and
        # in the protocol totals (a few requests apart).
        workers_rate = sum(w["rate"] for w in second["workers"].values())
        self.assertAlmostEqual(workers_rate, second["rate"],
                               delta=0.5 * (len(second["workers"]) + 1) + 0.01 * second["rate"],
                               msg=second["lines"])

        busiest = second["routes"][0]
        self.assertEqual(busiest["route"], "/load/", second["lines"])
        self.assertGreater(busiest["rate"], 0)
        self.assertEqual(busiest["errors"], 0)
        self.assertRegex(second["latency"], r"^latency\s+p50 \d+(\.\d+)?(us|ms|s)\s+"
                         r"p95 \d+(\.\d+)?(us|ms|s)\s+p99 \d+(\.\d+)?(us|ms|s)\s+"
                         r"\((\d+) requests in \d+\.\ds\)$")

    def test_unreachable_master_exits_1_as_status_does(self):
        srv = self.server(SITES, start=False)
        r = self.top(srv, "-n", "1")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, "")
        self.assertIn(f"cannot reach the master at {srv.control_socket}", r.stderr)
        self.assertIn(srv.conf, r.stderr)
        status = srv.cli("status")
        self.assertEqual(status.returncode, 1)
        self.assertEqual(r.stderr, status.stderr)

    def test_master_that_goes_away_ends_top_with_1(self):
        srv = self.server(SITES, workers=1)
        top = subprocess.Popen([harness.WRAITH_BIN, "top", "--batch", "-d", "0.3", "-c", srv.conf],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
        try:
            first = top.stdout.readline()
            self.assertTrue(first.startswith("wraith "), first)
            self.assertEqual(srv.cli_stop().returncode, 0)
            out, err = top.communicate(timeout=10 * harness.TIME_SCALE)
        finally:
            if top.poll() is None:
                top.kill()
                top.wait()
        self.assertEqual(top.returncode, 1, err)
        self.assertIn("went away", err)
        self.assertIn(srv.control_socket, err)

    def test_bad_flags_are_usage_errors(self):
        conf = "/nonexistent/wraith.toml"  # never read: the flags fail first
        for args, mention in ((["-d", "abc"], "-d"), (["-d", "0.1"], "at least 0.2"),
                              (["-d", "-1"], "-d"), (["-d", "1e3"], "-d"),
                              (["-d", "inf"], "-d"), (["-n", "0"], "-n"),
                              (["-n", "x"], "-n"), (["-n", "-2"], "-n"),
                              (["-n"], "needs a value"), (["--bogus"], "unknown option"),
                              (["extra"], "unexpected argument")):
            r = run_wraith("top", "-c", conf, *args)
            self.assertEqual(r.returncode, 2, (args, r))
            self.assertEqual(r.stdout, "")
            self.assertIn("wraith top:", r.stderr)
            self.assertIn(mention, r.stderr, args)
            self.assertIn("wraith help top", r.stderr)

    def test_help(self):
        for args in (["help", "top"], ["top", "--help"], ["top", "-h"]):
            r = run_wraith(*args)
            self.assertEqual(r.returncode, 0, r)
            self.assertTrue(r.stdout.startswith("usage: wraith top [-c FILE] [-d SECONDS]"),
                            r.stdout)
        r = run_wraith("--help")
        self.assertIn("  top [-c FILE]", r.stdout)


class FakeMaster:
    """A control socket that answers each connection with the next of `answers` (the last one
    again when they run out): exact numbers for top to compute with, and answers a real master
    does not give."""

    def __init__(self, answers):
        self.dir = tempfile.mkdtemp(prefix="wraith-itest-top-")
        self.socket_path = os.path.join(self.dir, "control.sock")
        self.conf = os.path.join(self.dir, "wraith.toml")
        with open(self.conf, "w") as f:
            f.write(f'[server]\ncontrol_socket = "{self.socket_path}"\n')
        self.answers = list(answers)
        self.commands = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.socket_path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.commands.append(data.decode())
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                if not isinstance(answer, str):
                    answer = json.dumps(answer) + "\n"
                conn.sendall(answer.encode())

    def close(self):
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def stats(now, h1, bounds, counts, tls, workers, routes, **extra):
    doc = {"server": {"version": "9.9.9", "generation": 3, "now": now, "started": 1000},
           "requests": {"h1": h1, "h2": 0, "h3": 0},
           "status": {"none": 0, "1xx": 0, "2xx": h1, "3xx": 0, "4xx": 0, "5xx": 0},
           "bytes": {"in": 0, "out": 2 * h1 * 1024 // 100},
           "latency": {"bounds_us": bounds, "counts": counts},
           "routes": routes, "errors": [],
           "connections": {"other": 0, "h1": 5, "h2": 0, "h3": 0},
           "streams": {"h1": 2, "h2": 0, "h3": 0},
           "workers": workers,
           "tls": {"handshakes": tls, "resumed": 0, "failures": 0},
           "quic": {"handshakes": 0, "resumed": 0, "early_data": 0, "retry": 0,
                    "migrations": 0, "closed": 0, "congested": 0,
                    "packets_lost": 0},
           "reloads": {"reloads": 2, "failures": 1, "upgrades": 0}}
    doc.update(extra)
    return doc


def worker(pid, slot, gen, state, requests):
    return {"pid": pid, "slot": slot, "generation": gen, "state": state, "connections": 1,
            "requests": requests, "started": 1000}


def route(name, requests, errors=0):
    return {"site": "example.test", "route": name, "requests": requests, "errors": errors,
            "bytes": 0}


class FakeMasterTopTest(unittest.TestCase):
    def run_top(self, answers, *args):
        fake = FakeMaster(answers)
        self.addCleanup(fake.close)
        r = run_wraith("top", "-c", fake.conf, "--batch", *args, timeout=30)
        return r, fake

    def test_rates_quantiles_resets_and_newcomers_are_computed_exactly(self):
        bounds = [100, 200, 400]
        first = stats(1000.0, 100, bounds, [0, 0, 0, 0], tls=50,
                      workers=[worker(11, 0, 3, "serving", 10),
                               worker(9, 0, 2, "draining", 90)],
                      routes=[route("/a", 100)])
        second = stats(1002.0, 300, bounds, [0, 100, 90, 10], tls=10,
                       workers=[worker(11, 0, 3, "serving", 30), worker(12, 1, 3, "serving", 8),
                                worker(9, 0, 2, "draining", 90)],
                       routes=[route("/a", 200), route("/b", 240, errors=40)],
                       upstreams=[{"name": "app", "servers": [
                           {"address": "127.0.0.1:8080", "state": "up"},
                           {"address": "127.0.0.1:8081", "state": "down"}]}],
                       errors=[{"time": 1001.0, "status": 502, "protocol": "h2",
                                "method": "GET", "host": "evil\u001b[2J", "path": "/p\u0007"}])
        r, fake = self.run_top([first, second], "-n", "2", "-d", "0.2")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(fake.commands, ["stats\n", "stats\n"])
        one, two = parse_screens(r.stdout)
        self.assertIn("workers 1 serving 1 draining", one["header"])
        self.assertIn("reloads 2 (1 failed)", one["header"])
        self.assertIn("p50 –  p95 –  p99 –  (all 0 requests so far)", one["latency"])

        self.assertEqual(two["rate"], 100.0)  # 200 requests in 2 s of the master's clock
        self.assertEqual(two["status"]["2xx"], 100.0)
        self.assertIn("workers 2 serving 1 draining", two["header"])
        lines = "\n".join(two["lines"])
        self.assertIn("bytes     in 0 B/s  out 2.0 KiB/s", lines)
        self.assertIn("tls       handshakes 0.0/s", lines)  # 50 -> 10: no negative rate
        self.assertIn("open      connections h1 5  h2 0  h3 0  other 0  streams h1 2", lines)
        # 200 requests: 100 in (100, 200] us, 90 in (200, 400], 10 beyond 400.
        self.assertEqual(two["latency"],
                         "latency   p50 200us  p95 400us  p99 >400us  (200 requests in 2.0s)")
        self.assertIn("upstream  app:  127.0.0.1:8080 up  127.0.0.1:8081 down", lines)
        self.assertIn("last 502 GET evil?[2J/p? h2 1s ago", lines)  # no escapes reach the tty
        self.assertNotIn("\x1b", r.stdout)

        self.assertEqual(two["workers"][11]["rate"], 10.0)
        self.assertEqual(two["workers"][12]["rate"], 4.0)  # new since: counted from 0
        self.assertEqual(two["workers"][9]["rate"], 0.0)
        self.assertEqual(list(two["workers"]), [11, 12, 9])  # newest generation first
        self.assertEqual([(x["route"], x["rate"], x["errors"]) for x in two["routes"]],
                         [("/b", 120.0, 20.0), ("/a", 50.0, 0.0)])

    def test_an_answer_without_a_generation_is_skipped(self):
        real = stats(1000.0, 7, [1], [7, 0], tls=0, workers=[], routes=[])
        r, fake = self.run_top(["{}\n", "{}\n", real], "-n", "1", "-d", "0.2")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(len(fake.commands), 3)
        (screen,) = parse_screens(r.stdout)
        self.assertEqual(screen["total"], 7)

    def test_a_broken_answer_exits_1_with_the_byte(self):
        r, _ = self.run_top(['{"server": {"now": 1,}}\n'], "-n", "1")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stderr, "wraith: cannot read the master's stats answer: "
                                   "at byte 21: expected a member name in double quotes\n")

    def test_an_error_answer_exits_1_with_its_text(self):
        r, _ = self.run_top(["error: unknown command 'stats'\n"], "-n", "1")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stderr, "error: unknown command 'stats'\n")


if __name__ == "__main__":
    harness.main()
