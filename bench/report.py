#!/usr/bin/env python3
"""Parses the raw outputs of one bench/run.sh run and prints the comparison table.

  report.py parse WRK_OUTPUT         one line: req/s, p99, errors (used after each wrk run)
  report.py table RESULTS_DIR        the final Markdown table with PASS/MISS per target

RESULTS_DIR holds wrk/<size>-<server>-r<round>.txt (raw wrk --latency outputs) and
metrics.tsv (`server<TAB>key<TAB>value` lines written by run.sh). Standard library only.
"""
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
               target="≤ 4096", limit=4096)
    memory_row("per idle keep-alive conn, Private_Dirty (bytes)",
               "idle_per_conn_Private_Dirty_bytes")
    held = metrics.get(("wraith", "idle_held")) or metrics.get(("nginx", "idle_held"))
    if held is not None:
        def phases(server):
            return " / ".join(fmt(number(metrics.get((server, f"idle_{phase}_VmRSS_kib"))))
                              for phase in ("before", "after", "closed"))
        rows.append((f"worker RSS KiB: before / holding {held} idle conns / after closing",
                     phases("wraith"), phases("nginx"), "", "", ""))
    for server in SERVERS:
        held = metrics.get((server, "idle_held"))
        requested = metrics.get((server, "idle_requested"))
        if held is not None and held != requested:
            print(f"** FLAGGED: {server} held only {held} of {requested} idle connections")
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
    return 0


def main():
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
