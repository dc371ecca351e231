#!/bin/bash
# deb-version.sh SRC VERSION: adds a changelog entry for VERSION to SRC/debian/changelog, so
# `make deb DEB_VERSION=...` (and the system test's "newer build") makes that version.
set -euo pipefail
src=$1 version=$2
log=$src/debian/changelog
{
    printf 'wraith (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Rebuild as %s.\n\n' "$version"
    printf ' -- Wraith developers <wraith@lists.wraith-server.org>  %s\n\n' "$(date -R)"
    cat "$log"
} > "$log.new"
mv "$log.new" "$log"
