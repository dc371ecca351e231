#!/bin/bash
# Routing cost: a table of 1,000 routes over 100 hosts (exact, prefix, regex with captures, a
# header condition and its fallback; bench/routing/gen.py) against a one-route site, in Wraith
# and in NGINX with the equivalent config, in one run. Prints
#   1. route_bench: ns per request for site selection + routing (the micro-benchmark), full
#      table and one route, on the same request mix;
#   2. wrk: requests/s and p99 of each server with each config, and the full table's req/s as
#      a share of the one-route site's (the goal: Wraith within 5%), with the µs per request
#      the table adds (1/rps_full - 1/rps_one, at one worker).
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
NGINX=/usr/sbin/nginx

for tool in wrk "$NGINX" taskset; do
    command -v "$tool" >/dev/null || { echo "routing.sh: $tool missing (apt-get install wrk nginx-light)"; exit 1; }
done
[ -x "$BUILD/wraith" ] && [ -x "$BUILD/route_bench" ] || { echo "routing.sh: build first (make)"; exit 1; }

DIR=$(mktemp -d /tmp/wraith-routing-bench.XXXXXX)
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$BENCH_DIR/routing/gen.py" "$DIR" "$PORT"
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

echo "== route_bench: site selection + routing per request (ns), $(wc -l <"$DIR/requests.txt") requests in the mix"
for cfg in one full; do
    printf "%-5s " "$cfg"
    taskset -c "$SCPU" "$BUILD/route_bench" "$DIR/$cfg.toml" "$DIR/requests.txt" 2000
done

start_server() { # kind config
    if [ "$1" = wraith ]; then
        taskset -c "$SCPU" "$BUILD/wraith" serve -c "$2" >"$DIR/server.out" 2>&1 &
    else
        taskset -c "$SCPU" "$NGINX" -p "$DIR/" -c "$2" -e "$DIR/nginx-error.log" >"$DIR/server.out" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" -H 'Host: h0.bench' && return 0
        sleep 0.1
    done
    echo "routing.sh: $1 did not start:"; cat "$DIR/server.out"; exit 1
}
stop_server() {
    kill -QUIT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
# CPU ticks (user + system) of the server and its children: what a request costs the server,
# which a machine busy with other work barely changes (unlike req/s).
server_ticks() {
    local t=0 p
    for p in $SERVER_PID $(pgrep -P "$SERVER_PID"); do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
measure() { # kind config lua -> "rps p99_ms cpu_us_per_request"
    start_server "$1" "$2"
    taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d2s -s "$3" "http://127.0.0.1:$PORT/" >/dev/null
    t0=$(server_ticks)
    out=$(taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$3" "http://127.0.0.1:$PORT/")
    t1=$(server_ticks)
    stop_server
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN { printf "%.2f", 1e6 * t / hz / n }')
    echo "$rps $p99 $cpu"
}

declare -A RPS P99 CPU
for round in $(seq "$ROUNDS"); do
    for kind in nginx wraith; do
        for cfg in one full; do
            if [ "$kind" = wraith ]; then conf="$DIR/$cfg.toml"; else conf="$DIR/nginx-$cfg.conf"; fi
            lua="$DIR/requests.lua"
            read -r rps p99 cpu < <(measure "$kind" "$conf" "$lua")
            RPS[$kind.$cfg]+="$rps "
            P99[$kind.$cfg]+="$p99 "
            CPU[$kind.$cfg]+="$cpu "
            echo "round $round: $kind $cfg: $rps req/s, p99 ${p99} ms, ${cpu} µs CPU/request" >&2
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "== wrk -t1 -c$CONNS -d$DURATION, one worker each, medians of $ROUNDS rounds"
printf "%-8s %11s %11s %9s %11s %11s %12s %12s %9s\n" server "one req/s" "full req/s" "full/one" \
    "one p99 ms" "full p99 ms" "one CPU µs" "full CPU µs" "full/one"
for kind in wraith nginx; do
    one=$(median <<<"${RPS[$kind.one]}"); full=$(median <<<"${RPS[$kind.full]}")
    p1=$(median <<<"${P99[$kind.one]}"); pf=$(median <<<"${P99[$kind.full]}")
    c1=$(median <<<"${CPU[$kind.one]}"); cf=$(median <<<"${CPU[$kind.full]}")
    awk -v k="$kind" -v o="$one" -v f="$full" -v p1="$p1" -v pf="$pf" -v c1="$c1" -v cf="$cf" 'BEGIN {
        printf "%-8s %11.0f %11.0f %8.1f%% %11.2f %11.2f %12.2f %12.2f %8.1f%%\n", k, o, f, 100*f/o, p1, pf, c1, cf, 100*cf/c1 }'
done
w1=$(median <<<"${RPS[wraith.one]}"); wf=$(median <<<"${RPS[wraith.full]}")
c1=$(median <<<"${CPU[wraith.one]}"); cf=$(median <<<"${CPU[wraith.full]}")
awk -v o="$w1" -v f="$wf" -v c1="$c1" -v cf="$cf" 'BEGIN {
    r = f / o; c = c1 / cf
    printf "\nwraith full table: req/s at %.1f%% of the one-route site, CPU per request at %.1f%% (%+.2f µs)\n", 100*r, 100*cf/c1, cf - c1
    printf "goal (within 5%%): req/s %s, CPU per request %s\n", (r >= 0.95 ? "PASS" : "FAIL"), (c >= 0.95 ? "PASS" : "FAIL") }'
echo "(load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg); on a busy machine req/s is noise, CPU per request much less so)"
