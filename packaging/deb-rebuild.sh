#!/bin/bash
# deb-rebuild.sh OUT VERSION: builds the package again as VERSION in the tree `make deb` left
# in OUT/src, without cleaning it: only what the version changes is rebuilt (main.cc, which
# prints it with `wraith -V`). The system test's "newer build" for the binary upgrade.
set -euo pipefail
out=$1 version=$2
src=$out/src
[ -d "$src/debian" ] || { echo "deb-rebuild: run make deb first ($src missing)" >&2; exit 1; }
bash "$(dirname "$0")/deb-version.sh" "$src" "$version"
# Forget which dh steps ran, so configure (the new version) and install run again.
rm -rf "$src/debian/.debhelper" "$src/debian/wraith" "$src/debian/wraith-dbgsym" \
    "$src/debian/files" "$src"/debian/*.substvars "$src"/debian/*.debhelper.log \
    "$src/debian/debhelper-build-stamp"
cd "$src"
DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -b -us -uc -nc
