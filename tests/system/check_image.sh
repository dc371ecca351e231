#!/bin/bash
# `make check-system`, part 2: the OCI image (make image) under podman.
#   1. the default config: HTTP/1.1 (and h2c) on 8080, the default page, as the non-root user;
#   2. wraith-tls.toml with a certificate mounted: HTTP/1.1 on 8080 and HTTP/3 on UDP 8443.
# Ports are published on 127.0.0.1 only, on free ephemeral ports. Containers are removed by
# name at the end. Prints "N passed, N failed".
#
# This sandbox's limits, and what the podman command line does about them (docs/decisions.md,
# "OCI image"):
#   - no CAP_SYS_RESOURCE in the capability bounding set: the runtime cannot set an rlimit
#     above the caller's, and podman (root) asks for higher RLIMIT_NOFILE/RLIMIT_NPROC than
#     this shell has: --ulimit gives values at or below ours;
#   - cgroups in hybrid mode with a controller (hugetlb) left on the cgroup2 hierarchy: crun
#     refuses to start anything ("cgroups in hybrid mode not supported, drop all controllers
#     from cgroupv2"), --cgroups=disabled included; runc (Debian's runc) accepts it.
set -uo pipefail
image=${1:?usage: check_image.sh IMAGE}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${WRAITH_BUILD_DIR:-$src/build}
work=$(mktemp -d)
name=wraith-imagetest-$$
passed=0 failed=0

check() { # check NAME COMMAND...
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "[check-image] PASS: $what"
    else failed=$((failed + 1)); echo "[check-image] FAIL: $what"; fi
}
cleanup() {
    podman rm -f "$name-plain" "$name-tls" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'
}

run_args=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    run_args+=(--runtime runc)
fi

size=$(podman image inspect --format '{{.Size}}' "$image")
echo "[check-image] $image: $size bytes uncompressed ($(awk "BEGIN { printf \"%.1f\", $size / 1048576 }") MiB)"
check "image at most 25 MB uncompressed" test "$size" -le 25000000
user=$(podman image inspect --format '{{.Config.User}}' "$image")
check "image runs as a non-root user ($user)" test "$user" = "10001:10001"

page=$src/packaging/index.wraith-debian.html
wait_http() { # wait_http URL: up to 15 s
    for _ in $(seq 150); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    return 1
}

# 1. The default configuration.
p1=$(free_port)
podman run -d "${run_args[@]}" --name "$name-plain" -p "127.0.0.1:$p1:8080" "$image" >/dev/null
wait_http "http://127.0.0.1:$p1/"
check "default config: default page over HTTP/1.1" \
    cmp -s <(curl -sS --max-time 10 "http://127.0.0.1:$p1/") "$page"
check "default config: HTTP/2 (h2c) on 8080" test "$(curl -sS --max-time 10 -o /dev/null \
    -w '%{http_version}' --http2-prior-knowledge "http://127.0.0.1:$p1/")" = 2
procs=$(podman top "$name-plain" user args 2>&1)
check "every process of the container runs as wraith" \
    bash -c '! grep -v "^USER" <<<"$0" | grep -qv "^wraith "' "$procs"
podman logs "$name-plain" 2>&1 | tail -n 3

# 2. TLS and HTTP/3 with a certificate mounted.
mkdir -p "$work/certs"
"$build/wraith" generate certs --self-signed --hosts localhost,127.0.0.1 --dir "$work/certs" \
    >/dev/null
mv "$work/certs/localhost.pem" "$work/certs/tls.pem"
mv "$work/certs/localhost.key" "$work/certs/tls.key"
chmod 0755 "$work/certs"
chmod 0644 "$work/certs/tls.key"   # the container's user reads it; a test key
p2=$(free_port) p3=$(free_port)
podman run -d "${run_args[@]}" --name "$name-tls" -p "127.0.0.1:$p2:8080" \
    -p "127.0.0.1:$p3:8443/tcp" -p "127.0.0.1:$p3:8443/udp" \
    -v "$work/certs:/etc/wraith/certs:ro" "$image" serve -c /etc/wraith/wraith-tls.toml >/dev/null
wait_http "http://127.0.0.1:$p2/"
check "TLS config: default page over HTTP/1.1" \
    cmp -s <(curl -sS --max-time 10 "http://127.0.0.1:$p2/") "$page"
want="200 $(stat -c %s "$page") $(sha256sum "$page" | cut -d' ' -f1)"
got=$("$build/h3get" --cacert "$work/certs/wraith-dev-ca.pem" --resolve "localhost:$p3:127.0.0.1" \
    --summary "https://localhost:$p3/" 2>&1)
echo "[check-image] h3get: $got"
check "TLS config: default page over HTTP/3 (UDP 8443)" test "${got%% https*}" = "$want"
check "TLS config: HTTPS over TCP, HTTP/2" test "$(curl -sS --max-time 10 -o /dev/null \
    -w '%{http_version}' --cacert "$work/certs/wraith-dev-ca.pem" \
    --resolve "localhost:$p3:127.0.0.1" "https://localhost:$p3/")" = 2
podman logs "$name-tls" 2>&1 | tail -n 3
check "graceful stop (SIGQUIT) within 20 s" podman stop -t 20 "$name-tls"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
