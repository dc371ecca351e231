#!/usr/bin/env bash
# Reload section of `make bench` (issue 6): requests/s and p99 latency of a run with
# `wraith reload` every second against the same run without reloads, over HTTP/1.1 (wrk) and
# HTTP/3 (bench/h3load). One Wraith, 2 workers, pinned with its master to the server core; the
# client and the reloading CLI on the other. Prints a Markdown table with PASS/MISS against the
# targets: the dip in requests/s within 10%, p99 under 10 ms. See bench/README.md.
#
# Knobs (environment):
#   WRAITH_BIN, H3LOAD_BIN   binaries (default: build/wraith, build/h3load)
#   BENCH_RELOAD_DURATION  seconds per measured run                      (default: 10)
#   BENCH_RELOAD_WARMUP    seconds of uncounted warm-up before each run   (default: 2)
#   BENCH_RELOAD_ROUNDS    baseline/reload pairs per protocol, medians    (default: 3)
#   BENCH_RELOAD_INTERVAL  seconds between reloads                        (default: 1)
#   BENCH_RELOAD_WORKERS   server.workers                                 (default: 2)
#   BENCH_RELOAD_CONNS     wrk keep-alive connections                     (default: 50)
#   BENCH_RELOAD_H3_CONNS / BENCH_RELOAD_H3_STREAMS  h3load -c x -m       (default: 10 x 10)
#   BENCH_CLIENT_CPU / BENCH_SERVER_CPU                                   (default: 0 / 1)
#   BENCH_QUIET_WAIT       seconds to wait before each run for other load on the two cores
#                          to drop below 10% (default: 10; 0 never waits)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WRAITH_BIN=${WRAITH_BIN:-$ROOT/build/wraith}
H3LOAD_BIN=${H3LOAD_BIN:-$ROOT/build/h3load}
DURATION=${BENCH_RELOAD_DURATION:-10}
WARMUP=${BENCH_RELOAD_WARMUP:-2}
ROUNDS=${BENCH_RELOAD_ROUNDS:-3}
INTERVAL=${BENCH_RELOAD_INTERVAL:-1}
WORKERS=${BENCH_RELOAD_WORKERS:-2}
CONNS=${BENCH_RELOAD_CONNS:-50}
H3_CONNS=${BENCH_RELOAD_H3_CONNS:-10}
H3_STREAMS=${BENCH_RELOAD_H3_STREAMS:-10}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
SERVER_CPU=${BENCH_SERVER_CPU:-1}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
RPS_TARGET=0.90 # with/without
P99_TARGET=10   # ms, with reloads
NOISY_PERCENT=20 # other load on the server core above this marks a run NOISY

log() { printf 'bench-reload: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- prerequisites --------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v taskset >/dev/null || missing+=(util-linux)
command -v pgrep >/dev/null || missing+=(procps)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi
[[ -x $WRAITH_BIN ]] || die "no wraith binary at $WRAITH_BIN (make build)"
[[ -x $H3LOAD_BIN ]] || die "no h3load at $H3LOAD_BIN (make build)"
(($(nproc) >= 2)) || log "warning: fewer than 2 CPUs; client and server will share a core"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/wraith-bench-reload.XXXXXX)
RESULTS=$(mktemp -d /tmp/wraith-bench-reload-results.XXXXXX) # raw outputs: kept
chmod 755 "$WORK" "$RESULTS"
MASTER=""
cleanup() {
    local status=$?
    set +e
    if [[ -n $MASTER ]] && kill -0 "$MASTER" 2>/dev/null; then
        kill -TERM "$MASTER"
        for _ in $(seq 1 50); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$MASTER" 2>/dev/null && kill -KILL "$MASTER"
        wait "$MASTER" 2>/dev/null
    fi
    cp "$WORK/wraith-error.log" "$RESULTS/" 2>/dev/null
    rm -rf "$WORK"
    log "raw outputs: $RESULTS"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { # free for TCP and UDP on 127.0.0.1: the TLS listener serves HTTP/3 on it too
    python3 - <<'EOF'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); continue
    u.close(); t.close(); print(port); break
EOF
}

# CPU ticks (user + system) of the master, of the workers it reaped (cutime, cstime) and of
# its live workers: every generation's work, even of workers that exited during the run.
server_ticks() {
    local total=0 pid stat f
    for pid in "$MASTER" $(pgrep -P "$MASTER" || true); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))
        [[ $pid == "$MASTER" ]] && total=$((total + f[13] + f[14]))
    done
    echo "$total"
}

# Waits up to QUIET_WAIT seconds until, over one second, neither pinned core is more than 10%
# busy (the server is idle between runs, so that load is someone else's).
core_ticks() { awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $9 }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)
wait_for_quiet() {
    local waited=0 s0 c0 s1 c1 limit=$((CLK_TCK / 10))
    ((QUIET_WAIT > 0)) || { sleep 1; return 0; }
    while ((waited < QUIET_WAIT)); do
        s0=$(core_ticks "$SERVER_CPU") c0=$(core_ticks "$CLIENT_CPU")
        sleep 1
        s1=$(core_ticks "$SERVER_CPU") c1=$(core_ticks "$CLIENT_CPU")
        ((s1 - s0 <= limit && c1 - c0 <= limit)) && return 0
        waited=$((waited + 1))
    done
    log "other load on CPUs $CLIENT_CPU,$SERVER_CPU did not settle in ${QUIET_WAIT}s;" \
        "running anyway"
}

# --- server ---------------------------------------------------------------------------------

mkdir -p "$WORK/www"
python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(6).randbytes(1024))" \
    >"$WORK/www/1k.bin"
chmod 644 "$WORK/www/1k.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
chmod 644 "$WORK/key.pem" "$WORK/cert.pem"
PORT=$(free_port)
TLS_PORT=$(free_port)
cat >"$WORK/wraith.toml" <<EOF
[server]
workers = $WORKERS
pid_file = "$WORK/wraith.pid"
control_socket = "$WORK/wraith.sock"
error_log = "$WORK/wraith-error.log"
log_level = "warn"
drain_timeout = "10s"
$([[ $EUID -eq 0 ]] && echo 'user = "www-data"')

[http]
keepalive_requests = 100000

[http3]
max_connections = 20000
retry = "never"

[access_log]
path = "off"

[[listen]]
address = "127.0.0.1:$PORT"

[[listen]]
address = "127.0.0.1:$TLS_PORT"
tls = true

[[site]]
hosts = ["*"]
default = true
tls = { cert = "$WORK/cert.pem", key = "$WORK/key.pem" }
  [[site.route]]
  path = "/"
  static = { root = "$WORK/www" }
  compress = false
EOF
cp "$WORK/wraith.toml" "$RESULTS/wraith.toml"

# Every worker of every generation is forked by the master and inherits its CPU affinity.
taskset -c "$SERVER_CPU" "$WRAITH_BIN" serve -c "$WORK/wraith.toml" >"$WORK/serve.log" 2>&1 &
MASTER=$!
H1_URL="http://127.0.0.1:$PORT/1k.bin"
H3_URL="https://localhost:$TLS_PORT/1k.bin"
want=$(sha256sum <"$WORK/www/1k.bin")
for _ in $(seq 1 100); do
    got=$(curl -sf --max-time 2 "$H1_URL" 2>/dev/null | sha256sum) && [[ $got == "$want" ]] && break
    kill -0 "$MASTER" 2>/dev/null || die "wraith exited: $(cat "$WORK/serve.log")"
    sleep 0.1
done
[[ $got == "$want" ]] || die "wraith does not serve $H1_URL"
h3check=$(taskset -c "$CLIENT_CPU" "$H3LOAD_BIN" -k --resolve "localhost:$TLS_PORT:127.0.0.1" \
    -c 1 -n 1 "$H3_URL" 2>&1) || true
grep -q "1 succeeded" <<<"$h3check" || die "wraith does not serve $H3_URL over HTTP/3: $h3check"
log "wraith (master $MASTER, $WORKERS workers) on CPU $SERVER_CPU: $H1_URL, $H3_URL"

# --- parsing and the table (bench/report.py reads wrk's output) -----------------------------

# report line PROTO FILE: one line about a run. report table DIR RPS_TARGET P99_TARGET H1 H3
# NOISY: the Markdown table from every run in DIR (PROTO-MODE-rROUND.txt, with .reloads and
# .cpu sidecars); H1 and H3 describe the clients.
report() {
    python3 - "$BENCH_DIR" "$@" <<'PY'
import re, statistics, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import report as wrk_report

def parse(proto, path):
    text = Path(path).read_text(errors="replace")
    run = {"rps": None, "p99": None, "errors": 0, "detail": ""}
    if proto == "h1":
        w = wrk_report.parse_wrk(text)
        run["rps"], run["p99"] = w["rps"], w["p99_ms"]
        run["errors"] = w["non2xx"] + sum(w["socket_errors"].values())
        run["detail"] = ", ".join(f"socket {k} {v}" for k, v in w["socket_errors"].items())
        if w["non2xx"]:
            run["detail"] += f" non-2xx {w['non2xx']}"
    else:
        m = re.search(r"^finished in \S+, ([\d.]+) req/s", text, re.M)
        run["rps"] = float(m.group(1)) if m else None
        m = re.search(r" p99 ([\d.]+)ms", text)
        run["p99"] = float(m.group(1)) if m else None
        m = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
        c = re.search(r"^connection errors: (\d+)", text, re.M)
        lost = int(c.group(1)) if c else 0
        if m:
            run["errors"] = int(m.group(1)) + lost
            run["detail"] = f"failed {m.group(1)} (errored {m.group(2)}), lost connections {lost}"
    return run

def reloads(path):
    p = Path(str(path) + ".reloads")
    return [int(x) for x in p.read_text().split()] if p.exists() else None

def cpu(path, run, noisy_percent):
    """Adds the .cpu sidecar's figures to `run`: server CPU %, µs per request, the client's
    CPU %, other load on each core, and whether that makes the run NOISY."""
    p = Path(str(path) + ".cpu")
    v = dict(l.split("=", 1) for l in p.read_text().split()) if p.exists() else {}
    v = {k: float(x) for k, x in v.items()}
    run.update(v)
    served = (run["rps"] or 0) * v.get("window_seconds", 0)
    run["us_per_req"] = v["server_cpu_seconds"] / served * 1e6 if served else None
    run["noisy"] = max(v.get("server_core_other", 0), v.get("client_core_other", 0)) > noisy_percent
    return run

def fmt(v, spec):
    return format(v, spec) if v is not None else "?"

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

cmd = sys.argv[2]
if cmd == "line":
    r = cpu(sys.argv[4], parse(sys.argv[3], sys.argv[4]), float(sys.argv[5]))
    print(f"{fmt(r['rps'], '.0f')} req/s, p99 {fmt(r['p99'], '.2f')} ms, {r['errors']} errors"
          + (f" ({r['detail']})" if r["errors"] else "")
          + f", server CPU {r.get('server_cpu', 0):.0f}% ({fmt(r['us_per_req'], '.2f')} µs/req)"
          + f", client CPU {r.get('client_cpu', 0):.0f}%, other load server core "
          + f"{r.get('server_core_other', 0):.0f}%, client core "
          + f"{r.get('client_core_other', 0):.0f}%"
          + (" (NOISY)" if r["noisy"] else ""))
    sys.exit(0)

results, rps_target, p99_target = Path(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
clients = {"h1": ("HTTP/1.1", sys.argv[6]), "h3": ("HTTP/3", sys.argv[7])}
noisy_percent = float(sys.argv[8])
print("| protocol | client | req/s without | req/s with reloads | with/without "
      "| p99 without (ms) | p99 with (ms) | server µs/req without / with "
      "| reloads ok/failed (slowest) | errors without / with | NOISY runs "
      f"| dip ≤ {100 - rps_target * 100:.0f}% | p99 < {p99_target:g} ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for proto, (name, client) in clients.items():
    base_files = sorted(results.glob(f"{proto}-base-r*.txt"))
    rel_files = sorted(results.glob(f"{proto}-reload-r*.txt"))
    base = [cpu(f, parse(proto, f), noisy_percent) for f in base_files]
    rel = [cpu(f, parse(proto, f), noisy_percent) for f in rel_files]
    if not base or not rel:
        continue
    # Medians over the quiet runs of each side when it has any; over all of them otherwise.
    quiet_b = [r for r in base if not r["noisy"]] or base
    quiet_r = [r for r in rel if not r["noisy"]] or rel
    b_rps, r_rps = median(r["rps"] for r in quiet_b), median(r["rps"] for r in quiet_r)
    b_p99, r_p99 = median(r["p99"] for r in quiet_b), median(r["p99"] for r in quiet_r)
    b_us, r_us = median(r["us_per_req"] for r in quiet_b), median(r["us_per_req"] for r in quiet_r)
    ratio = r_rps / b_rps if b_rps and r_rps is not None else None
    counts = [c for c in (reloads(f) for f in rel_files) if c]
    ok, bad = sum(c[0] for c in counts), sum(c[1] for c in counts)
    slowest = max((c[2] for c in counts), default=0)
    noisy = sum(r["noisy"] for r in base + rel)
    dip = "PASS" if ratio is not None and ratio >= rps_target else "MISS"
    tail = "PASS" if r_p99 is not None and r_p99 < p99_target else "MISS"
    print(f"| {name} | {client} | {fmt(b_rps, '.0f')} | {fmt(r_rps, '.0f')} | {fmt(ratio, '.3f')} "
          f"| {fmt(b_p99, '.2f')} | {fmt(r_p99, '.2f')} | {fmt(b_us, '.2f')} / {fmt(r_us, '.2f')} "
          f"| {ok}/{bad} ({slowest} ms) "
          f"| {sum(r['errors'] for r in base)} / {sum(r['errors'] for r in rel)} "
          f"| {noisy} of {len(base) + len(rel)}"
          + (" (one side had no quiet run: medians of all)"
             if all(r["noisy"] for r in base) or all(r["noisy"] for r in rel) else "")
          + f" | {dip} | {tail} |")
PY
}

# --- measure --------------------------------------------------------------------------------

# Runs `wraith reload` every INTERVAL seconds while PID lives; writes "ok failed max_ms" to $2.
reloader() { # PID OUT
    local pid=$1 out=$2 ok=0 failed=0 max=0 t0 t1 ms
    while kill -0 "$pid" 2>/dev/null; do
        sleep "$INTERVAL"
        kill -0 "$pid" 2>/dev/null || break
        t0=$(date +%s%N)
        if taskset -c "$CLIENT_CPU" "$WRAITH_BIN" reload -c "$WORK/wraith.toml" \
            >>"$out.log" 2>&1; then
            ok=$((ok + 1))
        else
            failed=$((failed + 1))
        fi
        t1=$(date +%s%N)
        ms=$(((t1 - t0) / 1000000))
        ((ms > max)) && max=$ms
    done
    echo "$ok $failed $max" >"$out"
}

run_client() { # PROTO OUT
    case $1 in
    h1) taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$H1_URL" ;;
    h3) taskset -c "$CLIENT_CPU" "$H3LOAD_BIN" -k --resolve "localhost:$TLS_PORT:127.0.0.1" \
            -c "$H3_CONNS" -m "$H3_STREAMS" -D "$DURATION" --warm-up "$WARMUP" "$H3_URL" ;;
    esac >"$2" 2>&1 || true
}

# user + system ticks of one process (0 when gone).
proc_ticks() {
    local stat f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}

# One snapshot for the CPU accounting of a run: time (ns), server ticks, client ticks, and the
# busy ticks of the two cores.
snapshot() { # CLIENT_PID
    echo "$(date +%s%N) $(server_ticks) $(proc_ticks "$1")" \
        "$(core_ticks "$SERVER_CPU") $(core_ticks "$CLIENT_CPU")"
}

# One measured run: PROTO MODE (base|reload) ROUND. The wrk warm-up is a separate run (wrk
# has none); h3load's is --warm-up. With reloads, the first comes INTERVAL s after the start
# and they go on until the client exits. CPU is accounted over the measured window only
# (from the end of the warm-up, DURATION seconds): the server's processes, the client, and
# what else ran on the two cores (OUT.cpu).
measure() {
    local proto=$1 mode=$2 round=$3 out="$RESULTS/$1-$2-r$3.txt" client pid reloads="" a b
    wait_for_quiet
    [[ $proto == h1 ]] && taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$H1_URL" \
        >/dev/null 2>&1
    run_client "$proto" "$out" &
    client=$!
    if [[ $mode == reload ]]; then
        reloader "$client" "$out.reloads" &
        reloads=$!
    fi
    for _ in $(seq 1 20); do # wrk or h3load: the client's child (taskset execs it)
        pid=$(pgrep -P "$client" | head -n 1 || true)
        [[ -n $pid ]] && break
        sleep 0.05
    done
    [[ $proto == h3 ]] && sleep "$WARMUP"
    # The window ends a little early, while the client still runs, so its CPU can be read.
    a=$(snapshot "${pid:-0}")
    sleep "$(awk -v d="$DURATION" 'BEGIN { print (d > 1 ? d - 0.25 : d * 0.75) }')"
    b=$(snapshot "${pid:-0}")
    wait "$client"
    [[ -n $reloads ]] && wait "$reloads"
    kill -0 "$MASTER" 2>/dev/null || die "the master died during $proto $mode round $round"
    awk -v hz="$CLK_TCK" -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        secs = (y[1] - x[1]) / 1e9
        server = (y[2] - x[2]) / hz; client = (y[3] - x[3]) / hz
        score = (y[4] - x[4]) / hz; ccore = (y[5] - x[5]) / hz
        so = score - server; co = ccore - client
        printf "window_seconds=%.3f\nserver_cpu_seconds=%.2f\n", secs, server
        printf "server_cpu=%.0f\nclient_cpu=%.0f\n", server / secs * 100, client / secs * 100
        printf "server_core_other=%.0f\nclient_core_other=%.0f\n", (so < 0 ? 0 : so) / secs * 100,
            (co < 0 ? 0 : co) / secs * 100
    }' >"$out.cpu"
    line=$(report line "$proto" "$out" "$NOISY_PERCENT")
    [[ -f $out.reloads ]] &&
        line+=", reloads $(awk '{print $1 " ok, " $2 " failed, slowest " $3 " ms"}' "$out.reloads")"
    log "$proto $mode round $round: $line"
}

for proto in h1 h3; do
    for ((round = 1; round <= ROUNDS; round++)); do
        # ABBA order, so slow drift lands on both sides.
        if ((round % 2)); then order=(base reload); else order=(reload base); fi
        for mode in "${order[@]}"; do measure "$proto" "$mode" "$round"; done
    done
done

# --- report ---------------------------------------------------------------------------------

echo
echo "### Reload every ${INTERVAL}s ($WORKERS workers and master on CPU $SERVER_CPU," \
    "client on CPU $CLIENT_CPU; ${DURATION}s runs, $ROUNDS rounds, medians of the quiet runs)"
echo
report table "$RESULTS" "$RPS_TARGET" "$P99_TARGET" "wrk -t1 -c$CONNS" \
    "h3load -c$H3_CONNS -m$H3_STREAMS" "$NOISY_PERCENT" | tee "$RESULTS/summary.md"
