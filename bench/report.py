#!/usr/bin/env python3
"""Parses the raw outputs of one bench/run.sh run and prints the comparison table.

  report.py parse WRK_OUTPUT         one line: req/s, p99, errors (used after each wrk run)
  report.py parse-h2load OUTPUT      the same for an h2load run over TLS
  report.py latency H2LOAD_LOG       percentiles of an h2load --log-file (key=value lines)
  report.py table RESULTS_DIR        the final Markdown tables with PASS/MISS per target

RESULTS_DIR holds wrk/<size>-<server>-r<round>.txt (raw wrk --latency outputs),
h2load/tls-<test>-<server>-r<round>.txt (raw h2load outputs, with .cpu and .lat sidecars)
and metrics.tsv (`server<TAB>key<TAB>value` lines written by run.sh). Standard library only.
"""
import math
import re
import statistics
import sys
from pathlib import Path

SERVERS = ("wraith", "nginx")
NOISY_PERCENT = 20.0  # other load on the pinned cores above this marks a run NOISY
UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    """wrk prints latencies as 812.00us, 1.23ms, 2.00s, 1.00m."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unknown latency {text!r}")
    return float(match.group(1)) * UNIT_TO_MS[match.group(2)]


def parse_wrk(text):
    """Returns {rps, p99_ms, requests, non2xx, socket_errors} from `wrk --latency` output."""
    run = {"rps": None, "p99_ms": None, "requests": 0, "non2xx": 0, "socket_errors": {}}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            run["rps"] = float(line.split()[1])
        elif re.match(r"99(\.0+)?%\s", line):
            run["p99_ms"] = to_ms(line.split()[1])
        elif re.match(r"\d+ requests in", line):
            run["requests"] = int(line.split()[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            run["non2xx"] = int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            for part in line.split(":", 1)[1].split(","):
                kind, count = part.split()
                if int(count):
                    run["socket_errors"][kind] = int(count)
    return run


def run_problems(run):
    """Why a run cannot be trusted, or "" if it can."""
    problems = []
    if run["rps"] is None or run["p99_ms"] is None:
        problems.append("unparsable wrk output")
    if run["non2xx"]:
        problems.append(f"{run['non2xx']} non-2xx/3xx")
    if run["socket_errors"]:
        problems.append("socket errors " + ", ".join(
            f"{kind} {count}" for kind, count in run["socket_errors"].items()))
    return "; ".join(problems)


def describe(run):
    rps = f"{run['rps']:.0f} req/s" if run["rps"] is not None else "? req/s"
    p99 = f"p99 {run['p99_ms']:.3f} ms" if run["p99_ms"] is not None else "p99 ?"
    cpu = ""
    if run.get("cpu_busy") is not None:
        cpu = f", server CPU {run['cpu_busy']:.0f}%"
        if run.get("cpu_us_per_req") is not None:
            cpu += f" ({run['cpu_us_per_req']:.2f} µs/req)"
        if run.get("client_busy") is not None:
            cpu += f", wrk CPU {run['client_busy']:.0f}%"
        if run.get("foreign") is not None:
            cpu += f", other load {run['foreign']:.0f}%"
            if run["foreign"] > NOISY_PERCENT:
                cpu += " (NOISY)"
    problems = run_problems(run)
    return f"{rps}, {p99}{cpu}" + (f"  ** FLAGGED: {problems}" if problems else "")


def load_runs(results):
    """{(size, server): [run, ...]} in round order."""
    runs = {}
    for path in sorted((results / "wrk").glob("*.txt")):
        match = re.fullmatch(r"(.+)-(wraith|nginx)-r(\d+)\.txt", path.name)
        if not match:
            continue
        run = parse_wrk(path.read_text(errors="replace"))
        run["file"] = path.name
        add_cpu(run, path.with_suffix(".cpu"))
        runs.setdefault((match.group(1), match.group(2)), []).append((int(match.group(3)), run))
    return {key: [run for _, run in sorted(value, key=lambda x: x[0])]
            for key, value in runs.items()}


def add_cpu(run, path):
    """Adds cpu_busy (%) and cpu_us_per_req from run.sh's sidecar: the server's CPU time."""
    if not path.exists():
        return
    values = {key: float(value) for key, _, value in
              (line.partition("=") for line in path.read_text().split()) if value}
    cpu, wall = values.get("cpu_seconds", 0.0), values.get("wall_seconds", 0.0)
    if not wall:
        return
    run["cpu_busy"] = 100.0 * cpu / wall
    run["cpu_us_per_req"] = 1e6 * cpu / run["requests"] if run["requests"] else None
    if "client_cpu_seconds" in values:
        run["client_busy"] = 100.0 * values["client_cpu_seconds"] / wall
    # Other processes on the two pinned cores (builds, tests, the hypervisor's steal):
    # whatever the cores did beyond the server and wrk.
    if "server_core_busy_seconds" in values and "client_core_busy_seconds" in values:
        foreign = max(values["server_core_busy_seconds"] - cpu,
                      values["client_core_busy_seconds"] - values.get("client_cpu_seconds", 0))
        run["foreign"] = max(0.0, 100.0 * foreign / wall)


def label(size):
    """1k -> 1 KiB"""
    return re.sub(r"^(\d+)k$", r"\1 KiB", size)


def load_metrics(results):
    metrics = {}
    path = results / "metrics.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                metrics[(parts[0], parts[1])] = parts[2]
    return metrics


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(results):
    runs = load_runs(results)
    metrics = load_metrics(results)
    rows = []   # (metric, wraith, nginx, ratio, target, verdict)
    verdicts = []

    def verdict(ok):
        if ok is None:
            return "n/a"
        verdicts.append(ok)
        return "PASS" if ok else "MISS"

    sizes = sorted({size for size, _ in runs}, key=lambda s: int(re.sub(r"\D", "", s) or 0))
    rounds = max((len(value) for value in runs.values()), default=0)
    print("## Runs (run order; ratio = wraith/nginx of the same round)\n")
    flagged = noisy = 0
    for size in sizes:
        for index in range(rounds):
            pair = {}
            for server in ("nginx", "wraith"):
                server_runs = runs.get((size, server), [])
                if index < len(server_runs):
                    run = server_runs[index]
                    pair[server] = run
                    flagged += bool(run_problems(run))
                    noisy += (run.get("foreign") or 0) > NOISY_PERCENT
                    print(f"- {label(size):>7} round {index + 1} {server:<6} {describe(run)}")
            w, n = pair.get("wraith"), pair.get("nginx")
            if w and n and w["rps"] and n["rps"]:
                print(f"  {'':>7} round {index + 1} ratio  {w['rps'] / n['rps']:.2f}× req/s")
    print()

    def median(size, server, key):
        values = [run[key] for run in runs.get((size, server), [])
                  if run.get(key) is not None and not run_problems(run)]
        return statistics.median(values) if values else None

    def ratio_text(w, n):
        return f"{w / n:.2f}×" if w is not None and n else "n/a"

    for size in sizes:
        w, n = median(size, "wraith", "rps"), median(size, "nginx", "rps")
        ok = w / n >= 1.0 if w is not None and n else None
        rows.append((f"req/s {label(size)}", fmt(w), fmt(n), ratio_text(w, n), "≥ 1.0×",
                     verdict(ok)))
    for size in sizes:
        w, n = median(size, "wraith", "p99_ms"), median(size, "nginx", "p99_ms")
        ok = (w <= n and w < 10.0) if w is not None and n is not None else None
        rows.append((f"p99 ms {label(size)}", fmt(w, 3), fmt(n, 3), ratio_text(w, n),
                     "≤ nginx, < 10 ms", verdict(ok)))
    for size in sizes:
        w, n = median(size, "wraith", "cpu_us_per_req"), median(size, "nginx", "cpu_us_per_req")
        rows.append((f"server CPU µs/request {label(size)}", fmt(w, 2), fmt(n, 2),
                     ratio_text(w, n), "(lower is better)", ""))
    for size in sizes:
        w, n = median(size, "wraith", "cpu_busy"), median(size, "nginx", "cpu_busy")
        cw, cn = median(size, "wraith", "client_busy"), median(size, "nginx", "client_busy")
        rows.append((f"server CPU busy % {label(size)} (wrk's)",
                     f"{fmt(w)} ({fmt(cw)})", f"{fmt(n)} ({fmt(cn)})", "",
                     "server ~100 = server-bound", ""))

    def memory_row(label, key, unit_div=1.0, digits=0, target=None, limit=None):
        w = number(metrics.get(("wraith", key)))
        n = number(metrics.get(("nginx", key)))
        if w is not None:
            w /= unit_div
        if n is not None:
            n /= unit_div
        ratio = f"{w / n:.2f}×" if w is not None and n else ""
        ok = (w <= limit) if (limit is not None and w is not None) else None
        rows.append((label, fmt(w, digits), fmt(n, digits), ratio, target or "",
                     verdict(ok) if limit is not None else ""))

    memory_row("idle worker RSS KiB (after warm-up)", "rss_after_warmup_kib",
               target="≤ 4096 KiB", limit=4096)
    memory_row("idle worker Private_Dirty KiB (after warm-up)", "private_dirty_after_warmup_kib")
    memory_row("idle worker RSS KiB (after load)", "rss_after_load_kib")
    memory_row("per idle keep-alive conn, RSS (bytes)", "idle_per_conn_VmRSS_bytes",
               target="≤ 1024", limit=1024)
    memory_row("per idle keep-alive conn, Private_Dirty (bytes)",
               "idle_per_conn_Private_Dirty_bytes")
    memory_row("per idle HTTP/2 conn (h2c), RSS (bytes)", "idle_h2_per_conn_VmRSS_bytes",
               target="≤ 4096", limit=4096)
    held = metrics.get(("wraith", "idle_held")) or metrics.get(("nginx", "idle_held"))
    if held is not None:
        def phases(server):
            return " / ".join(fmt(number(metrics.get((server, f"idle_{phase}_VmRSS_kib"))))
                              for phase in ("before", "after", "closed"))
        rows.append((f"worker RSS KiB: before / holding {held} idle conns / after closing",
                     phases("wraith"), phases("nginx"), "", "", ""))
    for server in SERVERS:
        for kind in ("idle", "idle_h2"):
            held = metrics.get((server, f"{kind}_held"))
            requested = metrics.get((server, f"{kind}_requested"))
            if held is not None and held != requested:
                print(f"** FLAGGED: {server} held only {held} of {requested} {kind} connections")
                flagged += 1

    print("## Summary\n")
    print("| metric | wraith | nginx | ratio wraith/nginx | target | result |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    passed = sum(verdicts)
    print(f"{passed}/{len(verdicts)} targets met"
          + (f"; {flagged} flagged run(s) excluded from medians, see above" if flagged else "")
          + (f"; {noisy} NOISY run(s): other load over {NOISY_PERCENT:.0f}% on the pinned cores,"
             " rerun when the machine is quiet" if noisy else ""))
    tls_table(results, metrics)
    return 0


# --- HTTPS: h2load over TLS ------------------------------------------------------------------

TLS_TESTS = ("h2", "h1", "hs")
TLS_P99_LIMIT_MS = 10.0
NO_H2 = "n/a (Wraith has no HTTP/2 yet)"
# New connections beyond h2load's own clients that a keep-alive run tolerates before it is
# flagged: the counter is machine-wide, so other work on loopback adds a few.
RECONNECT_SLACK = 0.01


def parse_h2load(text):
    """The figures of one h2load run: req/s, request counts, status codes, TLS parameters."""
    run = {"rps": None, "total": None, "succeeded": 0, "failed": 0, "errored": 0,
           "timeout": 0, "status": {}, "tls": None, "cipher": None, "temp_key": None,
           "alpn": None}
    for line in text.splitlines():
        line = line.strip()
        match = re.match(r"finished in [\d.]+\w*, ([\d.]+) req/s", line)
        if match:
            run["rps"] = float(match.group(1))
        elif line.startswith("requests:"):
            for count, word in re.findall(r"(\d+) (\w+)", line):
                if word in ("total", "succeeded", "failed", "errored", "timeout"):
                    run[word] = int(count)
        elif line.startswith("status codes:"):
            for count, code in re.findall(r"(\d+) (\dxx)", line):
                run["status"][code] = int(count)
        elif line.startswith("TLS Protocol:"):
            run["tls"] = line.split(":", 1)[1].strip()
        elif line.startswith("Cipher:"):
            run["cipher"] = line.split(":", 1)[1].strip()
        elif line.startswith("Server Temp Key:"):
            run["temp_key"] = line.split(":", 1)[1].strip().split()[0]
        elif line.startswith("Application protocol:"):
            run["alpn"] = line.split(":", 1)[1].strip()
    run["requests"] = run["succeeded"]
    return run


def latency_percentiles(path):
    """Percentiles (ms, nearest rank) of the successful requests in an h2load --log-file:
    start time (µs since epoch) TAB status (-1 for a failed stream) TAB duration (µs)."""
    durations, failed = [], 0
    with open(path, errors="replace") as log:
        for line in log:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            if parts[1].strip() == "-1":
                failed += 1
                continue
            durations.append(int(parts[2]))
    durations.sort()
    result = {"count": len(durations), "failed_streams": failed}
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)):
        if durations:
            index = max(0, min(len(durations) - 1, math.ceil(len(durations) * q) - 1))
            result[f"{name}_ms"] = durations[index] / 1000.0
    if durations:
        result["max_ms"] = durations[-1] / 1000.0
    return result


def read_sidecar(path):
    """key=value lines (run.sh's .cpu, report.py's .lat); numbers where they parse."""
    values = {}
    if path.exists():
        for line in path.read_text().split():
            key, _, value = line.partition("=")
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = value
    return values


def load_h2load_run(path):
    run = parse_h2load(path.read_text(errors="replace"))
    run["file"] = path.name
    side = read_sidecar(path.with_suffix(".cpu"))
    run["side"] = side
    lat = read_sidecar(path.with_suffix(".lat"))
    run["p99_ms"] = lat.get("p99_ms")
    run["lat"] = lat
    wall, cpu = side.get("wall_seconds"), side.get("cpu_seconds")
    if wall and cpu is not None:
        run["cpu_busy"] = 100.0 * cpu / wall
        if side.get("test") == "hs":
            # -n run: every request of the run is counted, so CPU over requests is exact.
            if run["requests"]:
                run["cpu_us_per_req"] = 1e6 * cpu / run["requests"]
        elif run["rps"]:
            # -D run after a warm-up that h2load does not count: CPU per second of the whole
            # run over requests per second of the measured part.
            run["cpu_us_per_req"] = 1e6 * (cpu / wall) / run["rps"]
        if "client_cpu_seconds" in side:
            run["client_busy"] = 100.0 * side["client_cpu_seconds"] / wall
        if "server_core_busy_seconds" in side and "client_core_busy_seconds" in side:
            foreign = max(side["server_core_busy_seconds"] - cpu,
                          side["client_core_busy_seconds"] - side.get("client_cpu_seconds", 0))
            run["foreign"] = max(0.0, 100.0 * foreign / wall)
    return run


def h2load_problems(run):
    """Why an h2load run cannot be trusted, or "" if it can."""
    side, problems = run.get("side", {}), []
    status = side.get("client_exit_status")
    if status:
        problems.append(f"h2load exited with {status:.0f}"
                        + (" (killed by the time limit)" if status in (124, 137) else ""))
    if run["rps"] is None:
        problems.append("no 'finished in' line")
    for key in ("failed", "errored", "timeout"):
        if run[key]:
            problems.append(f"{run[key]} {key}")
    bad = sum(count for code, count in run["status"].items() if code[0] not in "23")
    if bad:
        problems.append(f"{bad} non-2xx/3xx")
    if run["lat"].get("failed_streams"):
        problems.append(f"{run['lat']['failed_streams']:.0f} failed streams in the log")
    expect = side.get("expect_protocol")
    if expect and run["alpn"] and run["alpn"] != expect:
        problems.append(f"negotiated {run['alpn']}, not {expect}")
    opens, conns = side.get("passive_opens"), side.get("connections")
    if side.get("test") == "hs":
        wanted = side.get("requests_wanted")
        if wanted and run["succeeded"] < wanted:
            problems.append(f"{run['succeeded']} of {wanted:.0f} requests succeeded")
        if opens is not None and opens < run["succeeded"]:
            problems.append(f"only {opens:.0f} TCP connections for {run['succeeded']} requests:"
                            " connections were reused, not one handshake per request")
    elif opens is not None and conns and run["total"]:
        if opens - conns > max(50, RECONNECT_SLACK * run["total"]):
            problems.append(f"{opens:.0f} TCP connections accepted for {conns:.0f} clients:"
                            " keep-alive connections were closed and reopened")
    return "; ".join(problems)


def tls_params(run):
    parts = [run.get(key) for key in ("tls", "cipher", "temp_key", "alpn")]
    return "/".join(part for part in parts if part) or "?"


def describe_h2load(run):
    rps = f"{run['rps']:.0f} req/s" if run["rps"] is not None else "? req/s"
    if run["side"].get("test") == "hs":
        # h2load's request time starts after the handshake: the latency of this run is in
        # its "time for connect" line, not in the request log.
        p99 = f"{run['succeeded']} handshakes"
    else:
        p99 = f"p99 {run['p99_ms']:.2f} ms" if run.get("p99_ms") is not None else "p99 ?"
    text = f"{rps}, {p99}, {tls_params(run)}"
    if run.get("cpu_busy") is not None:
        text += f", server CPU {run['cpu_busy']:.0f}%"
        if run.get("cpu_us_per_req") is not None:
            text += f" ({run['cpu_us_per_req']:.1f} µs/req)"
        if run.get("client_busy") is not None:
            text += f", h2load CPU {run['client_busy']:.0f}%"
        if run.get("foreign") is not None:
            text += f", other load {run['foreign']:.0f}%"
            if run["foreign"] > NOISY_PERCENT:
                text += " (NOISY)"
    if run["side"].get("passive_opens") is not None:
        text += f", {run['side']['passive_opens']:.0f} TCP conns"
    problems = h2load_problems(run)
    return text + (f"  ** FLAGGED: {problems}" if problems else "")


def load_h2load_runs(results):
    """{(test, server): [run, ...]} in round order."""
    runs = {}
    for path in sorted((results / "h2load").glob("*.txt")):
        match = re.fullmatch(r"tls-(\w+)-(wraith|nginx)-r(\d+)\.txt", path.name)
        if match:
            runs.setdefault((match.group(1), match.group(2)), []).append(
                (int(match.group(3)), load_h2load_run(path)))
    return {key: [run for _, run in sorted(value, key=lambda x: x[0])]
            for key, value in runs.items()}


TLS_LABELS = {"h2": "h2 TLS", "h1": "h1 TLS", "hs": "full handshakes"}


def tls_table(results, metrics):
    runs = load_h2load_runs(results)
    if not runs:
        return
    verdicts = []

    def verdict(ok):
        if ok is None:
            return "n/a"
        verdicts.append(ok)
        return "PASS" if ok else "MISS"

    def setting(test, key):
        """The h2load setting KEY of TEST's runs (connections, streams), as run.sh noted it."""
        for test_runs in (runs.get((test, "nginx")), runs.get((test, "wraith"))):
            if test_runs and test_runs[0]["side"].get(key) is not None:
                return f"{test_runs[0]['side'][key]:.0f}"
        return "?"
    no_h2 = metrics.get(("wraith", "tls_h2")) == "0"

    print("\n## HTTPS runs (h2load over TLS, 1 KiB file; run order; ratio = wraith/nginx of the"
          " same round)\n")
    flagged = noisy = 0
    rounds = max((len(value) for value in runs.values()), default=0)
    for test in TLS_TESTS:
        for index in range(rounds):
            pair = {}
            for server in ("nginx", "wraith"):
                server_runs = runs.get((test, server), [])
                if index < len(server_runs):
                    run = server_runs[index]
                    pair[server] = run
                    flagged += bool(h2load_problems(run))
                    noisy += (run.get("foreign") or 0) > NOISY_PERCENT
                    print(f"- {TLS_LABELS[test]:>15} round {index + 1} {server:<6}"
                          f" {describe_h2load(run)}")
                elif test == "h2" and server == "wraith" and no_h2 and index == 0:
                    print(f"- {TLS_LABELS[test]:>15} round {index + 1} {server:<6} {NO_H2}")
            w, n = pair.get("wraith"), pair.get("nginx")
            if w and n and w["rps"] and n["rps"]:
                print(f"  {'':>15} round {index + 1} ratio  {w['rps'] / n['rps']:.2f}× req/s")
    print()

    def median(test, server, key):
        values = [run[key] for run in runs.get((test, server), [])
                  if run.get(key) is not None and not h2load_problems(run)]
        return statistics.median(values) if values else None

    def ratio_text(w, n):
        return f"{w / n:.2f}×" if w is not None and n else "n/a"

    def wraith_cell(test, value, digits):
        if test == "h2" and no_h2:
            return NO_H2
        return fmt(value, digits)

    names = {"h2": f"h2 TLS ({setting('h2', 'connections')} conns ×"
                   f" {setting('h2', 'streams')} streams)",
             "h1": f"h1 TLS ({setting('h1', 'connections')} conns)"}
    rows = []
    for test in ("h2", "h1"):
        w, n = median(test, "wraith", "rps"), median(test, "nginx", "rps")
        ok = w / n >= 1.0 if w is not None and n else None
        rows.append((f"req/s {names[test]}, established connections", wraith_cell(test, w, 0),
                     fmt(n), ratio_text(w, n), "≥ 1.0×", verdict(ok)))
    w, n = median("hs", "wraith", "rps"), median("hs", "nginx", "rps")
    rows.append((f"full TLS handshakes/s (new connection per request,"
                 f" {setting('hs', 'connections')} clients)",
                 fmt(w), fmt(n), ratio_text(w, n), "≥ 1.0×",
                 verdict(w / n >= 1.0 if w is not None and n else None)))
    for test in ("h2", "h1"):
        w, n = median(test, "wraith", "p99_ms"), median(test, "nginx", "p99_ms")
        ok = w < TLS_P99_LIMIT_MS if w is not None else None
        rows.append((f"p99 ms {names[test]}", wraith_cell(test, w, 2), fmt(n, 2),
                     ratio_text(w, n), f"< {TLS_P99_LIMIT_MS:.0f} ms", verdict(ok)))
    for test, what in (("h2", "request"), ("h1", "request"), ("hs", "handshake")):
        w, n = median(test, "wraith", "cpu_us_per_req"), median(test, "nginx", "cpu_us_per_req")
        rows.append((f"server CPU µs/{what} {TLS_LABELS[test]}", wraith_cell(test, w, 1),
                     fmt(n, 1), "n/a" if test == "h2" and no_h2 else ratio_text(w, n),
                     "(lower is better)", ""))
    for test in TLS_TESTS:
        w, n = median(test, "wraith", "cpu_busy"), median(test, "nginx", "cpu_busy")
        cw, cn = median(test, "wraith", "client_busy"), median(test, "nginx", "client_busy")
        rows.append((f"server CPU busy % {TLS_LABELS[test]} (h2load's)",
                     NO_H2 if test == "h2" and no_h2 else f"{fmt(w)} ({fmt(cw)})",
                     f"{fmt(n)} ({fmt(cn)})", "", "server ~100 = server-bound", ""))

    def negotiated(server):
        seen = []
        for test in ("h1", "h2"):
            for run in runs.get((test, server), []):
                params = "/".join(p for p in (run["tls"], run["cipher"], run["temp_key"]) if p)
                if params and params not in seen:
                    seen.append(params)
        return ", ".join(seen) or "n/a"
    rows.append(("negotiated with h2load (version/cipher/group)", negotiated("wraith"),
                 negotiated("nginx"), "", "", ""))

    print("## HTTPS summary (h2load over TLS, ECDSA P-256 certificate, 1 KiB file)\n")
    print("| metric | wraith | nginx | ratio wraith/nginx | target | result |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    passed = sum(verdicts)
    print(f"{passed}/{len(verdicts)} HTTPS targets met"
          + ("; h2 targets not evaluated: Wraith has no HTTP/2 yet" if no_h2 else "")
          + (f"; {flagged} flagged run(s) excluded from medians, see above" if flagged else "")
          + (f"; {noisy} NOISY run(s): other load over {NOISY_PERCENT:.0f}% on the pinned cores,"
             " rerun when the machine is quiet" if noisy else ""))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "parse-h2load":
        run = load_h2load_run(Path(sys.argv[2]))
        print(describe_h2load(run))
        return 1 if h2load_problems(run) else 0
    if len(sys.argv) == 3 and sys.argv[1] == "latency":
        for key, value in latency_percentiles(sys.argv[2]).items():
            print(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "parse":
        path = Path(sys.argv[2])
        run = parse_wrk(path.read_text(errors="replace"))
        add_cpu(run, path.with_suffix(".cpu"))
        print(describe(run))
        return 1 if run_problems(run) else 0
    if len(sys.argv) == 3 and sys.argv[1] == "table":
        return table(Path(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
