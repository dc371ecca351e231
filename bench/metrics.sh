#!/bin/bash
# Cost of counting metrics: one Wraith worker answering a small `respond` route, with the
# `observe` filter on (the default) and off (`[server] observe = false`), in one run. Prints
# req/s, p99 and the server's CPU per request of each, and the counted config's as a share of
# the uncounted one's (the goal: within 3%). Then one scrape: its size and how long it took.
# Knobs: BENCH_DURATION (10s), BENCH_CONNS (50), BENCH_ROUNDS (3: medians of alternating runs),
# BENCH_CLIENT_CPU / BENCH_SERVER_CPU (0 / 1).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-50}
ROUNDS=${BENCH_ROUNDS:-3}
CCPU=${BENCH_CLIENT_CPU:-0}
SCPU=${BENCH_SERVER_CPU:-1}
. "$BENCH_DIR/lib.sh"

for tool in wrk taskset curl; do
    command -v "$tool" >/dev/null || { echo "metrics.sh: $tool missing (apt-get install wrk curl)"; exit 1; }
done
[ -x "$BUILD/wraith" ] || { echo "metrics.sh: build first (make)"; exit 1; }

DIR=$(mktemp -d /tmp/wraith-metrics-bench.XXXXXX)
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

for cfg in off on; do
    {
        printf '[server]\nworkers = 1\npid_file = "%s/wraith.pid"\ncontrol_socket = "%s/wraith.sock"\n' "$DIR" "$DIR"
        printf 'error_log = "%s/wraith-error.log"\nlog_level = "warn"\n' "$DIR"
        [ "$cfg" = off ] && printf 'observe = false\n'
        printf '\n[access_log]\npath = "off"\n\n[[listen]]\naddress = "127.0.0.1:%s"\n\n' "$PORT"
        printf '[[site]]\nhosts = ["*"]\n'
        printf '  [[site.route]]\n  path = "=/metrics"\n  metrics = {}\n'
        printf '  [[site.route]]\n  path = "/"\n  respond = { status = 200, body = "ok" }\n'
    } >"$DIR/$cfg.toml"
    "$BUILD/wraith" check -c "$DIR/$cfg.toml" >/dev/null || { "$BUILD/wraith" check -c "$DIR/$cfg.toml"; exit 1; }
done

start_server() { # config
    taskset -c "$SCPU" "$BUILD/wraith" serve -c "$1" >"$DIR/server.out" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
        sleep 0.1
    done
    echo "metrics.sh: wraith did not start:"; cat "$DIR/server.out"; exit 1
}
stop_server() {
    kill -QUIT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
measure() { # config -> "rps p99_ms cpu_us_per_request non2xx"
    start_server "$1"
    taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT/" >/dev/null
    t0=$(server_ticks "$SERVER_PID")
    out=$(taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/")
    t1=$(server_ticks "$SERVER_PID")
    if [ "$1" = "$DIR/on.toml" ]; then
        curl -s -o "$DIR/scrape.txt" -w '%{time_total}' "http://127.0.0.1:$PORT/metrics" >"$DIR/scrape.time"
    fi
    stop_server
    read -r reqs rps p99 bad < <(wrk_numbers <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN { printf "%.2f", 1e6 * t / hz / n }')
    echo "$rps $p99 $cpu $bad"
}

declare -A RPS P99 CPU
for round in $(seq "$ROUNDS"); do
    for cfg in off on; do
        read -r rps p99 cpu bad < <(measure "$DIR/$cfg.toml")
        [ "$bad" = 0 ] || { echo "metrics.sh: $cfg answered $bad requests with an error"; exit 1; }
        RPS[$cfg]+="$rps "
        P99[$cfg]+="$p99 "
        CPU[$cfg]+="$cpu "
        echo "round $round: observe $cfg: $rps req/s, p99 ${p99} ms, ${cpu} µs CPU/request" >&2
    done
done

echo
echo "== wrk -t1 -c$CONNS -d$DURATION, one worker, medians of $ROUNDS rounds"
printf "%-12s %10s %10s %12s\n" observe "req/s" "p99 ms" "CPU µs/req"
for cfg in off on; do
    printf "%-12s %10.0f %10.2f %12.2f\n" "$cfg" "$(median <<<"${RPS[$cfg]}")" \
        "$(median <<<"${P99[$cfg]}")" "$(median <<<"${CPU[$cfg]}")"
done
off=$(median <<<"${RPS[off]}"); on=$(median <<<"${RPS[on]}")
coff=$(median <<<"${CPU[off]}"); con=$(median <<<"${CPU[on]}")
awk -v off="$off" -v on="$on" -v coff="$coff" -v con="$con" 'BEGIN {
    printf "\ncounted: req/s at %.1f%% of uncounted, CPU per request at %.1f%% (%+.2f µs)\n", 100*on/off, 100*con/coff, con - coff
    printf "goal (within 3%%): req/s %s, CPU per request %s\n", (on/off >= 0.97 ? "PASS" : "FAIL"), (coff/con >= 0.97 ? "PASS" : "FAIL") }'
echo "one scrape after the last counted run: $(wc -c <"$DIR/scrape.txt") bytes, $(grep -c '^wraith_' "$DIR/scrape.txt") series, $(awk '{printf "%.2f", $1 * 1000}' "$DIR/scrape.time") ms"
echo "(load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg))"
