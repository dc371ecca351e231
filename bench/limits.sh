#!/bin/bash
# Cost of a request-rate limit that never refuses: 10,000 distinct keys (an X-Key field wrk
# picks at random per request), one worker, a small `respond`/`return` answer, in Wraith and in
# NGINX (limit_req on the same keys), without and with the limit, in one run. Prints req/s, p99
# and the server's CPU per request of each, and the limited config's req/s and CPU as a share
# of the unlimited one's (the goal: Wraith within 5%).
# Knobs: BENCH_DURATION (10s), BENCH_CONNS (50), BENCH_ROUNDS (3: medians of alternating runs),
# BENCH_KEYS (10000), BENCH_CLIENT_CPU / BENCH_SERVER_CPU (0 / 1).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-50}
ROUNDS=${BENCH_ROUNDS:-3}
KEYS=${BENCH_KEYS:-10000}
CCPU=${BENCH_CLIENT_CPU:-0}
SCPU=${BENCH_SERVER_CPU:-1}
NGINX=/usr/sbin/nginx
. "$BENCH_DIR/lib.sh"

for tool in wrk "$NGINX" taskset curl; do
    command -v "$tool" >/dev/null || { echo "limits.sh: $tool missing (apt-get install wrk nginx-light curl)"; exit 1; }
done
[ -x "$BUILD/wraith" ] || { echo "limits.sh: build first (make)"; exit 1; }

DIR=$(mktemp -d /tmp/wraith-limits-bench.XXXXXX)
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

# A rate no client of this bench reaches per key (each key sees a few requests a second).
for cfg in none limit; do
    {
        printf '[server]\nworkers = 1\npid_file = "%s/wraith.pid"\ncontrol_socket = "%s/wraith.sock"\n' "$DIR" "$DIR"
        printf 'error_log = "%s/wraith-error.log"\nlog_level = "warn"\n\n' "$DIR"
        printf '[access_log]\npath = "off"\n\n[[listen]]\naddress = "127.0.0.1:%s"\n\n' "$PORT"
        if [ "$cfg" = limit ]; then
            printf '[limit.bench]\nkey = "$http_x_key"\nrate = "100000/s"\nburst = 100000\nsize = "16m"\n\n'
        fi
        printf '[[site]]\nhosts = ["*"]\n'
        [ "$cfg" = limit ] && printf 'limit = ["bench"]\n'
        printf '  [[site.route]]\n  path = "/"\n  respond = { status = 200, body = "ok" }\n'
    } >"$DIR/$cfg.toml"
    {
        printf 'daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n' "$DIR" "$DIR"
        printf 'events { worker_connections 4096; }\nhttp {\n    access_log off;\n'
        if [ "$cfg" = limit ]; then
            printf '    limit_req_zone $http_x_key zone=bench:16m rate=100000r/s;\n'
        fi
        printf '    server {\n        listen 127.0.0.1:%s;\n        location / {\n' "$PORT"
        [ "$cfg" = limit ] && printf '            limit_req zone=bench burst=100000 nodelay;\n'
        printf '            return 200 "ok";\n        }\n    }\n}\n'
    } >"$DIR/nginx-$cfg.conf"
done
cat >"$DIR/keys.lua" <<EOF
math.randomseed(42)
request = function()
    return wrk.format("GET", "/", { ["X-Key"] = "k" .. math.random(0, $((KEYS - 1))) })
end
EOF
if ! "$BUILD/wraith" check -c "$DIR/limit.toml" >/dev/null; then
    "$BUILD/wraith" check -c "$DIR/limit.toml"; exit 1
fi

start_server() { # kind config
    if [ "$1" = wraith ]; then
        taskset -c "$SCPU" "$BUILD/wraith" serve -c "$2" >"$DIR/server.out" 2>&1 &
    else
        taskset -c "$SCPU" "$NGINX" -p "$DIR/" -c "$2" -e "$DIR/nginx-error.log" >"$DIR/server.out" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
        sleep 0.1
    done
    echo "limits.sh: $1 did not start:"; cat "$DIR/server.out"; exit 1
}
stop_server() {
    kill -QUIT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
measure() { # kind config -> "rps p99_ms cpu_us_per_request non2xx"
    start_server "$1" "$2"
    taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d2s -s "$DIR/keys.lua" "http://127.0.0.1:$PORT/" >/dev/null
    t0=$(server_ticks "$SERVER_PID")
    out=$(taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$DIR/keys.lua" "http://127.0.0.1:$PORT/")
    t1=$(server_ticks "$SERVER_PID")
    stop_server
    read -r reqs rps p99 bad < <(wrk_numbers <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN { printf "%.2f", 1e6 * t / hz / n }')
    echo "$rps $p99 $cpu $bad"
}

declare -A RPS P99 CPU
for round in $(seq "$ROUNDS"); do
    for kind in nginx wraith; do
        for cfg in none limit; do
            if [ "$kind" = wraith ]; then conf="$DIR/$cfg.toml"; else conf="$DIR/nginx-$cfg.conf"; fi
            read -r rps p99 cpu bad < <(measure "$kind" "$conf")
            [ "$bad" = 0 ] || { echo "limits.sh: $kind $cfg refused $bad requests: the limit must never trigger"; exit 1; }
            RPS[$kind.$cfg]+="$rps "
            P99[$kind.$cfg]+="$p99 "
            CPU[$kind.$cfg]+="$cpu "
            echo "round $round: $kind $cfg: $rps req/s, p99 ${p99} ms, ${cpu} µs CPU/request" >&2
        done
    done
done

echo
echo "== wrk -t1 -c$CONNS -d$DURATION, $KEYS keys, one worker each, medians of $ROUNDS rounds"
printf "%-8s %12s %12s %11s %13s %13s %13s %13s %10s\n" server "none req/s" "limit req/s" \
    "limit/none" "none p99 ms" "limit p99 ms" "none CPU µs" "limit CPU µs" "limit/none"
for kind in wraith nginx; do
    n=$(median <<<"${RPS[$kind.none]}"); l=$(median <<<"${RPS[$kind.limit]}")
    pn=$(median <<<"${P99[$kind.none]}"); pl=$(median <<<"${P99[$kind.limit]}")
    cn=$(median <<<"${CPU[$kind.none]}"); cl=$(median <<<"${CPU[$kind.limit]}")
    awk -v k="$kind" -v n="$n" -v l="$l" -v pn="$pn" -v pl="$pl" -v cn="$cn" -v cl="$cl" 'BEGIN {
        printf "%-8s %12.0f %12.0f %10.1f%% %13.2f %13.2f %13.2f %13.2f %9.1f%%\n", k, n, l, 100*l/n, pn, pl, cn, cl, 100*cl/cn }'
done
wn=$(median <<<"${RPS[wraith.none]}"); wl=$(median <<<"${RPS[wraith.limit]}")
nl=$(median <<<"${RPS[nginx.limit]}")
cn=$(median <<<"${CPU[wraith.none]}"); cl=$(median <<<"${CPU[wraith.limit]}")
awk -v n="$wn" -v l="$wl" -v nl="$nl" -v cn="$cn" -v cl="$cl" 'BEGIN {
    printf "\nwraith with the limit: req/s at %.1f%% of no limit, CPU per request at %.1f%% (%+.2f µs); %.2fx nginx with limit_req\n", 100*l/n, 100*cl/cn, cl - cn, l/nl
    printf "goal (within 5%%): req/s %s, CPU per request %s\n", (l/n >= 0.95 ? "PASS" : "FAIL"), (cn/cl >= 0.95 ? "PASS" : "FAIL") }'
echo "(load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg); on a busy machine req/s is noise, CPU per request much less so)"
