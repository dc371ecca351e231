#!/usr/bin/env bash
# Proxy section of `make bench`: Wraith's `proxy` route against nginx's `proxy_pass`, both in
# front of the same backend (a third nginx, one worker, `return 200` of a 1 KiB body), with
# upstream keep-alive, one worker each. HTTP/1.1 frontends measured with wrk, HTTP/2 (h2c,
# prior knowledge, plaintext) with h2load; then a soak run per proxy that samples the worker's
# RSS over time. Prints a Markdown table of ratios wraith/nginx and PASS/MISS per target (the
# proxy issue: >= 1.0x nginx requests/s, p99 <= nginx and < 10 ms, flat RSS). See
# bench/README.md.
#
# Cores: the proxy under test (master and worker, every thread) on BENCH_SERVER_CPU (1), the
# client (wrk or h2load, one thread) on BENCH_CLIENT_CPU (0) and, by default, the backend on
# that same core 0: the proxy keeps a core to itself, and the backend's work per request is
# the same for both proxies. BENCH_BACKEND_CPU moves it.
#
# Knobs (environment):
#   WRAITH_BIN          wraith binary                               (default: build/wraith)
#   NGINX_BIN           nginx binary, for the backend and the peer   (default: nginx from PATH)
#   BENCH_PROXY_DURATION  wrk/h2load duration per measured run      (default: 10s)
#   BENCH_PROXY_WARMUP  warm-up run per proxy and protocol            (default: 2s)
#   BENCH_PROXY_ROUNDS  nginx,wraith pairs per protocol, medians      (default: 2)
#   BENCH_PROXY_CONNS   wrk keep-alive connections (HTTP/1.1)         (default: 50)
#   BENCH_PROXY_H2_CONNS / BENCH_PROXY_H2_STREAMS  h2load -c x -m     (default: 10 x 10)
#   BENCH_PROXY_KEEPALIVE  idle upstream connections each proxy keeps (nginx `keepalive N`,
#                       Wraith `keepalive = N`; default: 128, above the most requests in
#                       flight, so neither proxy closes and reopens upstream connections)
#   BENCH_PROXY_NGINX_HEADERS  1: nginx sends the forwarding fields Wraith always sends
#                       (X-Forwarded-For/-Proto/-Host, Forwarded, X-Request-ID, Via), so both
#                       do the same work (default); 0: nginx's defaults (Host, Connection only)
#   BENCH_PROXY_SOAK    seconds of the soak run per proxy (default: 60, or 600 with
#                       BENCH_FULL=1, the issue's 10 minutes; 0 skips it)
#   BENCH_PROXY_SOAK_INTERVAL  seconds between RSS samples            (default: 5)
#   BENCH_PROXY_FLAT_KIB  largest RSS growth that counts as flat: the peak of the soak's
#                       second half over the peak of its first (default: 512)
#   BENCH_FULL=1        the issue's full run: 600 s soaks (about 25 minutes in all)
#   BENCH_CLIENT_CPU / BENCH_SERVER_CPU                              (default: 0 / 1)
#   BENCH_BACKEND_CPU   the backend's core                           (default: BENCH_CLIENT_CPU)
#   BENCH_QUIET_WAIT    seconds to wait before each run for other load on the cores to drop
#                       below 10% (default: 10; 0 never waits). Runs still disturbed are
#                       marked NOISY in the report.
#   BENCH_NICE          niceness of the proxies, the backend and the clients while measured
#                       (default: -10 as root; 0 leaves them)
#   BENCH_SELFTEST=1    a second nginx proxy stands in for Wraith: an A/A run that shows the
#                       noise floor and checks the harness without a wraith binary
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WRAITH_BIN=${WRAITH_BIN:-$ROOT/build/wraith}
NGINX_BIN=${NGINX_BIN:-nginx}
FULL=${BENCH_FULL:-0}
DURATION=${BENCH_PROXY_DURATION:-10s}
WARMUP=${BENCH_PROXY_WARMUP:-2s}
ROUNDS=${BENCH_PROXY_ROUNDS:-2}
CONNS=${BENCH_PROXY_CONNS:-50}
H2_CONNS=${BENCH_PROXY_H2_CONNS:-10}
H2_STREAMS=${BENCH_PROXY_H2_STREAMS:-10}
KEEPALIVE=${BENCH_PROXY_KEEPALIVE:-128}
NGINX_HEADERS=${BENCH_PROXY_NGINX_HEADERS:-1}
SOAK=${BENCH_PROXY_SOAK:-$([[ $FULL == 1 ]] && echo 600 || echo 60)}
SOAK_INTERVAL=${BENCH_PROXY_SOAK_INTERVAL:-5}
FLAT_KIB=${BENCH_PROXY_FLAT_KIB:-512}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
SERVER_CPU=${BENCH_SERVER_CPU:-1}
BACKEND_CPU=${BENCH_BACKEND_CPU:-$CLIENT_CPU}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
NICE=${BENCH_NICE:-$([[ $EUID -eq 0 ]] && echo -10 || echo 0)}
SELFTEST=${BENCH_SELFTEST:-0}
PYTHON=${PYTHON:-python3}

SLOTS=(nginx wraith)           # the proxies, measured in this order, alternating
declare -A MASTER=() PORT=() H2PORT=() WORKERS=() KIND=()

log() { printf 'bench-proxy: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $SOAK =~ ^[0-9]+$ && $SOAK_INTERVAL =~ ^[0-9]+$ && $SOAK_INTERVAL -gt 0 ]] ||
    die "BENCH_PROXY_SOAK and BENCH_PROXY_SOAK_INTERVAL are whole seconds"

# --- prerequisites --------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v "$NGINX_BIN" >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
command -v "$PYTHON" >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi
command -v "$NGINX_BIN" >/dev/null || die "no nginx binary ($NGINX_BIN)"
KIND=([backend]=backend [nginx]=nginx [wraith]=wraith)
if [[ $SELFTEST == 1 ]]; then
    KIND[wraith]=nginx
    log "BENCH_SELFTEST=1: a second nginx proxy stands in for wraith (A/A run)"
else
    [[ -x $WRAITH_BIN ]] || die "no wraith binary at $WRAITH_BIN (build it, or set WRAITH_BIN)"
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(dirname "$WRAITH_BIN")/CMakeCache.txt" 2>/dev/null || true)
    [[ -z $build_type || $build_type == Release ]] ||
        log "warning: $WRAITH_BIN is a $build_type build; compare a Release build"
fi
(($(nproc) >= 2)) || log "warning: fewer than 2 CPUs; client and proxy will share a core"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- temp dirs and cleanup ------------------------------------------------------------------

WORK=$(mktemp -d /tmp/wraith-bench-proxy.XXXXXX)                # configs, logs: removed at exit
RESULTS=$(mktemp -d /tmp/wraith-bench-proxy-results.XXXXXX)     # raw outputs: kept
chmod 0755 "$WORK" "$RESULTS"
mkdir -p "$RESULTS/runs" "$RESULTS/soak" "$RESULTS/logs" "$RESULTS/configs"
: >"$RESULTS/metrics.tsv"

# The state letter of a process ("" if gone); zombies count as gone.
proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    printf '%s' "${stat%% *}"
}
is_alive() { local s; s=$(proc_state "$1"); [[ -n $s && $s != Z ]]; }

wait_gone() { # PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        is_alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

stop_server() { # SLOT
    local slot=$1 pid=${MASTER[$1]:-} w sig
    [[ -n $pid ]] || return 0
    # nginx: QUIT (graceful) then TERM; wraith: TERM (fast stop). KILL as a last resort.
    local signals=(TERM)
    [[ ${KIND[$slot]} != wraith ]] && signals=(QUIT TERM)
    for sig in "${signals[@]}" KILL; do
        is_alive "$pid" || break
        kill -"$sig" "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 && break
        log "$slot master $pid still running after SIG$sig"
    done
    wait "$pid" 2>/dev/null || true
    for w in ${WORKERS[$slot]:-}; do # orphaned workers of a dead master, by recorded PID
        if is_alive "$w"; then
            kill -TERM "$w" 2>/dev/null || true
            wait_gone "$w" 3 || kill -KILL "$w" 2>/dev/null || true
        fi
    done
    MASTER[$slot]=""
    WORKERS[$slot]=""
}

# Ends PID's children (recursively), then PID, by PID.
kill_tree() { # PID
    local kid
    for kid in $(children_of "$1"); do kill_tree "$kid"; done
    if is_alive "$1"; then kill -TERM "$1" 2>/dev/null || true; fi
}

CLIENT_PIDS=() # background clients of the soak, ended if the script is interrupted
cleanup() {
    local status=$? pid slot dir f
    set +e
    trap - EXIT INT TERM
    for pid in "${CLIENT_PIDS[@]}"; do kill_tree "$pid"; done
    for slot in "${SLOTS[@]}" backend; do stop_server "$slot"; done
    for dir in "$WORK"/*/; do # error logs and stderr, named by slot
        for f in "$dir"*.log "$dir"*.stderr; do
            [[ -e $f ]] && cp "$f" "$RESULTS/logs/$(basename "$dir")-$(basename "$f")"
        done
    done
    rm -rf "$WORK"
    log "raw outputs: $RESULTS"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------------------------

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

children_of() { # PID -> child PIDs, from the ppid field of /proc/*/stat
    local f stat rest ppid
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r _ ppid _ <<<"$rest"
        [[ $ppid == "$1" ]] && printf '%s\n' "${f//[!0-9]/}"
    done
    return 0
}

# The worker processes of SLOT; with no children the master serves by itself.
find_workers() {
    local kids
    kids=$(children_of "${MASTER[$1]}" | sort -n | tr '\n' ' ')
    kids=${kids% }
    printf '%s' "${kids:-${MASTER[$1]}}"
}

# The one worker whose memory is sampled (one worker in every config).
main_worker() { local w; w=${WORKERS[$1]}; printf '%s' "${w%% *}"; }

slot_cpu() { [[ $1 == backend ]] && echo "$BACKEND_CPU" || echo "$SERVER_CPU"; }

# Pins every thread of the master and workers of SLOT to its core, and notices a worker that
# was replaced since the last call (a crash the master recovered from).
pin_server() {
    local slot=$1 now pid tids
    now=$(find_workers "$slot")
    if [[ -n ${WORKERS[$slot]:-} && $now != "${WORKERS[$slot]}" ]]; then
        log "** FLAGGED: $slot workers changed from '${WORKERS[$slot]}' to '$now' (crash?)"
        metric "$slot" worker_restarted 1
    fi
    WORKERS[$slot]=$now
    for pid in ${MASTER[$slot]} $now; do
        taskset -apc "$(slot_cpu "$slot")" "$pid" >/dev/null || log "warning: could not pin $slot pid $pid"
        tids=(/proc/"$pid"/task/*)
        ((NICE == 0)) || renice -n "$NICE" -p "${tids[@]##*/}" >/dev/null 2>&1 ||
            log "warning: could not renice $slot pid $pid"
    done
    # With sched_autogroup, niceness only counts inside the session: give the session's
    # autogroup the niceness too (each server runs under setsid).
    if ((NICE != 0)) && [[ -e /proc/${MASTER[$slot]}/autogroup ]]; then
        echo "$NICE" >"/proc/${MASTER[$slot]}/autogroup" 2>/dev/null ||
            log "warning: could not set the autogroup niceness of $slot"
    fi
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
smaps_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || true; }
fd_count() { local fds=(/proc/"$1"/fd/*); echo "${#fds[@]}"; }

metric() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS/metrics.tsv"; }

# --- the body and the configs ---------------------------------------------------------------

# 1024 bytes from a fixed seed, letters and digits only, so the text needs no quoting in
# nginx's `return 200 "..."`.
BODY=$("$PYTHON" -c 'import random, string
rng = random.Random("wraith-bench-proxy")
print("".join(rng.choice(string.ascii_letters + string.digits) for _ in range(1024)), end="")')
((${#BODY} == 1024)) || die "the response body is ${#BODY} bytes, not 1024"
BODY_SHA=$(printf '%s' "$BODY" | sha256sum)

# Keep nginx's temp files in its prefix rather than /var/lib/nginx.
nginx_temp_paths() { # DIR
    local temp
    mkdir -p "$1/tmp"
    for temp in client_body proxy fastcgi uwsgi scgi; do
        [[ $temp != client_body ]] && "$NGINX_BIN" -V 2>&1 | grep -q -- "--without-http_${temp}_module" && continue
        echo "    ${temp}_temp_path $1/tmp/$temp;"
    done
}

nginx_main() { # DIR
    echo "worker_processes 1;"
    [[ $EUID -eq 0 ]] && echo "user www-data;"
    echo "pid $1/nginx.pid;"
    echo "lock_file $1/nginx.lock;"
    echo "error_log $1/nginx-error.log warn;"
    echo "worker_rlimit_nofile 16384;"
    echo "events { worker_connections 8192; }"
}

# The backend: `return 200` of BODY on every path, keep-alive without a practical limit.
write_backend_conf() { # DIR PORT
    {
        nginx_main "$1"
        echo "http {"
        echo "    default_type application/octet-stream;"
        echo "    access_log off;"
        echo "    keepalive_requests 100000000;"
        echo "    keepalive_timeout 300s;"
        nginx_temp_paths "$1"
        echo "    server {"
        echo "        listen 127.0.0.1:$2 backlog=4096;"
        echo "        location / { return 200 \"$BODY\"; }"
        echo "    }"
        echo "}"
    } >"$1/nginx.conf"
}

# The nginx proxy: one listener for HTTP/1.1, one for h2c with prior knowledge (nginx 1.22's
# `listen ... http2` without ssl speaks only that), proxy_pass with upstream keep-alive.
write_nginx_conf() { # DIR PORT H2PORT
    {
        nginx_main "$1"
        echo "http {"
        echo "    default_type application/octet-stream;"
        echo "    access_log off;"
        # No limit in practice: neither proxy closes a client connection during a 10-minute
        # soak (nginx 1.22 applies keepalive_requests to HTTP/2 connections too).
        echo "    keepalive_requests 100000000;"
        echo "    keepalive_timeout 75s;"
        nginx_temp_paths "$1"
        echo "    upstream backend {"
        echo "        server 127.0.0.1:$BACKEND_PORT;"
        echo "        keepalive $KEEPALIVE;"
        echo "        keepalive_requests 100000000;"
        echo "    }"
        echo "    server {"
        echo "        listen 127.0.0.1:$2 backlog=4096;"
        echo "        listen 127.0.0.1:$3 http2 backlog=4096;"
        echo "        location / {"
        echo "            proxy_pass http://backend;"
        echo "            proxy_http_version 1.1;"
        echo "            proxy_set_header Connection \"\";"
        if [[ $NGINX_HEADERS == 1 ]]; then
            # What Wraith's proxy sends for an untrusted client (see man wraith.toml, proxy).
            echo "            proxy_set_header X-Forwarded-For \$remote_addr;"
            echo "            proxy_set_header X-Forwarded-Proto \$scheme;"
            echo "            proxy_set_header X-Forwarded-Host \$http_host;"
            echo "            proxy_set_header Forwarded \"for=\$remote_addr;proto=\$scheme;host=\\\"\$http_host\\\"\";"
            echo "            proxy_set_header X-Request-ID \$request_id;"
            echo "            proxy_set_header Via \"1.1 nginx\";"
            echo "            add_header X-Request-ID \$request_id;"
        fi
        echo "        }"
        echo "    }"
        echo "}"
    } >"$1/nginx.conf"
}

# Wraith: the same two listeners (HTTP/1.1; h2c with prior knowledge), one route to the same
# upstream, no access log, no compression (the clients ask for none anyway).
write_wraith_conf() { # DIR PORT H2PORT
    cat >"$1/wraith.toml" <<EOF
[server]
workers = 1
$([[ $EUID -eq 0 ]] && echo 'user = "www-data"')
pid_file = "$1/wraith.pid"
control_socket = "$1/wraith.sock"
error_log = "$1/wraith-error.log"
log_level = "warn"

[http]
keepalive_requests = 100000000

[access_log]
path = "off"

[[listen]]
address = "127.0.0.1:$2"
backlog = 4096

[[listen]]
address = "127.0.0.1:$3"
backlog = 4096
protocols = ["h2c"]

[upstream.backend]
servers = ["127.0.0.1:$BACKEND_PORT"]
keepalive = $KEEPALIVE
keepalive_requests = 100000000

[[site]]
hosts = ["*"]
default = true

  [[site.route]]
  path = "/"
  proxy = { upstream = "backend" }
  compress = false
EOF
}

# Serves BODY? A fast proxy that answers something else measures nothing.
check_body() { # SLOT
    local got
    got=$(curl -sf --max-time 5 "http://127.0.0.1:${PORT[$1]}/" | sha256sum)
    [[ $got == "$BODY_SHA" ]] || die "$1 did not return the backend's body over HTTP/1.1"
    [[ -z ${H2PORT[$1]:-} ]] && return 0
    got=$(curl -sf --max-time 5 --http2-prior-knowledge "http://127.0.0.1:${H2PORT[$1]}/" | sha256sum)
    [[ $got == "$BODY_SHA" ]] || die "$1 did not return the backend's body over h2c"
    got=$(curl -s -o /dev/null --max-time 5 --http2-prior-knowledge -w '%{http_version}' \
        "http://127.0.0.1:${H2PORT[$1]}/")
    [[ $got == 2 ]] || die "$1 answered HTTP/$got on its h2c port"
}

start_server() { # SLOT
    local slot=$1 dir="$WORK/$1" port h2port="" pid i cmd pidfile
    port=$(free_port)
    mkdir -p "$dir"
    chmod 0755 "$dir"
    case ${KIND[$slot]} in
    backend) write_backend_conf "$dir" "$port" ;;
    nginx) h2port=$(free_port); write_nginx_conf "$dir" "$port" "$h2port" ;;
    wraith) h2port=$(free_port); write_wraith_conf "$dir" "$port" "$h2port" ;;
    esac
    if [[ ${KIND[$slot]} == wraith ]]; then
        "$WRAITH_BIN" check -c "$dir/wraith.toml" >"$dir/check.stderr" 2>&1 ||
            die "$slot config rejected: $(cat "$dir/check.stderr")"
        cmd=("$WRAITH_BIN" serve -c "$dir/wraith.toml")
        pidfile=$dir/wraith.pid
        cp "$dir/wraith.toml" "$RESULTS/configs/$slot.toml"
    else
        "$NGINX_BIN" -t -q -c "$dir/nginx.conf" -p "$dir/" 2>"$dir/check.stderr" ||
            die "$slot config rejected: $(cat "$dir/check.stderr")"
        cmd=("$NGINX_BIN" -c "$dir/nginx.conf" -p "$dir/" -g 'daemon off;')
        pidfile=$dir/nginx.pid
        cp "$dir/nginx.conf" "$RESULTS/configs/$slot.conf"
    fi
    # Started on its own core from the first instruction; a background job of a shell without
    # job control is not a group leader, so setsid execs in place and $! is the master.
    setsid taskset -c "$(slot_cpu "$slot")" "${cmd[@]}" </dev/null \
        >"$dir/$slot.stdout" 2>"$dir/$slot.stderr" &
    pid=$!
    MASTER[$slot]=$pid
    PORT[$slot]=$port
    H2PORT[$slot]=$h2port
    WORKERS[$slot]=""
    for ((i = 0; i < 100; i++)); do
        is_alive "$pid" || die "$slot exited at startup: $(tail -n 5 "$dir"/*.stderr "$dir"/*error.log 2>/dev/null)"
        if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/" &&
            [[ -n $(children_of "$pid") || $i -ge 20 ]]; then
            break
        fi
        sleep 0.1
    done
    ((i < 100)) || die "$slot did not answer on 127.0.0.1:$port within 10 s"
    if [[ -s $pidfile && $(cat "$pidfile") != "$pid" ]]; then
        log "warning: $slot pid file says $(cat "$pidfile"), setsid gave $pid; using the pid file"
        MASTER[$slot]=$(cat "$pidfile")
    fi
    pin_server "$slot"
    check_body "$slot"
    log "$slot on 127.0.0.1:$port${h2port:+ (h2c 127.0.0.1:$h2port)}, CPU $(slot_cpu "$slot"):" \
        "master ${MASTER[$slot]}, workers ${WORKERS[$slot]}"
}

# CPU time (user + system, all threads, in clock ticks) of the master and workers of SLOT.
cpu_ticks() {
    local pid stat total=0 fields
    for pid in ${MASTER[$1]} ${WORKERS[$1]}; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r -a fields <<<"$stat"
        total=$((total + fields[11] + fields[12])) # utime, stime (fields 14 and 15 of stat)
    done
    echo "$total"
}

# Ticks a CPU spent running anything (user, nice, system) or stolen by the hypervisor.
core_ticks() { awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $9 }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

# Prefix for client commands: their own session (so their own autogroup) at niceness NICE.
# shellcheck disable=SC2016 # $0 and $@ are for the inner sh
CLIENT_PREFIX=(setsid -w sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec nice -n "$0" "$@"' "$NICE"
    taskset -c "$CLIENT_CPU")

# Runs a command and writes the CPU seconds it used (getrusage of children) to $1.
CHILD_CPU_PY='import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{usage.ru_utime + usage.ru_stime:.3f}\n")
sys.exit(status)'

# Waits up to QUIET_WAIT seconds until, over one second, neither core is more than 10% busy
# (the servers are idle between runs, so that load is someone else's: builds, tests).
wait_for_quiet() {
    local waited=0 s0 c0 s1 c1 limit=$((CLK_TCK / 10))
    ((QUIET_WAIT > 0)) || { sleep 1; return 0; } # just let the last connections close
    while ((waited < QUIET_WAIT)); do
        s0=$(core_ticks "$SERVER_CPU") c0=$(core_ticks "$CLIENT_CPU")
        sleep 1
        s1=$(core_ticks "$SERVER_CPU") c1=$(core_ticks "$CLIENT_CPU")
        ((s1 - s0 <= limit && c1 - c0 <= limit)) && break
        ((waited == 0)) && log "other load on CPUs $CLIENT_CPU,$SERVER_CPU; waiting up to ${QUIET_WAIT}s for it to settle"
        waited=$((waited + 1))
    done
    ((waited < QUIET_WAIT)) || log "still busy after ${QUIET_WAIT}s; running anyway"
}

# TCP connections accepted on this machine so far (TcpPassiveOpens): over a run, the client's
# connections to the proxy plus the proxy's new connections to the backend.
passive_opens() { awk '$1 == "Tcp:" && $2 ~ /^[0-9]+$/ { print $7 }' /proc/net/snmp; }

# Runs the client command CMD... against SLOT, pinned. OUT gets its output; OUT with .cpu
# (proxy_report.py reads it) the wall time, the CPU time of the proxy, the backend and the
# client, how busy each core was (to tell a proxy-bound run from a client-bound one and to
# spot other load), the TCP connections accepted and the client's exit status.
run_client() { # SLOT OUT CMD...
    local slot=$1 out=$2 status=0
    shift 2
    local p0 p1 b0 b1 t0 t1 sc0 sc1 cc0 cc1 bc0 bc1 po0 po1 client_cpu
    pin_server "$slot"
    pin_server backend
    p0=$(cpu_ticks "$slot") b0=$(cpu_ticks backend)
    sc0=$(core_ticks "$SERVER_CPU") cc0=$(core_ticks "$CLIENT_CPU") bc0=$(core_ticks "$BACKEND_CPU")
    po0=$(passive_opens)
    t0=$(date +%s.%N)
    "$PYTHON" -c "$CHILD_CPU_PY" "$out.client" "${CLIENT_PREFIX[@]}" "$@" >"$out" 2>&1 || status=$?
    t1=$(date +%s.%N)
    p1=$(cpu_ticks "$slot") b1=$(cpu_ticks backend)
    sc1=$(core_ticks "$SERVER_CPU") cc1=$(core_ticks "$CLIENT_CPU") bc1=$(core_ticks "$BACKEND_CPU")
    po1=$(passive_opens)
    ((status == 0)) || log "** FLAGGED: client ($*) exited with $status against $slot"
    is_alive "${MASTER[$slot]}" || die "$slot master died during the run"
    is_alive "${MASTER[backend]}" || die "the backend died during the run"
    client_cpu=$(cat "$out.client" 2>/dev/null || echo 0)
    rm -f "$out.client"
    awk -v hz="$CLK_TCK" -v proxy="$((p1 - p0))" -v backend="$((b1 - b0))" -v wall="$t1 $t0" \
        -v sc="$((sc1 - sc0))" -v cc="$((cc1 - cc0))" -v bc="$((bc1 - bc0))" \
        -v client="$client_cpu" -v opens="$((po1 - po0))" -v status="$status" \
        -v scpu="$SERVER_CPU" -v ccpu="$CLIENT_CPU" -v bcpu="$BACKEND_CPU" 'BEGIN {
            split(wall, w, " ")
            # What each core did for others: its busy time minus ours that ran there.
            mine[scpu] += proxy / hz; mine[ccpu] += client; mine[bcpu] += backend / hz
            busy[scpu] = sc / hz; busy[ccpu] = cc / hz; busy[bcpu] = bc / hz
            printf "wall_seconds=%.3f\n", w[1] - w[2]
            printf "cpu_seconds=%.2f\n", proxy / hz
            printf "backend_cpu_seconds=%.2f\n", backend / hz
            printf "client_cpu_seconds=%.2f\n", client
            printf "server_core_busy_seconds=%.2f\n", busy[scpu]
            printf "client_core_busy_seconds=%.2f\n", busy[ccpu]
            so = busy[scpu] - mine[scpu]; co = busy[ccpu] - mine[ccpu]
            bo = busy[bcpu] - mine[bcpu]
            other = so > co ? so : co; other = other > bo ? other : bo
            printf "other_core_seconds=%.2f\n", other < 0 ? 0 : other
            printf "passive_opens=%d\n", opens
            printf "client_exit_status=%d\n", status
        }' >"${out%.txt}.cpu"
}

# One measured (or warm-up) run of PROTO (h1: wrk; h2: h2load over h2c) against SLOT.
H2_LIMIT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN {
    n = d + 0; u = d; sub(/^[0-9.]+/, "", u); n *= (u == "ms" ? 0.001 : u == "m" ? 60 : 1)
    printf "%d", n + 60 }')
run_load() { # PROTO SLOT DURATION OUT
    local proto=$1 slot=$2 duration=$3 out=$4 log=${4%.txt}.log
    case $proto in
    h1) run_client "$slot" "$out" wrk -t1 -c"$CONNS" -d"$duration" --latency \
            "http://127.0.0.1:${PORT[$slot]}/" ;;
    h2) rm -f "$log"
        run_client "$slot" "$out" timeout -s KILL "$H2_LIMIT" h2load -t 1 -c "$H2_CONNS" \
            -m "$H2_STREAMS" -D "$duration" --warm-up-time=1s --log-file="$log" \
            "http://127.0.0.1:${H2PORT[$slot]}/"
        if [[ -s $log ]]; then
            "$PYTHON" "$BENCH_DIR/report.py" latency "$log" >"${out%.txt}.lat" || true
        fi
        rm -f "$log" ;; # hundreds of thousands of lines; the percentiles are kept
    esac
    {
        echo "proto=$proto"
        [[ $proto == h1 ]] && echo "connections=$CONNS" || echo "connections=$H2_CONNS"
        echo "keepalive=$KEEPALIVE"
    } >>"${out%.txt}.cpu"
}

# --- soak: RSS over a long run --------------------------------------------------------------

# h2load stops sending after 1,000,000 requests even in a timed run (-D) while the clock runs
# on (seen with Debian's 1.52), so the soak's h2 load is a series of runs of at most this many
# seconds, back to back: 100,000 req/s before it would matter.
SOAK_H2_CHUNK=10

# The soak's HTTP/2 client: h2load runs of at most SOAK_H2_CHUNK seconds for SOAK seconds, their
# outputs appended to OUT. Each run opens its connections anew.
soak_h2() { # SLOT OUT
    local end left status=0
    end=$(($(date +%s) + SOAK))
    while left=$((end - $(date +%s))); ((left > 0)); do
        ((left <= SOAK_H2_CHUNK)) || left=$SOAK_H2_CHUNK
        "${CLIENT_PREFIX[@]}" timeout -s KILL $((left + 60)) h2load -t 1 -c "$H2_CONNS" \
            -m "$H2_STREAMS" -D "$left" "http://127.0.0.1:${H2PORT[$1]}/" >>"$2" 2>&1 || status=$?
    done
    return "$status"
}

# Both clients at once against SLOT for SOAK seconds (wrk on the HTTP/1.1 port, h2load on the
# h2c port, the same settings as the measured runs), while the worker's VmRSS, Private_Dirty
# and open fds are sampled every SOAK_INTERVAL seconds into soak/SLOT.tsv: at 0 s (idle, before
# the load) and then while the load runs; then once more 1 s after it (metrics.tsv).
soak() { # SLOT
    local slot=$1 pid out="$RESULTS/soak/$1" t0 now next c1 c2 status
    pin_server "$slot"
    pin_server backend
    pid=$(main_worker "$slot")
    printf 'seconds\trss_kib\tprivate_dirty_kib\tfds\n' >"$out.tsv"
    sample() {
        printf '%s\t%s\t%s\t%s\n' "$1" "$(status_kib "$pid" VmRSS)" \
            "$(smaps_kib "$pid" Private_Dirty)" "$(fd_count "$pid")" >>"$out.tsv"
    }
    sample 0
    : >"$out-h2.txt"
    t0=$(date +%s)
    "${CLIENT_PREFIX[@]}" wrk -t1 -c"$CONNS" -d"${SOAK}s" --latency \
        "http://127.0.0.1:${PORT[$slot]}/" >"$out-h1.txt" 2>&1 &
    c1=$!
    soak_h2 "$slot" "$out-h2.txt" &
    c2=$!
    CLIENT_PIDS=("$c1" "$c2")
    next=$SOAK_INTERVAL
    while is_alive "$c1" || is_alive "$c2"; do
        sleep 1
        now=$(($(date +%s) - t0))
        ((now >= next && now < SOAK)) || continue
        next=$((next + SOAK_INTERVAL))
        is_alive "$pid" || die "$slot worker $pid died during the soak"
        sample "$now"
        if ((now % 60 < SOAK_INTERVAL)); then # about once a minute
            log "soak $slot: ${now}s of ${SOAK}s, worker RSS $(status_kib "$pid" VmRSS) KiB"
        fi
    done
    status=0
    wait "$c1" || status=$?
    ((status == 0)) || log "** FLAGGED: wrk exited with $status in the $slot soak"
    status=0
    wait "$c2" || status=$?
    ((status == 0)) || log "** FLAGGED: h2load exited with $status in the $slot soak"
    CLIENT_PIDS=()
    sleep 1
    metric "$slot" soak_seconds "$SOAK"
    metric "$slot" rss_after_soak_kib "$(status_kib "$pid" VmRSS)"
    metric "$slot" fds_after_soak "$(fd_count "$pid")"
    pin_server "$slot" # flags a worker that was replaced
}

# --- run ------------------------------------------------------------------------------------

{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo || true)"
    echo "nginx: $("$NGINX_BIN" -v 2>&1)"
    [[ $SELFTEST == 1 ]] && echo "wraith: (selftest: nginx)" || echo "wraith: $WRAITH_BIN"
    echo "h2load: $(h2load --version 2>&1 | head -n 1)"
    echo "h1: wrk -t1 -c$CONNS -d$DURATION --latency"
    echo "h2: h2load -t1 -c$H2_CONNS -m$H2_STREAMS -D $DURATION --warm-up-time=1s (h2c)"
    echo "rounds $ROUNDS; warm-up $WARMUP; upstream keepalive $KEEPALIVE"
    echo "nginx sends the forwarding fields: $NGINX_HEADERS"
    echo "soak ${SOAK}s, sampled every ${SOAK_INTERVAL}s; flat: peak growth <= $FLAT_KIB KiB"
    echo "client cpu $CLIENT_CPU, proxy cpu $SERVER_CPU, backend cpu $BACKEND_CPU, niceness $NICE"
    echo "load average: $(cat /proc/loadavg)"
} >"$RESULTS/environment.txt"
log "results in $RESULTS; ${DURATION} runs, $ROUNDS round(s), soak ${SOAK}s"

start_server backend
BACKEND_PORT=${PORT[backend]}
for slot in "${SLOTS[@]}"; do start_server "$slot"; done
for slot in "${SLOTS[@]}"; do
    metric "$slot" rss_start_kib "$(status_kib "$(main_worker "$slot")" VmRSS)"
done

FLAGGED=0
for proto in h1 h2; do
    for slot in "${SLOTS[@]}"; do
        log "warm-up $proto $slot for $WARMUP"
        run_load "$proto" "$slot" "$WARMUP" "$RESULTS/runs/warmup-$proto-$slot.txt"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for slot in "${SLOTS[@]}"; do
            out="$RESULTS/runs/$proto-$slot-r$round.txt"
            wait_for_quiet
            run_load "$proto" "$slot" "$DURATION" "$out"
            line=$("$PYTHON" "$BENCH_DIR/proxy_report.py" line "$out") || FLAGGED=$((FLAGGED + 1))
            log "$proto round $round $slot: $line"
        done
    done
done
for slot in "${SLOTS[@]}"; do
    metric "$slot" rss_after_load_kib "$(status_kib "$(main_worker "$slot")" VmRSS)"
done

if ((SOAK > 0)); then
    for slot in "${SLOTS[@]}"; do
        wait_for_quiet
        log "soak $slot: wrk -c$CONNS and h2load -c$H2_CONNS -m$H2_STREAMS at once for ${SOAK}s," \
            "RSS every ${SOAK_INTERVAL}s"
        soak "$slot"
    done
fi

# --- report ---------------------------------------------------------------------------------

echo
"$PYTHON" "$BENCH_DIR/proxy_report.py" table "$RESULTS" "$FLAT_KIB" | tee "$RESULTS/summary.md"
[[ $SELFTEST == 1 ]] && echo && echo "(selftest: the \"wraith\" column is a second nginx proxy)"
echo
echo "raw outputs, configs, logs and summary.md: $RESULTS"
