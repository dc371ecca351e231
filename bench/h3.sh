#!/usr/bin/env bash
# HTTP/3 section of `make bench`: Wraith against Caddy (Debian `caddy`, quic-go) and ngtcp2's
# example server (`gtlsserver`, Debian `ngtcp2-server` 1.11, the version Wraith builds on) on
# the same files and certificate, one worker / GOMAXPROCS=1 each, servers pinned to one core
# and the load generator (bench/h3load, built with the tree) to the other. Prints a Markdown
# table with ratios and PASS/FAIL against the targets of the QUIC issue (requests/s >= 1.1x
# gtlsserver and >= 10x Caddy, p99 < 10 ms, download >= gtlsserver's, <= 32 KiB per idle
# connection). See bench/README.md.
#
# Knobs (environment):
#   WRAITH_BIN, H3LOAD_BIN   binaries (default: build/wraith, build/h3load)
#   BENCH_H3_DURATION  seconds per measured request run         (default: 10)
#   BENCH_H3_WARMUP    seconds of uncounted warm-up before it    (default: 2)
#   BENCH_H3_CONNS / BENCH_H3_STREAMS  connections x streams     (default: 10 x 10)
#   BENCH_H3_ROUNDS    request runs per server, median reported  (default: 2)
#   BENCH_H3_IDLE      idle connections for the memory test      (default: 1000; 0 skips)
#   BENCH_H3_DOWNLOAD  MiB of the download test                  (default: 100)
#   BENCH_CLIENT_CPU / BENCH_SERVER_CPU                          (default: 0 / 1)
#   BENCH_H3_SERVERS   which servers to measure (default: "caddy gtlsserver wraith"; the
#                      report shows n/a for the ones left out, and only the peers measured
#                      are installed when missing)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WRAITH_BIN=${WRAITH_BIN:-$ROOT/build/wraith}
H3LOAD_BIN=${H3LOAD_BIN:-$ROOT/build/h3load}
DURATION=${BENCH_H3_DURATION:-10}
WARMUP=${BENCH_H3_WARMUP:-2}
CONNS=${BENCH_H3_CONNS:-10}
STREAMS=${BENCH_H3_STREAMS:-10}
ROUNDS=${BENCH_H3_ROUNDS:-2}
IDLE=${BENCH_H3_IDLE:-1000}
DOWNLOAD_MIB=${BENCH_H3_DOWNLOAD:-100}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
SERVER_CPU=${BENCH_SERVER_CPU:-1}

log() { printf 'bench-h3: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PATH=$PATH:/usr/sbin:/sbin
read -ra SERVERS <<<"${BENCH_H3_SERVERS:-caddy gtlsserver wraith}"
missing=()
for s in "${SERVERS[@]}"; do
    case $s in
        caddy) command -v caddy >/dev/null || missing+=(caddy) ;;
    esac
done
command -v openssl >/dev/null || missing+=(openssl)
command -v taskset >/dev/null || missing+=(util-linux)
if [[ " ${SERVERS[*]} " == *" gtlsserver "* ]] && ! command -v gtlsserver >/dev/null; then
    # The 1.11 of Wraith's own QUIC stack: on Debian 12 from bookworm-backports, as make deps
    # does it (Debian 12's own ngtcp2-server is 0.12).
    log "installing ngtcp2-server (make deps)"
    make -C "$ROOT" --no-print-directory deps QUIC_DEPS=ngtcp2-server:1.11 ||
        die "cannot install ngtcp2-server 1.11"
fi
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi
[[ -x $WRAITH_BIN ]] || die "no wraith binary at $WRAITH_BIN (make build)"
[[ -x $H3LOAD_BIN ]] || die "no h3load at $H3LOAD_BIN (make build)"

WORK=$(mktemp -d /tmp/wraith-bench-h3.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
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

# Files and certificate, the same for all three servers.
mkdir -p "$WORK/www"
python3 -c "import random,sys; r=random.Random(1); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(1024)))" >"$WORK/www/1k.bin"
head -c $((DOWNLOAD_MIB * 1048576)) /dev/zero >"$WORK/www/big.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
chmod 644 "$WORK/key.pem" "$WORK/cert.pem"

declare -A PORT=() PID=()

start_wraith() {
    local port; port=$(free_port)
    cat >"$WORK/wraith.toml" <<EOF
[server]
workers = 1
pid_file = "$WORK/wraith.pid"
control_socket = "$WORK/wraith.sock"
error_log = "$WORK/wraith-error.log"
$([[ $EUID -eq 0 ]] && echo 'user = "www-data"')

[http3]
max_connections = 20000
retry = "never"

[[listen]]
address = "127.0.0.1:$port"
tls = true

[[site]]
hosts = ["*"]
tls = { cert = "$WORK/cert.pem", key = "$WORK/key.pem" }
  [[site.route]]
  path = "/"
  static = { root = "$WORK/www" }
EOF
    taskset -c "$SERVER_CPU" "$WRAITH_BIN" serve -c "$WORK/wraith.toml" &
    PIDS+=($!); PID[wraith]=$!; PORT[wraith]=$port
}

start_caddy() {
    local port; port=$(free_port)
    cat >"$WORK/Caddyfile" <<EOF
{
    admin off
    auto_https off
    log default {
        output discard
    }
}
https://localhost:$port {
    bind 127.0.0.1
    tls $WORK/cert.pem $WORK/key.pem
    root * $WORK/www
    file_server
}
EOF
    HOME=$WORK XDG_DATA_HOME=$WORK XDG_CONFIG_HOME=$WORK GOMAXPROCS=1 \
        taskset -c "$SERVER_CPU" caddy run --config "$WORK/Caddyfile" --adapter caddyfile \
        >"$WORK/caddy.log" 2>&1 &
    PIDS+=($!); PID[caddy]=$!; PORT[caddy]=$port
}

start_gtlsserver() {
    local port; port=$(free_port)
    taskset -c "$SERVER_CPU" gtlsserver -q -d "$WORK/www" 127.0.0.1 "$port" \
        "$WORK/key.pem" "$WORK/cert.pem" >/dev/null 2>&1 &
    PIDS+=($!); PID[gtlsserver]=$!; PORT[gtlsserver]=$port
}

h3load() {
    local name=$1; shift
    taskset -c "$CLIENT_CPU" "$H3LOAD_BIN" -k --resolve "localhost:${PORT[$name]}:127.0.0.1" "$@"
}

wait_up() {
    local name=$1
    for _ in $(seq 1 100); do
        if h3load "$name" -c 1 -n 1 "https://localhost:${PORT[$name]}/1k.bin" 2>/dev/null |
            grep -q "1 succeeded"; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer HTTP/3 on port ${PORT[$name]}"
}

# The processes whose memory counts for a server: Wraith's workers, the others themselves.
server_rss_kib() {
    local name=$1 total=0 p
    local pids=${PID[$name]}
    if [[ $name == wraith ]]; then pids=$(pgrep -P "${PID[$name]}" || true); fi
    for p in $pids; do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
    done
    echo "$total"
}

num() { grep -oE "$1" | head -1 | grep -oE '[0-9.]+' | head -1; }

# --- measure --------------------------------------------------------------------------------

for s in "${SERVERS[@]}"; do
    case $s in caddy | gtlsserver | wraith) "start_$s" ;; *) die "unknown server $s" ;; esac
done
for s in "${SERVERS[@]}"; do wait_up "$s"; done
log "servers up: $(for s in "${SERVERS[@]}"; do printf '%s :%s ' "$s" "${PORT[$s]}"; done)"

declare -A RPS=() P99=() GBPS=() PERCONN=()
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Request rounds interleave the servers (round 1 of each, then round 2 of each, ...), so a
# drift of the machine's speed during the run does not favour whichever server goes first.
declare -A RPS_LIST=() P99_LIST=()
for r in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
        out=$(h3load "$s" -c "$CONNS" -m "$STREAMS" -D "$DURATION" --warm-up "$WARMUP" \
            "https://localhost:${PORT[$s]}/1k.bin" 2>&1) || true
        echo "$out" >"$WORK/$s-rps-$r.txt"
        failed=$(echo "$out" | num '[0-9]+ failed')
        rps=$(echo "$out" | num '[0-9.]+ req/s')
        p99=$(echo "$out" | grep -oE 'p99 [0-9.]+(us|ms|s)' | head -1)
        case $p99 in
            *us) p99=$(echo "${p99#p99 }" | tr -d 'us' | awk '{print $1/1000}') ;;
            *ms) p99=$(echo "${p99#p99 }" | tr -d 'ms') ;;
            *s) p99=$(echo "${p99#p99 }" | tr -d 's' | awk '{print $1*1000}') ;;
        esac
        [[ ${failed:-1} == 0 ]] || log "$s: round $r had failed requests: $(echo "$out" | grep requests:)"
        RPS_LIST[$s]+="${rps:-0} "; P99_LIST[$s]+="${p99:-0} "
        log "$s round $r: ${rps:-?} req/s, p99 ${p99:-?} ms"
    done
done

for s in "${SERVERS[@]}"; do
    RPS[$s]=$(printf '%s\n' ${RPS_LIST[$s]} | median)
    P99[$s]=$(printf '%s\n' ${P99_LIST[$s]} | median)

    out=$(h3load "$s" -c 1 -m 1 -n 3 "https://localhost:${PORT[$s]}/big.bin" 2>&1) || true
    echo "$out" >"$WORK/$s-download.txt"
    secs=$(echo "$out" | grep -oE 'finished in [0-9.]+(ms|s)' | head -1 |
        awk '{v=$3; if (v ~ /ms$/) {sub(/ms$/, "", v); print v/1000} else {sub(/s$/, "", v); print v}}')
    ok=$(echo "$out" | num '[0-9]+ succeeded')
    if [[ ${ok:-0} == 3 && -n $secs ]]; then
        GBPS[$s]=$(awk -v s="$secs" -v m="$DOWNLOAD_MIB" 'BEGIN {printf "%.2f", 3*m*1048576*8/s/1e9}')
    else
        GBPS[$s]=0
        log "$s: download failed: $(echo "$out" | grep -E 'requests:|error' | head -2)"
    fi
    log "$s: ${DOWNLOAD_MIB} MiB download x3: ${GBPS[$s]} Gbit/s"

    if ((IDLE > 0)); then
        before=$(server_rss_kib "$s")
        # Started directly, not through the h3load function: `kill $!` must reach h3load
        # itself (a function in the background is a subshell whose child would outlive it
        # and keep 1000 connections busy through the next server's measurements).
        taskset -c "$CLIENT_CPU" "$H3LOAD_BIN" -k --resolve "localhost:${PORT[$s]}:127.0.0.1" \
            --idle "$IDLE" --hold 600 "https://localhost:${PORT[$s]}/1k.bin" \
            >"$WORK/$s-idle.txt" 2>&1 &
        idle_pid=$!
        for _ in $(seq 1 600); do
            grep -q "idle:" "$WORK/$s-idle.txt" 2>/dev/null && break
            kill -0 "$idle_pid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        held=$(grep -oE 'idle: [0-9]+' "$WORK/$s-idle.txt" | grep -oE '[0-9]+' || echo 0)
        after=$(server_rss_kib "$s")
        kill "$idle_pid" 2>/dev/null || true
        wait "$idle_pid" 2>/dev/null || true
        if ((held > 0)); then
            PERCONN[$s]=$(((after - before) * 1024 / held))
        else
            PERCONN[$s]=-1
        fi
        log "$s: $held idle connections: RSS $before -> $after KiB, ${PERCONN[$s]} B each"
    fi
done

# --- report ---------------------------------------------------------------------------------

# n/a (a server left out) compares as no number, not as 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
    ok = (op == ">=") ? (v >= t) : (v <= t); print (ok ? "PASS" : "FAIL") }'; }
# Every verdict given must pass; n/a (a peer left out) neither passes nor fails.
all_of() {
    local v out=n/a
    for v in "$@"; do
        case $v in FAIL) echo FAIL; return ;; PASS) out=PASS ;; esac
    done
    echo "$out"
}

for s in caddy gtlsserver wraith; do
    [[ -v "RPS[$s]" ]] || { RPS[$s]=n/a; P99[$s]=n/a; GBPS[$s]=n/a; PERCONN[$s]=n/a; }
done

echo
echo "### HTTP/3 (h3load -c$CONNS -m$STREAMS -D ${DURATION}s, 1 KiB file; ${DOWNLOAD_MIB} MiB download; $IDLE idle connections)"
echo
echo "| metric | wraith | caddy | gtlsserver | wraith/caddy | wraith/gtlsserver | target | result |"
echo "|---|---|---|---|---|---|---|---|"
echo "| requests/s | ${RPS[wraith]} | ${RPS[caddy]} | ${RPS[gtlsserver]} | $(ratio "${RPS[wraith]}" "${RPS[caddy]}") | $(ratio "${RPS[wraith]}" "${RPS[gtlsserver]}") | ≥ 10× caddy, ≥ 1.1× gtlsserver | $(
    all_of "$(verdict "$(ratio "${RPS[wraith]}" "${RPS[caddy]}")" ">=" 10)" \
        "$(verdict "$(ratio "${RPS[wraith]}" "${RPS[gtlsserver]}")" ">=" 1.1)") |"
echo "| p99 latency (ms) | ${P99[wraith]} | ${P99[caddy]} | ${P99[gtlsserver]} | $(ratio "${P99[wraith]}" "${P99[caddy]}") | $(ratio "${P99[wraith]}" "${P99[gtlsserver]}") | < 10 ms | $(verdict "${P99[wraith]}" "<=" 10) |"
echo "| download (Gbit/s) | ${GBPS[wraith]} | ${GBPS[caddy]} | ${GBPS[gtlsserver]} | $(ratio "${GBPS[wraith]}" "${GBPS[caddy]}") | $(ratio "${GBPS[wraith]}" "${GBPS[gtlsserver]}") | ≥ gtlsserver | $(verdict "$(ratio "${GBPS[wraith]}" "${GBPS[gtlsserver]}")" ">=" 1) |"
if ((IDLE > 0)); then
    echo "| per idle connection (bytes) | ${PERCONN[wraith]} | ${PERCONN[caddy]} | ${PERCONN[gtlsserver]} | $(ratio "${PERCONN[wraith]}" "${PERCONN[caddy]}") | $(ratio "${PERCONN[wraith]}" "${PERCONN[gtlsserver]}") | ≤ 32 KiB | $(verdict "${PERCONN[wraith]}" "<=" 32768) |"
fi
