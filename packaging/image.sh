#!/bin/bash
# image.sh BINARY IMAGE: builds the minimal OCI image IMAGE with buildah, from scratch:
#   - BINARY (stripped) as /usr/sbin/wraith, and exactly its shared-library closure (ldd),
#     copied from this machine's Debian packages, whose names and versions are recorded in
#     /usr/share/doc/wraith-image/packages;
#   - /etc/ssl/certs/ca-certificates.crt from Debian's ca-certificates (HTTPS upstreams);
#   - a non-root user `wraith` (10001), which the image runs as;
#   - the default config (packaging/image/*.toml), mime.types and the default page.
# Prints the image's uncompressed size.
set -euo pipefail
bin=$1 image=$2
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Debian 12's merged /usr: /lib and /lib64 are links into /usr.
mkdir -p "$stage"/usr/{sbin,lib,lib64} "$stage"/etc/{wraith/certs,ssl/certs} \
    "$stage"/var/www/html "$stage"/tmp "$stage"/usr/share/doc/wraith-image
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"
chmod 1777 "$stage/tmp"
strip -o "$stage/usr/sbin/wraith" "$bin"

# The shared-library closure, as the dynamic loader resolves it on this machine.
packages=()
for lib in $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'); do
    real=$(readlink -f "$lib")
    case "$lib" in /lib/*|/lib64/*) lib=/usr$lib ;; esac
    case "$real" in /lib/*|/lib64/*) real=/usr$real ;; esac
    mkdir -p "$stage$(dirname "$real")" "$stage$(dirname "$lib")"
    cp "$real" "$stage$real"
    [ "$lib" = "$real" ] || ln -sf "$real" "$stage$lib"
    # dpkg knows a merged-/usr file by the path its package ships: /lib/... or /usr/lib/...
    owner=$( (dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true) \
        | head -n1 | cut -d: -f1)
    [ -n "$owner" ] || { echo "image.sh: no Debian package ships $real" >&2; exit 1; }
    packages+=("$owner")
done
packages+=(ca-certificates)
for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
    dpkg-query -W -f='${Package} ${Version}\n' "$p"
done > "$stage/usr/share/doc/wraith-image/packages"

cp /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nwraith:x:10001:10001:Wraith:/tmp:/usr/sbin/nologin\n' \
    > "$stage/etc/passwd"
printf 'root:x:0:\nwraith:x:10001:\n' > "$stage/etc/group"
cp "$here"/image/wraith.toml "$here"/image/wraith-tls.toml "$stage/etc/wraith/"
cp "$src/conf/mime.types" "$stage/etc/wraith/"
cp "$here/index.wraith-debian.html" "$stage/var/www/html/"

ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$stage" / >/dev/null
buildah config --user 10001:10001 --env HOME=/tmp --workingdir / \
    --port 8080/tcp --port 8443/tcp --port 8443/udp --stop-signal SIGQUIT \
    --entrypoint '["/usr/sbin/wraith"]' --cmd '["serve", "-c", "/etc/wraith/wraith.toml"]' \
    --label org.opencontainers.image.title=wraith \
    --label org.opencontainers.image.description="Wraith web server (HTTP/1.1, HTTP/2, HTTP/3)" \
    "$ctr"
buildah commit --quiet --rm "$ctr" "$image" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $size bytes uncompressed ($(( size / 1024 / 1024 )) MiB)"
echo "packages: $(tr '\n' ' ' < "$stage/usr/share/doc/wraith-image/packages")"
