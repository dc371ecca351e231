#!/usr/bin/env python3
"""Parses the raw outputs of one bench/proxy.sh run and prints its table.

  proxy_report.py line RUN_OUTPUT          one line about a wrk or h2load run (after each run);
                                           exit status 1 when the run is flagged
  proxy_report.py table RESULTS_DIR [FLAT_KIB]   the Markdown table with PASS/MISS per target

RESULTS_DIR holds runs/<proto>-<server>-r<round>.txt (raw wrk --latency or h2load outputs;
proto h1 or h2) with .cpu sidecars (proxy.sh) and, for h2, .lat sidecars (report.py latency),
soak/<server>.tsv (RSS samples) with soak/<server>-h1.txt and -h2.txt (the soak's clients), and
metrics.tsv (`server<TAB>key<TAB>value`). Reuses bench/report.py's parsers. Standard library only.
"""
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (bench/report.py)

SERVERS = ("wraith", "nginx")
PROTOS = {"h1": "HTTP/1.1", "h2": "HTTP/2 (h2c)"}
NOISY_PERCENT = report.NOISY_PERCENT
P99_LIMIT_MS = 10.0
DEFAULT_FLAT_KIB = 512
# New TCP connections a keep-alive run may see beyond the clients' own and one pool of
# upstream connections: the counter is machine-wide, so other work on loopback adds a few.
RECONNECT_SLACK = 0.01
# h2load 1.52 sends no more than this many requests in a timed run (-D), while its clock runs
# on to the end; a run that reached it measured less than its duration.
H2LOAD_CAP = 1000000


def load_run(path):
    """One measured run: req/s, p99, requests, problems, CPU figures from the sidecars."""
    path = Path(path)
    side = report.read_sidecar(path.with_suffix(".cpu"))
    proto = side.get("proto") or ("h2" if "-h2-" in f"-{path.name}" else "h1")
    text = path.read_text(errors="replace")
    problems = []
    if proto == "h1":
        wrk = report.parse_wrk(text)
        run = {"rps": wrk["rps"], "p99_ms": wrk["p99_ms"], "requests": wrk["requests"]}
        if report.run_problems(wrk):
            problems.append(report.run_problems(wrk))
    else:
        h2 = report.parse_h2load(text)
        lat = report.read_sidecar(path.with_suffix(".lat"))
        run = {"rps": h2["rps"], "p99_ms": lat.get("p99_ms"), "requests": h2["succeeded"]}
        if run["rps"] is None:
            problems.append("no 'finished in' line")
        for key in ("failed", "errored", "timeout"):
            if h2[key]:
                problems.append(f"{h2[key]} {key}")
        bad = sum(count for code, count in h2["status"].items() if code[0] not in "23")
        if bad:
            problems.append(f"{bad} non-2xx/3xx")
        if lat.get("failed_streams"):
            problems.append(f"{lat['failed_streams']:.0f} failed streams in the log")
        if run["p99_ms"] is None:
            problems.append("no request log")
        if h2["alpn"] and h2["alpn"] != "h2c":
            problems.append(f"negotiated {h2['alpn']}, not h2c")
        if h2["total"] and h2["total"] >= H2LOAD_CAP:
            problems.append(f"{h2['total']} requests: h2load stops at {H2LOAD_CAP:,} in a timed"
                            " run, so req/s is understated; shorten BENCH_PROXY_DURATION")
    run.update(proto=proto, side=side, file=path.name)
    status = side.get("client_exit_status")
    if status:
        problems.append(f"client exited with {status:.0f}"
                        + (" (killed by the time limit)" if status in (124, 137) else ""))
    # Upstream keep-alive at work: new connections during the run are the client's own plus at
    # most one pool's worth of upstream connections, not one per request.
    opens, conns, pool = (side.get(k) for k in ("passive_opens", "connections", "keepalive"))
    if opens is not None and conns is not None and run["requests"]:
        allowed = conns + (pool or 0) + max(50, RECONNECT_SLACK * run["requests"])
        if opens > allowed:
            problems.append(f"{opens:.0f} TCP connections accepted for {conns:.0f} clients and"
                            f" {run['requests']} requests: upstream connections not kept alive")
    run["problems"] = "; ".join(problems)
    wall, cpu = side.get("wall_seconds"), side.get("cpu_seconds")
    if wall and cpu is not None:
        run["cpu_busy"] = 100.0 * cpu / wall
        # CPU per second of the whole run over requests per second of its measured part
        # (h2load does not count its warm-up second; wrk counts everything).
        run["cpu_us_per_req"] = 1e6 * (cpu / wall) / run["rps"] if run["rps"] else None
        run["backend_busy"] = 100.0 * side.get("backend_cpu_seconds", 0) / wall
        run["client_busy"] = 100.0 * side.get("client_cpu_seconds", 0) / wall
        run["foreign"] = 100.0 * side.get("other_core_seconds", 0) / wall
    return run


def describe(run):
    rps = f"{run['rps']:.0f} req/s" if run["rps"] is not None else "? req/s"
    p99 = f"p99 {run['p99_ms']:.2f} ms" if run.get("p99_ms") is not None else "p99 ?"
    text = f"{rps}, {p99}"
    if run.get("cpu_busy") is not None:
        per = run.get("cpu_us_per_req")
        text += f", proxy CPU {run['cpu_busy']:.0f}%" + (f" ({per:.2f} µs/req)" if per else "")
        text += f", backend CPU {run['backend_busy']:.0f}%, client CPU {run['client_busy']:.0f}%"
        text += f", other load {run['foreign']:.0f}%"
        if run["foreign"] > NOISY_PERCENT:
            text += " (NOISY)"
    if run["side"].get("passive_opens") is not None:
        text += f", {run['side']['passive_opens']:.0f} new TCP conns"
    return text + (f"  ** FLAGGED: {run['problems']}" if run["problems"] else "")


def load_runs(results):
    """{(proto, server): [run, ...]} in round order."""
    runs = {}
    for path in sorted((results / "runs").glob("*.txt")):
        match = re.fullmatch(r"(h1|h2)-(wraith|nginx)-r(\d+)\.txt", path.name)
        if match:
            runs.setdefault((match.group(1), match.group(2)), []).append(
                (int(match.group(3)), load_run(path)))
    return {key: [run for _, run in sorted(value, key=lambda x: x[0])]
            for key, value in runs.items()}


def load_metrics(results):
    metrics = {}
    path = results / "metrics.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                metrics[(parts[0], parts[1])] = parts[2]
    return metrics


def load_soak(results, server):
    """The soak's samples [(seconds, rss_kib, private_dirty_kib, fds)] and its clients."""
    path = results / "soak" / f"{server}.tsv"
    if not path.exists():
        return None
    samples = []
    for line in path.read_text().splitlines()[1:]:
        parts = line.split("\t")
        try:
            samples.append((int(parts[0]), int(parts[1]),
                            int(parts[2]) if parts[2] else None, int(parts[3])))
        except (ValueError, IndexError):
            continue
    if len(samples) < 2:
        return None
    soak = {"samples": samples}
    h1 = results / "soak" / f"{server}-h1.txt"
    h2 = results / "soak" / f"{server}-h2.txt"
    if h1.exists():
        wrk = report.parse_wrk(h1.read_text(errors="replace"))
        soak["h1_rps"], soak["h1_p99"] = wrk["rps"], wrk["p99_ms"]
        soak["h1_errors"] = wrk["non2xx"] + sum(wrk["socket_errors"].values())
    if h2.exists():
        # Several h2load runs back to back (proxy.sh's soak_h2): add them up.
        succeeded = errors = 0
        seconds = 0.0
        for part in h2.read_text(errors="replace").split("starting benchmark...")[1:]:
            h2load = report.parse_h2load(part)
            match = re.search(r"^finished in ([\d.]+)s,", part, re.M)
            if not match:
                errors += 1  # a run that did not finish
                continue
            seconds += float(match.group(1))
            succeeded += h2load["succeeded"]
            errors += h2load["failed"] + sum(
                count for code, count in h2load["status"].items() if code[0] not in "23")
        soak["h2_rps"] = succeeded / seconds if seconds else None
        soak["h2_errors"] = errors
    return soak


def soak_figures(soak, length=None):
    """RSS at the start (idle, before the soak's load), once settled (the first sample at or
    after 10% of the run), at the middle, at the end of the load and its maximum; the growth:
    the highest RSS of the second half minus the highest of the settled first half (a worker
    under load frees and reuses memory all the time, so single samples swing by megabytes;
    a leak raises the peaks); and the slope of a least-squares line through the settled
    samples (KiB/min)."""
    samples = soak["samples"]
    # The soak's length (the last sample comes a little before its end).
    length = int(length or samples[-1][0])
    settled = next(s for s in samples if s[0] >= max(1, 0.1 * length))
    mid = min(samples, key=lambda s: abs(s[0] - length / 2))
    end = samples[-1]
    tail = [s for s in samples if s[0] >= settled[0]]
    first = [s[1] for s in tail if s[0] < length / 2] or [settled[1]]
    second = [s[1] for s in tail if s[0] >= length / 2] or [end[1]]
    slope = None
    if len(tail) >= 3:
        xs, ys = [s[0] / 60.0 for s in tail], [s[1] for s in tail]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None
    return {"length": length, "start": samples[0][1], "settled": settled[1], "mid": mid[1],
            "end": end[1], "max": max(s[1] for s in samples),
            "half_growth": max(second) - max(first),
            "slope": slope, "fds_start": samples[0][3], "fds_end": end[3],
            "dirty_mid": mid[2], "dirty_end": end[2]}


def table(results, flat_kib):
    runs = load_runs(results)
    metrics = load_metrics(results)
    verdicts = []

    def verdict(ok):
        if ok is None:
            return "n/a"
        verdicts.append(ok)
        return "PASS" if ok else "MISS"

    rounds = max((len(value) for value in runs.values()), default=0)
    print("## Proxy runs (run order; ratio = wraith/nginx of the same round)\n")
    flagged = noisy = 0
    for proto in PROTOS:
        for index in range(rounds):
            pair = {}
            for server in ("nginx", "wraith"):
                server_runs = runs.get((proto, server), [])
                if index < len(server_runs):
                    run = pair[server] = server_runs[index]
                    flagged += bool(run["problems"])
                    noisy += (run.get("foreign") or 0) > NOISY_PERCENT
                    print(f"- {proto} round {index + 1} {server:<6} {describe(run)}")
            w, n = pair.get("wraith"), pair.get("nginx")
            if w and n and w["rps"] and n["rps"]:
                print(f"  {proto} round {index + 1} ratio  {w['rps'] / n['rps']:.2f}× req/s")
    print()

    def median(proto, server, key):
        values = [run[key] for run in runs.get((proto, server), [])
                  if run.get(key) is not None and not run["problems"]]
        return statistics.median(values) if values else None

    def ratio(w, n):
        return f"{w / n:.2f}×" if w is not None and n else "n/a"

    def setting(proto, key):
        for server in ("nginx", "wraith"):
            for run in runs.get((proto, server), []):
                if run["side"].get(key) is not None:
                    return f"{run['side'][key]:.0f}"
        return "?"

    clients = {"h1": f"wrk -c{setting('h1', 'connections')}",
               "h2": f"h2load -c{setting('h2', 'connections')}"}
    rows = []
    for proto, name in PROTOS.items():
        w, n = median(proto, "wraith", "rps"), median(proto, "nginx", "rps")
        rows.append((f"req/s {name}, {clients[proto]}", report.fmt(w), report.fmt(n), ratio(w, n), "≥ 1.0×",
                     verdict(w / n >= 1.0 if w is not None and n else None)))
    for proto, name in PROTOS.items():
        w, n = median(proto, "wraith", "p99_ms"), median(proto, "nginx", "p99_ms")
        ok = (w <= n and w < P99_LIMIT_MS) if w is not None and n is not None else None
        rows.append((f"p99 ms {name}", report.fmt(w, 2), report.fmt(n, 2), ratio(w, n),
                     f"≤ nginx, < {P99_LIMIT_MS:.0f} ms", verdict(ok)))
    for proto, name in PROTOS.items():
        w, n = median(proto, "wraith", "cpu_us_per_req"), median(proto, "nginx", "cpu_us_per_req")
        rows.append((f"proxy CPU µs/request {name}", report.fmt(w, 2), report.fmt(n, 2), ratio(w, n),
                     "(lower is better)", ""))
    for proto, name in PROTOS.items():
        cells = []
        for server in SERVERS:
            cells.append(f"{report.fmt(median(proto, server, 'cpu_busy'))}"
                         f" ({report.fmt(median(proto, server, 'backend_busy'))},"
                         f" {report.fmt(median(proto, server, 'client_busy'))})")
        rows.append((f"proxy CPU busy % {name} (backend's, client's)", *cells, "",
                     "proxy ~100 = proxy-bound", ""))

    soaks = {server: load_soak(results, server) for server in SERVERS}
    figures = {server: soak_figures(s, report.number(metrics.get((server, "soak_seconds"))))
               for server, s in soaks.items() if s}
    for server, f in figures.items():
        f["rss_after"] = report.number(metrics.get((server, "rss_after_soak_kib")))
        f["fds_after"] = report.number(metrics.get((server, "fds_after_soak")))
    if figures:
        length = max(f["length"] for f in figures.values())

        def cell(server, text):
            return text(figures[server]) if server in figures else "n/a"

        def soak_row(label, text, target="", ok=None):
            rows.append((label, cell("wraith", text), cell("nginx", text), "", target,
                         verdict(ok) if target else ""))

        soak_row(f"worker RSS KiB over a {length} s soak: idle start / settled / middle / end"
                 " / max", lambda f: " / ".join(report.fmt(f[k]) for k in
                                                ("start", "settled", "mid", "end", "max")))
        wraith = figures.get("wraith")
        soak_row("worker RSS growth KiB: peak of the second half − peak of the first"
                 " (settled)",
                 lambda f: f"{f['half_growth']:+,d}", f"flat: ≤ {flat_kib} KiB",
                 wraith["half_growth"] <= flat_kib if wraith else None)
        soak_row("worker RSS trend after settling (KiB/min, least squares)",
                 lambda f: f"{f['slope']:+,.1f}" if f["slope"] is not None else "n/a")
        soak_row("worker Private_Dirty KiB: middle / end",
                 lambda f: f"{report.fmt(f['dirty_mid'])} / {report.fmt(f['dirty_end'])}")
        soak_row("worker open fds: idle start / end of the load / 1 s after it",
                 lambda f: f"{f['fds_start']} / {f['fds_end']} / {report.fmt(f['fds_after'])}")
        soak_row("worker RSS KiB 1 s after the soak's load",
                 lambda f: report.fmt(f["rss_after"]))

        def soak_load(f_server):
            s = soaks[f_server]
            return (f"{report.fmt(s.get('h1_rps'))} + {report.fmt(s.get('h2_rps'))}"
                    f" ({s.get('h1_errors', 0)} + {s.get('h2_errors', 0)} errors)")
        rows.append(("soak req/s h1 + h2 (errors), both clients at once",
                     soak_load("wraith") if soaks.get("wraith") else "n/a",
                     soak_load("nginx") if soaks.get("nginx") else "n/a", "", "", ""))
    for server in SERVERS:
        if metrics.get((server, "worker_restarted")):
            print(f"** FLAGGED: the {server} worker was replaced during the run (crash?)")
            flagged += 1

    print("## Proxy summary (1 KiB `return 200` backend, upstream keep-alive, one worker each)\n")
    print("| metric | wraith | nginx | ratio wraith/nginx | target | result |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"{sum(verdicts)}/{len(verdicts)} proxy targets met"
          + (f"; {flagged} flagged run(s) excluded from medians, see above" if flagged else "")
          + (f"; {noisy} NOISY run(s): other load over {NOISY_PERCENT:.0f}% on the pinned cores,"
             " rerun when the machine is quiet" if noisy else ""))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "line":
        run = load_run(sys.argv[2])
        print(describe(run))
        return 1 if run["problems"] else 0
    if len(sys.argv) in (3, 4) and sys.argv[1] == "table":
        flat = int(sys.argv[3]) if len(sys.argv) == 4 else DEFAULT_FLAT_KIB
        return table(Path(sys.argv[2]), flat)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
