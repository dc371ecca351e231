#!/usr/bin/env bash
# `make bench`: Wraith against Debian's nginx on the same files, in one run, with the client
# (wrk or h2load, CPU 0) and the servers' processes (CPU 1) pinned to different cores. Prints
# Markdown tables of ratios wraith/nginx and PASS/MISS per target (DESIGN.md §8): one for plain
# HTTP/1.1, one for HTTPS (h2load over TLS: HTTP/2, HTTP/1.1, full handshakes). See
# bench/README.md.
#
# Knobs (environment):
#   WRAITH_BIN        wraith binary                          (default: build/wraith)
#   NGINX_BIN         nginx binary                           (default: nginx from PATH)
#   BENCH_DURATION    wrk duration per measured run          (default: 10s)
#   BENCH_CONNS       wrk keep-alive connections             (default: 50)
#   BENCH_ROUNDS      nginx,wraith pairs per file size       (default: 2)
#   BENCH_WARMUP      wrk warm-up per server and file size   (default: 2s)
#   BENCH_IDLE_CONNS  idle keep-alive connections per server (default: 10000; 0 skips the test)
#   BENCH_CLIENT_CPU / BENCH_SERVER_CPU                      (default: 0 / 1)
#   BENCH_QUIET_WAIT  seconds to wait before each run for other load on the two cores to
#                     drop below 10% (default: 10; 0 never waits). Runs still disturbed are
#                     marked NOISY in the report.
#   BENCH_NICE        niceness of the servers and wrk while measured (default: -10 as root,
#                     so builds on the same cores slow the benchmark less; 0 leaves it)
#   BENCH_TLS         1: run the HTTPS section (default); 0 skips it
#   BENCH_TLS_DURATION  h2load duration per measured keep-alive run (default: BENCH_DURATION);
#                     the handshake run sends as many requests as fit in it at the warm-up's rate
#   BENCH_TLS_WARMUP  h2load --warm-up-time before each of those runs (default: 1s)
#   BENCH_TLS_CONNS   h2load connections for the HTTP/2 and HTTP/1.1 runs (default: 100)
#   BENCH_TLS_STREAMS concurrent HTTP/2 streams per connection (default: 10)
#   BENCH_HS_CONNS    concurrent clients of the full-handshake run (default: 50)
#   BENCH_SELFTEST=1  run a second nginx in Wraith's slot: an A/A run that shows the noise
#                     floor of this machine and checks the harness without a wraith binary
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WRAITH_BIN=${WRAITH_BIN:-$ROOT/build/wraith}
NGINX_BIN=${NGINX_BIN:-nginx}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-50}
ROUNDS=${BENCH_ROUNDS:-2}
WARMUP=${BENCH_WARMUP:-2s}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
SERVER_CPU=${BENCH_SERVER_CPU:-1}
SELFTEST=${BENCH_SELFTEST:-0}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
NICE=${BENCH_NICE:-$([[ $EUID -eq 0 ]] && echo -10 || echo 0)}
PYTHON=${PYTHON:-python3}
TLS=${BENCH_TLS:-1}
TLS_DURATION=${BENCH_TLS_DURATION:-$DURATION}
TLS_WARMUP=${BENCH_TLS_WARMUP:-1s}
TLS_CONNS=${BENCH_TLS_CONNS:-100}
TLS_STREAMS=${BENCH_TLS_STREAMS:-10}
HS_CONNS=${BENCH_HS_CONNS:-50}

SLOTS=(nginx wraith)           # measured in this order, alternating
SIZES=(1k 100k)                # file names /1k.bin and /100k.bin
declare -A MASTER=() PORT=() WORKERS=() KIND=()

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- prerequisites --------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v "$NGINX_BIN" >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
command -v "$PYTHON" >/dev/null || missing+=(python3)
if [[ $TLS == 1 ]]; then
    command -v h2load >/dev/null || missing+=(nghttp2-client)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v timeout >/dev/null || missing+=(coreutils)
fi
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi
command -v "$NGINX_BIN" >/dev/null || die "no nginx binary ($NGINX_BIN)"
if [[ $SELFTEST == 1 ]]; then
    KIND=([nginx]=nginx [wraith]=nginx)
    log "BENCH_SELFTEST=1: a second nginx stands in for wraith (A/A run)"
else
    KIND=([nginx]=nginx [wraith]=wraith)
    [[ -x $WRAITH_BIN ]] || die "no wraith binary at $WRAITH_BIN (build it, or set WRAITH_BIN)"
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(dirname "$WRAITH_BIN")/CMakeCache.txt" 2>/dev/null || true)
    [[ -z $build_type || $build_type == Release ]] ||
        log "warning: $WRAITH_BIN is a $build_type build; compare a Release build"
fi
(($(nproc) >= 2)) || log "warning: fewer than 2 CPUs; client and server will share a core"

# Both servers and the idle-connection helper inherit this; nginx also sets its own.
# Without CAP_SYS_RESOURCE (containers) the hard limit caps it; use what we got.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
(($(ulimit -n) >= IDLE_CONNS + 1024)) ||
    log "warning: open-file limit $(ulimit -n) is below $((IDLE_CONNS + 1024))"

# --- temp dirs and cleanup ------------------------------------------------------------------

WORK=$(mktemp -d /tmp/wraith-bench.XXXXXX)       # configs, docroot, logs: removed at exit
RESULTS=$(mktemp -d /tmp/wraith-bench-results.XXXXXX) # raw outputs: kept
chmod 0755 "$WORK" "$RESULTS"                      # www-data workers read the docroot
mkdir -p "$RESULTS/wrk" "$RESULTS/logs" "$RESULTS/configs"
[[ $TLS == 1 ]] && mkdir -p "$RESULTS/h2load"
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
    [[ ${KIND[$slot]} == nginx ]] && signals=(QUIT TERM)
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

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    for slot in "${SLOTS[@]}"; do stop_server "$slot"; done
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
    printf '%s' "${kids:-${MASTER[$1]}}"
}

# The one worker whose memory is measured (workers = 1 in both configs).
main_worker() { local w; w=${WORKERS[$1]}; printf '%s' "${w%% *}"; }

# Pins every thread of the master and workers of SLOT to the server CPU, and notices a worker
# that was replaced since the last call (a crash the master recovered from).
pin_server() {
    local slot=$1 now pid tids
    now=$(find_workers "$slot")
    if [[ -n ${WORKERS[$slot]:-} && $now != "${WORKERS[$slot]}" ]]; then
        log "** FLAGGED: $slot workers changed from '${WORKERS[$slot]}' to '$now' (crash?)"
        printf '%s\tworker_restarted\t1\n' "$slot" >>"$RESULTS/metrics.tsv"
    fi
    WORKERS[$slot]=$now
    for pid in ${MASTER[$slot]} $now; do
        taskset -apc "$SERVER_CPU" "$pid" >/dev/null || log "warning: could not pin $slot pid $pid"
        # setpriority(PRIO_PROCESS) acts on one thread: renice each.
        tids=(/proc/"$pid"/task/*)
        ((NICE == 0)) || renice -n "$NICE" -p "${tids[@]##*/}" >/dev/null 2>&1 ||
            log "warning: could not renice $slot pid $pid"
    done
    # With sched_autogroup, CPU is shared between sessions first, so niceness inside the
    # server's own session (it runs under setsid) does nothing against a build in another
    # session: the session's autogroup gets the niceness too.
    if ((NICE != 0)) && [[ -e /proc/${MASTER[$slot]}/autogroup ]]; then
        echo "$NICE" >"/proc/${MASTER[$slot]}/autogroup" 2>/dev/null ||
            log "warning: could not set the autogroup niceness of $slot"
    fi
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
smaps_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || true; }

metric() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS/metrics.tsv"; }

record_memory() { # SLOT WHEN
    local pid rss dirty
    pid=$(main_worker "$1")
    rss=$(status_kib "$pid" VmRSS)
    dirty=$(smaps_kib "$pid" Private_Dirty)
    metric "$1" "rss_$2_kib" "$rss"
    [[ -n $dirty ]] && metric "$1" "private_dirty_$2_kib" "$dirty"
    log "$1 worker $pid $2: VmRSS $rss KiB${dirty:+, Private_Dirty $dirty KiB}"
}

# --- server configs -------------------------------------------------------------------------

# MODE is "load" (defaults plus the directives under test), "idle" (also raises the
# connection limits for the idle keep-alive test), "idle_h2" (as "idle", but the listener
# speaks HTTP/2 with prior knowledge, h2c) or "tls" (as "load", but the one listener speaks
# TLS with HTTP/2 and HTTP/1.1 in ALPN, with the certificate in $WORK/tls).
write_nginx_conf() { # DIR PORT MODE
    local dir=$1 port=$2 mode=$3 temp
    mkdir -p "$dir/tmp"
    {
        echo "worker_processes 1;"
        [[ $EUID -eq 0 ]] && echo "user www-data;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/nginx-error.log warn;"
        [[ $mode == idle* ]] && echo "worker_rlimit_nofile $NOFILE;"
        if [[ $mode == idle* ]]; then echo "events { worker_connections 20000; }"; else echo "events { }"; fi
        echo "http {"
        [[ -f /etc/nginx/mime.types ]] && echo "    include /etc/nginx/mime.types;"
        echo "    default_type application/octet-stream;"
        echo "    access_log off;"
        echo "    sendfile on;"
        echo "    tcp_nopush on;"
        echo "    keepalive_requests 100000;"
        echo "    keepalive_timeout 75s;"
        # Like Wraith's default open-file cache (1000 entries, revalidated every 1 s), so
        # neither server pays the path walk on every request.
        echo "    open_file_cache max=1000 inactive=20s;"
        echo "    open_file_cache_valid 1s;"
        echo "    open_file_cache_errors on;"
        # Keep nginx's temp files in the prefix rather than /var/lib/nginx.
        for temp in client_body proxy fastcgi uwsgi scgi; do
            [[ $temp != client_body ]] && "$NGINX_BIN" -V 2>&1 | grep -q -- "--without-http_${temp}_module" && continue
            echo "    ${temp}_temp_path $dir/tmp/$temp;"
        done
        echo "    server {"
        if [[ $mode == tls ]]; then
            echo "        listen 127.0.0.1:$port ssl http2;"
            echo "        ssl_certificate $WORK/tls/cert.pem;"
            echo "        ssl_certificate_key $WORK/tls/key.pem;"
            echo "        ssl_protocols TLSv1.2 TLSv1.3;"
            echo "        ssl_session_tickets on;"
        elif [[ $mode == idle_h2 ]]; then
            echo "        listen 127.0.0.1:$port http2;" # nginx 1.22: h2c with prior knowledge
        else
            echo "        listen 127.0.0.1:$port;"
        fi
        echo "        root $WORK/www;"
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
}

write_wraith_conf() { # DIR PORT MODE
    local dir=$1 port=$2 mode=$3
    # The default mime_types is "beside the config file".
    [[ -f $ROOT/conf/mime.types ]] && cp "$ROOT/conf/mime.types" "$dir/mime.types"
    cat >"$dir/wraith.toml" <<EOF
[server]
workers = 1
user = "www-data"
pid_file = "$dir/wraith.pid"
control_socket = "$dir/wraith.sock"
error_log = "$dir/wraith-error.log"
log_level = "warn"
$([[ $mode == idle* ]] && echo "max_connections = 20000")

[http]
keepalive_requests = 100000

[access_log]
path = "off"

[[listen]]
address = "127.0.0.1:$port"
$([[ $mode == tls ]] && printf '%s\n' 'tls = true' 'protocols = ["h2", "http/1.1"]')
$([[ $mode == idle_h2 ]] && echo 'protocols = ["http/1.1", "h2c"]')

[[site]]
hosts = ["*"]
default = true
$([[ $mode == tls ]] && echo "tls = { cert = \"$WORK/tls/cert.pem\", key = \"$WORK/tls/key.pem\" }")

  [[site.route]]
  path = "/"
  static = { root = "$WORK/www" }
  compress = false
EOF
}

start_server() { # SLOT MODE
    local slot=$1 mode=$2 dir="$WORK/$1" port pid i cmd pidfile
    port=$(free_port)
    mkdir -p "$dir"
    chmod 0755 "$dir"
    if [[ ${KIND[$slot]} == nginx ]]; then
        write_nginx_conf "$dir" "$port" "$mode"
        "$NGINX_BIN" -t -q -c "$dir/nginx.conf" -p "$dir/" 2>"$dir/check.stderr" ||
            die "$slot config rejected: $(cat "$dir/check.stderr")"
        cmd=("$NGINX_BIN" -c "$dir/nginx.conf" -p "$dir/" -g 'daemon off;')
        pidfile=$dir/nginx.pid
    else
        write_wraith_conf "$dir" "$port" "$mode"
        "$WRAITH_BIN" check -c "$dir/wraith.toml" >"$dir/check.stderr" 2>&1 ||
            die "$slot config rejected: $(cat "$dir/check.stderr")"
        cmd=("$WRAITH_BIN" serve -c "$dir/wraith.toml")
        pidfile=$dir/wraith.pid
    fi
    cp "$dir"/*.conf "$dir"/*.toml "$RESULTS/configs/" 2>/dev/null || true
    for f in "$RESULTS/configs/nginx.conf" "$RESULTS/configs/wraith.toml"; do
        [[ -e $f ]] && mv "$f" "$RESULTS/configs/$slot-$mode.${f##*.}"
    done
    # A background job of a shell without job control is not a group leader, so setsid
    # execs in place and $! is the master; the pid file below confirms it.
    setsid "${cmd[@]}" </dev/null >"$dir/$slot.stdout" 2>"$dir/$slot.stderr" &
    pid=$!
    MASTER[$slot]=$pid
    PORT[$slot]=$port
    WORKERS[$slot]=""
    for ((i = 0; i < 100; i++)); do
        is_alive "$pid" || die "$slot exited at startup: $(tail -n 5 "$dir"/*.stderr "$dir"/*error.log 2>/dev/null)"
        # An h2c-only listener (nginx's `listen ... http2` without ssl) takes only HTTP/2.
        if curl -sfk -o /dev/null --max-time 1 $([[ $mode == idle_h2 ]] && echo --http2-prior-knowledge) \
            "$(scheme "$mode")://127.0.0.1:$port/1k.bin" &&
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
    log "$slot ($mode) on 127.0.0.1:$port: master ${MASTER[$slot]}, workers ${WORKERS[$slot]}"
}

scheme() { [[ $1 == tls ]] && echo https || echo http; } # MODE -> URL scheme

# Serves the right bytes? A fast server that sends the wrong file measures nothing.
# With MODE tls: over HTTPS with HTTP/1.1 and, when the server negotiates it, HTTP/2.
check_content() { # SLOT [MODE [CURL_OPTIONS...]]
    local slot=$1 mode=${2:-load} size got want
    shift $(($# < 2 ? $# : 2))
    for size in "${SIZES[@]}"; do
        want=$(sha256sum <"$WORK/www/$size.bin")
        got=$(curl -sfk "$@" --max-time 5 "$(scheme "$mode")://127.0.0.1:${PORT[$slot]}/$size.bin" | sha256sum)
        [[ $got == "$want" ]] || die "$slot served different bytes for /$size.bin${*:+ ($*)}"
    done
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
# Interrupt time is left out: the loopback traffic under test lands there.
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

# Waits up to QUIET_WAIT seconds until, over one second, neither pinned core is more than 10%
# busy (the servers are idle between runs, so that load is someone else's: builds, tests).
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

# TCP connections accepted on this machine so far (TcpPassiveOpens). Machine-wide, so the
# difference over a run is at least the connections the client opened to the server.
passive_opens() { awk '$1 == "Tcp:" && $2 ~ /^[0-9]+$/ { print $7 }' /proc/net/snmp; }

FLAGGED=0
# Runs the client command CMD... against SLOT, pinned (CLIENT_PREFIX). OUT gets its output;
# OUT with .cpu gets the CPU time of the server, of the client, and of everything else on
# their two cores, so the report can tell a server-bound run (server CPU ~100%) from a
# client-bound one, and a run disturbed by other load; also the TCP connections accepted.
run_client() { # SLOT OUT CMD...
    local slot=$1 out=$2 status=0
    shift 2
    local ticks0 ticks1 t0 t1 sc0 sc1 cc0 cc1 po0 po1 client_cpu
    pin_server "$slot"
    ticks0=$(cpu_ticks "$slot") sc0=$(core_ticks "$SERVER_CPU") cc0=$(core_ticks "$CLIENT_CPU")
    po0=$(passive_opens)
    t0=$(date +%s.%N)
    "$PYTHON" -c "$CHILD_CPU_PY" "$out.client" "${CLIENT_PREFIX[@]}" "$@" >"$out" 2>&1 || status=$?
    t1=$(date +%s.%N)
    ticks1=$(cpu_ticks "$slot") sc1=$(core_ticks "$SERVER_CPU") cc1=$(core_ticks "$CLIENT_CPU")
    po1=$(passive_opens)
    ((status == 0)) || log "** FLAGGED: client ($*) exited with $status against $slot"
    is_alive "${MASTER[$slot]}" || die "$slot master died during the run"
    client_cpu=$(cat "$out.client" 2>/dev/null || echo 0)
    rm -f "$out.client"
    awk -v hz="$CLK_TCK" -v server="$((ticks1 - ticks0))" -v wall="$t1 $t0" \
        -v sc="$((sc1 - sc0))" -v cc="$((cc1 - cc0))" -v client="$client_cpu" \
        -v opens="$((po1 - po0))" -v status="$status" 'BEGIN {
            split(wall, w, " ")
            printf "wall_seconds=%.3f\n", w[1] - w[2]
            printf "cpu_seconds=%.2f\n", server / hz
            printf "client_cpu_seconds=%.2f\n", client
            printf "server_core_busy_seconds=%.2f\n", sc / hz
            printf "client_core_busy_seconds=%.2f\n", cc / hz
            printf "passive_opens=%d\n", opens
            printf "client_exit_status=%d\n", status
        }' >"${out%.txt}.cpu"
}

# Runs wrk against SLOT (plain HTTP/1.1 keep-alive).
run_wrk() { # SLOT SIZE DURATION OUT
    run_client "$1" "$4" wrk -t1 -c"$CONNS" -d"$3" --latency "http://127.0.0.1:${PORT[$1]}/$2.bin"
}

# --- HTTPS helpers --------------------------------------------------------------------------

# A wrk/h2load duration (10s, 500ms, 2m, 1h, or bare seconds) in seconds.
duration_seconds() {
    awk -v d="$1" 'BEGIN {
        n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
        print n * (u == "ms" ? 0.001 : u == "m" ? 60 : u == "h" ? 3600 : 1) }'
}

# One ECDSA P-256 self-signed certificate for localhost and 127.0.0.1; both servers use it.
make_cert() {
    local dir=$WORK/tls
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>"$dir/openssl.stderr" ||
        die "openssl could not make the test certificate: $(cat "$dir/openssl.stderr")"
    chmod 0755 "$dir"
    chmod 0644 "$dir/cert.pem"
    # Readable by the servers' www-data processes, in case a worker loads it after dropping root.
    if [[ $EUID -eq 0 ]] && chgrp www-data "$dir/key.pem" 2>/dev/null; then
        chmod 0640 "$dir/key.pem"
    else
        chmod 0600 "$dir/key.pem"
    fi
    cp "$dir/cert.pem" "$RESULTS/configs/cert.pem" # public; the key is removed with $WORK
}

# The HTTP version curl gets from SLOT's TLS listener when it offers h2 in ALPN: "2" when
# the server negotiated HTTP/2, "1.1" when it did not.
negotiated_http() { # SLOT
    curl -sk --http2 -o /dev/null --max-time 5 -w '%{http_version}' \
        "https://127.0.0.1:${PORT[$1]}/1k.bin" 2>/dev/null || true
}

# Runs h2load against SLOT's TLS listener for the 1 KiB file. TEST is
#   h2  HTTP/2, TLS_CONNS connections x TLS_STREAMS streams, for TLS_DURATION after a warm-up
#       of TLS_WARMUP on the same connections (only established connections are measured)
#   h1  HTTP/1.1, TLS_CONNS connections, one request at a time each, likewise
#   hs  HTTP/1.1 with "Connection: close", HS_CONNS clients, REQUESTS requests in all: the
#       server closes after each response and h2load opens a new connection, with a full
#       handshake (h2load never offers a session to resume), for the next
# With LOG, h2load logs every request and report.py turns that into percentiles (OUT.lat).
H2LOAD_VERSION=""
run_h2load() { # TEST SLOT OUT [REQUESTS]
    local test=$1 slot=$2 out=$3 requests=${4:-0} limit args log=${3%.txt}.log
    case $test in
    h2) args=(-c "$TLS_CONNS" -m "$TLS_STREAMS" -D "$TLS_DURATION" --warm-up-time="$TLS_WARMUP")
        limit=$(awk -v a="$(duration_seconds "$TLS_DURATION")" -v b="$(duration_seconds "$TLS_WARMUP")" 'BEGIN { printf "%d", a + b + 60 }') ;;
    h1) args=(--h1 -c "$TLS_CONNS" -D "$TLS_DURATION" --warm-up-time="$TLS_WARMUP")
        limit=$(awk -v a="$(duration_seconds "$TLS_DURATION")" -v b="$(duration_seconds "$TLS_WARMUP")" 'BEGIN { printf "%d", a + b + 60 }') ;;
    hs) args=(--h1 -c "$HS_CONNS" -n "$requests" -H 'Connection: close')
        # h2load has no time limit with -n; a server that stalls must not hang the benchmark.
        limit=$(awk -v a="$(duration_seconds "$TLS_DURATION")" 'BEGIN { a = 10 * a; printf "%d", a < 120 ? 120 : a }') ;;
    *) die "unknown h2load test $test" ;;
    esac
    rm -f "$log"
    run_client "$slot" "$out" timeout -s KILL "$limit" \
        h2load -t 1 "${args[@]}" --log-file="$log" "https://127.0.0.1:${PORT[$slot]}/1k.bin"
    {
        echo "test=$test"
        [[ $test == h2 ]] && echo "expect_protocol=h2" || echo "expect_protocol=http/1.1"
        [[ $test == hs ]] && echo "requests_wanted=$requests"
        [[ $test == h2 ]] && echo "streams=$TLS_STREAMS"
        echo "connections=$([[ $test == hs ]] && echo "$HS_CONNS" || echo "$TLS_CONNS")"
    } >>"${out%.txt}.cpu"
    if [[ -s $log ]]; then
        "$PYTHON" "$BENCH_DIR/report.py" latency "$log" >"${out%.txt}.lat" || true
    fi
    rm -f "$log" # hundreds of thousands of lines; the percentiles are kept
}

# requests/s on the "finished in" line of an h2load output, 0 when absent.
h2load_rps() { awk '/^finished in/ { gsub(",", ""); print $4 + 0; found = 1 } END { if (!found) print 0 }' "$1"; }

# --- docroot --------------------------------------------------------------------------------

mkdir -p "$WORK/www"
"$PYTHON" - "$WORK/www" <<'EOF'
import random, sys
for name, size in (("1k", 1024), ("100k", 102400)):
    rng = random.Random(f"wraith-bench-{name}")   # fixed seed: the same bytes every run
    with open(f"{sys.argv[1]}/{name}.bin", "wb") as f:
        f.write(rng.randbytes(size))
EOF
chmod 0755 "$WORK/www"
chmod 0644 "$WORK/www"/*.bin

log "results in $RESULTS; wrk -t1 -c$CONNS -d$DURATION, $ROUNDS round(s), warm-up $WARMUP"
{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo || true)"
    echo "nginx: $("$NGINX_BIN" -v 2>&1)"
    [[ $SELFTEST == 1 ]] && echo "wraith: (selftest: nginx)" || echo "wraith: $WRAITH_BIN"
    echo "wrk -t1 -c$CONNS -d$DURATION --latency; rounds $ROUNDS; warm-up $WARMUP"
    echo "client cpu $CLIENT_CPU, server cpu $SERVER_CPU, niceness $NICE"
    echo "load average: $(cat /proc/loadavg)"
} >"$RESULTS/environment.txt"

# --- throughput and latency -----------------------------------------------------------------

for slot in "${SLOTS[@]}"; do
    start_server "$slot" load
    check_content "$slot"
    record_memory "$slot" start
done

for size in "${SIZES[@]}"; do
    for slot in "${SLOTS[@]}"; do
        log "warm-up $slot /$size.bin for $WARMUP"
        run_wrk "$slot" "$size" "$WARMUP" "$RESULTS/warmup-$size-$slot.txt"
    done
done
sleep 1
for slot in "${SLOTS[@]}"; do record_memory "$slot" after_warmup; done

for size in "${SIZES[@]}"; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for slot in "${SLOTS[@]}"; do
            out="$RESULTS/wrk/$size-$slot-r$round.txt"
            wait_for_quiet
            run_wrk "$slot" "$size" "$DURATION" "$out"
            line=$("$PYTHON" "$BENCH_DIR/report.py" parse "$out") || FLAGGED=$((FLAGGED + 1))
            log "$size round $round $slot: $line"
        done
    done
done
sleep 1
for slot in "${SLOTS[@]}"; do record_memory "$slot" after_load; done

# --- idle keep-alive connections ------------------------------------------------------------

if ((IDLE_CONNS > 0)); then
    for slot in "${SLOTS[@]}"; do stop_server "$slot"; done
    for slot in "${SLOTS[@]}"; do
        start_server "$slot" idle
        pid=$(main_worker "$slot")
        log "$slot: $IDLE_CONNS idle keep-alive connections against worker $pid"
        "${CLIENT_PREFIX[@]}" "$PYTHON" "$BENCH_DIR/idle_conns.py" --port "${PORT[$slot]}" \
            --pid "$pid" -n "$IDLE_CONNS" >"$RESULTS/idle-$slot.txt" ||
            log "** FLAGGED: $slot did not hold all $IDLE_CONNS connections"
        sed 's/^/    /' "$RESULTS/idle-$slot.txt" >&2
        while IFS='=' read -r key value; do
            [[ $key == error_sample ]] && continue
            metric "$slot" "idle_$key" "$value"
        done <"$RESULTS/idle-$slot.txt"
        pin_server "$slot" # flags a worker that died under the test
        stop_server "$slot"
        # The same over HTTP/2 (h2c with prior knowledge): one GET per connection, then idle.
        start_server "$slot" idle_h2
        pid=$(main_worker "$slot")
        log "$slot: $IDLE_CONNS idle HTTP/2 connections against worker $pid"
        "${CLIENT_PREFIX[@]}" "$PYTHON" "$BENCH_DIR/idle_conns.py" --h2c --port "${PORT[$slot]}" \
            --pid "$pid" -n "$IDLE_CONNS" >"$RESULTS/idle-h2-$slot.txt" ||
            log "** FLAGGED: $slot did not hold all $IDLE_CONNS HTTP/2 connections"
        sed 's/^/    /' "$RESULTS/idle-h2-$slot.txt" >&2
        while IFS='=' read -r key value; do
            [[ $key == error_sample ]] && continue
            metric "$slot" "idle_h2_$key" "$value"
        done <"$RESULTS/idle-h2-$slot.txt"
        pin_server "$slot"
        stop_server "$slot"
    done
fi

# --- HTTPS: h2load over TLS -----------------------------------------------------------------

if [[ $TLS == 1 ]]; then
    for slot in "${SLOTS[@]}"; do stop_server "$slot"; done
    make_cert
    H2LOAD_VERSION=$(h2load --version 2>&1 | head -n 1)
    echo "h2load: $H2LOAD_VERSION; TLS: -c$TLS_CONNS (-m$TLS_STREAMS for h2) -D$TLS_DURATION" \
        "after --warm-up-time=$TLS_WARMUP; handshakes: --h1 -c$HS_CONNS with Connection: close" \
        >>"$RESULTS/environment.txt"
    declare -A H2=()
    for slot in "${SLOTS[@]}"; do
        start_server "$slot" tls
        check_content "$slot" tls --http1.1
        version=$(negotiated_http "$slot")
        if [[ $version == 2 ]]; then
            H2[$slot]=1
            check_content "$slot" tls --http2
        else
            H2[$slot]=0
            log "$slot negotiates HTTP/${version:-?} when offered h2: its h2 runs are skipped"
        fi
        metric "$slot" tls_h2 "${H2[$slot]}"
    done

    # Warm-up, and the size of the handshake run: as many requests as both servers would
    # do in TLS_DURATION at the mean of their warm-up rates (h2load -D cannot be used with
    # Connection: close: h2load 1.52 keeps reconnecting after the duration ends).
    hs_rates=()
    for slot in "${SLOTS[@]}"; do
        log "warm-up $slot: $((HS_CONNS * 40)) full TLS handshakes"
        run_h2load hs "$slot" "$RESULTS/warmup-tls-hs-$slot.txt" $((HS_CONNS * 40))
        rate=$(h2load_rps "$RESULTS/warmup-tls-hs-$slot.txt")
        log "warm-up $slot: $rate handshakes/s"
        [[ $rate != 0 ]] && hs_rates+=("$rate")
    done
    HS_REQUESTS=$(awk -v secs="$(duration_seconds "$TLS_DURATION")" -v min=$((HS_CONNS * 20)) \
        -v rates="${hs_rates[*]}" 'BEGIN {
            n = split(rates, r, " "); sum = 0
            for (i = 1; i <= n; i++) sum += r[i]
            want = n ? int(sum / n * secs) : min
            print want < min ? min : want }')
    log "handshake runs: $HS_REQUESTS requests, one TLS connection each, $HS_CONNS at a time"

    for test in h2 h1 hs; do
        for ((round = 1; round <= ROUNDS; round++)); do
            for slot in "${SLOTS[@]}"; do
                if [[ $test == h2 && ${H2[$slot]} != 1 ]]; then
                    ((round == 1)) && log "tls-h2 $slot: skipped, no HTTP/2 in ALPN"
                    continue
                fi
                out="$RESULTS/h2load/tls-$test-$slot-r$round.txt"
                wait_for_quiet
                run_h2load "$test" "$slot" "$out" "$HS_REQUESTS"
                line=$("$PYTHON" "$BENCH_DIR/report.py" parse-h2load "$out") || FLAGGED=$((FLAGGED + 1))
                log "tls-$test round $round $slot: $line"
            done
        done
    done
    for slot in "${SLOTS[@]}"; do stop_server "$slot"; done
fi

# --- report ---------------------------------------------------------------------------------

echo
"$PYTHON" "$BENCH_DIR/report.py" table "$RESULTS" | tee "$RESULTS/summary.md"
[[ $SELFTEST == 1 ]] && echo && echo "(selftest: the \"wraith\" column is a second nginx)"
echo
echo "raw wrk outputs, logs and summary.md: $RESULTS"
